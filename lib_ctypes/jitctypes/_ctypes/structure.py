"""Structures and unions: the metaclasses (run once per class definition; assigning
``_fields_`` calls ``_rawffi.define_fields``, which checks the fields, lays them out and
installs one Rust ``CField`` descriptor per field) and the instance initialiser."""

import sys

from jitctypes import _rawffi
from jitctypes._ctypes import pep3118
from jitctypes._ctypes.basics import _CDataType, overrides


def _aggregate_base(cls) -> type | None:
    """The nearest base that is itself a structure/union type with fields."""
    for base in cls.__mro__[1:]:
        if isinstance(base, _AggregateType) and "_jitctypes_field_names_" in base.__dict__:
            return base
    return None


class _AggregateType(_CDataType):
    """Shared by ``PyCStructType`` and ``UnionType``; ``_kind`` says which."""

    _kind = "struct"

    def _jitctypes_set_up_(cls, name, bases, namespace) -> None:
        own = cls.__dict__
        if own.get("_jitctypes_abstract_root_"):
            return  # Structure and Union themselves
        root = _aggregate_root(cls)
        if root is not None and not overrides(cls, root, "__init__"):
            _rawffi.enable_fast_init(cls)  # Structure.__init__ in C
        if "_abstract_" in own:
            # Stock gives such a class no storage: instances are refused ("abstract class").
            type.__setattr__(cls, "__ctype__", None)
            return
        for base in bases:
            if isinstance(base, _AggregateType) and not base.__dict__.get(
                "_jitctypes_abstract_root_"
            ):
                type.__setattr__(base, "_jitctypes_final_", True)
        type.__setattr__(cls, "_jitctypes_ready_", True)
        if "_fields_" in own:
            # Through the metaclass's __setattr__, as stock does: ctypes._endian's
            # metaclass swaps the field types there.
            cls._fields_ = own["_fields_"]
        elif _aggregate_base(cls) is None:
            # Not laid out yet: an empty aggregate until `_fields_` is assigned.
            type.__setattr__(cls, "__ctype__", _rawffi.layout(cls._kind, []).ctype)
            pep3118.set_incomplete(cls)

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
        base = _aggregate_base(cls)
        _rawffi.define_fields(cls, fields, cls._kind, base, _AggregateType, _forced_alignment(cls))
        cls._jitctypes_make_anonymous()

    def _jitctypes_make_anonymous(cls) -> None:
        anonymous = cls.__dict__.get("_anonymous_")
        if anonymous is None:
            return
        try:
            names = list(anonymous)
        except TypeError:
            raise TypeError("_anonymous_ must be a sequence") from None
        for name in names:
            # Stock looks each name up on the class: a non-str name is a TypeError there,
            # an absent one an AttributeError.
            descriptor = getattr(cls, name)
            if not isinstance(descriptor, _rawffi.CField):
                raise AttributeError(f"'{name}' is specified in _anonymous_ but not in _fields_")
            _promote_fields(cls, descriptor)


def _promote_fields(cls, anonymous_field) -> None:
    """Makes the fields of an anonymous member fields of `cls`, at their combined offset;
    members that are anonymous in turn are promoted through, as stock does."""
    outer_type, _ctype, outer_offset, outer_index, _access, _bits = _rawffi.field_parts(
        anonymous_field
    )
    outer_type._fields_  # noqa: B018 (stock reads it first: an AttributeError for a scalar)
    inner_anonymous = outer_type.__dict__.get("_anonymous_", ())
    for inner_name in getattr(outer_type, "_jitctypes_field_names_", ()):
        inner = outer_type.__dict__.get(inner_name) or getattr(outer_type, inner_name)
        field_type, ctype, offset, _index, access, bits = _rawffi.field_parts(inner)
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
else:
    _rawffi.name_as_stock(Union)
_rawffi.make_immutable(type(Union))
_rawffi.construct_by_vectorcall(type(Union))  # c_int(5) without an argument tuple
