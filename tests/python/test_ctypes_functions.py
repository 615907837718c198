"""Foreign functions through the stdlib ctypes package: stock (`ctypes`) against the same
package loaded on jitctypes (`jitctypes.ctypes`), in one process, on the project's C test
libraries and libc. Each scenario runs on both and must give the same values, or the same
exception class and message.

Covered: argtypes/restype (scalars, strings, pointers, structures by value and by
reference, arrays), calls without argtypes, `from_param` and `_as_parameter_`, wrong
arguments (ArgumentError texts), errcheck, paramflags with out-parameters, use_errno,
variadic calls, callbacks (from C, from new threads, with structures), `cast`,
`string_at`, `memmove`, pickling, the buffer protocol, `resize`, PyDLL/pythonapi."""

import ctypes as stock  # noqa: I001 (after jitctypes.ctypes on purpose: both coexist)
import pickle
import sys

import jitctypes.ctypes as ours
import pytest
from oracle import outcome


@pytest.fixture(scope="module")
def libraries(c_library_paths):
    """Per module (stock, ours): the test libraries and libc as CDLLs."""
    return {
        module: {
            "jittest": module.CDLL(c_library_paths["jittest"]),
            "rawffi": module.CDLL(c_library_paths["rawffi_test"], use_errno=True),
            "libc": module.CDLL(None),
        }
        for module in (stock, ours)
    }


def scalars(m, lib):
    add_i32 = lib["jittest"].add_i32
    add_i32.argtypes, add_i32.restype = [m.c_int32, m.c_int32], m.c_int32
    add_f64 = lib["jittest"].add_f64
    add_f64.argtypes, add_f64.restype = [m.c_double, m.c_double], m.c_double
    mix6 = lib["jittest"].mix6
    mix6.argtypes = [m.c_int64, m.c_double] * 3
    mix6.restype = m.c_int64
    return add_i32(2**31 - 1, 1), add_f64(0.5, 2), mix6(1, 2.5, 3, 4.5, 5, 6.5), add_i32(True, 2)


def without_argtypes(m, lib):
    libc = lib["libc"]
    return (
        libc.strlen(b"hello"),
        libc.abs(-5),
        libc.labs(m.c_long(-7)),
        libc.strchr(b"abc", ord("b")) != 0,
        libc.toupper(m.c_int(ord("a"))),
    )


def strings_and_pointers(m, lib):
    libc, rawffi = lib["libc"], lib["rawffi"]
    strchr = libc.strchr
    strchr.argtypes, strchr.restype = [m.c_char_p, m.c_int], m.c_char_p
    greeting = rawffi.greeting
    greeting.restype = m.c_char_p
    wide = rawffi.wide_greeting
    wide.restype = m.c_wchar_p
    wide_length = rawffi.wide_length
    wide_length.argtypes, wide_length.restype = [m.c_wchar_p], m.c_size_t
    buffer = m.create_string_buffer(b"xyz", 8)
    byte_length = rawffi.byte_length
    byte_length.argtypes, byte_length.restype = [m.c_char_p], m.c_size_t
    memset = libc.memset
    memset.argtypes, memset.restype = [m.c_void_p, m.c_int, m.c_size_t], m.c_void_p
    memset(buffer, ord("q"), 2)
    return (
        strchr(b"hello", ord("l")),
        strchr(b"hello", ord("z")),
        greeting(),
        wide(),
        wide_length("grüß"),
        byte_length(buffer),
        byte_length(None),
        buffer.raw,
    )


def structures(m, lib):
    class Pt(m.Structure):
        _fields_ = [("x", m.c_double), ("y", m.c_double)]

    norm = lib["jittest"].pt_norm2
    norm.argtypes, norm.restype = [Pt], m.c_double
    return norm(Pt(3, 4)), norm(Pt(1, 2)), outcome(lambda: norm((1, 2)))


def by_reference(m, lib):
    frexp = lib["libc"].frexp
    frexp.argtypes, frexp.restype = [m.c_double, m.POINTER(m.c_int)], m.c_double
    exponent = m.c_int()
    mantissa = frexp(48.0, m.byref(exponent))
    exponents = (m.c_int * 1)()
    frexp(1024.0, exponents)
    pointer_result = frexp(3.0, m.pointer(exponent))
    return mantissa, exponent.value, exponents[0], pointer_result


def paramflags_out(m, lib):
    prototype = m.CFUNCTYPE(m.c_double, m.c_double, m.POINTER(m.c_int))
    frexp = prototype(("frexp", lib["libc"]), ((1, "x"), (2, "exponent")))
    return frexp(48.0), frexp(x=1.0), outcome(lambda: frexp()), outcome(lambda: frexp(1, 2))


def errcheck(m, lib):
    strlen = lib["libc"].strlen
    strlen.argtypes, strlen.restype = [m.c_char_p], m.c_size_t
    seen = []

    def check(result, function, arguments):
        seen.append((result, arguments))
        return result * 10

    strlen.errcheck = check
    first = strlen(b"four")
    strlen.errcheck = lambda result, function, arguments: arguments
    second = strlen(b"ab")
    del strlen.errcheck
    return first, second, strlen(b"abc"), seen, outcome(lambda: setattr(strlen, "errcheck", 5))


def bad_arguments(m, lib):
    add_i32 = lib["jittest"].add_i32
    add_i32.argtypes, add_i32.restype = [m.c_int32, m.c_int32], m.c_int32
    strchr = lib["libc"].strchr
    strchr.argtypes, strchr.restype = [m.c_char_p, m.c_int], m.c_char_p
    frexp = lib["libc"].frexp
    frexp.argtypes = [m.c_double, m.POINTER(m.c_int)]
    return [
        outcome(lambda: add_i32(1)),
        outcome(lambda: add_i32("1", 2)),
        outcome(lambda: add_i32(1.5, 2)),
        outcome(lambda: strchr("text", 1)),
        outcome(lambda: frexp(1.0, m.byref(m.c_short()))),
        outcome(lambda: frexp(1.0, 5)),
        outcome(lambda: lib["libc"].strlen(1.5)),
        outcome(lambda: lib["libc"].abs(2**80)),
        outcome(lambda: setattr(add_i32, "argtypes", [5])),
        outcome(lambda: setattr(add_i32, "argtypes", 5)),
        outcome(lambda: setattr(add_i32, "restype", 5)),
        outcome(lambda: add_i32(1, 2, x=3)),
        outcome(lambda: lib["libc"].no_such_function_anywhere),
        outcome(lambda: type(m.CFUNCTYPE(m.c_int)(5)).__name__),
    ]


def as_parameter(m, lib):
    class Wrapped:
        def __init__(self, value):
            self._as_parameter_ = value

    add_i32 = lib["jittest"].add_i32
    add_i32.argtypes, add_i32.restype = [m.c_int32, m.c_int32], m.c_int32
    labs = lib["libc"].labs
    return add_i32(Wrapped(40), 2), labs(Wrapped(-3)), outcome(lambda: add_i32(Wrapped("x"), 1))


def restype_kinds(m, lib):
    class MyInt(m.c_int):
        pass

    abs_ = lib["libc"].abs
    results = []
    for restype in (None, m.c_int, MyInt, m.c_uint8, lambda value: value * 2):
        abs_.restype = restype
        result = abs_(-300)
        results.append(result if not isinstance(result, MyInt) else ("MyInt", result.value))
    del abs_.restype
    results.append(abs_(-4))
    return results


def variadic(m, lib):
    var_sum = lib["jittest"].var_sum_f64
    var_sum.restype = m.c_double
    sprintf = lib["libc"].sprintf
    buffer = m.create_string_buffer(64)
    sprintf(buffer, b"%d|%.2f|%s", 7, m.c_double(2.5), b"x")
    return var_sum(3, m.c_double(1.5), m.c_double(2.0), m.c_double(-1.0)), buffer.value


def errno_private(m, lib):
    fail = lib["rawffi"].fail_with_errno
    m.set_errno(0)
    result = fail(42)
    return result, m.get_errno(), m.set_errno(5), m.get_errno()


def callbacks(m, lib):
    rawffi = lib["rawffi"]
    int_callback = m.CFUNCTYPE(m.c_int, m.c_int)
    call = rawffi.call_int_callback
    call.argtypes, call.restype = [int_callback, m.c_int], m.c_int
    doubled = int_callback(lambda value: value * 2)
    threads = rawffi.call_from_new_threads
    threads.argtypes, threads.restype = [int_callback, m.c_int, m.c_int], m.c_int

    class Pair(m.Structure):
        _fields_ = [("id", m.c_int64), ("weight", m.c_double)]

    seen = []
    pair_callback = m.CFUNCTYPE(m.c_int, Pair, m.POINTER(Pair))(
        lambda pair, pointer: seen.append((pair.id, pair.weight, pointer[0].id)) or 0
    )
    pair = Pair(3, 0.5)
    pair_callback(pair, m.byref(pair))
    values = (m.c_int * 5)(5, 1, 4, 2, 3)
    compare_type = m.CFUNCTYPE(m.c_int, m.POINTER(m.c_int), m.POINTER(m.c_int))
    qsort = lib["libc"].qsort
    qsort.argtypes = [m.c_void_p, m.c_size_t, m.c_size_t, compare_type]
    qsort(values, 5, m.sizeof(m.c_int), compare_type(lambda a, b: a[0] - b[0]))
    return (
        call(doubled, 21),
        doubled(4),
        threads(doubled, 1, 3),
        seen,
        list(values),
        outcome(lambda: m.CFUNCTYPE(Pair)(lambda: None)),
        outcome(lambda: m.CFUNCTYPE(m.POINTER(m.c_int))(lambda: None)),
    )


def memory_functions(m, lib):
    source = m.create_string_buffer(b"abcdef")
    target = m.create_string_buffer(8)
    m.memmove(target, source, 4)
    m.memset(m.byref(target, 4), ord("!"), 2)
    as_char = m.cast(source, m.POINTER(m.c_char))
    as_void = m.cast(m.byref(source), m.c_void_p).value == m.addressof(source)
    integer = m.c_int(0x01020304)
    as_bytes = m.cast(m.pointer(integer), m.POINTER(m.c_ubyte * 4)).contents[:]
    return (
        target.raw,
        m.string_at(source, 3),
        m.string_at(m.addressof(source)),
        m.wstring_at(m.create_unicode_buffer("wide"), 2),
        as_char[1],
        as_void,
        as_bytes,
        outcome(lambda: m.cast(source, m.c_int)),
        outcome(lambda: m.cast(1.5, m.c_void_p)),
    )


def cast_keeps_source(m, lib):
    array = (m.c_int * 3)(1, 2, 3)
    pointer = m.cast(array, m.POINTER(m.c_int))
    return pointer[2], pointer._objects is array._objects, id(array) in pointer._objects


def pickling(m, lib):
    class Point(m.Structure):
        _fields_ = [("x", m.c_int), ("y", m.c_double)]

    globals()["Point"] = Point  # pickle finds classes by name
    Point.__qualname__ = "Point"
    try:
        point = Point(3, 1.5)
        copy = pickle.loads(pickle.dumps(point))
        simple = pickle.loads(pickle.dumps(m.c_double(2.25)))
        return (copy.x, copy.y), simple.value, outcome(lambda: pickle.dumps(m.c_char_p(b"x")))
    finally:
        del globals()["Point"]


def buffers(m, lib):
    class Point(m.Structure):
        _fields_ = [("x", m.c_long), ("y", m.c_long)]

    view = memoryview((m.c_double * 3)(1, 2, 3))
    point = Point(1, 2)
    return (
        view.format,
        view.shape,
        view.itemsize,
        view.cast("B").tolist()[8:16],
        memoryview(point).format,
        bytes(point) == bytes(memoryview(point)),
        bytes(m.c_uint16(0x0102)),
        bytearray(m.create_string_buffer(b"ab", 3)),
    )


def resizing(m, lib):
    value = m.c_int(7)
    m.resize(value, 16)
    after = (m.sizeof(value), value.value)
    return (
        after,
        outcome(lambda: m.resize(m.c_int(), 2)),
        outcome(lambda: m.resize(m.c_int.from_buffer(bytearray(4)), 8)),
    )


def python_api(m, lib):
    from_long = m.pythonapi.PyLong_FromLong
    from_long.argtypes, from_long.restype = [m.c_long], m.py_object
    as_long = m.pythonapi.PyLong_AsLong
    as_long.argtypes, as_long.restype = [m.py_object], m.c_long
    return from_long(41) + 1, outcome(lambda: as_long("not an int"))


def null_and_bad_values(m, lib):
    return [
        outcome(lambda: m.POINTER(m.c_int)()[0]),
        outcome(lambda: m.POINTER(m.c_int)().contents),
        outcome(lambda: m.c_int("x")),
        outcome(lambda: m.c_char(b"ab")),
        outcome(lambda: type("S", (m.Structure,), {"_fields_": [("x", int)]})),
        outcome(lambda: type("S", (m.Structure,), {"_fields_": [("x",)]})),
        outcome(lambda: (m.c_int * 2)(1, 2, 3)),
        outcome(lambda: repr(m.c_wchar_p(5))),
    ]


SCENARIOS = {
    "scalars": scalars,
    "without argtypes": without_argtypes,
    "strings and pointers": strings_and_pointers,
    "structures by value": structures,
    "by reference": by_reference,
    "paramflags out": paramflags_out,
    "errcheck": errcheck,
    "bad arguments": bad_arguments,
    "_as_parameter_": as_parameter,
    "restype kinds": restype_kinds,
    "variadic": variadic,
    "use_errno": errno_private,
    "callbacks": callbacks,
    "memory functions": memory_functions,
    "cast keeps its source": cast_keeps_source,
    "pickling": pickling,
    "buffer protocol": buffers,
    "resize": resizing,
    "pythonapi": python_api,
    "NULL and bad values": null_and_bad_values,
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_same_as_stock(name, libraries):
    scenario = SCENARIOS[name]
    expected = outcome(lambda: scenario(stock, libraries[stock]))
    got = outcome(lambda: scenario(ours, libraries[ours]))
    assert expected[0] == "ok", expected
    assert got == expected


def test_side_by_side_package_is_served_by_jitctypes():
    assert ours is not stock
    assert sys.modules["jitctypes.ctypes"] is ours
    assert ours._CFuncPtr.__module__ == "_ctypes"
    assert ours.c_int.__module__ == "jitctypes.ctypes"
    assert type(ours.c_int).__module__ == "_ctypes"
    import jitctypes._ctypes

    assert ours.Structure is jitctypes._ctypes.Structure
    assert stock.Structure is not jitctypes._ctypes.Structure


def test_calling_a_null_function_pointer_raises():
    # Stock ctypes crashes here; jitctypes refuses.
    with pytest.raises(ValueError, match="NULL function pointer"):
        ours.CFUNCTYPE(None)()()
