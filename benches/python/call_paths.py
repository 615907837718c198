"""The Python call-path benchmark: ns per operation, in ONE process, on one C library built
here, for stock ctypes, jitctypes, jitctypes with the JIT switched off (libffi), cffi in ABI
and API mode, and a hand-written C extension (releasing the GIL, and keeping it).

    python benches/python/call_paths.py [--repeat 7] [--scale 1.0] [--out DIR] [--quick]

Prints a table of medians with ratios to stock ctypes and to the C extension, and writes
``DIR/call_paths.json`` (every repetition) and ``DIR/call_paths.png`` (a bar chart).
Each figure is the median of ``--repeat`` repetitions of a timeit loop; the spread
(min–max over repetitions) is in the JSON. The machine is noisy: compare ratios measured
in one run, never absolute times across runs.
"""

import argparse
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import sysconfig
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
C_DECLARATIONS = (HERE / "benchlib.h").read_text().split("\n", 3)[3]

COLUMNS = (
    "stock",
    "jitctypes",
    "jitctypes (trivial)",
    "jitctypes (libffi)",
    "cffi ABI",
    "cffi API",
    "C ext",
    "C ext (GIL kept)",
)


# ---------------------------------------------------------------------------------------
# Building the C library, the C extension and the cffi API module


def build(out: Path) -> dict[str, Path]:
    """Compiles libbenchlib.so, the C extension and the cffi API-mode module into `out`."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    compiler = os.environ.get("CC", "gcc")
    library = out / "libbenchlib.so"
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", library, HERE / "benchlib.c"], check=True
    )
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    extension = out / f"benchext{suffix}"
    subprocess.run(
        [
            compiler,
            "-O2",
            "-shared",
            "-fPIC",
            f"-I{sysconfig.get_paths()['include']}",
            f"-I{HERE}",
            "-o",
            extension,
            HERE / "benchext.c",
            f"-L{out}",
            "-lbenchlib",
            f"-Wl,-rpath,{out}",
        ],
        check=True,
    )
    import cffi

    builder = cffi.FFI()
    builder.cdef(C_DECLARATIONS + '\nextern "Python" int32_t python_callback(int32_t);')
    builder.set_source(
        "bench_cffi_api",
        '#include "benchlib.h"',
        include_dirs=[str(HERE)],
        libraries=["benchlib"],
        library_dirs=[str(out)],
        extra_link_args=[f"-Wl,-rpath,{out}"],
    )
    builder.compile(tmpdir=str(out), verbose=False)
    return {"library": library, "directory": out}


# ---------------------------------------------------------------------------------------
# What each column runs: per row, a statement and the names it uses


def ctypes_namespace(ctypes, library: Path) -> dict:
    """Functions declared with argtypes/restype, objects for the data rows."""
    lib = ctypes.CDLL(str(library))

    class Sum3(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int32), ("b", ctypes.c_int32), ("c", ctypes.c_int32)]

    class Pt(ctypes.Structure):
        _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]

    def declare(name, restype, *argtypes):
        function = getattr(lib, name)
        function.argtypes, function.restype = list(argtypes), restype
        return function

    callback_type = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32)
    c_long, c_double = ctypes.c_long, ctypes.c_double
    return {
        "nop": declare("nop", None),
        "add_i32": declare("add_i32", ctypes.c_int32, ctypes.c_int32, ctypes.c_int32),
        "add_f64": declare("add_f64", c_double, c_double, c_double),
        "mix6": declare("mix6", c_long, c_long, c_double, c_long, c_double, c_long, c_double),
        "ptr_identity": declare("ptr_identity", ctypes.c_void_p, ctypes.c_void_p),
        "strlen_like": declare("strlen_like", ctypes.c_size_t, ctypes.c_char_p),
        "sum_struct": declare("sum_struct", ctypes.c_int32, ctypes.POINTER(Sum3)),
        "pt_norm2": declare("pt_norm2", c_double, Pt),
        "call_n_times": declare("call_n_times", ctypes.c_int32, callback_type, ctypes.c_int32),
        "callback": callback_type(lambda value: value),
        "s": Sum3(1, 2, 3),
        "byref_s": ctypes.byref(Sum3(1, 2, 3)),
        "pt": Pt(3.0, 4.0),
        "address": 0x1234,
        "text": b"hello, benchmark",
        "array": (ctypes.c_int * 10)(*range(10)),
        "c_int": ctypes.c_int,
        "byref": ctypes.byref,
        "cast": ctypes.cast,
        "c_void_p": ctypes.c_void_p,
        "pointer_object": ctypes.pointer(ctypes.c_int(5)),
    }


def cffi_namespace(ffi, lib, api: bool) -> dict:
    s = ffi.new("Sum3 *", (1, 2, 3))
    if api:

        @ffi.def_extern()
        def python_callback(value):
            return value

        callback = lib.python_callback
    else:
        callback = ffi.callback("int32_t(int32_t)", lambda value: value)
    return {
        **{name: getattr(lib, name) for name in ROW_FUNCTIONS},
        "callback": callback,
        "s": s,
        "byref_s": s,
        "pt": ffi.new("Pt *", (3.0, 4.0))[0],
        "address": ffi.cast("void *", 0x1234),
        "text": b"hello, benchmark",
        "array": ffi.new("int[10]", list(range(10))),
        "ffi": ffi,
        "pointer_object": ffi.new("int *", 5),
    }


def c_extension_namespace(module, keep_gil: bool) -> dict:
    suffix = "_gil" if keep_gil else ""
    namespace = {name: getattr(module, name + suffix) for name in ROW_FUNCTIONS}
    # The extension takes structures as writable buffers, as it would take ctypes objects.
    sum3 = bytearray(struct.pack("=iii", 1, 2, 3))
    point = bytearray(struct.pack("=dd", 3.0, 4.0))
    return {
        **namespace,
        "callback": lambda value: value,
        "byref_s": sum3,
        "pt": point,
        "address": 0x1234,
        "text": b"hello, benchmark",
    }


ROW_FUNCTIONS = (
    "nop",
    "add_i32",
    "add_f64",
    "mix6",
    "ptr_identity",
    "strlen_like",
    "sum_struct",
    "pt_norm2",
    "call_n_times",
)

CALLBACKS_PER_CALL = 100

# row → (statement per column kind, operations per statement)
CALL_ROWS = {
    "nop": ("nop()", 1),
    "add_i32": ("add_i32(1, 2)", 1),
    "add_f64": ("add_f64(1.5, 2.5)", 1),
    "mix6": ("mix6(1, 2.0, 3, 4.0, 5, 6.0)", 1),
    "pointer identity": ("ptr_identity(address)", 1),
    "strlen of bytes": ("strlen_like(text)", 1),
    "struct by reference": ("sum_struct(byref_s)", 1),
    "struct by value": ("pt_norm2(pt)", 1),
    "callback invocation": (f"call_n_times(callback, {CALLBACKS_PER_CALL})", CALLBACKS_PER_CALL),
}

DATA_ROWS = {
    "field read": {"ctypes": "s.a", "cffi": "s.a"},
    "field write": {"ctypes": "s.a = 5", "cffi": "s.a = 5"},
    "array read": {"ctypes": "array[3]", "cffi": "array[3]"},
    "array write": {"ctypes": "array[3] = 5", "cffi": "array[3] = 5"},
    "c_int() creation": {"ctypes": "c_int(5)", "cffi": "ffi.new('int *', 5)"},
    "byref": {"ctypes": "byref(s)", "cffi": "ffi.addressof(s[0])"},
    "cast": {
        "ctypes": "cast(pointer_object, c_void_p)",
        "cffi": "ffi.cast('void *', pointer_object)",
    },
}


# ---------------------------------------------------------------------------------------
# Measuring


def measure(statement: str, namespace: dict, number: int, repeat: int, per_statement: int):
    timer = timeit.Timer(statement, globals=namespace)
    timer.timeit(max(1, number // 20))  # warm-up: first calls compile stubs, fill caches
    times = timer.repeat(repeat=repeat, number=number)
    return [1e9 * t / number / per_statement for t in times]


def run(arguments) -> dict:
    out = Path(arguments.out)
    built = build(out / "build")
    sys.path.insert(0, str(built["directory"]))
    import ctypes as stock_ctypes

    import bench_cffi_api
    import benchext
    import cffi
    import jitctypes
    import jitctypes.ctypes as jit_ctypes
    from jitctypes import _rawffi

    abi = cffi.FFI()
    abi.cdef(C_DECLARATIONS)
    abi_lib = abi.dlopen(str(built["library"]))
    namespaces = {
        "stock": ("ctypes", ctypes_namespace(stock_ctypes, built["library"])),
        "jitctypes": ("ctypes", ctypes_namespace(jit_ctypes, built["library"])),
        "cffi ABI": ("cffi", cffi_namespace(abi, abi_lib, api=False)),
        "cffi API": ("cffi", cffi_namespace(bench_cffi_api.ffi, bench_cffi_api.lib, api=True)),
        "C ext": ("cext", c_extension_namespace(benchext, keep_gil=False)),
        "C ext (GIL kept)": ("cext", c_extension_namespace(benchext, keep_gil=True)),
    }
    namespaces["jitctypes (libffi)"] = namespaces["jitctypes"]
    # The same declarations on separate function objects marked trivial (GIL kept).
    trivial = ctypes_namespace(jit_ctypes, built["library"])
    for name in ROW_FUNCTIONS:
        # call_n_times too: C calls back on the calling thread, which keeps the GIL, as a
        # PyDLL function would (the callbacks then need no GIL hand-over).
        jitctypes.set_trivial(trivial[name])
    namespaces["jitctypes (trivial)"] = ("ctypes", trivial)
    number = max(1, int(200_000 * arguments.scale))
    results: dict[str, dict[str, list[float]]] = {}
    for row, (statement, per_statement) in CALL_ROWS.items():
        results[row] = {}
        for column in COLUMNS:
            kind, namespace = namespaces[column]
            _rawffi.set_jit_enabled(column != "jitctypes (libffi)")
            count = number // per_statement if per_statement > 1 else number
            results[row][column] = measure(
                statement, namespace, count, arguments.repeat, per_statement
            )
    _rawffi.set_jit_enabled(True)
    for row, statements in DATA_ROWS.items():
        results[row] = {}
        for column in ("stock", "jitctypes", "cffi ABI", "cffi API"):
            kind, namespace = namespaces[column]
            results[row][column] = measure(statements[kind], namespace, number, arguments.repeat, 1)
    return {
        "python": sys.version,
        "machine": platform.machine(),
        "repeat": arguments.repeat,
        "number": number,
        "unit": "ns per operation (callback invocation: per C→Python call)",
        "results": results,
        "compile": compile_times(jitctypes.stats()),
    }


def compile_times(stats: dict) -> dict:
    """What compiling cost, from `jitctypes.stats()`: per signature the µs and bytes of
    its direct stub and entry stubs, and the mean per compiled stub."""
    signatures = {
        signature: {
            "compile_time_us": round(entry["compile_time_us"], 1),
            "code_bytes": entry["code_bytes"],
            "entry_stubs": entry["entry_stubs"],
        }
        for signature, entry in stats["signatures"].items()
    }
    cache = stats["stub_cache"]
    stubs = cache["stubs"] + cache.get("entry_stubs", 0)
    return {
        "signatures": signatures,
        "stubs": stubs,
        "mean_us_per_stub": cache["compile_time_us"] / stubs if stubs else None,
    }


# ---------------------------------------------------------------------------------------
# Reporting


def medians(document: dict) -> dict[str, dict[str, float]]:
    return {
        row: {column: statistics.median(times) for column, times in columns.items()}
        for row, columns in document["results"].items()
    }


def table(document: dict) -> str:
    figures = medians(document)
    header = ["row", *COLUMNS, "jit/stock", "jit/C ext", "trivial/C ext (GIL kept)"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row, columns in figures.items():
        cells = [row]
        for column in COLUMNS:
            cells.append(f"{columns[column]:.0f}" if column in columns else "—")
        jit = columns["jitctypes"]
        cells.append(f"{jit / columns['stock']:.2f}")
        cells.append(f"{jit / columns['C ext']:.2f}" if "C ext" in columns else "—")
        trivial, kept = columns.get("jitctypes (trivial)"), columns.get("C ext (GIL kept)")
        cells.append(f"{trivial / kept:.2f}" if trivial and kept else "—")
        lines.append(" | ".join(cells))
    return "\n".join(f"| {line} |" for line in lines)


def chart(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = medians(document)
    rows = list(figures)
    width = 0.8 / len(COLUMNS)
    figure, axes = plt.subplots(figsize=(16, 6))
    for index, column in enumerate(COLUMNS):
        values = [figures[row].get(column, 0) for row in rows]
        positions = [k + index * width for k in range(len(rows))]
        axes.bar(positions, values, width, label=column)
    axes.set_yscale("log")
    axes.set_ylabel("ns per operation (log scale, lower is better)")
    axes.set_xticks([k + 0.4 - width / 2 for k in range(len(rows))])
    axes.set_xticklabels(rows, rotation=30, ha="right")
    axes.set_title(f"Python → C call paths, CPython {platform.python_version()}")
    axes.legend(ncol=4, fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per figure")
    parser.add_argument("--scale", type=float, default=1.0, help="loop length multiplier")
    parser.add_argument("--out", default="target/bench-python", help="output directory")
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.repeat, arguments.scale = 2, 0.02
    document = run(arguments)
    out = Path(arguments.out)
    (out / "call_paths.json").write_text(json.dumps(document, indent=1))
    chart(document, out / "call_paths.png")
    print(f"CPython {platform.python_version()}, medians of {arguments.repeat} runs, ns per op")
    print(table(document))
    compiled = document["compile"]
    if compiled["mean_us_per_stub"] is not None:
        print(
            f"\ncompiling: {compiled['stubs']} stubs (direct and entry), "
            f"{compiled['mean_us_per_stub']:.0f} µs each on average"
        )
    print(f"\nwrote {out / 'call_paths.json'} and {out / 'call_paths.png'}")


if __name__ == "__main__":
    main()
