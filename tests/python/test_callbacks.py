"""C → Python callbacks: from the calling thread, from pthreads Python never saw, with
structs by value both ways, exceptions reported as unraisable; concurrent calls."""

import struct
import sys
import threading
import time

import pytest
from jitctypes._rawffi import Callback, CType, FuncPtr, layout

i32, i64, f64, ptr = CType.scalar("i"), CType.scalar("q"), CType.scalar("d"), CType.scalar("P")


def test_callback_from_the_calling_thread(rawffi_test, use_jit):
    doubled = Callback(lambda value: value * 2, [i32], i32)
    call = FuncPtr(rawffi_test.symbol("call_int_callback"), [ptr, i32], i32, use_jit=use_jit)
    assert call(doubled.address, 21) == 42
    assert call(doubled.address, -(2**31)) == 0  # wraps as C int arithmetic would


def test_callback_from_threads_python_never_saw(rawffi_test):
    seen_threads = set()

    def record(value):
        seen_threads.add(threading.get_ident())
        return value * 10

    callback = Callback(record, [i32], i32)
    call = FuncPtr(rawffi_test.symbol("call_from_new_threads"), [ptr, i32, i32], i32)
    assert call(callback.address, 1, 5) == 10 * (1 + 2 + 3 + 4 + 5)
    assert seen_threads and threading.get_ident() not in seen_threads


def test_struct_arguments_and_results_by_value(rawffi_test, use_jit):
    pair = layout("struct", [(i64, None), (f64, None)]).ctype

    def scale(raw: bytes, factor: int) -> bytes:
        ident, weight = struct.unpack("<qd", raw)
        return struct.pack("<qd", ident * factor, weight * factor)

    callback = Callback(scale, [pair, i32], pair)
    call = FuncPtr(
        rawffi_test.symbol("call_pair_callback"), [ptr, pair, i32], pair, use_jit=use_jit
    )
    assert struct.unpack("<qd", call(callback.address, struct.pack("<qd", 7, 0.5), 3)) == (21, 1.5)


def test_every_argument_kind_is_boxed(rawffi_test):
    received = []

    def keep(*args):
        received.append(args)
        return 0.5

    argtypes = [CType.scalar(code) for code in "bHfdq?z"]
    callback = Callback(keep, argtypes, f64)
    assert FuncPtr(rawffi_test.symbol("call_mixed_callback"), [ptr], f64)(callback.address) == 0.5
    assert received == [(-3, 65000, 1.5, -2.25, 2**40, True, b"text")]


def test_an_exception_is_unraisable_and_c_gets_zero(rawffi_test, monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)

    def fail(value):
        raise ZeroDivisionError(value)

    callback = Callback(fail, [i32], i32)
    assert (
        FuncPtr(rawffi_test.symbol("call_int_callback"), [ptr, i32], i32)(callback.address, 5) == 0
    )
    assert len(reports) == 1
    assert isinstance(reports[0].exc_value, ZeroDivisionError)
    assert reports[0].object is fail


def test_a_result_of_the_wrong_type_is_unraisable(rawffi_test, monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    callback = Callback(lambda value: "not an int", [i32], i32)
    assert (
        FuncPtr(rawffi_test.symbol("call_int_callback"), [ptr, i32], i32)(callback.address, 5) == 0
    )
    assert isinstance(reports[0].exc_value, TypeError)


def test_eight_threads_call_and_call_back_concurrently(rawffi_test):
    spin = FuncPtr(rawffi_test.symbol("spin_sum"), [i64], i64)
    call = FuncPtr(rawffi_test.symbol("call_int_callback"), [ptr, i32], i32)
    from_threads = FuncPtr(rawffi_test.symbol("call_from_new_threads"), [ptr, i32, i32], i32)
    callback = Callback(lambda value: value + 1, [i32], i32)
    errors, counts = [], [0] * 8
    deadline = time.monotonic() + 2.0

    def worker(index):
        try:
            while time.monotonic() < deadline:
                assert spin(1000 + index) == (1000 + index) * (999 + index) // 2
                assert call(callback.address, index) == index + 1
                assert from_threads(callback.address, index, 2) == 2 * index + 3
                counts[index] += 1
        except BaseException as error:  # reported below, in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(count > 0 for count in counts)


def test_callbacks_cannot_be_variadic_or_take_void():
    with pytest.raises(TypeError):
        Callback(print, [CType.void()], i32)


def test_a_trivial_function_calls_back_with_the_gil_it_kept(monkeypatch):
    # A function marked trivial keeps the GIL; C calling back on the same thread must not
    # wait for it (the callback finds it held) and must report exceptions as usual.
    import jitctypes
    import jitctypes.ctypes as ctypes

    libc = ctypes.CDLL(None)
    qsort = libc.qsort
    qsort.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
    qsort.restype = None
    jitctypes.set_trivial(qsort)
    compare_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)
    )
    ascending = compare_type(lambda a, b: a[0] - b[0])
    for _ in range(20):  # past lazy compilation, so the compiled entry runs too
        values = (ctypes.c_int * 6)(5, 3, 9, 1, 4, 2)
        qsort(values, 6, ctypes.sizeof(ctypes.c_int), ctypes.cast(ascending, ctypes.c_void_p))
        assert list(values) == [1, 2, 3, 4, 5, 9]

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    failing = compare_type(lambda a, b: 1 // 0)
    values = (ctypes.c_int * 3)(3, 2, 1)
    qsort(values, 3, ctypes.sizeof(ctypes.c_int), ctypes.cast(failing, ctypes.c_void_p))
    assert reported and all(isinstance(r.exc_value, ZeroDivisionError) for r in reported)
