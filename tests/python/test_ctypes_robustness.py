"""Regressions found by review: ways to crash the interpreter or to differ from stock
through the fast path, the object factory and function-object state. Each scenario runs
on stock ctypes and on jitctypes side by side and must agree (or, where stock crashes,
jitctypes must not)."""

import ctypes as stock  # noqa: I001 (after jitctypes.ctypes on purpose: both coexist)
import gc
import subprocess
import sys
import textwrap

import jitctypes.ctypes as ours
from oracle import outcome


def test_a_callback_that_drops_its_own_function_object_during_a_fast_call():
    # The callback's last reference goes while C is still returning from it: it must be
    # released with the GIL held (it used to abort the interpreter).
    program = textwrap.dedent(
        """
        import jitctypes; jitctypes.install()
        from ctypes import *
        libc = CDLL(None)
        qsort = libc.qsort
        qsort.argtypes = [c_void_p, c_size_t, c_size_t, c_void_p]
        CMP = CFUNCTYPE(c_int, POINTER(c_int), POINTER(c_int))
        class Marker:
            def __del__(self):
                print("released")
        held = {}
        held["cb"] = CMP(lambda a, b, marker=Marker(): held.clear() or 0)
        array = (c_int * 2)(2, 1)
        address = cast(held["cb"], c_void_p).value
        qsort(addressof(array), 2, 4, address)
        print("done")
        """
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["done", "released"]


def _foreign_class_with_ctype(m):
    class Evil:
        __ctype__ = m.c_int.__ctype__ if m is ours else None

        def __init__(self, value=0):
            self.value = value

    return Evil


def test_classes_that_are_not_ctypes_types_are_not_ctypes_types():
    def scenario(m):
        evil = _foreign_class_with_ctype(m)
        labs = m.CDLL(None).labs
        labs.restype = evil
        return [
            outcome(lambda: labs(-3).value),
            outcome(lambda: type("S", (m.Structure,), {"_fields_": [("x", evil)]})),
            outcome(lambda: m.POINTER(evil)),
        ]

    assert scenario(ours) == scenario(stock)


def test_python_code_run_by_a_replaced_restype_may_call_the_function():
    def scenario(m):
        labs = m.CDLL(None).labs
        labs.argtypes = [m.c_long]
        seen = []

        class Restype:
            def __call__(self, value):
                return value

            def __del__(self):
                seen.append(labs(-2))

        labs.restype = Restype()
        labs.restype = m.c_long
        gc.collect()
        return seen, labs(-5)

    assert scenario(ours) == scenario(stock)


def test_a_list_of_argtypes_changed_after_assignment_is_not_seen():
    def scenario(m):
        labs = m.CDLL(None).labs
        types = [m.c_long]
        labs.argtypes, labs.restype = types, m.c_long
        types[0] = m.c_double
        return labs(-7), labs.argtypes is types

    assert scenario(ours) == scenario(stock)


def test_a_c_void_p_subclass_argument_takes_only_its_own_instances():
    def scenario(m):
        class Handle(m.c_void_p):
            pass

        labs = m.CDLL(None).labs
        labs.argtypes, labs.restype = [Handle], m.c_long
        return [outcome(lambda: labs(Handle(9))), outcome(lambda: labs(m.c_void_p(9)))]

    assert scenario(ours) == scenario(stock)


def test_a_call_method_assigned_later_is_what_calls_run():
    def scenario(m):
        # A class of its own, made as CFUNCTYPE makes them: CFUNCTYPE's are cached and
        # shared with other tests.
        class prototype(m._CFuncPtr):  # noqa: N801 (a ctypes type)
            _argtypes_, _restype_, _flags_ = (m.c_long,), m.c_long, m._FUNCFLAG_CDECL

        labs = prototype(("labs", m.CDLL(None)))
        before = labs(-3)
        prototype.__call__ = lambda self, *args: "overridden"
        return before, labs(-3)

    assert scenario(ours) == scenario(stock)


def test_cycles_through_a_restype_are_collected():
    def scenario(m):
        class Restype:
            def __call__(self, value):
                return value

        labs = m.CDLL(None).labs
        restype = Restype()
        restype.function = labs
        labs.restype = restype
        marker = Restype()
        restype.marker = marker
        import weakref

        alive = weakref.ref(marker)
        del labs, restype, marker
        gc.collect()
        return alive() is None

    assert scenario(ours) == scenario(stock) == True  # noqa: E712


# Regressions of the review of the compiled fast paths (entry stubs, direct slots, callbacks).


def test_fields_are_final_once_an_instance_exists_however_made():
    def scenario(m):
        results = []
        makers = {
            "__new__": lambda cls: cls.__new__(cls),
            "from_buffer": lambda cls: cls.from_buffer(bytearray(16)),
            "from_address": lambda cls: cls.from_address(m.addressof(m.c_int())),
            "own __init__": lambda cls: type("Sub", (cls,), {"__init__": lambda self: None})(),
        }
        for name, make in makers.items():

            class S(m.Structure):
                pass

            instance = make(S)
            results.append((name, outcome(lambda S=S: setattr(S, "_fields_", [("x", m.c_int)]))))
            del instance
        return results

    assert scenario(ours) == scenario(stock)


def test_python_code_run_by_a_collection_inside_a_keep_sees_a_consistent_object():
    class Point(ours.Structure):
        _fields_ = [("text", ours.c_char_p), ("x", ours.c_int), ("tag", ours.c_char * 4)]

    errors, current = [], [None]

    class Cycle:
        def __init__(self):
            self.me = self

        def __del__(self):
            if current[0] is not None:
                try:
                    _ = current[0].tag  # the generic field path, borrowing the object
                except Exception as error:  # noqa: BLE001 (any failure is the finding)
                    errors.append(repr(error))

    threshold = gc.get_threshold()
    gc.set_threshold(1, 1000, 1000)  # a collection at (almost) every allocation
    try:
        for _ in range(2000):
            current[0] = Point()
            Cycle()
            current[0].text = b"abc"  # keeps the bytes: a dict is made for the kept objects
            current[0] = None
    finally:
        gc.set_threshold(*threshold)
    assert errors == []


def test_a_callback_that_drops_its_own_function_object_is_freed_at_once(c_library_paths):
    import weakref

    library = ours.CDLL(c_library_paths["rawffi_test"])
    callback_type = ours.CFUNCTYPE(None)
    store = library.store_callback
    store.argtypes, store.restype = [callback_type], None
    run = library.run_stored_callback
    run.argtypes, run.restype = [], None
    holder = type("Holder", (), {})()
    for _ in range(20):  # past the calls after which stubs are compiled

        class Callable:
            def __call__(self):
                holder.callback = None  # the last reference to the CFUNCTYPE object

        target = Callable()
        alive = weakref.ref(target)
        holder.callback = callback_type(target)
        del target
        store(holder.callback)
        run()
        assert alive() is None, "the callable outlived its callback"


def test_instances_do_not_keep_their_class_alive():
    import weakref

    for make in (
        lambda: type("S", (ours.Structure,), {"_fields_": [("x", ours.c_int)]}),
        lambda: type("A", (ours.Array,), {"_type_": ours.c_int, "_length_": 3}),
        lambda: type("P", (ours.c_int,), {}),
        lambda: type("F", (ours._CFuncPtr,), {"_flags_": ours._FUNCFLAG_CDECL}),
    ):
        cls = make()
        instances = [cls() for _ in range(3)]
        alive = weakref.ref(cls)
        del cls, instances
        gc.collect()
        assert alive() is None


def test_the_direct_module_functions_pickle_as_module_functions():
    import pickle

    for function in (ours.sizeof, ours.byref, ours.addressof):
        assert pickle.loads(pickle.dumps(function)) is function


def test_the_base_classes_are_immutable_as_stock_s_c_types():
    def scenario(m):
        bases = (m.Structure, m.Union, m.Array, m._Pointer, m._SimpleCData, m._CFuncPtr)
        classes = bases + tuple(type(base) for base in bases)  # and their metaclasses
        return [outcome(lambda cls=cls: setattr(cls, "attribute", 1)) for cls in classes]

    assert [kind for kind, _ in scenario(ours)] == [kind for kind, _ in scenario(stock)]


def test_the_c_initialiser_is_refused_to_classes_that_are_not_ctypes_types():
    # A C tp_init installed on a plain class would write a ctypes instance's fields
    # into an object that has none.
    from jitctypes import _rawffi

    class Plain:
        pass

    try:
        _rawffi.enable_fast_init(Plain)
    except TypeError as error:
        assert "not a ctypes type" in str(error)
    else:
        raise AssertionError("a plain class got the C initialiser")
    assert Plain().__class__ is Plain


def test_function_objects_are_made_only_for_function_pointer_types():
    # `_rawffi.function_from_library` builds the object with CFuncPtr's constructor: for
    # another class it would lay a function pointer out in memory of another shape.
    from jitctypes import _rawffi

    try:
        _rawffi.function_from_library(int, ("strlen", ours.CDLL(None)))
    except TypeError as error:
        assert "not a function pointer type" in str(error)
    else:
        raise AssertionError("a function pointer was made as an int")
