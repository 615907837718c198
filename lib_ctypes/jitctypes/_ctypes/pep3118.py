"""Buffer formats (PEP 3118) of ctypes types, as stock ctypes writes them: computed once per
type by the metaclasses and kept on the class as ``_jitctypes_buffer_`` (what the Rust
``__getbuffer__`` exports), ``_jitctypes_format_`` (None where stock has none: unions,
packed and incomplete structures, which export ``"B"``) and ``_jitctypes_shape_``."""

import sys

from jitctypes import _rawffi

# Standard-size struct codes for the ctypes codes whose C size differs from the standard
# one on x86-64 (`long` is 8 bytes); all other codes are their own.
_STANDARD_CODES = {"l": "q", "L": "Q"}


def _install(cls, format_string, shape=(), itemsize=None) -> None:
    size = cls.__ctype__.size
    type.__setattr__(cls, "_jitctypes_format_", format_string)
    type.__setattr__(cls, "_jitctypes_shape_", tuple(shape))
    type.__setattr__(cls, "_jitctypes_itemsize_", size if itemsize is None else itemsize)
    buffer = _rawffi.BufferFormat(format_string or "B", list(shape), cls._jitctypes_itemsize_)
    type.__setattr__(cls, "_jitctypes_buffer_", buffer)


def _with_shape(cls) -> str:
    """The format of `cls` as a member of another format: its shape, then its format."""
    shape = getattr(cls, "_jitctypes_shape_", ())
    prefix = "(" + ",".join(str(dim) for dim in shape) + ")" if shape else ""
    return prefix + (getattr(cls, "_jitctypes_format_", None) or "B")


def set_simple(cls, code: str, big_endian: bool) -> None:
    _install(cls, (">" if big_endian else "<") + _STANDARD_CODES.get(code, code))


def set_pointer(cls, target) -> None:
    _install(cls, "&" + _with_shape(target) if target is not None else "&B")


def set_array(cls, element, length: int) -> None:
    shape = (length, *getattr(element, "_jitctypes_shape_", ()))
    itemsize = getattr(element, "_jitctypes_itemsize_", element.__ctype__.size)
    _install(cls, getattr(element, "_jitctypes_format_", None) or "B", shape, itemsize)


def set_aggregate(cls, names, types, offsets, is_struct: bool, packed: bool) -> None:
    """Structures get ``T{...}``; unions (and, before 3.12, packed structures) ``B``.
    From 3.12 stock also writes the padding between and after members (``3x``)."""
    with_padding = sys.version_info >= (3, 12)
    if not is_struct or (packed and not with_padding):
        _install(cls, None)
        return
    members, end = [], 0
    for name, member_type, offset in zip(names, types, offsets, strict=True):
        if with_padding and offset > end:
            members.append(_padding(offset - end))
        members.append(f"{_with_shape(member_type)}:{name}:")
        end = offset + member_type.__ctype__.size
    size = cls.__ctype__.size
    if with_padding and size > end and names:
        members.append(_padding(size - end))
    _install(cls, "T{" + "".join(members) + "}")


def _padding(count: int) -> str:
    return "x" if count == 1 else f"{count}x"


def set_incomplete(cls) -> None:
    _install(cls, None)


def set_function(cls) -> None:
    _install(cls, "X{}")
