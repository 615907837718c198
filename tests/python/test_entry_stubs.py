"""Compiled entry stubs (jit/src/entry.rs, pybridge/src/entry.rs): after a function
object's first successful fast call, CPython calls compiled code directly through the
object's vectorcall slot. The stub converts arguments behind exact-type guards and boxes
plain results itself; every guard miss falls back to the Rust entry.

Each scenario runs on stock ctypes and on jitctypes.ctypes in one process and must give the
same values, or the same exception class and message. Tests that read the statistics to
prove that the stub served a call are skipped when compiled stubs are off."""

import ctypes as stock  # noqa: I001 (after jitctypes.ctypes on purpose: both coexist)
import math
import sys
import threading
import time

import _ctypes_test
import jitctypes
import jitctypes.ctypes as ours
import pytest
from conftest import compile_library
from jitctypes import _rawffi
from oracle import outcome

requires_entry_stubs = pytest.mark.skipif(
    not _rawffi.jit_enabled(),
    reason="JITCTYPES_JIT=0: no compiled stubs, hence no entry stubs to count; every call "
    "goes through libffi from the Rust entry (the result comparisons still run)",
)


class IntSubclass(int):
    pass


class FloatSubclass(float):
    pass


class BytesSubclass(bytes):
    pass


class AsParameter:
    def __init__(self, value):
        self._as_parameter_ = value


class Index:
    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


def entry_stub_calls() -> int:
    """Calls served to the end by compiled entry stubs, over all signatures."""
    return sum(s["entry_stub_calls"] for s in jitctypes.stats()["signatures"].values())


def same(expected, got) -> bool:
    """Outcomes equal, NaN results included."""
    if isinstance(expected, float) and isinstance(got, float):
        return (math.isnan(expected) and math.isnan(got)) or expected == got
    if isinstance(expected, tuple | list) and isinstance(got, tuple | list):
        return len(expected) == len(got) and all(map(same, expected, got))
    return type(expected) is type(got) and expected == got


@pytest.fixture(scope="module")
def paths(c_library_paths):
    return {**c_library_paths, "ctypes_test": _ctypes_test.__file__}


def function(m, path, name, restype, argtypes, **options):
    """A new function object (`lib[name]` is never cached, so tests do not share one)."""
    library = m.CDLL(path, **options)
    result = library[name]
    result.restype = restype
    if argtypes is not None:
        result.argtypes = argtypes
    return result


POINT_TYPES = {}


def point_type(m):
    """The `point` of CPython's _ctypes_test (two ints); one class per module, since
    argument guards take instances of exactly the declared class."""
    if m not in POINT_TYPES:

        class POINT(m.Structure):
            _fields_ = [("x", m.c_int), ("y", m.c_int)]

        POINT_TYPES[m] = POINT
    return POINT_TYPES[m]


CALLBACK_TYPES = {}


def callback_type(m):
    """`int (*)(int)`, one class per module (guards take instances of exactly it)."""
    if m not in CALLBACK_TYPES:
        CALLBACK_TYPES[m] = m.CFUNCTYPE(m.c_int, m.c_int)
    return CALLBACK_TYPES[m]


def tripled(m):
    """A callback of `callback_type(m)`, kept alive for the module's tests."""
    key = (m, "tripled")
    if key not in CALLBACK_TYPES:
        CALLBACK_TYPES[key] = callback_type(m)(lambda value: 3 * value)
    return CALLBACK_TYPES[key]


def callback_subclass(m):
    """A subclass of `callback_type(m)` (which must declare its own prototype)."""
    prototype = {"_flags_": m._FUNCFLAG_CDECL, "_argtypes_": (m.c_int,), "_restype_": m.c_int}
    return type("Sub", (callback_type(m),), prototype)


def double_point(m):
    class Pt(m.Structure):
        _fields_ = [("x", m.c_double), ("y", m.c_double)]

    return Pt


# ---------------------------------------------------------------------------------------
# Result kinds: every boxing the stub does inline, compared with stock.

# name → (library, C function, restype, argtypes, [argument tuples]); the first arguments
# pass every guard, so the first call installs the stub.
RESULT_CASES = {
    "void": ("jittest", "touch", None, lambda m: [m.c_int], [(5,), (-7,)]),
    "void, no arguments": ("jittest", "nothing", None, lambda m: [], [(), ()]),
    "c_int8 negative": ("jittest", "i8_negative", "c_int8", lambda m: [], [(), ()]),
    "c_uint16 large": ("jittest", "u16_large", "c_uint16", lambda m: [], [(), ()]),
    "c_int8 echo": ("jittest", "i8_echo", "c_int8", lambda m: [m.c_int8], [(-5,), (200,), (-129,)]),
    "c_uint8 echo": (
        "jittest",
        "u8_echo",
        "c_uint8",
        lambda m: [m.c_uint8],
        [(255,), (-1,), (256,), (-(2**30) + 1,), (2**30 + 255,)],
    ),
    "c_int16 echo": ("jittest", "i16_echo", "c_int16", lambda m: [m.c_int16], [(-2,), (0x8000,)]),
    "c_uint16 echo": (
        "jittest",
        "u16_echo",
        "c_uint16",
        lambda m: [m.c_uint16],
        [(0xFFFF,), (-1,), (0x12345,)],
    ),
    "c_int32 echo": (
        "jittest",
        "i32_echo",
        "c_int32",
        lambda m: [m.c_int32],
        # Around one 30-bit digit, the ints stubs read inline (jit IntLayout).
        [(-1,), (2**31,), (0,), (2**30 - 1,), (1 - 2**30,), (2**30,), (-(2**30),), (-7,)],
    ),
    "c_uint32 echo": ("jittest", "u32_echo", "c_uint32", lambda m: [m.c_uint32], [(-1,), (2**32,)]),
    "c_int64 echo": (
        "jittest",
        "i64_echo",
        "c_int64",
        lambda m: [m.c_int64],
        [(2**63,), (-(2**63),), (2**100 + 3,), (2**30 - 1,), (-(2**30) - 1,), (-5,), (0,)],
    ),
    "c_uint64 echo": ("jittest", "u64_echo", "c_uint64", lambda m: [m.c_uint64], [(-1,), (2**64,)]),
    "c_float echo": (
        "jittest",
        "f32_echo",
        "c_float",
        lambda m: [m.c_float],
        [(0.1,), (-1,), (2**200,), (1e300,), (float("nan"),), (float("-inf"),), (3,)],
    ),
    "c_double echo": (
        "jittest",
        "f64_echo",
        "c_double",
        lambda m: [m.c_double],
        [(0.1,), (-1,), (2**1000,), (float("inf"),), (-0.0,), (2**53 + 1,)],
    ),
    "c_double add, -1 as int": (
        "jittest",
        "add_f64",
        "c_double",
        lambda m: [m.c_double, m.c_double],
        [(1.5, 2), (-1, 0.5), (-1, -1)],
    ),
    "c_bool echo": (
        "jittest",
        "boolean_echo",
        "c_bool",
        lambda m: [m.c_bool],
        [(True,), (False,), (0,), (5,), (-1,), (2**100,)],
    ),
    "c_bool not": ("jittest", "bool_not", "c_bool", lambda m: [m.c_bool], [(True,), (0,), (2,)]),
    "c_char_p result": ("rawffi_test", "greeting", "c_char_p", lambda m: [], [(), ()]),
    "c_char_p echo incl. NULL": (
        "jittest",
        "ptr_echo",
        "c_char_p",
        lambda m: [m.c_char_p],
        [(b"abc",), (None,), (b"",), (b"with\0nul",)],
    ),
    "c_void_p echo incl. NULL": (
        "jittest",
        "ptr_echo",
        "c_void_p",
        lambda m: [m.c_void_p],
        [(12345,), (None,), (0,), (-1,), (2**64 + 7,)],
    ),
    "size_t from char pointer": (
        "rawffi_test",
        "byte_length",
        "c_size_t",
        lambda m: [m.c_char_p],
        [(b"hello",), (None,)],
    ),
    "ten floats past the registers": (
        "jittest",
        "f32_pick10",
        "c_float",
        lambda m: [m.c_int] + [m.c_float] * 10,
        [(9, *range(10)), (0, 0.5, *range(9)), (8, *[float(i) / 3 for i in range(10)])],
    ),
    "ten narrow ints past the registers": (
        "jittest",
        "u16_pick10",
        "c_uint16",
        lambda m: [m.c_int] + [m.c_uint16] * 10,
        [(9, *range(-5, 5)), (7, *range(0x7FFC, 0x8006))],
    ),
    "six mixed": (
        "jittest",
        "mix6",
        "c_int64",
        lambda m: [m.c_int64, m.c_double] * 3,
        [(1, 2.5, 3, 4.5, 5, 6.5), (-(2**62), 1e18, 2**62, -1, 0, 0.0)],
    ),
}

# Integer restypes narrower than what the C function returns: each path must narrow the
# register as stock does (the upper bits are the callee's, not zero).
NARROWING_RESTYPES = [
    "c_byte", "c_ubyte", "c_short", "c_ushort", "c_int", "c_uint", "c_long", "c_ulong",
    "c_longlong", "c_ulonglong", "c_int8", "c_uint8", "c_int16", "c_uint16", "c_int32",
    "c_uint32", "c_int64", "c_uint64", "c_size_t", "c_ssize_t", "c_bool",
]  # fmt: skip
NARROWING_PATTERNS = [0x1FF, 0xFFFF_FFFF_FFFF_FF80, 0x1_2345_FEDC, 0x8000_0000, 0x100, 0x7F]


def run_result_case(m, paths, name):
    library, symbol, restype, argtypes, calls = RESULT_CASES[name]
    resolved = getattr(m, restype) if restype else None
    f = function(m, paths[library], symbol, resolved, argtypes(m))
    return [outcome(lambda args=args: f(*args)) for args in calls + calls]


@pytest.mark.parametrize("name", RESULT_CASES)
def test_results_agree_with_stock(name, paths):
    expected = run_result_case(stock, paths, name)
    got = run_result_case(ours, paths, name)
    assert same(expected, got), f"stock {expected}, ours {got}"


@requires_entry_stubs
@pytest.mark.parametrize("name", RESULT_CASES)
def test_calls_after_the_first_go_through_the_entry_stub(name, paths):
    library, symbol, restype, argtypes, calls = RESULT_CASES[name]
    f = function(
        ours, paths[library], symbol, getattr(ours, restype) if restype else None, argtypes(ours)
    )
    f(*calls[0])  # the Rust entry: makes the plan and installs the stub
    before = entry_stub_calls()
    for args in calls:
        f(*args)
    assert entry_stub_calls() - before == len(calls)


@pytest.mark.parametrize("restype", NARROWING_RESTYPES)
def test_narrow_results_are_extended_as_stock_does(restype, paths):
    def run(m):
        f = function(m, paths["jittest"], "u64_echo", getattr(m, restype), [m.c_uint64])
        return [f(pattern) for pattern in NARROWING_PATTERNS * 2]

    assert run(ours) == run(stock)


@requires_entry_stubs
def test_narrow_results_are_boxed_by_the_entry_stub(paths):
    f = function(ours, paths["jittest"], "u64_echo", ours.c_int8, [ours.c_uint64])
    f(0)
    before = entry_stub_calls()
    assert [f(0x1FF), f(0x80)] == [-1, -128]
    assert entry_stub_calls() - before == 2


def test_more_arguments_than_the_fast_path_takes_agree_with_stock(paths):
    def run(m):
        argtypes = [
            m.c_int8, m.c_float, m.c_uint16, m.c_double, m.c_int32, m.c_double, m.c_uint64,
            m.c_float, m.c_int64, m.c_double, m.c_void_p, m.c_double, m.c_uint8, m.c_float,
            m.c_int16, m.c_double, m.c_uint32, m.c_double, m.c_bool, m.c_float,
        ]  # fmt: skip
        f = function(m, paths["jittest"], "mixed20", m.c_uint64, argtypes)
        values = (-3, 1.5, 60000, 2.25, -70000, 0.5, 2**64 - 1, 8.0, -(2**40), 1e-3,
                  4096, -2.5, 200, 0.25, -300, 3.0, 2**32 - 1, 1e10, True, -0.75)  # fmt: skip
        return [f(*values) for _ in range(3)]

    assert run(ours) == run(stock)


# ---------------------------------------------------------------------------------------
# Guards: every argument kind, with values the stub takes and values it must refuse.

# name → (declaration, priming arguments, [(label, served by, arguments builder)]):
# "stub" means the entry stub converts it (inline or through its helper), "fallback"
# that it must hand the call to the Rust entry, "general" that the declaration has no
# fast path at all (so no stub either).
GUARD_CASES = {
    "int": (
        lambda m, p: function(m, p["jittest"], "add_i32", m.c_int32, [m.c_int32, m.c_int32]),
        (1, 2),
        [
            ("exact ints", "stub", lambda m: ((40, 2), {})),
            ("huge int, reduced", "stub", lambda m: ((2**100 + 5, -1), {})),
            ("float", "fallback", lambda m: ((1.5, 2), {})),
            ("str", "fallback", lambda m: (("1", 2), {})),
            ("None", "fallback", lambda m: ((None, 2), {})),
            ("bool", "fallback", lambda m: ((True, 2), {})),
            ("int subclass", "fallback", lambda m: ((IntSubclass(3), 2), {})),
            ("__index__ object", "fallback", lambda m: ((Index(3), 2), {})),
            ("c_int32 instance", "fallback", lambda m: ((m.c_int32(4), 2), {})),
            ("c_int64 instance", "fallback", lambda m: ((m.c_int64(4), 2), {})),
            ("_as_parameter_", "fallback", lambda m: ((AsParameter(7), 2), {})),
            ("too few", "fallback", lambda m: ((1,), {})),
            ("none at all", "fallback", lambda m: ((), {})),
            ("too many", "fallback", lambda m: ((1, 2, 3), {})),
            ("keyword", "fallback", lambda m: ((1,), {"b": 2})),
            ("only keywords", "fallback", lambda m: ((), {"a": 1, "b": 2})),
        ],
    ),
    "narrow int": (
        lambda m, p: function(m, p["jittest"], "i8_echo", m.c_int8, [m.c_int8]),
        (1,),
        [
            ("masked", "stub", lambda m: ((0x17F,), {})),
            ("float", "fallback", lambda m: ((1.0,), {})),
            ("bytes", "fallback", lambda m: ((b"a",), {})),
            ("c_byte instance", "fallback", lambda m: ((m.c_byte(-3),), {})),
        ],
    ),
    "double": (
        lambda m, p: function(m, p["jittest"], "add_f64", m.c_double, [m.c_double, m.c_double]),
        (1.5, 2.0),
        [
            ("exact floats", "stub", lambda m: ((0.25, 2.0), {})),
            ("exact ints", "stub", lambda m: ((1, -1), {})),
            ("int too large for a double", "fallback", lambda m: ((2**2000, 1.0), {})),
            ("negative int too large", "fallback", lambda m: ((-(2**1100), 1.0), {})),
            ("bool", "fallback", lambda m: ((True, 1.0), {})),
            ("int subclass", "fallback", lambda m: ((IntSubclass(2), 1.0), {})),
            ("float subclass", "fallback", lambda m: ((FloatSubclass(1.5), 1.0), {})),
            ("c_double instance", "fallback", lambda m: ((m.c_double(2.5), 1.0), {})),
            ("c_float instance", "fallback", lambda m: ((m.c_float(2.5), 1.0), {})),
            ("str", "fallback", lambda m: (("x", 1.0), {})),
            ("None", "fallback", lambda m: ((None, 1.0), {})),
            ("__index__ object", "fallback", lambda m: ((Index(2), 1.0), {})),
            ("keyword", "fallback", lambda m: ((1.0,), {"y": 2.0})),
        ],
    ),
    "float": (
        lambda m, p: function(m, p["jittest"], "f32_echo", m.c_float, [m.c_float]),
        (1.5,),
        [
            ("too large for a float", "stub", lambda m: ((1e300,), {})),
            ("int too large for a double", "fallback", lambda m: ((10**400,), {})),
            ("float subclass", "fallback", lambda m: ((FloatSubclass(0.5),), {})),
            ("bytes", "fallback", lambda m: ((b"1",), {})),
        ],
    ),
    "bool": (
        lambda m, p: function(m, p["jittest"], "boolean_echo", m.c_bool, [m.c_bool]),
        (True,),
        [
            ("int", "stub", lambda m: ((7,), {})),
            ("zero", "stub", lambda m: ((0,), {})),
            ("None", "fallback", lambda m: ((None,), {})),
            ("float", "fallback", lambda m: ((0.5,), {})),
            ("empty str", "fallback", lambda m: (("",), {})),
            ("str", "fallback", lambda m: (("x",), {})),
            ("int subclass zero", "fallback", lambda m: ((IntSubclass(0),), {})),
            ("c_bool instance", "fallback", lambda m: ((m.c_bool(True),), {})),
            ("empty list", "fallback", lambda m: (([],), {})),
        ],
    ),
    "char pointer": (
        lambda m, p: function(m, p["rawffi_test"], "byte_length", m.c_size_t, [m.c_char_p]),
        (b"x",),
        [
            ("bytes", "stub", lambda m: ((b"hello",), {})),
            ("None", "stub", lambda m: ((None,), {})),
            ("str", "fallback", lambda m: (("hello",), {})),
            ("bytes subclass", "fallback", lambda m: ((BytesSubclass(b"four"),), {})),
            ("bytearray", "fallback", lambda m: ((bytearray(b"x"),), {})),
            ("char array", "fallback", lambda m: ((m.create_string_buffer(b"four"),), {})),
            ("c_char_p instance", "fallback", lambda m: ((m.c_char_p(b"seven"),), {})),
            ("int", "fallback", lambda m: ((5,), {})),
            ("float", "fallback", lambda m: ((5.0,), {})),
        ],
    ),
    "void pointer": (
        # ptr_echo returns its argument: read back as a string, it shows what was passed.
        lambda m, p: function(m, p["jittest"], "ptr_echo", m.c_char_p, [m.c_void_p]),
        (b"x",),
        [
            ("bytes", "stub", lambda m: ((b"bytes",), {})),
            ("None", "stub", lambda m: ((None,), {})),
            ("zero", "stub", lambda m: ((0,), {})),
            ("c_void_p instance", "stub", lambda m: ((m.c_void_p(0),), {})),
            ("char array", "stub", lambda m: ((m.create_string_buffer(b"array"),), {})),
            ("byref", "fallback", lambda m: ((m.byref(m.create_string_buffer(b"ref")),), {})),
            ("c_char_p instance", "stub", lambda m: ((m.c_char_p(b"charp"),), {})),
            ("int subclass", "fallback", lambda m: ((IntSubclass(0),), {})),
            ("bytes subclass", "fallback", lambda m: ((BytesSubclass(b"sub"),), {})),
            ("float", "fallback", lambda m: ((1.5,), {})),
            ("c_int instance", "fallback", lambda m: ((m.c_int(1),), {})),
            ("structure", "fallback", lambda m: ((double_point(m)(),), {})),
            ("_as_parameter_", "fallback", lambda m: ((AsParameter(b"asparam"),), {})),
        ],
    ),
    "function pointer": (
        lambda m, p: function(
            m, p["rawffi_test"], "call_int_callback", m.c_int, [callback_type(m), m.c_int]
        ),
        ("callback", 2),
        [
            ("callback", "stub", lambda m: ((tripled(m), 5), {})),
            ("None", "fallback", lambda m: ((None, 5), {})),
            (
                "callback of another prototype",
                "fallback",
                lambda m: ((m.CFUNCTYPE(m.c_long, m.c_int)(lambda value: value), 5), {}),
            ),
            (
                "callback of a subclass",
                "fallback",
                lambda m: ((callback_subclass(m)(lambda value: -value), 5), {}),
            ),
            ("address", "fallback", lambda m: ((m.cast(tripled(m), m.c_void_p).value, 5), {})),
            ("c_void_p", "fallback", lambda m: ((m.cast(tripled(m), m.c_void_p), 5), {})),
            ("plain function", "fallback", lambda m: ((lambda value: value, 5), {})),
        ],
    ),
    "pointer to int": (
        lambda m, p: function(
            m, p["ctypes_test"], "_testfunc_deref_pointer", m.c_int, [m.POINTER(m.c_int)]
        ),
        ("byref",),
        [
            ("byref", "stub", lambda m: ((m.byref(m.c_int(7)),), {})),
            ("instance", "stub", lambda m: ((m.c_int(8),), {})),
            ("pointer", "stub", lambda m: ((m.pointer(m.c_int(9)),), {})),
            ("array", "stub", lambda m: (((m.c_int * 2)(10, 11),), {})),
            ("byref with offset", "fallback", lambda m: ((m.byref((m.c_int * 2)(1, 12), 4),), {})),
            ("byref of the wrong type", "fallback", lambda m: ((m.byref(m.c_short(1)),), {})),
            (
                "byref of a subclass instance",
                "fallback",
                lambda m: ((m.byref(type("I", (m.c_int,), {})(15)),), {}),
            ),
            ("wrong instance", "fallback", lambda m: ((m.c_short(1),), {})),
            ("pointer of the wrong type", "fallback", lambda m: ((m.pointer(m.c_uint(1)),), {})),
            ("array of the wrong type", "fallback", lambda m: (((m.c_short * 2)(),), {})),
            ("int subclass instance", "fallback", lambda m: ((type("I", (m.c_int,), {})(13),), {})),
            ("int", "fallback", lambda m: ((5,), {})),
            ("bytes", "fallback", lambda m: ((b"xxxx",), {})),
            ("_as_parameter_", "fallback", lambda m: ((AsParameter(m.byref(m.c_int(14))),), {})),
        ],
    ),
    "pointer, NULL allowed": (
        lambda m, p: function(
            m, p["rawffi_test"], "byte_length", m.c_size_t, [m.POINTER(m.c_char)]
        ),
        ("buffer",),
        [
            ("char array", "general", lambda m: ((m.create_string_buffer(b"five!"),), {})),
            ("None", "general", lambda m: ((None,), {})),
            ("bytes", "general", lambda m: ((b"bytes",), {})),
        ],
    ),
    "structure by value and pointer": (
        lambda m, p: function(
            m,
            p["ctypes_test"],
            "_testfunc_byval",
            m.c_int,
            [point_type(m), m.POINTER(point_type(m))],
        ),
        ("point", "point byref"),
        [
            (
                "instance and byref",
                "stub",
                lambda m: ((point_type(m)(3, 4), m.byref(point_type(m)())), {}),
            ),
            ("instance and None", "stub", lambda m: ((point_type(m)(3, 4), None), {})),
            (
                "instance and pointer",
                "stub",
                lambda m: ((point_type(m)(5, 6), m.pointer(point_type(m)())), {}),
            ),
            (
                "instance and instance",
                "stub",
                lambda m: ((point_type(m)(7, 8), point_type(m)()), {}),
            ),
            (
                "array of points",
                "stub",
                lambda m: ((point_type(m)(1, 1), (point_type(m) * 2)()), {}),
            ),
            ("tuple", "fallback", lambda m: (((3, 4), None), {})),
            (
                "other class, same layout",
                "fallback",
                lambda m: (
                    (
                        type("P", (m.Structure,), {"_fields_": [("x", m.c_int), ("y", m.c_int)]})(
                            1, 2
                        ),
                        None,
                    ),
                    {},
                ),
            ),
            ("None by value", "fallback", lambda m: ((None, None), {})),
            (
                "byref of the wrong type",
                "fallback",
                lambda m: ((point_type(m)(1, 2), m.byref(m.c_int())), {}),
            ),
            ("int as the pointer", "fallback", lambda m: ((point_type(m)(1, 2), 0), {})),
        ],
    ),
    "array argtype": (
        lambda m, p: function(
            m, p["ctypes_test"], "_testfunc_deref_pointer", m.c_int, [m.c_int * 2]
        ),
        ("array",),
        [
            ("same array type", "stub", lambda m: (((m.c_int * 2)(21, 22),), {})),
            ("longer array", "fallback", lambda m: (((m.c_int * 3)(23, 0, 0),), {})),
            ("pointer", "fallback", lambda m: ((m.pointer(m.c_int(24)),), {})),
            ("byref", "fallback", lambda m: ((m.byref((m.c_int * 2)(25, 0)),), {})),
            ("list", "fallback", lambda m: (([1, 2],), {})),
            ("None", "fallback", lambda m: ((None,), {})),
        ],
    ),
    "wide string": (
        lambda m, p: function(m, p["rawffi_test"], "wide_length", m.c_size_t, [m.c_wchar_p]),
        ("grüß",),
        [
            ("str", "general", lambda m: (("☃☃☃",), {})),
            ("None", "general", lambda m: ((None,), {})),
            ("bytes", "general", lambda m: ((b"x",), {})),
            ("str subclass", "general", lambda m: ((type("S", (str,), {})("ab"),), {})),
        ],
    ),
}


# Declarations whose argtypes have no fast-path conversion (`stats()["no_fast_path"]`):
# every call takes the general path, so no entry stub is ever installed.
WITHOUT_ENTRY_STUB = {"pointer, NULL allowed", "wide string"}


def priming_arguments(m, name):
    """Arguments of the first call: they pass every guard, so the stub gets installed."""
    primer = GUARD_CASES[name][1]
    made = {
        "byref": lambda: m.byref(m.c_int(1)),
        "buffer": lambda: m.create_string_buffer(b"abc"),
        "point": lambda: point_type(m)(1, 2),
        "array": lambda: (m.c_int * 2)(1, 2),
        "point byref": lambda: m.byref(point_type(m)()),
        "callback": lambda: tripled(m),
    }
    return tuple(made[value]() if value in made else value for value in primer)


def run_guard_case(m, paths, name, index):
    declaration, _, calls = GUARD_CASES[name]
    f = declaration(m, paths)
    f(*priming_arguments(m, name))
    args, kwargs = calls[index][2](m)
    return outcome(lambda: f(*args, **kwargs))


GUARD_IDS = [
    (name, index) for name, (_, _, calls) in GUARD_CASES.items() for index in range(len(calls))
]


def guard_id(case):
    name, index = case
    return f"{name}-{GUARD_CASES[name][2][index][0]}"


@pytest.mark.parametrize("case", GUARD_IDS, ids=map(guard_id, GUARD_IDS))
def test_guard_outcomes_agree_with_stock(case, paths):
    name, index = case
    expected = run_guard_case(stock, paths, name, index)
    got = run_guard_case(ours, paths, name, index)
    assert same(expected, got), f"stock {expected}, ours {got}"


@requires_entry_stubs
@pytest.mark.parametrize("case", GUARD_IDS, ids=map(guard_id, GUARD_IDS))
def test_guards_take_what_they_should_and_the_stub_stays(case, paths):
    name, index = case
    declaration, _, calls = GUARD_CASES[name]
    f = declaration(ours, paths)
    f(*priming_arguments(ours, name))
    _, served_by, arguments = calls[index]
    args, kwargs = arguments(ours)
    stubbed = name not in WITHOUT_ENTRY_STUB
    before = entry_stub_calls()
    outcome(lambda: f(*args, **kwargs))
    assert entry_stub_calls() - before == (1 if served_by == "stub" else 0)
    # A guard miss leaves the stub installed: the next ordinary call takes it again.
    before = entry_stub_calls()
    f(*priming_arguments(ours, name))
    assert entry_stub_calls() - before == (1 if stubbed else 0)


def test_arguments_offset_flag_and_other_call_forms(paths):
    """CPython sets PY_VECTORCALL_ARGUMENTS_OFFSET in nargsf for calls from Python code;
    map(), f(*args) and functools.partial call the slot in other ways."""
    import functools

    def run(m):
        f = function(m, paths["jittest"], "add_i32", m.c_int32, [m.c_int32, m.c_int32])
        plus_one = functools.partial(f, 1)
        return (
            [f(i, i) for i in range(3)],
            list(map(f, range(3), range(3, 6))),
            f(*(7, 8)),
            plus_one(5),
            outcome(lambda: plus_one(5, 6)),
            f.__call__(2, 3),
            type(f).__call__(f, 4, 5),
        )

    assert run(ours) == run(stock)


# ---------------------------------------------------------------------------------------
# Unsigned narrow arguments: zero-extended to 32 bits by the caller, as gcc and libffi do
# (clang-compiled callees rely on it). Checked with callees that return the whole
# register, as clang compiles `unsigned f(unsigned char c) { return c; }`.

WIDENING_SOURCE = r"""
__asm__(".globl widen_u8\n.type widen_u8,@function\nwiden_u8:\n  movl %edi, %eax\n  ret\n"
        ".globl widen_u16\n.type widen_u16,@function\nwiden_u16:\n  movl %edi, %eax\n  ret\n"
        ".globl widen_i8\n.type widen_i8,@function\nwiden_i8:\n  movl %edi, %eax\n  ret\n"
        ".globl widen_i16\n.type widen_i16,@function\nwiden_i16:\n  movl %edi, %eax\n  ret\n");
"""


@pytest.fixture(scope="module")
def widening_library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("widen")
    source = folder / "widen.c"
    source.write_text(WIDENING_SOURCE)
    return str(compile_library(source, folder / "libwiden.so"))


@pytest.mark.parametrize(
    "name,argtype,restype,value",
    [
        ("widen_u8", "c_uint8", "c_uint32", 255),
        ("widen_u8", "c_ubyte", "c_uint32", -1),
        ("widen_u16", "c_uint16", "c_uint32", 0xFFFF),
        ("widen_u16", "c_ushort", "c_uint32", 0x8001),
        ("widen_i8", "c_int8", "c_int32", -1),
        ("widen_i16", "c_int16", "c_int32", -2),
    ],
)
def test_narrow_arguments_are_extended_as_stock_does(
    widening_library, name, argtype, restype, value
):
    def run(m):
        f = function(m, widening_library, name, getattr(m, restype), [getattr(m, argtype)])
        # The first call takes the Rust entry, the next ones the stub; the int subclass
        # and the ctypes instance take the general path.
        return [f(value), f(value), f(IntSubclass(value)), f(getattr(m, argtype)(value))]

    assert run(ours) == run(stock)


# ---------------------------------------------------------------------------------------
# Declarations changing after the stub is installed.


def test_argtypes_with_their_own_from_param_are_respected(paths):
    """A subclass of c_int32 with its own from_param must not get the int guard; stock
    takes the converters when argtypes is set, so later patches count only after the next
    assignment."""

    def run(m):
        class Tenfold(m.c_int32):
            @classmethod
            def from_param(cls, value):
                return m.c_int32(value * 10)

        class Plain(m.c_int32):
            pass

        tenfold = function(m, paths["jittest"], "add_i32", m.c_int32, [Tenfold, m.c_int32])
        plain = function(m, paths["jittest"], "add_i32", m.c_int32, [Plain, m.c_int32])
        results = [tenfold(1, 2), tenfold(1, 2), plain(1, 2), plain(1, 2)]
        Plain.from_param = classmethod(lambda cls, value: m.c_int32(value * 100))
        results += [plain(1, 2), plain(1, 2)]
        plain.argtypes = [Plain, m.c_int32]
        results += [plain(1, 2), plain(1, 2)]
        return results

    assert run(ours) == run(stock)


@pytest.mark.parametrize("base", ["c_int", "c_uint8", "c_void_p", "c_char_p", "c_bool", "c_double"])
def test_restype_subclasses_give_instances(base, paths):
    def run(m):
        subclass = type("Sub", (getattr(m, base),), {})
        # A double comes back in xmm0: read from a function returning an int it would be
        # whatever the register held (3.12's stock run shows garbage there).
        name, argtype = ("f64_echo", m.c_double) if base == "c_double" else ("i64_echo", m.c_int64)
        f = function(m, paths["jittest"], name, subclass, [argtype])
        results = [f(0), f(1), f(0)]
        return [
            (type(result).__name__, result.value if base != "c_char_p" else None)
            for result in results
        ]

    assert run(ours) == run(stock)


def test_callback_objects_called_from_python(paths):
    def run(m):
        doubled = m.CFUNCTYPE(m.c_int, m.c_int)(lambda x: x * 2)
        halved = m.CFUNCTYPE(m.c_double, m.c_double, m.c_int8)(lambda x, y: x / 2 + y)
        return [
            doubled(3),
            doubled(4),
            doubled(2**31),
            outcome(lambda: doubled(1.5)),
            halved(3.0, 1),
            halved(3.0, 200),
            outcome(lambda: halved(1.0)),
        ]

    assert run(ours) == run(stock)


def test_a_callback_may_redeclare_the_function_that_calls_it(paths):
    """The outer call's result is boxed as declared when it started; the next call uses
    what the callback declared."""

    def run(m):
        call = function(m, paths["rawffi_test"], "call_int_callback", m.c_int, None)
        prototype = m.CFUNCTYPE(m.c_int, m.c_int)
        call.argtypes = [prototype, m.c_int]
        calls = [0]

        def redeclare(value):
            calls[0] += 1
            call.restype = m.c_uint8 if calls[0] % 2 else m.c_int
            call.argtypes = [prototype, m.c_int] if calls[0] % 3 else [prototype, m.c_int16]
            return value + 1000

        callback = prototype(redeclare)
        return [call(callback, value) for value in (1, 2, 3, 4, 5, 6, 70000, 8)]

    assert run(ours) == run(stock)


def test_restype_changes_take_effect_at_once(paths):
    def run(m):
        f = function(m, paths["jittest"], "add_i32", m.c_int32, [m.c_int32, m.c_int32])
        results = [f(300, 5), f(300, 5)]

        class Checked(m.c_int):
            @classmethod
            def _check_retval_(cls, value):
                return ("checked", type(value).__name__, value.value)

        for restype in (
            m.c_uint8,
            m.c_int8,
            None,
            m.c_bool,
            m.c_uint64,
            Checked,
            lambda value: ("callable", value),
            m.c_int32,
        ):
            f.restype = restype
            results.append([f(300, 5), f(300, -300), f(-1, 0)])
        del f.restype
        results.append([f(300, 5), f(300, 5)])
        return results

    assert run(ours) == run(stock)


def test_argtypes_changes_take_effect_at_once(paths):
    def run(m):
        f = function(m, paths["jittest"], "add_i32", m.c_int32, [m.c_int32, m.c_int32])
        results = [f(200, 0), f(200, 0)]
        for argtypes in (
            [m.c_int8, m.c_int8],
            [m.c_int32],
            [m.c_int32, m.c_int32, m.c_int32],
            [m.c_bool, m.c_int32],
            [m.c_int16, m.c_uint8],
            None,
            [m.c_int32, m.c_int32],
        ):
            f.argtypes = argtypes
            results.append(
                [
                    outcome(lambda: f(200, 0)),
                    outcome(lambda: f(200, 0)),
                    outcome(lambda: f(1.5, 0)),
                    outcome(lambda: f(3, 4, 5)),
                ]
            )
        del f.argtypes
        results.append([outcome(lambda: f(200, 0)), outcome(lambda: f(200, 0))])
        return results

    assert run(ours) == run(stock)


def test_errcheck_changes_take_effect_at_once(paths):
    def run(m):
        f = function(m, paths["jittest"], "add_i32", m.c_int32, [m.c_int32, m.c_int32])
        results = [f(1, 2), f(1, 2)]
        f.errcheck = lambda result, func, arguments: ("checked", result, arguments)
        results += [f(1, 2), f(3, 4)]

        def refuse(result, func, arguments):
            raise ValueError(f"refused {result}")

        f.errcheck = refuse
        results.append(outcome(lambda: f(5, 6)))
        del f.errcheck
        results += [f(7, 8), f(9, 10)]
        f.errcheck = lambda result, func, arguments: result * 2
        results += [f(7, 8)]
        return results

    assert run(ours) == run(stock)


def test_function_address_changes_take_effect_at_once(paths):
    """The stub reads the C function's address from the object on every call; ctypes
    lets a program overwrite it (the object's memory is the pointer)."""

    def run(m):
        labs = function(m, None, "labs", m.c_long, [m.c_long])
        echo = function(m, paths["jittest"], "i64_echo", m.c_int64, [m.c_int64])
        addresses = [m.cast(f, m.c_void_p).value for f in (labs, echo)]
        f = m.CFUNCTYPE(m.c_long, m.c_long)(addresses[0])
        results = [f(-3), f(-3)]
        slot = m.c_void_p.from_address(m.addressof(f))
        for address in addresses[1], addresses[0], addresses[1]:
            slot.value = address
            results += [f(-3), f(-4)]
        return results

    assert run(ours) == run(stock)


def test_a_null_function_pointer_raises_even_after_the_stub_is_installed(paths):
    labs = function(ours, None, "labs", ours.c_long, [ours.c_long])
    f = ours.CFUNCTYPE(ours.c_long, ours.c_long)(ours.cast(labs, ours.c_void_p).value)
    assert [f(-3), f(-3)] == [3, 3]
    slot = ours.c_void_p.from_address(ours.addressof(f))
    slot.value = None
    # Stock ctypes crashes here; our general path raises, and so must the stub's fallback.
    with pytest.raises(ValueError, match="NULL function pointer"):
        f(-3)
    with pytest.raises(ValueError, match="NULL function pointer"):
        f(-3)
    slot.value = ours.cast(labs, ours.c_void_p).value
    assert f(-5) == 5


def test_a_prototype_instantiated_with_address_zero_raises():
    for restype, argtypes, args in [
        (ours.c_int, (ours.c_int,), (1,)),
        (None, (), ()),
        (ours.c_double, (ours.c_double, ours.c_char_p), (1.0, b"x")),
    ]:
        f = ours.CFUNCTYPE(restype, *argtypes)(0)
        for _ in range(3):
            with pytest.raises(ValueError, match="NULL function pointer"):
                f(*args)


def test_set_trivial_takes_effect_at_once(paths):
    f = function(ours, paths["jittest"], "add_i32", ours.c_int32, [ours.c_int32, ours.c_int32])
    results = [f(1, 2), f(1, 2)]
    jitctypes.set_trivial(f)
    results += [f(3, 4), f(3, 4)]
    f.restype = ours.c_uint8
    results += [f(300, 5), f(300, 5)]
    jitctypes.set_trivial(f, False)
    results += [f(300, 6), f(300, 6)]
    assert results == [3, 3, 7, 7, 49, 49, 50, 50]


@requires_entry_stubs
def test_set_trivial_functions_get_their_own_entry_stub(paths):
    f = function(ours, paths["jittest"], "add_i32", ours.c_int32, [ours.c_int32, ours.c_int32])
    f(1, 2)
    jitctypes.set_trivial(f)
    f(1, 2)  # a new plan (keeps the GIL): the Rust entry again, which installs its stub
    before = entry_stub_calls()
    assert [f(3, 4), f(5, 6)] == [7, 11]
    assert entry_stub_calls() - before == 2


@pytest.fixture
def restore_jit_switch():
    original = _rawffi.jit_enabled()
    yield
    _rawffi.set_jit_enabled(original)


def test_switching_the_jit_off_and_on_keeps_results_right(paths, restore_jit_switch):
    f = function(ours, paths["jittest"], "add_f64", ours.c_double, [ours.c_double, ours.c_double])
    g = function(ours, paths["jittest"], "i8_echo", ours.c_int8, [ours.c_int8])
    results = []
    for enabled in (True, False, True, False, True):
        _rawffi.set_jit_enabled(enabled)
        results.append([f(1.5, 2), f(1.5, 2), f(-1, 0.25), g(0x1FF), g(-128), g(True)])
    assert results == [[3.5, 3.5, -0.75, -1, -128, 1]] * 5


@requires_entry_stubs
def test_switching_the_jit_off_bypasses_the_stub(paths, restore_jit_switch):
    f = function(ours, paths["jittest"], "add_i32", ours.c_int32, [ours.c_int32, ours.c_int32])
    f(1, 2)
    _rawffi.set_jit_enabled(False)
    before = entry_stub_calls()
    assert [f(1, 2), f(3, 4)] == [3, 7]
    assert entry_stub_calls() == before
    _rawffi.set_jit_enabled(True)
    f(1, 2)
    before = entry_stub_calls()
    assert [f(1, 2), f(3, 4)] == [3, 7]
    assert entry_stub_calls() - before == 2


def test_statistics_report_entry_stubs(paths):
    f = function(ours, paths["jittest"], "i32_echo", ours.c_int32, [ours.c_int32])
    signature = "fn(i32) -> i32"
    zero = dict.fromkeys(("fast_calls", "entry_stub_calls", "general_calls"), 0)
    before = jitctypes.stats()["signatures"].get(signature, zero)
    for value in range(5):
        f(value)
    f(IntSubclass(5))  # a guard miss: the general path
    after = jitctypes.stats()["signatures"][signature]
    assert {
        "fast_calls",
        "entry_stub_calls",
        "general_calls",
        "entry_stubs",
        "code_bytes",
        "compile_time_us",
        "functions",
    } <= after.keys()
    delta = {key: after[key] - before[key] for key in zero}
    if _rawffi.jit_enabled():
        # The first call takes the Rust entry, the next four the stub (counted as fast).
        assert delta == {"fast_calls": 5, "entry_stub_calls": 4, "general_calls": 1}
        assert after["entry_stubs"] >= 1
        assert after["code_bytes"] > 0 and after["compile_time_us"] > 0
    else:
        assert delta == {"fast_calls": 5, "entry_stub_calls": 0, "general_calls": 1}
        assert after["entry_stubs"] == 0


# ---------------------------------------------------------------------------------------
# errno, PyDLL and pythonapi.


def test_use_errno_round_trips_through_the_stub(paths):
    def run(m):
        fail = function(
            m, paths["rawffi_test"], "fail_with_errno", m.c_int, [m.c_int], use_errno=True
        )
        current = function(m, paths["rawffi_test"], "current_errno", m.c_int, [], use_errno=True)
        results = []
        for value in (11, 42, 0, 7):
            m.set_errno(value)
            results.append((current(), current(), m.get_errno()))
            results.append((fail(value + 1), m.get_errno(), fail(value + 2), m.get_errno()))
        # Without use_errno, the private errno is neither read nor written.
        plain = function(m, paths["rawffi_test"], "fail_with_errno", m.c_int, [m.c_int])
        m.set_errno(3)
        results.append((plain(99), plain(98), m.get_errno()))
        return results

    assert run(ours) == run(stock)


@requires_entry_stubs
def test_use_errno_functions_are_served_by_the_stub(paths):
    fail = function(
        ours, paths["rawffi_test"], "fail_with_errno", ours.c_int, [ours.c_int], use_errno=True
    )
    fail(1)
    before = entry_stub_calls()
    fail(5)
    assert ours.get_errno() == 5
    assert entry_stub_calls() - before == 1


class RaisingBool:
    def __bool__(self):
        raise ZeroDivisionError("no truth here")


def test_pythonapi_functions_agree_with_stock():
    def run(m):
        api = m.pythonapi
        from_long = api["PyLong_FromLong"]
        from_long.argtypes, from_long.restype = [m.c_long], m.py_object
        as_long = api["PyLong_AsLong"]
        as_long.argtypes, as_long.restype = [m.py_object], m.c_long
        is_true = api["PyObject_IsTrue"]
        is_true.argtypes, is_true.restype = [m.py_object], m.c_int
        set_string = api["PyErr_SetString"]
        set_string.argtypes, set_string.restype = [m.py_object, m.c_char_p], None
        occurred = api["PyErr_Occurred"]
        occurred.argtypes, occurred.restype = [], m.c_void_p
        size = api["PyTuple_Size"]
        size.argtypes, size.restype = [m.py_object], m.c_ssize_t
        return [
            [from_long(41) + 1 for _ in range(3)],
            [outcome(lambda v=v: as_long(v)) for v in (5, 6, "x", 2**70, Index(9), 7)],
            [outcome(lambda v=v: is_true(v)) for v in (1, 0, RaisingBool(), [], [0])],
            [outcome(lambda: set_string(KeyError, b"boom")) for _ in range(3)],
            [occurred() for _ in range(3)],
            [outcome(lambda v=v: size(v)) for v in ((1, 2), (), [1], (3,))],
        ]

    assert run(ours) == run(stock)


@requires_entry_stubs
def test_pythonapi_errors_propagate_from_the_stub():
    as_long = ours.pythonapi["PyLong_AsLong"]
    as_long.argtypes, as_long.restype = [ours.py_object], ours.c_long
    as_long(1)
    before = entry_stub_calls()
    assert as_long(5) == 5
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        as_long("x")
    with pytest.raises(OverflowError):
        as_long(2**70)
    assert as_long(6) == 6
    # Calls that raise are not counted as completed.
    assert entry_stub_calls() - before == 2


@requires_entry_stubs
def test_void_pythonapi_errors_propagate_from_the_stub():
    restore = ours.pythonapi["PyErr_Restore"]
    restore.argtypes, restore.restype = [ours.c_void_p] * 3, None
    restore(None, None, None)
    before = entry_stub_calls()
    assert restore(None, None, None) is None
    assert entry_stub_calls() - before == 1
    error = LookupError("set by C")
    stock.pythonapi.Py_IncRef(stock.py_object(LookupError))  # PyErr_Restore steals them
    stock.pythonapi.Py_IncRef(stock.py_object(error))
    with pytest.raises(LookupError, match="set by C"):
        restore(id(LookupError), id(error), None)
    assert entry_stub_calls() - before == 1


def test_void_pythonapi_functions_raise_what_they_set():
    """PyErr_Restore returns nothing: only the error it leaves tells that the call failed.
    Its first call (no error) installs the stub; the next ones set errors."""

    def run(m):
        api = m.pythonapi
        restore = api["PyErr_Restore"]
        restore.argtypes, restore.restype = [m.c_void_p] * 3, None
        increment = api["Py_IncRef"]
        increment.argtypes, increment.restype = [m.py_object], None
        results = [restore(None, None, None), restore(None, None, None)]
        for error in (KeyError("first"), ValueError("second"), KeyError("third")):
            increment(type(error))  # PyErr_Restore steals both references
            increment(error)
            results.append(outcome(lambda error=error: restore(id(type(error)), id(error), None)))
        results.append(restore(None, None, None))
        return results

    assert run(ours) == run(stock)


def test_pydll_functions_agree_with_stock(paths):
    def run(m):
        f = m.PyDLL(paths["jittest"])["add_i32"]
        f.argtypes, f.restype = [m.c_int32, m.c_int32], m.c_int32
        g = m.PyDLL(paths["rawffi_test"])["greeting"]
        g.restype = m.c_char_p
        return [f(1, 2), f(3, 4), outcome(lambda: f(1.5, 2)), f(5, 6), g(), g()]

    assert run(ours) == run(stock)


# ---------------------------------------------------------------------------------------
# Threads.


def test_private_errno_stays_per_thread(paths):
    fail = function(
        ours, paths["rawffi_test"], "fail_with_errno", ours.c_int, [ours.c_int], use_errno=True
    )
    current = function(ours, paths["rawffi_test"], "current_errno", ours.c_int, [], use_errno=True)
    mismatches = []

    def work(number):
        for round_ in range(300):
            expected = number * 1000 + round_
            ours.set_errno(expected)
            if current() != expected:
                mismatches.append(("current", number, round_))
            fail(expected + 1)
            if ours.get_errno() != expected + 1:
                mismatches.append(("after fail", number, round_))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=work, args=(number,)) for number in range(1, 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        sys.setswitchinterval(interval)
    assert not mismatches


def test_threads_calling_while_the_declaration_changes(paths):
    """Callers run through the stub (or the Rust entry) while another thread swaps the
    declaration between two that are valid for add_i32: the result is always the answer
    of one of them, and nothing crashes."""
    f = function(ours, paths["jittest"], "add_i32", ours.c_int32, [ours.c_int32, ours.c_int32])
    valid = {305, 305 & 0xFF}
    stop = threading.Event()
    wrong, errors, calls = [], [], [0]

    def call():
        try:
            while not stop.is_set():
                for _ in range(50):
                    result = f(300, 5)
                    if result not in valid:
                        wrong.append(result)
                calls[0] += 50
        except BaseException as error:  # noqa: B902 (reported by the test)
            errors.append(error)
            stop.set()

    def declare():
        try:
            rounds = 0
            while not stop.is_set():
                rounds += 1
                if rounds % 2:
                    f.argtypes, f.restype = [ours.c_int64, ours.c_int64], ours.c_uint8
                else:
                    f.argtypes, f.restype = [ours.c_int32, ours.c_int32], ours.c_int32
                if rounds % 3 == 0:
                    jitctypes.set_trivial(f, rounds % 2 == 0)
                time.sleep(0)
        except BaseException as error:  # noqa: B902
            errors.append(error)
            stop.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=call) for _ in range(4)]
        threads.append(threading.Thread(target=declare))
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(10)
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert not wrong
    assert calls[0] > 1000
