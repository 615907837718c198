"""Threads under load (issue 15): Python threads in GIL-releasing C calls that block, next to
threads running Python and making and freeing ctypes objects; C threads calling back into
Python concurrently, with callbacks that call back into C; stubs compiled while other
threads call. Each scenario runs in a subprocess on jitctypes with a timeout (a deadlock or
a crash fails it) and checks its results; `RUNS` times."""

import subprocess
import sys
import textwrap

import pytest

RUNS = 10
TIMEOUT = 60

PRELUDE = """
import ctypes, random, sys, threading, time
lib = ctypes.CDLL(LIBRARY)
libc = ctypes.CDLL(None)
errors = []

def guarded(work):
    def run(*args):
        try:
            work(*args)
        except BaseException as error:  # reported by the main thread
            errors.append(repr(error))
    return run

def run_all(threads, seconds=None):
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds)
        assert not thread.is_alive(), "deadlock: a thread did not finish"
    assert not errors, errors
"""

SCENARIOS = {
    # 8 threads block in C (GIL released) while 4 run Python and churn ctypes objects.
    "blocking_calls_and_object_churn": """
        lib.usleep_for.argtypes = [ctypes.c_int]
        strlen = libc.strlen
        strlen.argtypes, strlen.restype = [ctypes.c_char_p], ctypes.c_size_t
        class Pair(ctypes.Structure):
            _fields_ = [("a", ctypes.c_int64), ("b", ctypes.c_double)]
        def blocker(seed):
            for i in range(200):
                lib.usleep_for(50)
                assert strlen(b"x" * (seed + i % 7)) == seed + i % 7
        def churner(seed):
            rng = random.Random(seed)
            for i in range(3000):
                pairs = (Pair * 4)()
                pairs[i % 4].a = i
                p = ctypes.pointer(pairs[i % 4])
                assert p.contents.a == i
                buf = ctypes.create_string_buffer(rng.randint(1, 64))
                assert ctypes.sizeof(buf) == len(buf.raw)
                del pairs, p, buf
        threads = [threading.Thread(target=guarded(blocker), args=(n,)) for n in range(8)]
        threads += [threading.Thread(target=guarded(churner), args=(n,)) for n in range(4)]
        run_all(threads, 50)
        print("ok")
    """,
    # C threads call Python callbacks concurrently; each callback calls back into C.
    "callbacks_from_c_threads_calling_c": """
        strlen = libc.strlen
        strlen.argtypes, strlen.restype = [ctypes.c_char_p], ctypes.c_size_t
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
        seen = []
        def body(value):
            seen.append(value)
            return value + strlen(b"abc")  # a call into C from the callback
        cb = CB(body)
        lib.call_from_new_threads.argtypes = [CB, ctypes.c_int, ctypes.c_int]
        results = []
        def caller(base):
            results.append(lib.call_from_new_threads(cb, base, 50))
        threads = [threading.Thread(target=guarded(caller), args=(k * 1000,)) for k in range(8)]
        run_all(threads, 50)
        expected = sorted(sum(k * 1000 + i + 3 for i in range(50)) for k in range(8))
        assert sorted(results) == expected, (sorted(results), expected)
        assert len(seen) == 400
        print("ok")
    """,
    # New signatures are compiled (stubs made on the fly) while other threads call.
    "stubs_compiled_while_others_call": """
        types = [ctypes.c_int8, ctypes.c_uint16, ctypes.c_int32, ctypes.c_int64,
                 ctypes.c_float, ctypes.c_double, ctypes.c_void_p]
        lib.usleep_for.argtypes = [ctypes.c_int]
        labs = ctypes.cast(libc.labs, ctypes.c_void_p).value
        def caller(seed):
            for i in range(300):
                lib.usleep_for(1)
        def compiler(seed):
            rng = random.Random(seed)
            for i in range(60):
                # A fresh function object per signature: its stub is compiled on first calls.
                argtypes = [rng.choice(types) for _ in range(rng.randint(0, 6))]
                f = ctypes.CFUNCTYPE(ctypes.c_int64, *argtypes)(labs)
                f.argtypes = argtypes
                for _ in range(20):
                    f(*[1 for _ in argtypes])
        threads = [threading.Thread(target=guarded(caller), args=(n,)) for n in range(4)]
        threads += [threading.Thread(target=guarded(compiler), args=(n,)) for n in range(4)]
        run_all(threads, 50)
        print("ok")
    """,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_threads_under_load(name, c_library_paths, tmp_path):
    script = tmp_path / f"{name}.py"
    library = c_library_paths["rawffi_test"]
    script.write_text(f"LIBRARY = {library!r}\n" + PRELUDE + textwrap.dedent(SCENARIOS[name]))
    for attempt in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-m", "jitctypes", str(script)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert (done.returncode, done.stdout) == (0, "ok\n"), (attempt, done.stderr[-3000:])
