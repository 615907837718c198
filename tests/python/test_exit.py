"""Interpreter exit, `os._exit`, `sys.exit` from a thread and `fork` while C threads call
back into Python and Python threads are inside C calls (issue 15). Each program runs in a
subprocess, on stock ctypes and on jitctypes, `RUNS` times: the exit code and the output
must be stock's every time (a crash, an abort or a hang is always a failure)."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

RUNS = 20
TIMEOUT = 30

DAEMON_THREADS_IN_C = textwrap.dedent(
    """
    def worker():
        while True:
            lib.usleep_for(200)
    for _ in range(4):
        threading.Thread(target=worker, daemon=True).start()
    time.sleep(0.2)
    print("done")
    """
)

# Each program gets the test library's path as `LIBRARY`.
PROGRAMS = {
    # C threads call back forever; the interpreter exits while they do (the repro).
    "callbacks_from_c_threads": """
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
        cb = CB(lambda i: sum(range(50)) + i)
        lib.start_callback_threads.argtypes = [CB, ctypes.c_int, ctypes.c_int]
        lib.start_callback_threads(cb, 4, 100)
        time.sleep(0.2)
        print("done")
    """,
    # The same without argtypes, the callback object dropped while C still calls it: only
    # the module's teardown used to free it, now it goes before the exit.
    "callbacks_keep_running_after_exit_handlers": """
        CB = ctypes.CFUNCTYPE(None, ctypes.c_int)
        calls = []
        cb = CB(calls.append)
        lib.start_callback_threads(cb, 2, 50)
        time.sleep(0.1)
        import atexit
        atexit.register(lambda: print("handler", len(calls) > 0))
    """,
    # Callbacks that call C themselves (their GIL released and taken back inside the
    # callback): the exit waits for no thread parked inside one.
    "callbacks_calling_c_at_exit": """
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
        def body(i):
            for _ in range(20):
                libc.labs(-i)  # no argtypes: the general path
            return i
        cb = CB(body)
        lib.start_callback_threads.argtypes = [CB, ctypes.c_int, ctypes.c_int]
        lib.start_callback_threads(cb, 4, 10)
        time.sleep(0.2)
        print("done")
    """,
    # Daemon Python threads inside C calls through the general path (no argtypes).
    "daemon_threads_general_path": DAEMON_THREADS_IN_C,
    # The same through the fast path and compiled entry stubs (argtypes).
    "daemon_threads_fast_path": "lib.usleep_for.argtypes = [ctypes.c_int]\n" + DAEMON_THREADS_IN_C,
    # `os._exit` while C threads call back.
    "os_exit_with_callbacks": """
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
        cb = CB(lambda i: i)
        lib.start_callback_threads(cb, 4, 100)
        time.sleep(0.1)
        sys.stdout.flush()
        os._exit(3)
    """,
    # `sys.exit` in another thread ends that thread only; the program then exits normally.
    "sys_exit_in_thread": """
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
        cb = CB(lambda i: i)
        lib.start_callback_threads(cb, 2, 100)
        t = threading.Thread(target=sys.exit, args=(5,))
        t.start()
        t.join()
        time.sleep(0.1)
        print("done")
    """,
    # A fork with stubs compiled and callbacks registered leaves a working child.
    "fork_with_stubs_and_callbacks": """
        strlen = libc.strlen
        strlen.argtypes = [ctypes.c_char_p]
        strlen.restype = ctypes.c_size_t
        for _ in range(40):
            strlen(b"abc")
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
        doubled = CB(lambda i: 2 * i)
        lib.call_from_new_threads.argtypes = [CB, ctypes.c_int, ctypes.c_int]
        pid = os.fork()
        if pid == 0:
            calls_back = lib.call_from_new_threads(doubled, 21, 3) == 2 * (21 + 22 + 23)
            ok = strlen(b"hello") == 5 and calls_back
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), strlen(b"hi"))
    """,
}

PRELUDE = """
import ctypes, os, sys, threading, time
lib = ctypes.CDLL(LIBRARY)
libc = ctypes.CDLL(None)
"""


# Longest a run of ours may take, in seconds: the exit hook waits at most 2 s for threads
# inside Python, and none of these programs should make it wait.
SLOWEST_RUN = 1.8


def run(script: Path, implementation: str) -> tuple[int, str]:
    command = [sys.executable]
    if implementation == "jitctypes":
        command += ["-m", "jitctypes"]
    command.append(str(script))
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    took = time.monotonic() - started
    assert implementation == "stock" or took < SLOWEST_RUN, f"ran {took:.1f} s"
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_exit_as_stock(name, c_library_paths, tmp_path):
    script = tmp_path / f"{name}.py"
    library = c_library_paths["rawffi_test"]
    script.write_text(f"LIBRARY = {library!r}\n" + PRELUDE + textwrap.dedent(PROGRAMS[name]))
    expected = run(script, "stock")
    if expected[0] < 0:
        # Stock itself died of a signal: a debug CPython poisons the memory of a callback
        # that module teardown freed while C threads still call it. Ours must exit as the
        # program says (0 here), with the same output.
        expected = (0, expected[1])
    assert expected[0] in (0, 3), expected  # the program itself is right on stock
    for attempt in range(RUNS):
        assert run(script, "jitctypes") == expected, f"run {attempt + 1}"


def test_callback_called_after_it_was_freed(c_library_paths, tmp_path):
    """C calls a callback the program dropped: stock crashes (its closure's memory is freed
    or reused); a freed thunk of ours returns 0 and says so once on stderr. (With the JIT
    off, callbacks are libffi closures and behave as stock's.)"""
    from jitctypes import _rawffi

    if not _rawffi.jit_enabled():
        pytest.skip("libffi closures (JITCTYPES_JIT=0) behave as stock's here")
    script = tmp_path / "freed.py"
    script.write_text(
        "import ctypes, gc\n"
        f"lib = ctypes.CDLL({c_library_paths['rawffi_test']!r})\n"
        "cb = ctypes.CFUNCTYPE(None)(lambda: print('called'))\n"
        "lib.store_callback(cb)\n"
        "lib.run_stored_callback()\n"
        "del cb\n"
        "gc.collect()\n"
        "for _ in range(3):\n"
        "    lib.run_stored_callback()\n"
        "print('survived')\n"
    )
    for _ in range(RUNS):
        code, output = run(script, "jitctypes")
        assert code == 0 and output.count("already freed") == 1, output
        assert output.startswith("called\n") and "survived" in output
