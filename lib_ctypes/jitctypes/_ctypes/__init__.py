"""``jitctypes._ctypes``: the replacement of CPython's C module ``_ctypes``.

WORK IN PROGRESS (issue 4). Built so far: ``_CData`` and ``_SimpleCData`` (instances in Rust,
``jitctypes._rawffi``), the simple-type metaclass, ``sizeof``, ``alignment``,
``addressof`` and ``byref``, structures and unions (fields, bit-fields, ``_pack_``,
``_anonymous_``, byte order, keep-alive in ``_objects``), arrays. Not yet: pointers, function
pointers, the remaining module functions — so the stdlib ``ctypes`` package cannot run on
this module yet (``from _ctypes import Union, ...`` fails), and the loader does not exist.

Layout (one file per ctypes concept, as PyPy's ``lib_pypy/_ctypes``):
``primitive.py`` — ``PyCSimpleType`` and ``_SimpleCData``;
``structure.py`` — ``PyCStructType``, ``UnionType``, ``Structure``, ``Union``;
``array.py`` — ``PyCArrayType``, ``Array``; ``basics.py`` — what all metaclasses share.
"""

from jitctypes._ctypes.array import Array, PyCArrayType
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
