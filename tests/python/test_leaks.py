"""Nothing leaks: one million rounds of calls, field accesses, object creations and
callback invocations, in a fresh process on jitctypes; resident memory must grow by less
than 1 MB after warm-up, and the reference counts of the objects passed must come back."""

import subprocess
import sys
import textwrap

ROUNDS = 1_000_000

PROGRAM = textwrap.dedent(
    """
    import ctypes, sys

    def resident_bytes():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    library = ctypes.CDLL(sys.argv[1])
    add_i32 = library.add_i32
    add_i32.argtypes, add_i32.restype = [ctypes.c_int32, ctypes.c_int32], ctypes.c_int32
    rawffi = ctypes.CDLL(sys.argv[2])
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
    call_back = rawffi.call_int_callback
    call_back.argtypes, call_back.restype = [callback_type, ctypes.c_int], ctypes.c_int
    byte_length = rawffi.byte_length
    byte_length.argtypes, byte_length.restype = [ctypes.c_char_p], ctypes.c_size_t
    strchr = ctypes.CDLL(None).strchr
    strchr.argtypes, strchr.restype = [ctypes.c_char_p, ctypes.c_int], ctypes.c_char_p

    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double), ("name", ctypes.c_char_p)]

    point = Point(1, 2.0, b"p")
    text = b"a text passed by pointer"
    increment = callback_type(lambda value: value + 1)
    watched = (text, point, increment, add_i32, Point)

    def round_trip(i):
        assert add_i32(i, 1) == i + 1
        point.x = i
        point.y = point.x * 0.5
        point.name = text
        assert point.name is not None and ctypes.c_int(i).value == i
        assert byte_length(text) == 24 and strchr(text, 116) == b"text passed by pointer"
        assert call_back(increment, i) == i + 1
        ctypes.byref(point)
        (ctypes.c_int * 2)(i, i)[1]

    for i in range(100_000):
        round_trip(i)
    counts = [sys.getrefcount(obj) for obj in watched]
    before = resident_bytes()
    for i in range(int(sys.argv[3])):
        round_trip(i)
    grown = resident_bytes() - before
    after = [sys.getrefcount(obj) for obj in watched]
    print(grown, counts == after, counts, after)
    """
)


def test_a_million_rounds_do_not_leak(tmp_path, c_library_paths):
    script = tmp_path / "leak_probe.py"
    script.write_text(PROGRAM)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jitctypes",
            str(script),
            c_library_paths["jittest"],
            c_library_paths["rawffi_test"],
            str(ROUNDS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    grown, same_counts, *_ = result.stdout.split(" ", 2)
    assert same_counts == "True", result.stdout
    assert int(grown) < 1_000_000, result.stdout
