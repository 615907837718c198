"""What every ctypes metaclass shares (``_CDataType``): ``T * n`` array types and
``from_address``. Runs per type, not per value."""

import sys

from jitctypes import _rawffi

_array_types: dict[tuple[type, int], type] = {}


# Up to 3.12 stock ctypes sets a type up in its metaclass's `__new__`; from 3.13 in its
# `__init__`, so that `Meta.__new__(Meta, name, bases, namespace)` alone makes an abstract
# class (even below a base that has a C type) and a second `Meta.__init__` of a set-up
# class raises `SystemError`.
SET_UP_IN_INIT = sys.version_info >= (3, 13)


class _CDataType(type):
    """Base of the ctypes metaclasses. Each sets its classes up in `_jitctypes_set_up_`,
    called where stock's metaclass of the running version does that work, with the
    namespace the class was made from (the set-ups read the class's own dict, as stock
    reads the type's dict, except for pointers, whose `_type_` stock takes from the
    namespace)."""

    def __new__(mcls, name, bases, namespace, **kwargs):
        if "__module__" not in namespace:
            # Made by calling the metaclass (`type(name, bases, ns)`, and the array and
            # pointer types `_ctypes` makes): `type.__new__` would take this frame's module;
            # stock's C metaclasses leave the caller's.
            namespace = {**namespace, "__module__": caller_module()}
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        if SET_UP_IN_INIT:
            # Abstract until `__init__` sets it up: no C type of its own, none inherited.
            type.__setattr__(cls, "__ctype__", None)
        else:
            mcls._jitctypes_set_up_(cls, name, bases, namespace)
        return cls

    if SET_UP_IN_INIT:

        def __init__(cls, name, bases, namespace, **kwargs):
            super().__init__(name, bases, namespace, **kwargs)
            if cls.__dict__.get("_jitctypes_initialized_"):
                raise SystemError(f"StgInfo of {cls.__name__!r} is already initialized.")
            if "__ctype__" in cls.__dict__ and cls.__dict__["__ctype__"] is None:
                type.__delattr__(cls, "__ctype__")  # `__new__`'s placeholder
            type(cls)._jitctypes_set_up_(cls, name, bases, namespace)
            type.__setattr__(cls, "_jitctypes_initialized_", True)

    def _jitctypes_set_up_(cls, name, bases, namespace) -> None:
        """What the metaclass records on a new class `cls` (see the subclasses)."""

    def __mul__(cls, length):
        if not isinstance(length, int):
            return NotImplemented
        return array_type(cls, length)

    __rmul__ = __mul__

    def from_address(cls, address):
        return _rawffi.at_address(cls, address)

    def from_buffer(cls, source, offset=0):
        """An instance viewing the writable buffer of `source` at `offset`."""
        view = memoryview(source)
        if view.readonly:
            raise TypeError("underlying buffer is not writable")
        if not view.c_contiguous:
            raise TypeError("underlying buffer is not C contiguous")
        view = view.cast("B")
        address = _check_buffer(cls, view, offset)
        instance = _rawffi.at_address(cls, address + offset)
        _rawffi.keep(instance, -1, view)
        return instance

    def from_buffer_copy(cls, source, offset=0):
        """A new instance holding a copy of the bytes of `source` at `offset`."""
        view = memoryview(source)
        if not view.c_contiguous:
            raise TypeError("underlying buffer is not C contiguous")
        view = view.cast("B")
        address = _check_buffer(cls, view, offset)
        instance = cls.__new__(cls)
        _rawffi.memmove(_rawffi.addressof(instance), address + offset, _rawffi.sizeof(cls))
        return instance

    def in_dll(cls, library, name):
        """The instance of this type at the symbol `name` of `library` (a `CDLL`)."""
        try:
            address = _rawffi.dlsym(library._handle, name)
        except OSError as error:
            raise ValueError(str(error)) from None
        return _rawffi.at_address(cls, address)


_rawffi.make_immutable(_CDataType)  # a __call__ set here would bypass class vectorcall


def overrides(cls, rust_base: type, name: str) -> bool:
    """True if a Python class between `cls` and its Rust base defines `name` (then the
    Rust fast slot for it must not be installed)."""
    mro = cls.__mro__
    return any(name in klass.__dict__ for klass in mro[: mro.index(rust_base)])


def _check_buffer(cls, view: memoryview, offset: int) -> int:
    """The address of `view`, after stock's checks of `offset` and size."""
    if not isinstance(getattr(cls, "__ctype__", None), _rawffi.CType):
        raise TypeError("abstract class")
    if offset < 0:
        raise ValueError("offset cannot be negative")
    size = _rawffi.sizeof(cls)
    if len(view) < size + offset:
        raise ValueError(
            f"Buffer size too small ({len(view)} instead of at least {size + offset} bytes)"
        )
    return _rawffi.buffer_address(view)


def array_type(element: type, length: int) -> type:
    """``element * length``, one class per pair as stock caches them."""
    if length > sys.maxsize:  # stock's `sq_repeat` takes a Py_ssize_t
        raise OverflowError("cannot fit 'int' into an index-sized integer")
    if length < 0:
        raise ValueError(f"Array length must be >= 0, not {length}")
    # (An array too large for its element size is refused by `define_array`.)
    key = (element, length)
    cached = _array_types.get(key)
    if cached is None:
        from jitctypes._ctypes.array import Array

        name = f"{element.__name__}_Array_{length}"
        cached = type(Array)(name, (Array,), {"_length_": length, "_type_": element})
        _array_types[key] = cached
    return cached


def caller_module() -> str | None:
    """The `__name__` of the module whose code asked for a new ctypes class: stock makes
    classes in C, so `type.__new__` takes `__module__` from that code's globals. Our own
    frames in between (`POINTER`, `T * n`, the metaclass) are skipped."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if not (isinstance(name, str) and name.startswith("jitctypes._ctypes")):
            return name
        frame = frame.f_back
    return None
