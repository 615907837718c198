"""jitctypes: CPython's ctypes with foreign calls compiled by Cranelift.

- ``jitctypes.install()``: every later ``import ctypes`` runs on jitctypes;
- ``python -m jitctypes script.py``: runs a program that way;
- ``import jitctypes.ctypes``: the stdlib ctypes package on jitctypes, next to stock ctypes.

See README.md and ARCHITECTURE.md.
"""

from jitctypes import _rawffi
from jitctypes.loader import install, is_installed

__version__ = _rawffi.__version__
__all__ = ["__version__", "install", "is_installed"]
