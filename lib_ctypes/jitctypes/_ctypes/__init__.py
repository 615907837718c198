"""``jitctypes._ctypes``: the replacement of CPython's C module ``_ctypes``.

It has every name of 3.11's ``dir(_ctypes)`` on Linux, so the unchanged stdlib ``ctypes``
package runs on it (see ``jitctypes.loader``). Per-value and per-call work is in Rust
(``jitctypes._rawffi``): ``_CData`` memory, ``.value``, fields, indexing, ``from_param``,
``CFuncPtr.__call__``, callbacks. Python here runs once per type definition: the
metaclasses, and the rare paths (``paramflags``, constructor forms).

Layout (one file per ctypes concept, as PyPy's ``lib_pypy/_ctypes``):
``basics.py`` — what all metaclasses share; ``primitive.py`` — ``PyCSimpleType``,
``_SimpleCData``; ``structure.py`` — ``PyCStructType``, ``UnionType``, ``Structure``,
``Union``; ``array.py`` — ``PyCArrayType``, ``Array``; ``pointer.py`` —
``PyCPointerType``, ``_Pointer``, ``POINTER``, ``pointer``; ``function.py`` —
``PyCFuncPtrType``, ``CFuncPtr``, ``paramflags``; this file — the module functions.
"""

import os as _os
import sys as _sys

from jitctypes._ctypes.array import Array, PyCArrayType
from jitctypes._ctypes.function import CFuncPtr, PyCFuncPtrType
from jitctypes._ctypes.pointer import (
    POINTER,
    PyCPointerType,
    _Pointer,
    _pointer_type_cache,
    pointer,
)
from jitctypes._ctypes.primitive import PyCSimpleType, _SimpleCData
from jitctypes._ctypes.structure import PyCStructType, Structure, Union, UnionType
from jitctypes._rawffi import (
    FUNCFLAG_CDECL,
    FUNCFLAG_PYTHONAPI,
    FUNCFLAG_USE_ERRNO,
    FUNCFLAG_USE_LASTERROR,
    RTLD_GLOBAL,
    RTLD_LOCAL,
    ArgumentError,
    CArgObject,
    CType,
    Py_DECREF,
    Py_INCREF,
    PyObj_FromPtr,
    _cast_addr,
    _CData,
    _memmove_addr,
    _memset_addr,
    _string_at_addr,
    _wstring_at_addr,
    addressof,
    alignment,
    byref,
    get_errno,
    resize,
    set_errno,
    sizeof,
)
from jitctypes._rawffi import dlclose as _dlclose
from jitctypes._rawffi import dlopen as _dlopen
from jitctypes._rawffi import dlsym as _dlsym

__version__ = "1.1.0"  # the stdlib ctypes package refuses to load on any other value

CTYPES_MAX_ARGCOUNT = 1024
if _sys.version_info >= (3, 12):
    SIZEOF_TIME_T = 8  # `time_t` on x86-64 Linux; the 3.12+ stdlib package imports it


def dlopen(name=None, mode=RTLD_LOCAL, /):
    """Opens a shared library (None: the running program) and returns its handle."""
    if name is not None:
        name = _os.fsdecode(name)
        if "\0" in name:
            raise ValueError("embedded null character")
    return _dlopen(name, mode)  # (with stock's errors for undecodable names)


def dlsym(handle, name, /):
    """The address of symbol `name` in the library `handle`."""
    return _dlsym(handle, name)


def dlclose(handle, /):
    """Closes a library opened by ``dlopen``."""
    _dlclose(handle)


def _unpickle(cls, state):
    """Recreates a pickled ctypes object (``_CData.__reduce__`` names this function)."""
    obj = cls.__new__(cls)
    obj.__setstate__(*state)
    return obj


class _AnyFunction(CFuncPtr):
    """A function of unknown prototype: arguments converted as given, `int` result."""

    _flags_ = FUNCFLAG_CDECL


def call_function(address, arguments, /):
    """Calls the C function at `address` with the tuple `arguments` (an `int` result)."""
    return _AnyFunction(address)(*arguments)


def call_cdeclfunction(address, arguments, /):
    """Calls the C function at `address` with the tuple `arguments` (an `int` result)."""
    return _AnyFunction(address)(*arguments)


def buffer_info(obj, /):
    """``(format, ndim, shape)`` of a ctypes type or instance, as its buffer exports."""
    cls = obj if isinstance(obj, type) else type(obj)
    if not isinstance(getattr(cls, "__ctype__", None), CType):
        raise TypeError("not a ctypes type or object")
    return (cls._jitctypes_format_, len(cls._jitctypes_shape_), cls._jitctypes_shape_)


__all__ = [
    "ArgumentError",
    "Array",
    "CArgObject",
    "CFuncPtr",
    "CTYPES_MAX_ARGCOUNT",
    "FUNCFLAG_CDECL",
    "FUNCFLAG_PYTHONAPI",
    "FUNCFLAG_USE_ERRNO",
    "FUNCFLAG_USE_LASTERROR",
    "POINTER",
    "PyCArrayType",
    "PyCFuncPtrType",
    "PyCPointerType",
    "PyCSimpleType",
    "PyCStructType",
    "PyObj_FromPtr",
    "Py_DECREF",
    "Py_INCREF",
    "RTLD_GLOBAL",
    "RTLD_LOCAL",
    "Structure",
    "Union",
    "UnionType",
    "_CData",
    "_Pointer",
    "_SimpleCData",
    "_cast_addr",
    "_memmove_addr",
    "_memset_addr",
    "_pointer_type_cache",
    "_string_at_addr",
    "_unpickle",
    "_wstring_at_addr",
    "addressof",
    "alignment",
    "buffer_info",
    "byref",
    "call_cdeclfunction",
    "call_function",
    "dlclose",
    "dlopen",
    "dlsym",
    "get_errno",
    "pointer",
    "resize",
    "set_errno",
    "sizeof",
]

if _sys.version_info >= (3, 12):
    __all__.append("SIZEOF_TIME_T")


def _name_functions_as_stock() -> None:
    """Stock's module functions are C functions of `_ctypes`: once this module *is*
    `_ctypes` (`loader.install`), ours, from `_rawffi` or Python, report the same
    `__module__` (pickle, reprs and help() read it). Side by side with stock they keep
    their own, under which pickle finds them."""
    for name in __all__:
        obj = globals()[name]
        if callable(obj) and not isinstance(obj, type):
            obj.__module__ = "_ctypes"
