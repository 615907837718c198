"""Buffer formats (PEP 3118) of ctypes types, as stock ctypes writes them, recorded once per
type on the class: ``_jitctypes_buffer_`` (what the Rust ``__getbuffer__`` exports),
``_jitctypes_format_`` (None where stock has none, which exports ``"B"``),
``_jitctypes_shape_`` and ``_jitctypes_itemsize_``. Structures, arrays and pointers get
theirs in Rust with the rest of their definition (``pybridge/src/classdef.rs``); the
simple cases are here."""

from jitctypes import _rawffi

# Standard-size struct codes for the ctypes codes whose C size differs from the standard
# one on x86-64 (`long` is 8 bytes); all other codes are their own.
_STANDARD_CODES = {"l": "q", "L": "Q"}


def set_simple(cls, code: str, big_endian: bool) -> None:
    order = ">" if big_endian else "<"
    _rawffi.install_buffer_format(cls, order + _STANDARD_CODES.get(code, code))


def set_incomplete(cls) -> None:
    """A structure or union without fields yet: plain bytes."""
    _rawffi.install_buffer_format(cls, None)


def set_function(cls) -> None:
    _rawffi.install_buffer_format(cls, "X{}")
