"""Calls through jitctypes._rawffi on both paths (compiled stub and libffi), against the
project's C test library: every scalar type, stack arguments, struct shapes by value as
arguments and results, variadic functions, strings."""

import functools
import struct
import threading
import time

import pytest
from jitctypes import _rawffi
from jitctypes._rawffi import CType, FuncPtr, Library, Memory

CODES = {
    "i8": "b", "u8": "B", "i16": "h", "u16": "H", "i32": "i", "u32": "I", "i64": "q",
    "u64": "Q", "f32": "f", "f64": "d", "f80": "g", "ptr": "P", "boolean": "?",
}  # fmt: skip
SAMPLES = {
    "i8": [-128, -1, 0, 127], "u8": [0, 1, 255], "i16": [-32768, 12345, 32767],
    "u16": [0, 65535], "i32": [-(2**31), -7, 2**31 - 1], "u32": [0, 2**32 - 1],
    "i64": [-(2**63), 2**63 - 1], "u64": [0, 2**64 - 1], "f32": [0.0, -1.5, 2.0**100],
    "f64": [0.0, -2.5e-300, 1e300], "f80": [0.0, -1.25, 1e300], "ptr": [None, 1, 2**64 - 1],
    "boolean": [False, True],
}  # fmt: skip


def scalar(name: str) -> CType:
    return CType.scalar(CODES[name])


def function(library, name, argtypes, restype, use_jit, **options) -> FuncPtr:
    return FuncPtr(library.symbol(name), argtypes, restype, use_jit=use_jit, **options)


def expected_path(use_jit: bool) -> str:
    return "jit" if use_jit and _rawffi.jit_enabled() else "libffi: libffi requested"


@pytest.mark.parametrize("name", sorted(CODES))
def test_every_scalar_round_trips(jittest, use_jit, name):
    echo = function(jittest, f"{name}_echo", [scalar(name)], scalar(name), use_jit)
    assert echo.path == expected_path(use_jit)
    for value in SAMPLES[name]:
        assert echo(value) == value


@pytest.mark.parametrize("name", sorted(CODES))
def test_arguments_past_the_registers(jittest, use_jit, name):
    argtypes = [CType.scalar("i")] + [scalar(name)] * 10
    pick = function(jittest, f"{name}_pick10", argtypes, scalar(name), use_jit)
    values = [SAMPLES[name][k % len(SAMPLES[name])] for k in range(10)]
    for which in range(10):
        assert pick(which, *values) == values[which]


def mix(h: int, v: int) -> int:
    """The C library's checksum step (jittest.c `mix`)."""
    h = ((h ^ v) * 0x100000001B3) & (2**64 - 1)
    return ((h << 29) | (h >> 35)) & (2**64 - 1)


def bits(name: str, value) -> int:
    if name == "f32":
        return struct.unpack("<I", struct.pack("<f", value))[0]
    if name == "f64":
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    return (value or 0) & (2**64 - 1)


def test_twenty_mixed_arguments(jittest, use_jit):
    names = ["i8", "f32", "u16", "f64", "i32", "f64", "u64", "f32", "i64", "f64",
             "ptr", "f64", "u8", "f32", "i16", "f64", "u32", "f64", "boolean", "f32"]  # fmt: skip
    mixed20 = function(jittest, "mixed20", [scalar(n) for n in names], CType.scalar("Q"), use_jit)
    values = [SAMPLES[n][k % len(SAMPLES[n])] for k, n in enumerate(names)]
    expected = 0
    for name, value in zip(names, values, strict=True):
        expected = mix(expected, bits(name, int(value) if name == "boolean" else value))
    assert mixed20(*values) == expected


# The struct cases of jittest.c, member by member: (type name or nested case, array length).
STRUCT_CASES = {
    "S1": [("i8", 0)], "S2": [("u8", 0), ("i8", 0)], "S3": [("u8", 3)],
    "S4": [("i16", 0), ("u8", 0), ("i8", 0)], "S4F": [("f32", 0)],
    "S8": [("i32", 0), ("f32", 0)], "S8F": [("f32", 0), ("f32", 0)], "S8D": [("f64", 0)],
    "S12": [("i32", 0), ("i32", 0), ("f32", 0)], "S12F": [("f32", 0)] * 3,
    "S12X": [("f32", 0), ("f32", 0), ("i32", 0)], "S16LD": [("i64", 0), ("f64", 0)],
    "S16DL": [("f64", 0), ("i64", 0)], "S16DD": [("f64", 0), ("f64", 0)],
    "S16LL": [("i64", 0), ("u64", 0)],
    "S16MIX": [("i8", 0), ("u16", 0), ("f32", 0), ("f32", 0), ("f32", 0)],
    "S16ARR": [("f32", 3), ("i32", 0)], "S16NEST": [("S8F", 0), ("S4", 0), ("f32", 0)],
    "S17": [("i8", 17)], "S24": [("i64", 0), ("f64", 0), ("u32", 0)], "S32": [("f64", 4)],
    "S64": [("i64", 0), ("f64", 0), ("i8", 0), ("i16", 0), ("i32", 0), ("f32", 3), ("S12", 0),
            ("u64", 0), ("ptr", 0)],
    "S3B": [("boolean", 0), ("i8", 0), ("boolean", 0)],
}  # fmt: skip
UNION_CASES = {"U8": [("f64", 0), ("i32", 2)], "U12": [("f32", 3), ("i64", 0), ("i8", 0)]}
PACKED_CASES = {"P7": [("i8", 0), ("i32", 0), ("i16", 0)]}


def case_layout(name: str) -> _rawffi.Layout:
    members = STRUCT_CASES.get(name) or UNION_CASES.get(name) or PACKED_CASES[name]
    ctypes_of_members = []
    for type_name, length in members:
        member = case_layout(type_name).ctype if type_name in STRUCT_CASES else scalar(type_name)
        ctypes_of_members.append((CType.array(member, length) if length else member, None))
    kind = "union" if name in UNION_CASES else "struct"
    return _rawffi.layout(kind, ctypes_of_members, pack=1 if name in PACKED_CASES else None)


ALL_CASES = sorted([*STRUCT_CASES, *UNION_CASES, *PACKED_CASES])


@pytest.mark.parametrize("name", ALL_CASES)
def test_struct_layout_matches_gcc(jittest, name):
    out = Memory(32 * 8)
    FuncPtr(jittest.symbol(f"{name}_layout"), [CType.scalar("P")])(out)
    words = struct.unpack("<32Q", out.tobytes())
    gcc = list(words[: words.index(2**64 - 1)])
    layout = case_layout(name)
    assert [layout.size, layout.align] + [field[0] for field in layout.fields] == gcc


@pytest.mark.parametrize("name", ALL_CASES)
def test_structs_by_value_match_the_pointer_path(jittest, use_jit, name):
    shape = case_layout(name).ctype
    seed_t, void_p, i64 = CType.scalar("q"), CType.scalar("P"), CType.scalar("q")
    # libffi cannot describe unaligned members (gcc passes such a struct in memory): the
    # signature takes a compiled stub even where libffi is asked for, and follows gcc
    # (stock ctypes, on libffi, passes it wrongly).
    path = "jit" if name in PACKED_CASES else expected_path(use_jit)
    make = function(jittest, f"{name}_make", [seed_t], shape, use_jit)
    make_into = function(jittest, f"{name}_make_into", [seed_t, void_p], None, use_jit)
    by_value = function(jittest, f"{name}_sum", [shape], i64, use_jit)
    by_pointer = function(jittest, f"{name}_sum_ptr", [void_p], i64, use_jit)
    assert make.path == by_value.path == path
    for seed in (1, 2, 0x123456789):
        reference = Memory(shape.size)
        make_into(seed, reference)
        returned = make(seed)
        assert returned == reference.tobytes()
        assert by_value(returned) == by_pointer(reference) == by_value(reference)


def test_variadic_calls_go_through_libffi(jittest):
    i32, i64, f64 = CType.scalar("i"), CType.scalar("q"), CType.scalar("d")
    var_sum = FuncPtr(jittest.symbol("var_sum"), [i32, i64, i64, i64], i64, fixed_args=1)
    assert var_sum.path.startswith("libffi")  # "variadic call", or the JIT switched off
    assert var_sum(3, 10, -20, 2**40) == 10 - 40 + 3 * 2**40  # weighted by position
    var_sum_f64 = FuncPtr(jittest.symbol("var_sum_f64"), [i32, f64, f64], f64, fixed_args=1)
    assert var_sum_f64(2, 1.5, 2.25) == 1.5 + 4.5
    z, size = CType.scalar("z"), CType.scalar("L")
    argtypes = [CType.scalar("P"), size, z, i32, z, f64]
    var_format = FuncPtr(jittest.symbol("var_format"), argtypes, i32, fixed_args=3)
    buffer = Memory(64)
    assert var_format(buffer, 64, b"%d %s %.2f", -42, b"ok", 2.5) == 11
    assert _rawffi.string_at(buffer.address) == b"-42 ok 2.50"


def test_strings_in_and_out(rawffi_test, use_jit):
    z, wide, size = CType.scalar("z"), CType.scalar("Z"), CType.scalar("L")
    assert function(rawffi_test, "byte_length", [z], size, use_jit)(b"four") == 4
    assert function(rawffi_test, "byte_length", [z], size, use_jit)(None) == 2**64 - 1
    assert function(rawffi_test, "wide_length", [wide], size, use_jit)("grüß ☃") == 6
    assert function(rawffi_test, "greeting", [], z, use_jit)() == b"hello, world"
    assert function(rawffi_test, "wide_greeting", [], wide, use_jit)() == "grüß dich ☃"


def ticks_of_another_thread_during(call) -> int:
    """How often another Python thread ran while `call()` was running."""
    ticks = 0
    done = threading.Event()

    def count_ticks():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0)

    counter = threading.Thread(target=count_ticks)
    counter.start()
    try:
        time.sleep(0.01)
        before = ticks
        call()
        return ticks - before
    finally:
        done.set()
        counter.join()


def test_the_gil_is_released_unless_kept():
    usleep = Library(None).symbol("usleep")
    ticks = {}
    for release_gil in (True, False):
        sleep = FuncPtr(usleep, [CType.scalar("I")], CType.scalar("i"), release_gil=release_gil)
        ticks[release_gil] = ticks_of_another_thread_during(functools.partial(sleep, 300_000))
    # Released: the other thread runs for the whole 0.3 s. Kept: at most around the edges
    # of the call (the comparison is relative, so a loaded machine does not matter).
    assert ticks[True] > 10 * ticks[False] + 10, ticks
