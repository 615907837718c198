"""The fast call path (pybridge/src/fastcall.rs) changes no behaviour: for every kind of
argument guard, values the guard takes give stock's results, and values it refuses fall
back to the general path, which gives stock's results and exceptions. The statistics
show which path served each call."""

import ctypes as stock  # noqa: I001 (after jitctypes.ctypes on purpose: both coexist)

import jitctypes
import jitctypes.ctypes as ours
import pytest
from oracle import outcome


class IntSubclass(int):
    pass


class FloatSubclass(float):
    pass


class AsParameter:
    def __init__(self, value):
        self._as_parameter_ = value


def add_i32(m, paths):
    return declare(m, paths["jittest"], "add_i32", m.c_int32, m.c_int32, m.c_int32)


def add_f64(m, paths):
    return declare(m, paths["jittest"], "add_f64", m.c_double, m.c_double, m.c_double)


def declare(m, lib, name, restype, *argtypes):
    function = getattr(m.CDLL(lib), name)
    function.argtypes, function.restype = list(argtypes), restype
    return function


def point_type(m):
    class Point(m.Structure):
        _fields_ = [("x", m.c_double), ("y", m.c_double)]

    return Point


# name → (declaration, [(label, arguments builder)]); `fast` marks what the guards take.
CASES = {
    "int": (
        add_i32,
        [
            ("fast", lambda m: (1, 2)),
            ("fast", lambda m: (2**40 + 5, -1)),
            ("bool", lambda m: (True, 2)),
            ("int subclass", lambda m: (IntSubclass(3), 2)),
            ("c_int instance", lambda m: (m.c_int32(4), 2)),
            ("float", lambda m: (1.5, 2)),
            ("str", lambda m: ("1", 2)),
            ("None", lambda m: (None, 2)),
            ("_as_parameter_", lambda m: (AsParameter(7), 2)),
            ("too few", lambda m: (1,)),
            ("too many", lambda m: (1, 2, 3)),
        ],
    ),
    "double": (
        lambda m, paths: declare(
            m, paths["jittest"], "add_f64", m.c_double, m.c_double, m.c_double
        ),
        [
            ("fast", lambda m: (1.5, 2.25)),
            ("fast", lambda m: (1, 2)),
            ("huge int", lambda m: (2**2000, 1.0)),
            ("float subclass", lambda m: (FloatSubclass(1.5), 1.0)),
            ("c_double instance", lambda m: (m.c_double(2.5), 1.0)),
            ("str", lambda m: ("x", 1.0)),
            ("None", lambda m: (None, 1.0)),
        ],
    ),
    "char pointer": (
        lambda m, paths: declare(m, paths["rawffi_test"], "byte_length", m.c_size_t, m.c_char_p),
        [
            ("fast", lambda m: (b"hello",)),
            ("fast", lambda m: (None,)),
            ("str", lambda m: ("hello",)),
            ("bytearray", lambda m: (bytearray(b"x"),)),
            ("char array", lambda m: (m.create_string_buffer(b"four"),)),
            ("int", lambda m: (5,)),
        ],
    ),
    "void pointer": (
        lambda m, paths: declare(m, None, "labs", m.c_long, m.c_void_p),
        [
            ("fast", lambda m: (12345,)),
            ("fast", lambda m: (None,)),
            ("c_void_p instance", lambda m: (m.c_void_p(77),)),
            ("float", lambda m: (1.5,)),
            ("structure", lambda m: (point_type(m)(),)),
            ("c_int instance", lambda m: (m.c_int(1),)),
        ],
    ),
    "pointer": (
        lambda m, paths: declare(m, None, "frexp", m.c_double, m.c_double, m.POINTER(m.c_int)),
        [
            ("fast", lambda m: (8.0, m.byref(m.c_int()))),
            ("fast", lambda m: (8.0, m.c_int())),
            ("fast", lambda m: (8.0, m.pointer(m.c_int()))),
            ("fast", lambda m: (8.0, (m.c_int * 2)())),
            ("byref of wrong type", lambda m: (8.0, m.byref(m.c_short()))),
            ("wrong instance", lambda m: (8.0, m.c_short())),
            ("int", lambda m: (8.0, 5)),
        ],
    ),
    "structure by value": (
        lambda m, paths: declare(m, paths["jittest"], "pt_norm2", m.c_double, point_type(m)),
        [
            ("tuple", lambda m: ((3.0, 4.0),)),
            ("None", lambda m: (None,)),
            ("int", lambda m: (1,)),
        ],
    ),
}


def run_case(m, paths, name, index):
    declaration, calls = CASES[name]
    function = declaration(m, paths)
    if name == "structure by value":
        # An instance of exactly the declared class is what the guard takes.
        function(function.argtypes[0](3.0, 4.0))
    label, arguments = calls[index]
    values = arguments(m)
    return outcome(lambda: function(*values)), label


@pytest.mark.parametrize(
    "name,index",
    [(name, index) for name, (_, calls) in CASES.items() for index in range(len(calls))],
)
def test_guards_agree_with_stock(name, index, c_library_paths):
    expected, label = run_case(stock, c_library_paths, name, index)
    got, _ = run_case(ours, c_library_paths, name, index)
    if expected[0] == "ok" and isinstance(expected[1], float):
        assert got[0] == "ok" and got[1] == pytest.approx(expected[1]), label
    else:
        assert got == expected, label


def test_fast_and_general_calls_are_counted(c_library_paths):
    add = declare(
        ours, c_library_paths["jittest"], "add_i32", ours.c_int32, ours.c_int32, ours.c_int32
    )
    before = jitctypes.stats()["signatures"].get("fn(i32, i32) -> i32", {})
    assert add(1, 2) == 3 and add(True, 2) == 3
    after = jitctypes.stats()["signatures"]["fn(i32, i32) -> i32"]
    assert after["fast_calls"] - before.get("fast_calls", 0) == 1
    assert after["general_calls"] - before.get("general_calls", 0) == 1


def test_changing_argtypes_replaces_the_plan(c_library_paths):
    add = declare(
        ours, c_library_paths["jittest"], "add_f64", ours.c_double, ours.c_double, ours.c_double
    )
    assert add(1.5, 1.0) == 2.5
    add.restype = None
    assert add(1.5, 1.0) is None
    add.argtypes = [ours.c_int, ours.c_int]
    with pytest.raises(ours.ArgumentError):
        add(1.5, 1.0)


def test_trivial_functions_keep_the_gil_and_still_work(c_library_paths):
    add = declare(
        ours, c_library_paths["jittest"], "add_i32", ours.c_int32, ours.c_int32, ours.c_int32
    )
    jitctypes.set_trivial(add)
    assert add(40, 2) == 42
    jitctypes.set_trivial(add, False)
    assert add(40, 3) == 43


def test_errcheck_runs_after_a_fast_call(c_library_paths):
    add = declare(
        ours, c_library_paths["jittest"], "add_i32", ours.c_int32, ours.c_int32, ours.c_int32
    )
    add.errcheck = lambda result, function, arguments: (result, arguments)
    assert add(1, 2) == (3, (1, 2))


def test_stub_dumps_hold_the_ir_and_the_machine_code(tmp_path, c_library_paths):
    import subprocess
    import sys

    program = (
        "import jitctypes.ctypes as c, sys\n"
        "f = c.CDLL(sys.argv[1]).add_f64\n"
        "f.argtypes, f.restype = [c.c_double, c.c_double], c.c_double\n"
        "print(f(1.5, 2.0))\n"
    )
    # Stubs must be compiled to be dumped, also when the suite runs with JITCTYPES_JIT=0,
    # and at the first call.
    environment = {
        **__import__("os").environ,
        "JITCTYPES_DUMP_DIR": str(tmp_path),
        "JITCTYPES_JIT": "1",
        "JITCTYPES_COMPILE_AFTER": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", program, c_library_paths["jittest"]],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.stdout.strip() == "3.5", result.stderr
    dumps = [path.read_text() for path in tmp_path.glob("stub-*.clif")]
    assert any(text.startswith("; fn(f64, f64) -> f64") for text in dumps), dumps
    assert any(text.startswith("; entry fn(f64, f64) -> f64") for text in dumps), dumps
    assert all("call_indirect" in text and "; machine code\n  " in text for text in dumps)
