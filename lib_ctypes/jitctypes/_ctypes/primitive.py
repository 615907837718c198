"""Simple types: the metaclass ``PyCSimpleType`` (runs once per class definition) over the
Rust ``_SimpleCData`` (which does the per-value work: ``.value``, ``bool``, ``repr``)."""

from jitctypes import _rawffi
from jitctypes._ctypes import pep3118
from jitctypes._ctypes.basics import _CDataType, overrides

# The type codes stock ctypes lists in its error message. 'X' (BSTR) exists only on
# Windows and is refused, as stock does on Linux; 'v' (VARIANT_BOOL) exists everywhere.
_STOCK_TYPE_CODES = "cbBhHiIlLdfuzZqQPXOv?g"
# Codes with a byte-swapped variant (``__ctype_be__`` on little-endian hosts).
_SWAPPABLE_CODES = "hHiIlLqQfd"
_SINGLE_BYTE_CODES = "bBc"
# Values of these types are addresses: objects holding them cannot be pickled.
_POINTER_CODES = "zZPO"
# The basic pointer-like types accept more than their own values as arguments.
_SPECIAL_FROM_PARAM = {
    "z": _rawffi.char_p_from_param,
    "Z": _rawffi.wchar_p_from_param,
    "P": _rawffi.void_p_from_param,
}


def _type_code(cls: type) -> str:
    try:
        code = cls._type_
    except AttributeError:
        raise AttributeError("class must define a '_type_' attribute") from None
    if not isinstance(code, str):
        raise TypeError("class must define a '_type_' string attribute")
    if len(code) != 1:
        raise ValueError(
            "class must define a '_type_' attribute which must be a string of length 1"
        )
    if code not in _STOCK_TYPE_CODES or not _rawffi.is_simple_type_code(code):
        raise AttributeError(
            "class must define a '_type_' attribute which must be\n"
            f"a single character string containing one of '{_STOCK_TYPE_CODES}'."
        )
    return code


def _enable_fast_init(cls) -> None:
    """The C `__init__` for a simple type that has `_SimpleCData`'s layout (a class made
    with no bases, as `PyCSimpleType.__new__(PyCSimpleType, name, (), ns)` makes, has not)
    and no `__init__` of its own."""
    if issubclass(cls, _rawffi._SimpleCData) and not overrides(
        cls, _rawffi._SimpleCData, "__init__"
    ):
        _rawffi.enable_fast_init(cls)


class PyCSimpleType(_CDataType):
    """Metaclass of ``c_int`` and the other simple types."""

    __module__ = "_ctypes"

    def _jitctypes_set_up_(cls, name, bases, namespace) -> None:
        if bases and not any(isinstance(base, PyCSimpleType) for base in bases):
            return  # the abstract root, _SimpleCData itself
        code = _type_code(cls)
        # `c_int(5)` reprs as `c_int(5)` and a function returning `c_int` gives an int; a
        # user subclass of `c_int` keeps its instances in both places.
        own = cls.__dict__
        basic = "_jitctypes_basic_" not in own and bases[:1] == (_SimpleCData,)
        cls._jitctypes_basic_ = basic
        if "__ctype__" not in own:
            cls.__ctype__ = _rawffi.CType.scalar(code)
        cls._jitctypes_has_pointer_ = code in _POINTER_CODES
        pep3118.set_simple(cls, code, big_endian=False)
        _enable_fast_init(cls)
        if cls._jitctypes_basic_ and code in _SPECIAL_FROM_PARAM:
            cls.from_param = classmethod(_SPECIAL_FROM_PARAM[code])
        if "_type_" in own and type(cls) is PyCSimpleType:
            if code in _SWAPPABLE_CODES:
                swapped_namespace = {
                    "_type_": code,
                    "__ctype__": _rawffi.CType.scalar(code, True),
                    "_jitctypes_basic_": True,
                }
                # Made as it is, not set up again by the metaclass.
                swapped = type.__new__(PyCSimpleType, name, bases, swapped_namespace)
                pep3118.set_simple(swapped, code, big_endian=True)
                _enable_fast_init(swapped)
                swapped.__ctype_le__ = cls
                swapped.__ctype_be__ = swapped
                cls.__ctype_le__ = cls
                cls.__ctype_be__ = swapped
            elif code in _SINGLE_BYTE_CODES:
                cls.__ctype_le__ = cls.__ctype_be__ = cls


class _SimpleCData(_rawffi._SimpleCData, metaclass=PyCSimpleType):
    """Base of the simple types; abstract (has no ``_type_``)."""

    __module__ = "_ctypes"
    __slots__ = ()  # like stock's C base types: instances of subclasses with slots have no dict

    from_param = classmethod(_rawffi.simple_from_param)


_rawffi.make_immutable(_SimpleCData)
_rawffi.make_immutable(type(_SimpleCData))  # as stock's metaclasses
_rawffi.construct_by_vectorcall(type(_SimpleCData))  # c_int(5) without an argument tuple
