"""Arrays: the metaclass ``PyCArrayType`` (``_rawffi.define_array`` checks ``_type_`` and
``_length_`` and builds the ``CType``; here ``value``/``raw`` are added to char arrays);
indexing runs in Rust (``_rawffi.Array``)."""

from jitctypes import _rawffi
from jitctypes._ctypes.basics import _CDataType


def _has_storage(cls) -> bool:
    """A ctypes class with a C type (other classes may carry a `__ctype__` too)."""
    return (
        isinstance(cls, type)
        and issubclass(cls, _rawffi._CData)
        and isinstance(getattr(cls, "__ctype__", None), _rawffi.CType)
    )


def _char_value(self):
    return _rawffi.char_array_value(self)


def _char_raw(self):
    return _rawffi.string_at(_rawffi.addressof(self), _rawffi.sizeof(self))


def _set_char_raw(self, value):
    data = memoryview(value).cast("B").tobytes()
    if len(data) > _rawffi.sizeof(self):
        raise ValueError("byte string too long")
    scratch = _rawffi.Memory(len(data))
    _rawffi.write(scratch.address, _rawffi.CType.array(_rawffi.CType.scalar("c"), len(data)), data)
    _rawffi.memmove(_rawffi.addressof(self), scratch.address, len(data))


def _cannot_delete(self):
    raise TypeError("can't delete attribute")


class PyCArrayType(_CDataType):
    """Metaclass of array types (``c_int * 5``)."""

    __module__ = "_ctypes"

    def _jitctypes_set_up_(cls, name, bases, namespace) -> None:
        if not any(isinstance(base, PyCArrayType) for base in bases):
            return  # the abstract root, Array itself
        # Checks, CType, buffer format, fast slots; the element's code if it is a character.
        character = _rawffi.define_array(cls)
        if character == "c":
            cls.value = property(_char_value, _rawffi.set_char_array_value, _cannot_delete)
            cls.raw = property(_char_raw, _set_char_raw)
        elif character == "u":
            cls.value = property(
                _rawffi.wchar_array_value, _rawffi.set_wchar_array_value, _cannot_delete
            )


class Array(_rawffi.Array, metaclass=PyCArrayType):
    """Array base class."""

    __module__ = "_ctypes"
    __slots__ = ()  # like stock's C base types: instances of subclasses with slots have no dict

    from_param = classmethod(_rawffi.cdata_from_param)


_rawffi.make_immutable(Array)
_rawffi.make_immutable(type(Array))  # as stock's metaclasses
_rawffi.construct_by_vectorcall(type(Array))  # c_int(5) without an argument tuple
