"""What every ctypes metaclass shares (``_CDataType``): ``T * n`` array types and
``from_address``. Runs per type, not per value."""

from jitctypes import _rawffi

_array_types: dict[tuple[type, int], type] = {}


class _CDataType(type):
    """Base of the ctypes metaclasses."""

    def __mul__(cls, length):
        if not isinstance(length, int):
            return NotImplemented
        return array_type(cls, length)

    __rmul__ = __mul__

    def from_address(cls, address):
        return _rawffi.at_address(cls, address)


def array_type(element: type, length: int) -> type:
    """``element * length``, one class per pair as stock caches them."""
    if length < 0:
        raise ValueError(f"Array length must be >= 0, not {length}")
    key = (element, length)
    cached = _array_types.get(key)
    if cached is None:
        from jitctypes._ctypes.array import Array

        name = f"{element.__name__}_Array_{length}"
        cached = type(Array)(name, (Array,), {"_length_": length, "_type_": element})
        _array_types[key] = cached
    return cached
