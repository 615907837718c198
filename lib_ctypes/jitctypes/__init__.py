"""jitctypes: CPython's ctypes with foreign calls compiled by Cranelift.

- ``jitctypes.install()``: every later ``import ctypes`` runs on jitctypes;
- ``python -m jitctypes script.py``: runs a program that way;
- ``import jitctypes.ctypes``: the stdlib ctypes package on jitctypes, next to stock ctypes.

See README.md and ARCHITECTURE.md.
"""

import atexit as _atexit

from jitctypes import _rawffi
from jitctypes.loader import install, is_installed

# Registered first, so it runs after the program's own exit handlers: from then on, threads
# other than the exiting one that call back into Python or return from C wait for the
# process to end instead of being ended inside Rust frames (pybridge/src/gil.rs).
_atexit.register(_rawffi.close_for_exit)

__version__ = _rawffi.__version__
__all__ = ["__version__", "install", "is_installed", "set_trivial", "stats"]


def set_trivial(function, trivial: bool = True) -> None:
    """Calls of `function` (a ctypes function object) keep the GIL instead of releasing it
    around the C call: for short, non-blocking C functions (like .NET's
    SuppressGCTransition), it saves ~30 ns per call. A function that blocks or calls back
    into Python from another thread must not be marked."""
    function._jitctypes_set_trivial_(trivial)


def stats() -> dict:
    """What the call paths did so far: per signature (``"i32 (i32, i32)"``), the function
    objects with a fast path and the calls taken by the fast and the general path; why
    other function objects have none (``no_fast_path``); and the stub cache (stubs
    compiled (direct and entry stubs), code bytes, compile time in µs, libffi
    descriptions)."""
    result = _rawffi.fast_path_stats()
    result["stub_cache"] = _rawffi.stub_cache_stats()
    return result
