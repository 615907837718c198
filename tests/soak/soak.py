"""Soak: many calls across the fast-path shapes, callbacks and object creations on
jitctypes; resident memory must not grow after warm-up, and reference counts must balance
(exactly, with `sys.gettotalrefcount()`, on a debug CPython; per watched object otherwise).

    python -m jitctypes tests/soak/soak.py JITTEST_SO RAWFFI_SO                 # long mode
    python -m jitctypes tests/soak/soak.py JITTEST_SO RAWFFI_SO --scale 0.01    # quick

The long mode makes 10 million calls (a dozen shapes: scalars, doubles, strings, structures
by value and by reference, pointers, no argtypes, errcheck), 1 million callbacks and
1 million object creations. Prints one JSON line of figures; exits 1 on a leak.
"""

import argparse
import ctypes
import gc
import json
import sys
import time


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def total_references() -> int | None:
    gettotalrefcount = getattr(sys, "gettotalrefcount", None)
    return gettotalrefcount() if gettotalrefcount else None


def build(jittest_path: str, rawffi_path: str):
    jittest, rawffi, libc = ctypes.CDLL(jittest_path), ctypes.CDLL(rawffi_path), ctypes.CDLL(None)

    class Pair(ctypes.Structure):
        _fields_ = [("id", ctypes.c_int64), ("weight", ctypes.c_double)]

    def declare(function, argtypes, restype):
        function.argtypes, function.restype = argtypes, restype
        return function

    add_i32 = declare(jittest.add_i32, [ctypes.c_int32, ctypes.c_int32], ctypes.c_int32)
    add_f64 = declare(jittest.add_f64, [ctypes.c_double, ctypes.c_double], ctypes.c_double)
    mix6 = declare(jittest.mix6, [ctypes.c_int64, ctypes.c_double] * 3, ctypes.c_double)
    byte_length = declare(rawffi.byte_length, [ctypes.c_char_p], ctypes.c_size_t)
    wide_length = declare(rawffi.wide_length, [ctypes.c_wchar_p], ctypes.c_size_t)
    greeting = declare(rawffi.greeting, [], ctypes.c_char_p)
    labs_untyped = libc.labs  # no argtypes: the general path
    strtol = declare(libc.strtol, [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int], ctypes.c_long)
    checked = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)(
        ctypes.cast(jittest.add_i32, ctypes.c_void_p).value
    )
    checked.errcheck = lambda result, function, arguments: result
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
    call_int_callback = declare(
        rawffi.call_int_callback, [callback_type, ctypes.c_int], ctypes.c_int
    )
    mixed_type = ctypes.CFUNCTYPE(
        ctypes.c_double, ctypes.c_int8, ctypes.c_uint16, ctypes.c_float, ctypes.c_double,
        ctypes.c_int64, ctypes.c_bool, ctypes.c_char_p,
    )  # fmt: skip
    call_mixed_callback = declare(rawffi.call_mixed_callback, [mixed_type], ctypes.c_double)
    increment = callback_type(lambda value: value + 1)
    scale = mixed_type(lambda a, b, c, d, e, f, text: a + b + c + d + e + f + len(text))
    pair = Pair(3, 0.5)
    text, wide = b"soak test text", "soak \u2603"
    number = ctypes.c_long(0)

    calls = [
        lambda i: add_i32(i, 1),
        lambda i: add_f64(i, 0.5),
        lambda i: mix6(i, 1.0, 2, 2.0, 3, 3.0),
        lambda i: byte_length(text),
        lambda i: wide_length(wide),
        lambda i: greeting(),
        lambda i: labs_untyped(-i),
        lambda i: strtol(b"1234", None, 10),
        lambda i: checked(i, 2),
        lambda i: add_i32(ctypes.c_int32(i), 1),
        lambda i: ctypes.pointer(number),
        lambda i: ctypes.byref(pair),
    ]

    def callbacks(i):
        call_int_callback(increment, i)
        call_mixed_callback(scale)

    def objects(i):
        made = Pair(i, 0.25)
        array = (Pair * 3)(made, made)
        pointer = ctypes.pointer(array[1])
        ctypes.cast(pointer, ctypes.c_void_p)
        buffer = bytearray(16)
        Pair.from_buffer(buffer).id = i
        ctypes.create_string_buffer(32)
        return pointer.contents.id

    watched = (pair, text, wide, increment, scale, add_i32, Pair, number, checked)
    return calls, callbacks, objects, watched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jittest")
    parser.add_argument("rawffi")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: the long mode")
    options = parser.parse_args()
    calls, callbacks, objects, watched = build(options.jittest, options.rawffi)
    rounds = {"calls": int(10_000_000 * options.scale), "callbacks": int(1_000_000 * options.scale),
              "objects": int(1_000_000 * options.scale)}  # fmt: skip

    def run(kind: str, count: int) -> None:
        if kind == "calls":
            for i in range(count // len(calls)):
                for call in calls:
                    call(i)
        else:
            work = callbacks if kind == "callbacks" else objects
            for i in range(count):
                work(i)

    for kind, count in rounds.items():  # warm-up: caches, compiled stubs, pools
        run(kind, max(count // 10, 1000))
    gc.collect()
    counts_before = [sys.getrefcount(obj) for obj in watched]
    total_before = total_references()
    resident_before = resident_bytes()
    started = time.perf_counter()
    for kind, count in rounds.items():
        run(kind, count)
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = resident_bytes() - resident_before
    total_after = total_references()
    counts_after = [sys.getrefcount(obj) for obj in watched]
    figures = {
        **rounds,
        "seconds": round(elapsed, 1),
        "resident_growth_bytes": grown,
        "watched_refcounts_balanced": counts_before == counts_after,
        "total_refcount_delta": None if total_before is None else total_after - total_before,
    }
    print(json.dumps(figures))
    leaked = (
        grown >= 1_000_000
        or counts_before != counts_after
        or (total_before is not None and abs(total_after - total_before) > 100)
    )
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
