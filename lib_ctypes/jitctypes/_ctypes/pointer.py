"""Pointers: the metaclass ``PyCPointerType`` (target type, possibly set late by
``SetPointerType``), ``POINTER``, ``pointer`` and their cache; ``contents`` and indexing run
in Rust (``_rawffi._Pointer``)."""

from jitctypes import _rawffi
from jitctypes._ctypes.basics import _CDataType

# POINTER(T) → its class; incomplete types (POINTER("name")) are keyed by id(class), as
# stock ctypes keys them, so that `ctypes.SetPointerType` can find them.
_pointer_type_cache: dict = {}


class PyCPointerType(_CDataType):
    """Metaclass of pointer types."""

    __module__ = "_ctypes"

    def _jitctypes_set_up_(cls, name, bases, namespace) -> None:
        if not any(isinstance(base, PyCPointerType) for base in bases):
            return  # the abstract root, _Pointer itself
        # The target, if named here (stock's rule: only then can the class make instances).
        if "_type_" not in namespace:
            _rawffi.define_pointer(cls)
        elif namespace["_type_"] is None:
            raise TypeError("_type_ must be a type")
        else:
            _rawffi.define_pointer(cls, namespace["_type_"])

    def set_type(cls, target) -> None:
        """Completes an incomplete pointer type (used by ``ctypes.SetPointerType``)."""
        _rawffi.set_pointer_target(cls, target)


class _Pointer(_rawffi._Pointer, metaclass=PyCPointerType):
    """Pointer base class."""

    __module__ = "_ctypes"
    __slots__ = ()  # like stock's C base types: instances of subclasses with slots have no dict

    from_param = classmethod(_rawffi.pointer_from_param)


_rawffi.make_immutable(_Pointer)
_rawffi.make_immutable(type(_Pointer))  # as stock's metaclasses
_rawffi.construct_by_vectorcall(type(_Pointer))  # c_int(5) without an argument tuple


def POINTER(target):  # noqa: N802 (stock's name)
    """The pointer type of ``target``, created once and cached."""
    found = _pointer_type_cache.get(target)
    if found is not None:
        return found
    if isinstance(target, str):
        result = PyCPointerType(f"LP_{target}", (_Pointer,), {})
        _pointer_type_cache[id(result)] = result
        return result
    if not isinstance(target, type):
        raise TypeError("must be a ctypes type")
    result = PyCPointerType(f"LP_{target.__name__}", (_Pointer,), {"_type_": target})
    _pointer_type_cache[target] = result
    return result


pointer = _rawffi.pointer  # POINTER(type(obj))(obj), in Rust (a per-value operation)
