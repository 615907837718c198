"""Structures and unions: the metaclasses (run once per class definition: validate
``_fields_``, ask ``_rawffi.layout`` for the layout, install one Rust ``CField`` descriptor
per field) and the instance initialiser."""

import sys

from jitctypes import _rawffi
from jitctypes._ctypes import pep3118
from jitctypes._ctypes.basics import _CDataType, overrides

_INTEGER_CODES = frozenset("bBhHiIlLqQ?")


def _field_access(field_type: type) -> str:
    """How the Rust descriptor presents the field (see pybridge/src/field.rs)."""
    if getattr(field_type, "_jitctypes_basic_", False):
        return "value"
    element = getattr(field_type, "_type_", None)
    if hasattr(field_type, "_length_") and getattr(element, "_jitctypes_basic_", False):
        code = element._type_
        if code == "c":
            return "chars"
        if code == "u":
            return "wchars"
    return "view"


def element_access(element_type: type) -> str:
    """How an array element or pointer target reads: like a field of its type, except that
    `c_char`/`c_wchar` elements make slices bytes/str ("chars"/"wchars")."""
    basic = element_type.__dict__.get("_jitctypes_basic_")
    code = element_type.__dict__.get("_type_") if basic else None
    return {"c": "chars", "u": "wchars"}.get(code) or _field_access(element_type)


def _ctype_of_field(field_type, index: int) -> "_rawffi.CType":
    is_ctypes_class = isinstance(field_type, type) and issubclass(field_type, _rawffi._CData)
    ctype = getattr(field_type, "__ctype__", None) if is_ctypes_class else None
    if not isinstance(ctype, _rawffi.CType):
        raise TypeError(f"second item in _fields_ tuple (index {index}) must be a C type")
    return ctype


def _check_bits(field_type, bits, index: int) -> None:
    code = getattr(field_type, "_type_", None)
    if not (isinstance(code, str) and code in _INTEGER_CODES):
        raise TypeError(f"bit fields not allowed for type {field_type.__name__}")
    if not isinstance(bits, int) or not 1 <= bits <= 8 * field_type.__ctype__.size:
        raise ValueError("number of bits invalid for bit field")


def _aggregate_base(cls) -> type | None:
    """The nearest base that is itself a structure/union type with fields."""
    for base in cls.__mro__[1:]:
        if isinstance(base, _AggregateType) and "_jitctypes_field_names_" in base.__dict__:
            return base
    return None


class _AggregateType(_CDataType):
    """Shared by ``PyCStructType`` and ``UnionType``; ``_kind`` says which."""

    _kind = "struct"

    def __new__(mcls, name, bases, namespace, **kwargs):
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        if namespace.get("_jitctypes_abstract_root_"):
            return cls  # Structure and Union themselves
        root = _aggregate_root(cls)
        if root is not None and not overrides(cls, root, "__init__"):
            _rawffi.enable_fast_init(cls)  # Structure.__init__ in C
        if "_abstract_" in namespace:
            # Stock gives such a class no storage: instances are refused ("abstract class").
            type.__setattr__(cls, "__ctype__", None)
            return cls
        for base in bases:
            if isinstance(base, _AggregateType) and not base.__dict__.get(
                "_jitctypes_abstract_root_"
            ):
                type.__setattr__(base, "_jitctypes_final_", True)
        type.__setattr__(cls, "_jitctypes_ready_", True)
        if "_fields_" in namespace:
            # Through the metaclass's __setattr__, as stock does: ctypes._endian's
            # metaclass swaps the field types there.
            cls._fields_ = namespace["_fields_"]
        elif _aggregate_base(cls) is None:
            # Not laid out yet: an empty aggregate until `_fields_` is assigned.
            type.__setattr__(cls, "__ctype__", _rawffi.layout(mcls._kind, []).ctype)
            type.__setattr__(cls, "_jitctypes_has_union_", mcls._kind == "union")
            pep3118.set_incomplete(cls)
        return cls

    def __setattr__(cls, name, value):
        if name == "_fields_" and not cls.__dict__.get("_jitctypes_ready_"):
            # Assigned while the class is being made (by __init_subclass__): stock refuses.
            raise TypeError("ctypes state is not initialized")
        if name == "_fields_":
            if cls.__dict__.get("_jitctypes_final_"):
                raise AttributeError("_fields_ is final")
            cls._jitctypes_set_fields(value)
        super().__setattr__(name, value)

    def _jitctypes_set_fields(cls, fields) -> None:
        if cls.__dict__.get("_jitctypes_final_"):
            raise AttributeError("_fields_ is final")
        try:
            fields = list(fields)
        except TypeError:
            raise TypeError("'_fields_' must be a sequence of pairs") from None
        base = _aggregate_base(cls)
        base_names = list(base._jitctypes_field_names_) if base is not None else []
        pack = getattr(cls, "_pack_", 0)
        if not isinstance(pack, int) or isinstance(pack, bool) or pack < 0:
            raise ValueError("_pack_ must be a non-negative integer")
        members, names, types = [], [], []
        for index, item in enumerate(fields):
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise TypeError("'_fields_' must be a sequence of (name, C type) pairs")
            name, field_type = item[0], item[1]
            if not isinstance(name, str):
                raise TypeError("'_fields_' must be a sequence of (name, C type) pairs")
            ctype = _ctype_of_field(field_type, index)
            bits = item[2] if len(item) == 3 else None
            if bits is not None:
                _check_bits(field_type, bits, index)
            if field_type is cls:
                raise AttributeError("Structure or union cannot contain itself")
            if isinstance(field_type, _AggregateType):
                type.__setattr__(field_type, "_jitctypes_final_", True)
            members.append((ctype, bits))
            names.append(name)
            types.append(field_type)
        swapped = hasattr(cls, "_swappedbytes_")
        base_ctype = base.__ctype__ if base is not None else None
        align = _forced_alignment(cls)
        layout = _rawffi.layout(cls._kind, members, pack or None, swapped, base_ctype, align)
        first_index = len(base_names)
        for offset_index, (name, field_type, (offset, _size, bits)) in enumerate(
            zip(names, types, layout.fields, strict=True)
        ):
            descriptor = _rawffi.make_field(
                field_type,
                field_type.__ctype__,
                offset,
                first_index + offset_index,
                _field_access(field_type),
                bits,
            )
            type.__setattr__(cls, name, descriptor)
        type.__setattr__(cls, "__ctype__", layout.ctype)
        inherited = [base] if base is not None else []
        has = {
            flag: any(getattr(t, flag, False) for t in types + inherited)
            for flag in ("_jitctypes_has_union_", "_jitctypes_has_pointer_")
        }
        has["_jitctypes_has_union_"] |= cls._kind == "union"
        for flag, found in has.items():
            type.__setattr__(cls, flag, found)
        type.__setattr__(cls, "_jitctypes_field_names_", tuple(base_names + names))
        offsets = [offset for offset, _size, _bits in layout.fields]
        pep3118.set_aggregate(cls, names, types, offsets, cls._kind == "struct", bool(pack))
        type.__setattr__(cls, "_jitctypes_final_", True)
        cls._jitctypes_make_anonymous()

    def _jitctypes_make_anonymous(cls) -> None:
        anonymous = cls.__dict__.get("_anonymous_")
        if anonymous is None:
            return
        for name in anonymous:
            descriptor = cls.__dict__.get(name)
            if not isinstance(descriptor, _rawffi.CField):
                raise AttributeError(f"'{name}' is specified in _anonymous_ but not in _fields_")
            _promote_fields(cls, descriptor)


def _promote_fields(cls, anonymous_field) -> None:
    """Makes the fields of an anonymous member fields of `cls`, at their combined offset;
    members that are anonymous in turn are promoted through, as stock does."""
    outer_type, _ctype, outer_offset, outer_index, _access, _bits = anonymous_field._parts()
    inner_anonymous = outer_type.__dict__.get("_anonymous_", ())
    for inner_name in getattr(outer_type, "_jitctypes_field_names_", ()):
        inner = outer_type.__dict__.get(inner_name) or getattr(outer_type, inner_name)
        field_type, ctype, offset, _index, access, bits = inner._parts()
        offset += outer_offset
        combined = _rawffi.make_field(field_type, ctype, offset, outer_index, access, bits)
        if inner_name in inner_anonymous:
            _promote_fields(cls, combined)
        else:
            type.__setattr__(cls, inner_name, combined)


class PyCStructType(_AggregateType):
    """Metaclass of ``Structure`` subclasses."""

    __module__ = "_ctypes"

    _kind = "struct"


class UnionType(_AggregateType):
    """Metaclass of ``Union`` subclasses."""

    __module__ = "_ctypes"

    _kind = "union"


def _forced_alignment(cls) -> int | None:
    """`_align_` (inherited like any attribute), which stock honours from 3.13 on."""
    if sys.version_info < (3, 13):
        return None
    align = getattr(cls, "_align_", 0)
    if not isinstance(align, int) or align < 0:
        raise ValueError("_align_ must be a non-negative integer")
    return align or None


def _aggregate_root(cls) -> type | None:
    """`Structure` or `Union`, whichever `cls` derives from (None: neither, as with a
    class made by calling the metaclass with no bases)."""
    roots = (klass for klass in cls.__mro__ if klass.__dict__.get("_jitctypes_abstract_root_"))
    return next(roots, None)


_rawffi.make_immutable(_AggregateType)  # as every metaclass base


class Structure(_rawffi._CData, metaclass=PyCStructType):
    """Structure base class."""

    __module__ = "_ctypes"
    _jitctypes_abstract_root_ = True
    __slots__ = ()  # like stock's C base types: instances of subclasses with slots have no dict

    from_param = classmethod(_rawffi.cdata_from_param)

    def __init__(self, *args, **kwargs):
        _rawffi.init_fields(self, args, kwargs)


_rawffi.make_immutable(Structure)
_rawffi.make_immutable(type(Structure))  # as stock's metaclasses
_rawffi.construct_by_vectorcall(type(Structure))  # c_int(5) without an argument tuple


class Union(_rawffi._CData, metaclass=UnionType):
    """Union base class."""

    __module__ = "_ctypes"
    _jitctypes_abstract_root_ = True
    __slots__ = ()  # like stock's C base types: instances of subclasses with slots have no dict

    from_param = classmethod(_rawffi.cdata_from_param)

    def __init__(self, *args, **kwargs):
        _rawffi.init_fields(self, args, kwargs)


if sys.version_info >= (3, 13):  # stock's Union was a mutable type until 3.12
    _rawffi.make_immutable(Union)
_rawffi.make_immutable(type(Union))
_rawffi.construct_by_vectorcall(type(Union))  # c_int(5) without an argument tuple
