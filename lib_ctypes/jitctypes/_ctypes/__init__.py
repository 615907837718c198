"""``jitctypes._ctypes``: the replacement of CPython's C module ``_ctypes``.

WORK IN PROGRESS (issue 4). Built so far, with the per-value work in Rust
(``jitctypes._rawffi``): ``_CData``, simple types, structures and unions (fields,
bit-fields as gcc lays them out, ``_pack_``, ``_anonymous_``, byte order), arrays,
pointers (``POINTER``, ``pointer``, incomplete types), keep-alive in ``_objects``,
``sizeof``, ``alignment``, ``addressof``, ``byref``.

Also ``from_address``, ``from_buffer``, ``from_buffer_copy``, ``in_dll``. Not yet:
function pointers (``CFuncPtr``), ``from_param``,
pickling, the buffer protocol, ``resize``, the remaining module functions and addresses
(``_memmove_addr``...). So the stdlib ``ctypes`` package cannot run on this module yet
(``from _ctypes import CFuncPtr`` fails), and the loader does not exist.

Layout (one file per ctypes concept, as PyPy's ``lib_pypy/_ctypes``):
``basics.py`` — what all metaclasses share; ``primitive.py`` — ``PyCSimpleType``,
``_SimpleCData``; ``structure.py`` — ``PyCStructType``, ``UnionType``, ``Structure``,
``Union``; ``array.py`` — ``PyCArrayType``, ``Array``; ``pointer.py`` —
``PyCPointerType``, ``_Pointer``, ``POINTER``, ``pointer``.
"""

from jitctypes._ctypes.array import Array, PyCArrayType
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
    RTLD_GLOBAL,
    RTLD_LOCAL,
    CArgObject,
    _CData,
    addressof,
    alignment,
    byref,
    get_errno,
    set_errno,
    sizeof,
)

__version__ = "1.1.0"  # the stdlib ctypes package refuses to load on any other value

__all__ = [
    "Array",
    "PyCArrayType",
    "POINTER",
    "PyCPointerType",
    "_Pointer",
    "_pointer_type_cache",
    "pointer",
    "RTLD_GLOBAL",
    "RTLD_LOCAL",
    "CArgObject",
    "PyCSimpleType",
    "PyCStructType",
    "Structure",
    "Union",
    "UnionType",
    "_CData",
    "_SimpleCData",
    "addressof",
    "alignment",
    "byref",
    "get_errno",
    "set_errno",
    "sizeof",
]
