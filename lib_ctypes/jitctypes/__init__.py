"""jitctypes: CPython's ctypes with foreign calls compiled by Cranelift.

So far this package holds the extension module ``jitctypes._rawffi`` (see ARCHITECTURE.md);
the ``_ctypes`` replacement and the loader (``jitctypes.install()``, ``python -m jitctypes``)
are not built yet.
"""

from jitctypes import _rawffi

__version__ = _rawffi.__version__
__all__ = ["__version__"]
