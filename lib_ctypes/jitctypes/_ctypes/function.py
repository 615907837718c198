"""Function pointers: the metaclass ``PyCFuncPtrType`` (reads ``_argtypes_``,
``_restype_``, ``_flags_`` once per class), the constructor forms of ``CFuncPtr`` (an
address, ``(name, dll)``, a Python callable), and ``paramflags`` (in/out parameters).

Calls run in Rust (``_rawffi.CFuncPtr.__call__``); only functions declared with
``paramflags`` call back into ``build_callargs`` and ``build_result`` here, as stock ctypes'
``_build_callargs``/``_build_result`` do in C.
"""

from jitctypes import _rawffi
from jitctypes._ctypes import pep3118
from jitctypes._ctypes.basics import _CDataType

PARAMFLAG_FIN = 0x1
PARAMFLAG_FOUT = 0x2
PARAMFLAG_FLCID = 0x4
_PARAMFLAG_KINDS = PARAMFLAG_FIN | PARAMFLAG_FOUT | PARAMFLAG_FLCID


class PyCFuncPtrType(_CDataType):
    """Metaclass of function pointer types (what ``CFUNCTYPE`` returns)."""

    __module__ = "_ctypes"

    def _jitctypes_set_up_(cls, name, bases, namespace) -> None:
        type.__setattr__(cls, "_jitctypes_has_pointer_", True)
        if not any(isinstance(base, PyCFuncPtrType) for base in bases):
            return  # the abstract root, CFuncPtr itself
        type.__setattr__(cls, "__ctype__", _rawffi.CType.pointer())
        pep3118.set_function(cls)
        own = cls.__dict__
        flags = own.get("_flags_")
        if not isinstance(flags, int):
            raise TypeError("class must define _flags_ which must be an integer")
        argtypes = own.get("_argtypes_")
        has_restype = "_restype_" in own
        spec = _rawffi.FuncSpec(argtypes, own.get("_restype_"), has_restype, flags)
        type.__setattr__(cls, "_jitctypes_spec_", spec)
        # Calls enter Rust directly (vectorcall) unless a class overrides __call__.
        below_rust = cls.__mro__[: cls.__mro__.index(_rawffi.CFuncPtr)]
        if not any("__call__" in klass.__dict__ for klass in below_rust):
            _rawffi.enable_vectorcall(cls)

    def __setattr__(cls, name, value):
        super().__setattr__(name, value)
        if name == "__call__":
            _rawffi.disable_vectorcall(cls)


class CFuncPtr(_rawffi.CFuncPtr, metaclass=PyCFuncPtrType):
    """Function pointer base class."""

    __module__ = "_ctypes"
    __slots__ = ()

    from_param = classmethod(_rawffi.cdata_from_param)

    # Properties because deleting differs from assigning None (see pybridge/src/funcptr.rs).
    argtypes = property(
        _rawffi.CFuncPtr._jitctypes_get_argtypes_,
        _rawffi.CFuncPtr._jitctypes_set_argtypes_,
        _rawffi.CFuncPtr._jitctypes_set_argtypes_,
    )
    restype = property(
        _rawffi.CFuncPtr._jitctypes_get_restype_,
        _rawffi.CFuncPtr._jitctypes_set_restype_,
        lambda self: self._jitctypes_set_restype_(None, delete=True),
    )
    errcheck = property(
        _rawffi.CFuncPtr._jitctypes_get_errcheck_,
        _rawffi.CFuncPtr._jitctypes_set_errcheck_,
        lambda self: self._jitctypes_set_errcheck_(None, delete=True),
    )

    def __new__(cls, *args):
        if not args:
            return super().__new__(cls)
        if len(args) > 2:
            raise TypeError(f"function takes at most 2 arguments ({len(args)} given)")
        first = args[0]
        if isinstance(first, tuple):
            return _rawffi.function_from_library(cls, *args)
        if len(args) == 1 and isinstance(first, int):
            self = super().__new__(cls)
            self._jitctypes_setup_(first & 0xFFFF_FFFF_FFFF_FFFF)
            return self
        if not callable(first):
            raise TypeError("argument must be callable or integer function address")
        return _from_callable(cls, first)


_rawffi.make_immutable(CFuncPtr)
_rawffi.make_immutable(type(CFuncPtr))  # as stock's metaclasses


def _from_callable(cls, function):
    """``prototype(function)``: a C function pointer that calls `function`."""
    spec = cls.__dict__.get("_jitctypes_spec_") or getattr(cls, "_jitctypes_spec_", None)
    if spec is None or not spec.has_argtypes:
        raise TypeError("cannot construct instance of this class: no argtypes")
    argtypes = list(cls._argtypes_)
    restype = cls.__dict__.get("_restype_", getattr(cls, "_restype_", None))
    ctypes_of_args, classes = [], []
    from jitctypes._ctypes.array import _has_storage

    for argtype in argtypes:
        if not _has_storage(argtype):
            raise TypeError("cannot build parameter")
        ctype = argtype.__ctype__
        ctypes_of_args.append(ctype)
        classes.append(None if _is_basic_scalar(argtype) else argtype)
    # Stock ctypes converts callback results with simple types' rules only: structures,
    # pointers and arrays are refused, as there.
    from jitctypes._ctypes.primitive import PyCSimpleType

    if restype is None:
        result_ctype = None
    elif isinstance(restype, PyCSimpleType):
        result_ctype = restype.__ctype__
    else:
        raise TypeError("invalid result type for callback function")
    thunk = _rawffi.Callback(
        function,
        ctypes_of_args,
        result_ctype,
        arg_classes=classes,
        use_errno=bool(spec.flags & _rawffi.FUNCFLAG_USE_ERRNO),
    )
    self = super(CFuncPtr, cls).__new__(cls)
    self._jitctypes_setup_(thunk.address, None, function)
    _rawffi.keep(self, 0, thunk)
    return self


def _is_basic_scalar(argtype) -> bool:
    return bool(argtype.__dict__.get("_jitctypes_basic_")) and argtype.__ctype__.kind == "scalar"


def _validate_paramflags(cls, paramflags) -> None:
    """Stock's checks of a ``paramflags`` tuple against the class's ``_argtypes_``."""
    if paramflags is None:
        return
    if not isinstance(paramflags, tuple):
        raise TypeError("paramflags must be a tuple or None")
    argtypes = getattr(cls, "_argtypes_", None)
    if argtypes is None:
        return  # stock checks paramflags against argtypes only when there are some
    if len(paramflags) != len(argtypes):
        raise ValueError("paramflags must have the same length as argtypes")
    for index, (item, argtype) in enumerate(zip(paramflags, argtypes, strict=True)):
        if not (
            isinstance(item, tuple)
            and 1 <= len(item) <= 3
            and isinstance(item[0], int)
            and (len(item) < 2 or isinstance(item[1], str))
        ):
            raise TypeError("paramflags must be a sequence of (int [,string [,value]]) tuples")
        flag = item[0] & _PARAMFLAG_KINDS
        if flag == PARAMFLAG_FOUT:
            _check_out_type(argtype, index + 1)
        elif flag not in (
            0,
            PARAMFLAG_FIN,
            PARAMFLAG_FIN | PARAMFLAG_FLCID,
            PARAMFLAG_FIN | PARAMFLAG_FOUT,
        ):
            raise TypeError(f"paramflag value {flag} not supported")


def _check_out_type(argtype, position: int) -> None:
    from jitctypes._ctypes.array import PyCArrayType
    from jitctypes._ctypes.pointer import PyCPointerType

    if isinstance(argtype, (PyCPointerType, PyCArrayType)):
        return
    if getattr(argtype, "_type_", None) in ("P", "z", "Z") and _is_basic_scalar(argtype):
        return
    name = argtype.__name__ if isinstance(argtype, type) else type(argtype).__name__
    raise TypeError(f"'out' parameter {position} must be a pointer type, not {name}")


def build_callargs(argtypes, paramflags, args, kwargs):
    """The C call's arguments from a Python call of a function with ``paramflags``, and
    what ``build_result`` needs: (callargs, (out positions, in-out positions))."""
    kwargs = kwargs or {}
    callargs = []
    outs, inouts = [], []
    consumed = 0

    def take(name, default, has_default):
        nonlocal consumed
        if consumed < len(args):
            consumed += 1
            return args[consumed - 1]
        if name is not None and name in kwargs:
            consumed += 1
            return kwargs[name]
        if has_default:
            return default
        if name is not None:
            raise TypeError(f"required argument '{name}' missing")
        raise TypeError("not enough arguments")

    for index, item in enumerate(paramflags):
        flag = item[0] & _PARAMFLAG_KINDS
        name = item[1] if len(item) > 1 else None
        has_default = len(item) > 2
        default = item[2] if has_default else None
        if flag == PARAMFLAG_FIN | PARAMFLAG_FLCID:
            callargs.append(default if has_default else 0)
        elif flag in (0, PARAMFLAG_FIN, PARAMFLAG_FIN | PARAMFLAG_FOUT):
            if flag & PARAMFLAG_FOUT:
                inouts.append(index)
            callargs.append(take(name, default, has_default))
        elif flag == PARAMFLAG_FOUT:
            outs.append(index)
            if has_default:
                callargs.append(default)
                continue
            argtype = argtypes[index]
            if isinstance(getattr(argtype, "_type_", None), str):
                raise TypeError(
                    f"{argtype.__name__} 'out' parameter must be passed as default value"
                )
            from jitctypes._ctypes.array import PyCArrayType

            callargs.append(argtype() if isinstance(argtype, PyCArrayType) else argtype._type_())
        else:
            raise ValueError(f"paramflag {item[0]} not yet implemented")
    given = len(args) + len(kwargs)
    if given != consumed:
        raise TypeError(f"call takes exactly {consumed} arguments ({given} given)")
    return tuple(callargs), (tuple(outs), tuple(inouts))


def build_result(result, callargs, outputs):
    """The Python result of a call with out-parameters: their values (one, or a tuple in
    parameter order), as stock's ``_build_result``."""
    outs, inouts = outputs
    values = []
    for index in sorted(outs + inouts):
        value = callargs[index]
        if index in outs:
            value = value.__ctypes_from_outparam__()
        values.append(value)
    if not values:
        return result
    if len(values) == 1:
        return values[0]
    return tuple(values)
