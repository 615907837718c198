"""Running the stdlib ``ctypes`` package, unchanged, on ``jitctypes._ctypes``.

Two ways, both loading the package from the running Python's own library:

- ``install()`` puts ``jitctypes._ctypes`` in ``sys.modules['_ctypes']``, so every later
  ``import ctypes`` (and ``ctypes.util``, ``ctypes.wintypes``...) is served by jitctypes;
  ``python -m jitctypes script.py`` calls it before running the script.
- ``side_by_side()`` loads a second copy of the package as ``jitctypes.ctypes`` while stock
  ``ctypes`` stays what it is, so both can be compared in one process. ``sys.modules``
  entries the package's own imports go through (``_ctypes``, ``ctypes``,
  ``ctypes._endian``) point at the copy only while it executes.
"""

import _thread
import importlib.util
import os
import sys

SIDE_BY_SIDE_NAME = "jitctypes.ctypes"
_lock = _thread.allocate_lock()  # not `threading`: it costs a millisecond to import
_side_by_side_module = None


def _stdlib_ctypes_dir() -> str:
    # The directory of the standard library's pure-Python modules (where `os` is), as
    # `sysconfig.get_path("stdlib")` says, without importing sysconfig at start-up.
    return os.path.join(os.path.dirname(os.__file__), "ctypes")


def _our_ctypes_module():
    import jitctypes._ctypes

    return jitctypes._ctypes


def is_installed() -> bool:
    """True if ``_ctypes`` is jitctypes' (``install()`` ran)."""
    return sys.modules.get("_ctypes") is _our_ctypes_module()


def install() -> None:
    """Makes every later ``import ctypes`` run on jitctypes.

    Raises RuntimeError if stock ctypes was imported already: its types and functions
    would stay stock, and mixing them with jitctypes' is not supported.
    """
    ours = _our_ctypes_module()
    with _lock:
        if sys.modules.get("_ctypes") is ours:
            return
        if "ctypes" in sys.modules:
            raise RuntimeError(
                "jitctypes.install() must run before ctypes is imported: stock ctypes is "
                "already loaded (run the program with `python -m jitctypes`, or call "
                "install() first)"
            )
        sys.modules["_ctypes"] = ours
        ours._name_functions_as_stock()


def side_by_side():
    """The stdlib ``ctypes`` package on jitctypes as the module ``jitctypes.ctypes``, loaded
    once; stock ``ctypes`` (if any) is left alone. After ``install()`` it is ``ctypes``."""
    global _side_by_side_module
    with _lock:
        if _side_by_side_module is None:
            if sys.modules.get("_ctypes") is _our_ctypes_module():
                import ctypes

                _side_by_side_module = ctypes
            else:
                _side_by_side_module = _load_second_copy()
            sys.modules[SIDE_BY_SIDE_NAME] = _side_by_side_module
        return _side_by_side_module


def _load_second_copy():
    directory = _stdlib_ctypes_dir()
    # Named jitctypes.ctypes so that its classes say where they live (pickle finds them
    # there); its own `import ctypes...` statements reach it through the swap below.
    spec = importlib.util.spec_from_file_location(
        SIDE_BY_SIDE_NAME,
        os.path.join(directory, "__init__.py"),
        submodule_search_locations=[directory],
    )
    module = importlib.util.module_from_spec(spec)
    swapped = {"_ctypes": _our_ctypes_module(), "ctypes": module}
    hidden = ("ctypes._endian",)
    saved = {name: sys.modules.get(name) for name in (*swapped, *hidden)}
    try:
        sys.modules.update(swapped)
        for name in hidden:
            sys.modules.pop(name, None)
        spec.loader.exec_module(module)
        endian = sys.modules.get("ctypes._endian")
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    if endian is not None:
        sys.modules[SIDE_BY_SIDE_NAME + "._endian"] = endian
    return module
