"""Whole-stack differential fuzzer: random C signatures, compiled with gcc, called through
stock `ctypes` and `jitctypes.ctypes` in one process, with gcc's view as the referee.

    python tests/fuzz/ctypes_fuzz.py --seeds 0 --signatures 2000        # what CI runs
    python tests/fuzz/ctypes_fuzz.py --seeds 0-9 --signatures 5000       # long mode
    python tests/fuzz/ctypes_fuzz.py --seeds 3 --only 117 -v             # one case again

Per seed (everything derives from it, so a case reproduces exactly):
- **Signatures**: results and arguments drawn from every integer width, `_Bool`, `char`,
  `wchar_t`, `float`, `double`, `long double`, `void *`, `char *`, `wchar_t *`; structures
  and unions (nested, with arrays, packed, with bit-fields) by value and by pointer, some
  completed after their pointer type was made; callbacks; variadic tails.
- **C**: one function per signature. It folds every argument it received into a 64-bit
  hash per argument (`fuzz_seen[i]`: scalar leaves, bit-fields by value, strings up to the
  NUL, pointees), calls its callbacks with values derived from the hash, writes through
  its pointer arguments, and returns a value derived from the hash.
- **Calls**: with and without `argtypes`, with random values (edge values included), and
  about one call in seven is bad on purpose (a wrong count, a wrong type, an overflow).
  Each call runs on stock and on jitctypes; compared: the result (floats bit for bit),
  the exception (class and message), what the callee saw (`fuzz_seen`), what it wrote
  through pointers, and what callbacks received.
- **Referee**: the hash of each argument is also computed in Python from the value that
  was passed (the fields of the object, read through stock ctypes). Where stock's callee
  saw something else, stock is wrong (libffi bug #574, its union and bit-field passing)
  and jitctypes must agree with the referee instead; those cases are counted apart.

Chunks of signatures run in child processes (`--child`), so a crash is a reported case
(`crash` with the signature it happened in); the rest of the chunk then goes on. Each run
is made twice, with compiled stubs (`JITCTYPES_COMPILE_AFTER=2`) and with `JITCTYPES_JIT=0`.
A failing case prints the command that runs it alone. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

MASK64 = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
NULL_MARK = 0xDEAD


def mix(h: int, value: int) -> int:
    return ((h ^ (value & MASK64)) * FNV_PRIME) & MASK64


# ---------------------------------------------------------------------------------------
# The type model: plain data, turned into C text and into the ctypes types of a module.


@dataclass(frozen=True)
class Scalar:
    ctypes_name: str
    c: str
    kind: str  # int, uint, bool, char, wchar, float, double, ldouble, ptr, charp, wcharp
    size: int = 0

    def bits(self) -> int:
        return self.size * 8


SCALARS = [
    Scalar("c_bool", "_Bool", "bool", 1),
    Scalar("c_char", "char", "char", 1),
    Scalar("c_wchar", "wchar_t", "wchar", 4),
    Scalar("c_byte", "signed char", "int", 1),
    Scalar("c_ubyte", "unsigned char", "uint", 1),
    Scalar("c_short", "short", "int", 2),
    Scalar("c_ushort", "unsigned short", "uint", 2),
    Scalar("c_int", "int", "int", 4),
    Scalar("c_uint", "unsigned int", "uint", 4),
    Scalar("c_long", "long", "int", 8),
    Scalar("c_ulong", "unsigned long", "uint", 8),
    Scalar("c_longlong", "long long", "int", 8),
    Scalar("c_ulonglong", "unsigned long long", "uint", 8),
    Scalar("c_int8", "int8_t", "int", 1),
    Scalar("c_uint16", "uint16_t", "uint", 2),
    Scalar("c_int32", "int32_t", "int", 4),
    Scalar("c_uint64", "uint64_t", "uint", 8),
    Scalar("c_size_t", "size_t", "uint", 8),
    Scalar("c_ssize_t", "ssize_t", "int", 8),
    Scalar("c_float", "float", "float", 4),
    Scalar("c_double", "double", "double", 8),
    Scalar("c_longdouble", "long double", "ldouble", 16),
    Scalar("c_void_p", "void *", "ptr", 8),
    Scalar("c_char_p", "char *", "charp", 8),
    Scalar("c_wchar_p", "wchar_t *", "wcharp", 8),
]
SCALAR_BY_NAME = {s.ctypes_name: s for s in SCALARS}
FIELD_SCALARS = [s for s in SCALARS if s.kind not in ("charp", "wcharp", "ldouble")]
# (Arrays of char and wchar_t read as strings, up to a NUL: not leaf by leaf.)
ARRAY_SCALARS = [s for s in FIELD_SCALARS if s.kind not in ("char", "wchar")]
BITFIELD_BASES = ["c_int", "c_uint", "c_uint8", "c_int16", "c_uint32", "c_longlong"]
BITFIELD_C = {
    "c_int": ("int", True, 32),
    "c_uint": ("unsigned int", False, 32),
    "c_uint8": ("uint8_t", False, 8),
    "c_int16": ("int16_t", True, 16),
    "c_uint32": ("uint32_t", False, 32),
    "c_longlong": ("long long", True, 64),
}


@dataclass(frozen=True)
class ArrayOf:
    element: object
    length: int


@dataclass(frozen=True)
class BitField:
    base: str  # a BITFIELD_BASES name
    width: int


@dataclass(eq=False)
class Aggregate:
    name: str
    kind: str  # struct or union
    fields: list = field(default_factory=list)  # (name, type) with type Scalar/ArrayOf/...
    pack: int | None = None
    late: bool = False  # `_fields_` set after `POINTER(T)` was made


@dataclass(frozen=True)
class PointerTo:
    target: object  # Aggregate or Scalar


@dataclass(eq=False)
class Callback:
    name: str
    restype: Scalar | None
    argtypes: list


@dataclass(eq=False)
class Signature:
    index: int
    restype: object  # None (void), Scalar, Aggregate
    argtypes: list
    variadic_tail: list = field(default_factory=list)  # Scalars, promoted kinds only

    @property
    def name(self) -> str:
        return f"fuzz_{self.index}"


# ---------------------------------------------------------------------------------------
# Generating signatures.


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(f"signatures:{seed}")
        self.aggregates: list[Aggregate] = []
        self.callbacks: list[Callback] = []
        self.made = 0

    def scalar(self, pool=SCALARS) -> Scalar:
        return self.rng.choice(pool)

    def aggregate(self, depth: int = 0) -> Aggregate:
        rng = self.rng
        kind = "union" if rng.random() < 0.2 else "struct"
        self.made += 1
        agg = Aggregate(f"A{self.made}", kind)
        style = rng.random()
        if kind == "struct" and style < 0.15:
            base = rng.choice(BITFIELD_BASES)
            limit = BITFIELD_C[base][2]
            for i in range(rng.randint(1, 5)):
                agg.fields.append((f"f{i}", BitField(base, rng.randint(1, min(limit, 24)))))
            if rng.random() < 0.5:
                agg.fields.append((f"f{len(agg.fields)}", self.scalar(FIELD_SCALARS)))
        else:
            for i in range(rng.randint(1, 6 if depth == 0 else 3)):
                roll = rng.random()
                if roll < 0.12 and depth < 2:
                    member = self.aggregate(depth + 1)
                elif roll < 0.25:
                    member = ArrayOf(self.scalar(ARRAY_SCALARS), rng.randint(1, 5))
                else:
                    member = self.scalar(FIELD_SCALARS)
                agg.fields.append((f"f{i}", member))
            if kind == "struct" and rng.random() < 0.1:
                agg.pack = rng.choice([1, 2, 4])
        agg.late = depth == 0 and rng.random() < 0.3
        self.aggregates.append(agg)  # after its members: C declares them first
        return agg

    def callback(self) -> Callback:
        restype = None if self.rng.random() < 0.2 else self.scalar(FIELD_SCALARS)
        if restype is not None and restype.kind in ("char", "wchar"):
            restype = SCALAR_BY_NAME["c_int"]
        args = [self.scalar(FIELD_SCALARS) for _ in range(self.rng.randint(0, 4))]
        cb = Callback(f"cb{len(self.callbacks)}", restype, args)
        self.callbacks.append(cb)
        return cb

    def argument(self):
        roll = self.rng.random()
        if roll < 0.55:
            return self.scalar()
        if roll < 0.72:
            return self.aggregate()
        if roll < 0.9:
            target = self.aggregate() if self.rng.random() < 0.7 else self.scalar(FIELD_SCALARS)
            return PointerTo(target)
        return self.callback()

    def signature(self, index: int) -> Signature:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            restype = None
        elif roll < 0.3:
            restype = self.aggregate()
        else:
            restype = self.scalar()
        count = min(int(rng.expovariate(0.3)), 14)
        args = [self.argument() for _ in range(count)]
        tail = []
        if args and rng.random() < 0.08:
            pool = [SCALAR_BY_NAME[n] for n in ("c_int", "c_long", "c_double", "c_char_p")]
            tail = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.2:
                # A type C would have promoted: stock refuses the call, and so must we.
                unpromoted = ("c_float", "c_short", "c_byte", "c_bool", "c_char", "c_ubyte")
                tail[rng.randrange(len(tail))] = SCALAR_BY_NAME[rng.choice(unpromoted)]
        return Signature(index, restype, args, tail)


def generate(seed: int, count: int) -> tuple[list[Signature], Generator]:
    generator = Generator(seed)
    return [generator.signature(i) for i in range(count)], generator


# ---------------------------------------------------------------------------------------
# C text.


def c_type(t) -> str:
    if t is None:
        return "void"
    if isinstance(t, Scalar):
        return t.c
    if isinstance(t, Aggregate):
        return t.name
    if isinstance(t, PointerTo):
        return c_type(t.target) + " *"
    if isinstance(t, Callback):
        return t.name
    raise TypeError(t)


def c_declare_aggregate(agg: Aggregate) -> str:
    lines = []
    for name, t in agg.fields:
        if isinstance(t, ArrayOf):
            lines.append(f"    {c_type(t.element)} {name}[{t.length}];")
        elif isinstance(t, BitField):
            lines.append(f"    {BITFIELD_C[t.base][0]} {name} : {t.width};")
        else:
            lines.append(f"    {c_type(t)} {name};")
    body = "\n".join(lines)
    if agg.pack:
        declaration = f"typedef {agg.kind} {agg.name} {{\n{body}\n}} {agg.name};\n"
        return f"#pragma pack(push, {agg.pack})\n{declaration}#pragma pack(pop)\n"
    return f"typedef {agg.kind} {agg.name} {{\n{body}\n}} {agg.name};\n"


# How the callee folds a scalar of each kind (`{e}` is its expression): floats by their bits,
# `long double` as a double, strings up to the NUL, integers sign- or zero-extended.
FOLD_SCALAR = {
    "float": "{{ float v_ = {e}; uint32_t b_; memcpy(&b_, &v_, 4); h = mix(h, b_); }}",
    "double": "{{ double v_ = {e}; uint64_t b_; memcpy(&b_, &v_, 8); h = mix(h, b_); }}",
    "ldouble": "{{ double v_ = (double)({e}); uint64_t b_; memcpy(&b_, &v_, 8); h = mix(h, b_); }}",
    "charp": "h = fold_str(h, {e});",
    "wcharp": "h = fold_wstr(h, {e});",
    "ptr": "h = mix(h, (uint64_t)(uintptr_t)({e}));",
    "char": "h = mix(h, (uint64_t)(unsigned char)({e}));",
    "uint": "h = mix(h, (uint64_t)({e}));",
    "bool": "h = mix(h, (uint64_t)({e}));",
    "wchar": "h = mix(h, (uint64_t)({e}));",
    "int": "h = mix(h, (uint64_t)(int64_t)({e}));",
}
# The value a leaf of each kind gets from the derived value `{d}` (`{c}`: its C type).
LEAF_VALUE = {
    "float": "({c})((int32_t)({d} & 0xfffff) - 0x80000) / 16.0",
    "double": "({c})((int32_t)({d} & 0xfffff) - 0x80000) / 16.0",
    "ldouble": "({c})((int32_t)({d} & 0xfffff) - 0x80000) / 16.0",
    "bool": "({d}) & 1",
    "char": "(char)(({d} % 94) + 33)",
    "wchar": "(wchar_t)(({d} % 0x2000) + 0x20)",
    "charp": "(char *)STRINGS[{d} % 4]",
    "wcharp": "(wchar_t *)WSTRINGS[{d} % 4]",
    "ptr": "(void *)(uintptr_t)({d} & 0xffffffffffffULL)",
    "int": "({c})({d})",
    "uint": "({c})({d})",
}


def c_fold_leaf(t, expr: str) -> str:
    """C statements folding the value `expr` of type `t` into `h`."""
    if isinstance(t, Scalar):
        return FOLD_SCALAR[t.kind].format(e=expr)
    if isinstance(t, BitField):
        signed = BITFIELD_C[t.base][1]
        return f"h = mix(h, (uint64_t)({'(int64_t)' if signed else ''}({expr})));"
    if isinstance(t, ArrayOf):
        return "".join(c_fold_leaf(t.element, f"{expr}[{i}]") for i in range(t.length))
    if isinstance(t, Aggregate):
        if t.kind == "union":
            # The bytes some member covers: the tail past the largest member is padding,
            # which a union passed in registers does not carry (gcc may leave it garbage).
            sizes = ", ".join(f"sizeof(({expr}).{name})" for name, _ in t.fields)
            return f"h = fold_bytes(h, &({expr}), max_of({len(t.fields)}, {sizes}));"
        return "".join(c_fold_leaf(ft, f"{expr}.{fn}") for fn, ft in t.fields)
    raise TypeError(t)


def fill_plan(t, salt: list, path: tuple = ()) -> list:
    """Where the callee stores derived values into a value of type `t`: `(path, leaf type,
    salt)` per leaf, `path` of field names and indices (a union: its first member). The
    C text and the Python referee both follow this plan."""
    salt[0] += 1
    if isinstance(t, (Scalar, BitField)):
        return [(path, t, salt[0])]
    if isinstance(t, ArrayOf):
        return [leaf for i in range(t.length) for leaf in fill_plan(t.element, salt, (*path, i))]
    if isinstance(t, Aggregate):
        fields = t.fields[:1] if t.kind == "union" else t.fields
        return [leaf for name, ft in fields for leaf in fill_plan(ft, salt, (*path, name))]
    raise TypeError(t)


def c_leaf_value(t, d: str) -> str:
    """The C expression of the value a leaf of type `t` gets from the derived value `d`."""
    if isinstance(t, BitField):
        return f"({BITFIELD_C[t.base][0]})({d})"
    return LEAF_VALUE[t.kind].format(c=t.c, d=d)


def c_fill(plan: list, lvalue: str, seed_expr: str) -> str:
    """C statements storing the plan's values, derived from `seed_expr`, into `lvalue`."""
    statements = []
    for path, leaf, salt in plan:
        target = lvalue + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        statements.append(f"{target} = {c_leaf_value(leaf, f'derive({seed_expr}, {salt})')};")
    return "".join(statements)


def function_plan(sig: Signature) -> dict:
    """The fill plans of a signature's function, salted in the order the C code runs them:
    callback arguments, writes through pointers, the result."""
    salt = [0]
    callbacks = {
        i: [fill_plan(at, salt) for at in t.argtypes]
        for i, t in enumerate(sig.argtypes)
        if isinstance(t, Callback)
    }
    pointers = {
        i: fill_plan(t.target, salt) for i, t in enumerate(sig.argtypes) if isinstance(t, PointerTo)
    }
    result = fill_plan(sig.restype, salt) if sig.restype is not None else []
    return {"callbacks": callbacks, "pointers": pointers, "result": result}


C_PRELUDE = r"""
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <wchar.h>
uint64_t fuzz_seen[32];
int fuzz_seen_count;
static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ULL; }
static uint64_t derive(uint64_t h, uint64_t salt) {
    uint64_t x = h + salt * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 31; x *= 0xbf58476d1ce4e5b9ULL; x ^= x >> 29;
    return x;
}
static uint64_t fold_str(uint64_t h, const char *s) {
    if (!s) return mix(h, 0xdead);
    for (; *s; s++) h = mix(h, (unsigned char)*s);
    return mix(h, 0);
}
static uint64_t fold_wstr(uint64_t h, const wchar_t *s) {
    if (!s) return mix(h, 0xdead);
    for (; *s; s++) h = mix(h, (uint64_t)*s);
    return mix(h, 0);
}
static size_t max_of(int count, ...) {
    va_list sizes;
    va_start(sizes, count);
    size_t most = 0;
    for (int i = 0; i < count; i++) {
        size_t size = va_arg(sizes, size_t);
        if (size > most) most = size;
    }
    va_end(sizes);
    return most;
}
static uint64_t fold_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = mix(h, b[i]);
    return h;
}
static const char *STRINGS[4] = {"", "a", "fuzz", "k\xc3\xa9y"};
static const wchar_t *WSTRINGS[4] = {L"", L"b", L"gr\u00fc\u00df", L"\u2603x"};
"""

FNV = "0xcbf29ce484222325ULL"


def c_function(sig: Signature) -> str:
    params = [f"{c_type(t)} a{i}" for i, t in enumerate(sig.argtypes)]
    if sig.variadic_tail:
        params.append("...")
    lines = [f"{c_type(sig.restype)} {sig.name}({', '.join(params) or 'void'}) {{"]
    lines.append(f"    uint64_t h = {FNV}, all = {sig.index}ULL;")
    plan = function_plan(sig)
    for i, t in enumerate(sig.argtypes):
        if isinstance(t, PointerTo):
            fold = c_fold_leaf(t.target, f"(*a{i})")
            lines.append(f"    h = {FNV}; if (a{i}) {{ {fold} }} else h = mix(h, 0xdead);")
        elif isinstance(t, Callback):
            call_args = []
            for k, at in enumerate(t.argtypes):
                fill = c_fill(plan["callbacks"][i][k], f"c{i}_{k}", "all")
                lines.append(f"    {c_type(at)} c{i}_{k}; {fill}")
                call_args.append(f"c{i}_{k}")
            call = f"a{i}({', '.join(call_args)})"
            if t.restype is None:
                lines.append(f"    h = {FNV}; {call};")
            else:
                lines.append(
                    f"    h = {FNV}; {{ {c_type(t.restype)} r_ = {call}; "
                    f"{c_fold_leaf(t.restype, 'r_')} }}"
                )
        else:
            lines.append(f"    h = {FNV}; {c_fold_leaf(t, f'a{i}')}")
        lines.append(f"    fuzz_seen[{i}] = h; all = mix(all, h);")
    if sig.variadic_tail:
        last = f"a{len(sig.argtypes) - 1}"
        lines.append(f"    va_list ap; va_start(ap, {last});")
        base = len(sig.argtypes)
        for k, t in enumerate(sig.variadic_tail):
            promoted = {"float": SCALAR_BY_NAME["c_double"]}.get(t.kind) or (
                SCALAR_BY_NAME["c_int"] if t.size < 4 else t
            )
            fold = c_fold_leaf(promoted, "t_")
            lines.append(f"    h = {FNV}; {{ {promoted.c} t_ = va_arg(ap, {promoted.c}); {fold} }}")
            lines.append(f"    fuzz_seen[{base + k}] = h; all = mix(all, h);")
        lines.append("    va_end(ap);")
    # Writes through pointer arguments (after every argument was folded).
    for i, t in enumerate(sig.argtypes):
        if isinstance(t, PointerTo):
            lines.append(f"    if (a{i}) {{ {c_fill(plan['pointers'][i], f'(*a{i})', 'all')} }}")
    lines.append(f"    fuzz_seen_count = {len(sig.argtypes) + len(sig.variadic_tail)};")
    if sig.restype is not None:
        lines.append(f"    {c_type(sig.restype)} r; memset(&r, 0, sizeof r);")
        lines.append("    " + c_fill(plan["result"], "r", "all"))
        lines.append("    return r;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def c_source(signatures: list[Signature], generator: Generator) -> str:
    parts = [C_PRELUDE]
    for agg in generator.aggregates:  # members are made before their aggregate
        parts.append(c_declare_aggregate(agg))
    for cb in generator.callbacks:
        args = ", ".join(c_type(t) for t in cb.argtypes) or "void"
        parts.append(f"typedef {c_type(cb.restype)} (*{cb.name})({args});\n")
    for agg in generator.aggregates:
        parts.append(
            f"size_t {agg.name}_size(void) {{ return sizeof({agg.name}); }}\n"
            f"size_t {agg.name}_align(void) {{ return _Alignof({agg.name}); }}\n"
        )
    parts.extend(c_function(sig) for sig in signatures)
    return "".join(parts)


def compile_library(source: str, folder: str, stem: str) -> str:
    c_path = os.path.join(folder, f"{stem}.c")
    so_path = os.path.join(folder, f"lib{stem}.so")
    with open(c_path, "w") as out:
        out.write(source)
    compiler = os.environ.get("CC") or shutil.which("gcc") or "cc"
    subprocess.run([compiler, "-O1", "-w", "-shared", "-fPIC", "-o", so_path, c_path], check=True)
    return so_path


# ---------------------------------------------------------------------------------------
# The ctypes side (child process): types, values, calls, comparison.


class Types:
    """The ctypes types of one module (stock or ours) for the model's types."""

    def __init__(self, m):
        self.m = m
        self.cache: dict[int, object] = {}

    def of(self, t):
        if t is None:
            return None
        key = id(t)
        if key in self.cache:
            return self.cache[key]
        m = self.m
        if isinstance(t, Scalar):
            made = getattr(m, t.ctypes_name)
        elif isinstance(t, ArrayOf):
            made = self.of(t.element) * t.length
        elif isinstance(t, PointerTo):
            made = m.POINTER(self.of(t.target))
        elif isinstance(t, Callback):
            made = m.CFUNCTYPE(self.of(t.restype), *[self.of(a) for a in t.argtypes])
        elif isinstance(t, Aggregate):
            base = m.Union if t.kind == "union" else m.Structure
            namespace = {"_pack_": t.pack} if t.pack else {}
            made = type(t.name, (base,), namespace)
            self.cache[key] = made
            if t.late:
                m.POINTER(made)  # the pointer type exists before the fields do
            fields = []
            for name, ft in t.fields:
                if isinstance(ft, BitField):
                    fields.append((name, getattr(m, ft.base), ft.width))
                else:
                    fields.append((name, self.of(ft)))
            made._fields_ = fields
        else:
            raise TypeError(t)
        self.cache[key] = made
        return made


def int_range(s: Scalar) -> tuple[int, int]:
    bits = s.size * 8
    if s.kind == "int":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


EDGE_FLOATS = [0.0, -0.0, 1.0, -2.5, 1e-310, 3.4028235e38, 1e300, -1e300, math.inf, -math.inf]


def plain_value(rng: random.Random, s: Scalar):
    """A Python value for a scalar of kind `s` (edge values included)."""
    kind = s.kind
    if kind in ("int", "uint"):
        lo, hi = int_range(s)
        return rng.choice(
            [lo, hi, 0, -1 if lo < 0 else 1, rng.randint(lo, hi), rng.randint(-99, 99) % (hi + 1)]
        )
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "char":
        return bytes([rng.randint(1, 255)])
    if kind == "wchar":
        return rng.choice(["a", "\u00e9", "\u2603", "\U0001f600"[:1], "z"])
    if kind in ("float", "double", "ldouble"):
        return rng.choice(EDGE_FLOATS + [rng.uniform(-1e6, 1e6), float(rng.randint(-9, 9))])
    if kind == "ptr":
        return rng.choice([None, 0, 1, 0xDEADBEEF, (1 << 47) - 8])
    if kind == "charp":
        return rng.choice(
            [
                None,
                b"",
                b"hello",
                b"\xff\x01abc",
                bytes(rng.randint(1, 255) for _ in range(rng.randint(0, 40))),
            ]
        )
    if kind == "wcharp":
        return rng.choice([None, "", "w\u00f6rld", "\u2603" * rng.randint(0, 9)])
    raise TypeError(s)


def fill_aggregate(rng, types: Types, agg: Aggregate, obj) -> None:
    """Random field values in `obj` (an instance of `agg`), through field writes."""
    fields = agg.fields if agg.kind == "struct" else [rng.choice(agg.fields)]
    for name, ft in fields:
        if isinstance(ft, BitField):
            setattr(obj, name, rng.randint(-(1 << ft.width), (1 << ft.width)))
        elif isinstance(ft, Scalar):
            value = plain_value(rng, ft)
            if ft.kind == "ptr" and value is None:
                value = 0
            setattr(obj, name, value)
        elif isinstance(ft, ArrayOf):
            array = getattr(obj, name)
            for i in range(ft.length):
                v = plain_value(rng, ft.element)
                array[i] = 0 if (ft.element.kind == "ptr" and v is None) else v
        elif isinstance(ft, Aggregate):
            fill_aggregate(rng, types, ft, getattr(obj, name))


def scalar_leaf(s: Scalar, value) -> int:
    kind = s.kind
    if kind == "float":
        return struct.unpack("<I", struct.pack("<f", value))[0]
    if kind in ("double", "ldouble"):
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    if kind == "char":
        return value[0] if isinstance(value, bytes) else value & 0xFF
    if kind == "wchar":
        return ord(value)
    if kind == "bool":
        return int(bool(value))
    if kind == "ptr":
        return value or 0
    return value & MASK64


def fold_value(h: int, t, value) -> int:
    """Python's side of `c_fold_leaf`, on a value read back through stock ctypes."""
    if isinstance(t, Scalar):
        if t.kind == "charp":
            if value is None:
                return mix(h, NULL_MARK)
            for b in value:
                h = mix(h, b)
            return mix(h, 0)
        if t.kind == "wcharp":
            if value is None:
                return mix(h, NULL_MARK)
            for ch in value:
                h = mix(h, ord(ch))
            return mix(h, 0)
        return mix(h, scalar_leaf(t, value))
    raise TypeError(t)


def fold_object(h: int, t, obj, m) -> int:
    """The fold of a ctypes instance `obj` of model type `t` (fields read by getattr)."""
    if isinstance(t, Scalar):
        return fold_value(h, t, obj.value if hasattr(obj, "value") else obj)
    if isinstance(t, BitField):
        return mix(h, obj & MASK64)
    if isinstance(t, ArrayOf):
        for i in range(t.length):
            h = fold_object(h, t.element, obj[i], m)
        return h
    if isinstance(t, Aggregate):
        if t.kind == "union":
            covered = max(getattr(type(obj), name).size for name, _ in t.fields)
            for b in m.string_at(m.addressof(obj), covered):
                h = mix(h, b)
            return h
        for name, ft in t.fields:
            h = fold_object(h, ft, getattr(obj, name), m)
        return h
    raise TypeError(t)


def plain(obj, m):
    """A comparable plain value of a ctypes result or field."""
    if isinstance(obj, float):
        return ("f", struct.pack("<d", obj).hex())
    if isinstance(obj, (int, bytes, str, type(None), bool)):
        return obj
    if isinstance(obj, m.Array):
        return [plain(x, m) for x in obj]
    if isinstance(obj, (m.Structure, m.Union)):
        return m.string_at(m.addressof(obj), m.sizeof(obj)).hex()
    if hasattr(obj, "value"):
        return plain(obj.value, m)
    return repr(type(obj).__name__)


class Case:
    """One signature made ready in one module: its function object and types."""

    def __init__(self, m, lib, types: Types, sig: Signature):
        self.m, self.types, self.sig = m, types, sig
        self.function = getattr(lib, sig.name)
        self.seen = (m.c_uint64 * 32).in_dll(lib, "fuzz_seen")
        self.mode = None


BAD_VALUES = ["text", 1.5, None, object(), b"x", 2**70, -(2**65), (), [1, 2]]
UNCONVERTIBLE = [1.5, object(), 2**70, -(2**65), (), [1, 2]]


def make_arguments(rng: random.Random, case: Case, with_argtypes: bool, bad: bool):
    """Arguments for one call; returns (args, expectations) where expectations are, per
    argument, (model type, object whose fields give the referee's fold) or None."""
    m, types, sig = case.m, case.types, case.sig
    args, referee, keep = [], [], []
    for t in sig.argtypes:
        if isinstance(t, Scalar):
            value = plain_value(rng, t)
            if t.kind in ("float", "double", "ldouble") and not with_argtypes:
                value = types.of(t)(value)  # a Python float has no C type without argtypes
            elif not with_argtypes and (t.kind not in ("int", "uint") or t.size != 4):
                value = types.of(t)(value)
            args.append(value)
            referee.append((t, value))
        elif isinstance(t, Aggregate):
            obj = types.of(t)()
            fill_aggregate(rng, types, t, obj)
            args.append(obj)
            referee.append((t, obj))
        elif isinstance(t, PointerTo):
            target = types.of(t.target)()
            if isinstance(t.target, Aggregate):
                fill_aggregate(rng, types, t.target, target)
            else:
                v = plain_value(rng, t.target)
                target.value = 0 if (t.target.kind == "ptr" and v is None) else v
            keep.append(target)
            form = rng.random()
            if form < 0.15:
                args.append(None)
                referee.append((t, None))
            elif form < 0.55 or not with_argtypes:
                args.append(m.byref(target))
                referee.append((t, target))
            else:
                args.append(m.pointer(target))
                referee.append((t, target))
        elif isinstance(t, Callback):
            received: list = []
            cb_type = types.of(t)

            def body(*values, received=received, cb=t):
                received.append([plain(v, m) for v in values])
                if cb.restype is None:
                    return None
                total = sum(int(v) if isinstance(v, (int, bool)) else len(repr(v)) for v in values)
                if cb.restype.kind in ("float", "double"):
                    return total / 8
                if cb.restype.kind == "ptr":
                    return total & 0xFFFF
                if cb.restype.kind == "bool":
                    return bool(total & 1)
                return total & 0x7F

            callback = cb_type(body)
            keep.append(callback)
            args.append(callback)
            referee.append((t, received))
    for t in sig.variadic_tail:
        value = plain_value(rng, t)
        args.append(types.of(t)(value))
        referee.append((t, value))
    if bad:
        # Without argtypes, only values that cannot be converted are wrong for sure: a
        # missing argument, or a pointer where C reads an int, is undefined in C.
        kind = rng.choice(["count", "type", "type", "overflow"])
        if (kind == "count" or not args) and with_argtypes:
            if args and rng.random() < 0.5:
                args.pop()
            else:
                args.append(rng.choice([1, b"x", None]))
        elif kind == "count" or not args:
            args.append(7)  # one more than C reads: harmless
        else:
            position = rng.randrange(len(args))
            wrong = BAD_VALUES if with_argtypes else UNCONVERTIBLE
            args[position] = 2**64 + 5 if kind == "overflow" else rng.choice(wrong)
        referee = None
    return args, referee, keep


def run_call(case: Case, call_seed: str, with_argtypes: bool, bad: bool, errcheck: bool):
    """One call in one module: a comparable record, and the referee's expectations."""
    m, sig, types = case.m, case.sig, case.types
    rng = random.Random(call_seed)
    f = case.function
    # Attributes are set only when they change: setting them drops the fast path's plan,
    # and the hot paths (compiled stubs) are what most calls of a program take.
    if case.mode != (with_argtypes, errcheck):
        case.mode = (with_argtypes, errcheck)
        f.argtypes = [types.of(t) for t in sig.argtypes] if with_argtypes else None
        f.restype = types.of(sig.restype) if sig.restype is not None else None
        if errcheck:
            f.errcheck = lambda result, func, arguments: result
        elif "errcheck" in dir(f) and f.errcheck is not None:
            del f.errcheck  # (stock refuses `errcheck = None`)
    args, referee, keep = make_arguments(rng, case, with_argtypes, bad)
    expected = referee_hashes(referee, m) if referee is not None else None
    for i in range(32):
        case.seen[i] = 0
    try:
        result = f(*args)
    except Exception as error:  # comparing exceptions is the point
        return {"result": (type(error).__name__, str(error))}, None
    if bad:
        # What a wrong call that both accept passes (an address for `b"x"`) differs.
        return {"result": ("ok",)}, None
    plan = function_plan(sig)
    seen = list(case.seen[: len(referee)])
    record = {"result": ("ok", read_leaves(result, plan["result"], m)), "seen": seen}
    # What the callee wrote through pointers, and what callbacks received.
    record["after"] = after = []
    for i, (t, obj) in enumerate(referee):
        if isinstance(t, PointerTo) and obj is not None:
            after.append(read_leaves(obj, plan["pointers"][i], m))
        elif isinstance(t, Callback):
            after.append([[norm(v) for v in values] for values in obj])
    del keep
    # The referee: what gcc's callee saw, and what it wrote, given what it saw.
    expected_after = []
    for i, (t, obj) in enumerate(referee):
        if isinstance(t, PointerTo) and obj is not None:
            expected_after.append(expected_leaves(plan["pointers"][i], all_hash(sig, seen)))
        elif isinstance(t, Callback):
            at_call = all_hash(sig, seen[:i])
            expected_after.append([[expected_leaves(p, at_call)[0] for p in plan["callbacks"][i]]])
    expected_record = {
        "result": ("ok", expected_leaves(plan["result"], all_hash(sig, seen))),
        "seen": expected,
        "after": expected_after,
    }
    return record, expected_record


def all_hash(sig: Signature, seen: list) -> int:
    """The callee's running hash `all` after the arguments whose folds are `seen`."""
    h = sig.index
    for value in seen:
        h = mix(h, value)
    return h


def derive(h: int, salt: int) -> int:
    x = (h + salt * 0x9E3779B97F4A7C15) & MASK64
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    return x ^ (x >> 29)


def wrap(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >= 1 << (bits - 1) else value


STRING_VALUES = [b"", b"a", b"fuzz", "k\u00e9y".encode()]
WSTRING_VALUES = ["", "b", "gr\u00fc\u00df", "\u2603x"]


def expected_leaf(t, d: int):
    """Python's `c_leaf_value`: the value ctypes should read from such a leaf."""
    if isinstance(t, BitField):
        _, signed, bits = BITFIELD_C[t.base]
        return wrap(wrap(d, bits, signed), t.width, signed)
    kind = t.kind
    if kind in ("float", "double", "ldouble"):
        return norm(float((d & 0xFFFFF) - 0x80000) / 16.0)
    if kind == "bool":
        return bool(d & 1)
    if kind == "char":
        return bytes([d % 94 + 33])
    if kind == "wchar":
        return chr(d % 0x2000 + 0x20)
    if kind == "charp":
        return STRING_VALUES[d % 4]
    if kind == "wcharp":
        return WSTRING_VALUES[d % 4]
    if kind == "ptr":
        return (d & 0xFFFFFFFFFFFF) or None
    return wrap(d, t.size * 8, kind == "int")


def expected_leaves(plan: list, seed: int) -> list:
    return [expected_leaf(leaf, derive(seed, salt)) for _, leaf, salt in plan]


def norm(value):
    """Floats compared bit for bit."""
    if isinstance(value, float):
        return ("f", struct.pack("<d", value).hex())
    return value


def read_leaves(obj, plan: list, m) -> list:
    """The plan's leaves read back from `obj` (a result, or a pointer's target) through
    ctypes' own field and item access."""
    leaves = []
    for path, _, _ in plan:
        value = obj
        for step in path:
            value = value[step] if isinstance(step, int) else getattr(value, step)
        if isinstance(value, m._SimpleCData):
            value = value.value
        leaves.append(norm(value))
    return leaves


def referee_hashes(referee, m) -> list:
    """The per-argument folds gcc's callee should see, computed in Python before the call
    from the values passed (C's conversion of a plain value is `T(value).value`)."""
    hashes = []
    for t, obj in referee:
        h = FNV_OFFSET
        if isinstance(t, PointerTo):
            h = mix(h, NULL_MARK) if obj is None else fold_object(h, t.target, obj, m)
        elif isinstance(t, Callback):
            h = None  # the folded callback result: compared between implementations only
        elif isinstance(t, Scalar):
            if not isinstance(obj, m._SimpleCData):
                obj = getattr(m, t.ctypes_name)(obj)
            h = fold_value(h, t, obj.value)
        else:
            h = fold_object(h, t, obj, m)
        hashes.append(h)
    return hashes


def leaf_values(t, obj, m) -> list:
    """Every leaf of `obj` (model type `t`) as read through ctypes; a union as its bytes."""
    if isinstance(t, Scalar):
        return [norm(obj.value if isinstance(obj, m._SimpleCData) else obj)]
    if isinstance(t, BitField):
        return [obj]
    if isinstance(t, ArrayOf):
        return [v for i in range(t.length) for v in leaf_values(t.element, obj[i], m)]
    if isinstance(t, Aggregate):
        if t.kind == "union":
            # (Of the type's size: what `resize` adds is uninitialised in stock.)
            return [m.string_at(m.addressof(obj), m.sizeof(type(obj))).hex()]
        return [v for name, ft in t.fields for v in leaf_values(ft, getattr(obj, name), m)]
    raise TypeError(t)


OBJECT_OPERATIONS = [
    "index", "index_write", "slice", "pointer_slice", "field_write", "from_buffer",
    "from_buffer_copy", "memmove", "pointer_arithmetic", "contents", "resize", "cast_bytes",
]  # fmt: skip


def object_program(m, types: Types, t, seed: str) -> list:
    """Random object operations on an array of `t` viewed through a pointer: what each
    read gives (or raises), as comparable values. The same seed makes the same program
    for stock and ours."""
    rng = random.Random(seed)
    element = types.of(t)
    size = m.sizeof(element)
    n = rng.randint(1, 5)
    array = (element * n)()
    for i in range(n):
        if isinstance(t, Aggregate):
            fill_aggregate(rng, types, t, array[i])
        else:
            v = plain_value(rng, t)
            array[i] = 0 if (t.kind == "ptr" and v is None) else v
    pointer = m.cast(array, m.POINTER(element))
    trace = []

    def step(action):
        try:
            trace.append((op, action()))
        except Exception as error:  # comparing exceptions is the point
            trace.append((op, type(error).__name__, str(error)))

    for _ in range(rng.randint(2, 8)):
        op = rng.choice(OBJECT_OPERATIONS)
        i, j = rng.randrange(n), rng.randrange(n)
        if op == "index":
            step(lambda i=i: leaf_values(t, pointer[i], m))
        elif op == "index_write":
            step(lambda i=i, j=j: pointer.__setitem__(i, array[j]))
            step(lambda i=i: leaf_values(t, array[i], m))
        elif op == "slice":
            step(lambda i=i, j=j: [leaf_values(t, x, m) for x in array[min(i, j) : max(i, j) + 1]])
        elif op == "pointer_slice":
            step(
                lambda i=i, j=j: [leaf_values(t, x, m) for x in pointer[min(i, j) : max(i, j) + 1]]
            )
        elif op == "field_write" and isinstance(t, Aggregate):
            step(lambda i=i: fill_aggregate(rng, types, t, pointer[i]))
            step(lambda i=i: leaf_values(t, array[i], m))
        elif op == "from_buffer":
            buffer = bytearray(m.string_at(m.addressof(array), m.sizeof(array)))
            step(lambda i=i, buffer=buffer: leaf_values(t, (element * n).from_buffer(buffer)[i], m))
            offset = rng.randrange(size + 2)
            step(
                lambda buffer=buffer, offset=offset: leaf_values(
                    t, element.from_buffer(buffer, offset), m
                )
            )
        elif op == "from_buffer_copy":
            data = m.string_at(m.addressof(array), m.sizeof(array))
            step(
                lambda data=data: leaf_values(t, element.from_buffer_copy(data, size * (n - 1)), m)
            )
        elif op == "memmove":
            step(
                lambda i=i, j=j: (
                    m.memmove(m.byref(array, i * size), m.byref(array, j * size), size) and None
                )
            )
            step(lambda i=i: leaf_values(t, array[i], m))
        elif op == "pointer_arithmetic":
            address = m.addressof(array) + i * size
            step(
                lambda address=address: leaf_values(
                    t, m.cast(m.c_void_p(address), m.POINTER(element))[0], m
                )
            )
        elif op == "contents":
            step(lambda i=i: leaf_values(t, m.pointer(array[i]).contents, m))
        elif op == "resize":
            single = element()
            new_size = size + rng.randint(-1, 16)
            step(lambda single=single, new_size=new_size: m.resize(single, new_size))
            step(lambda single=single: (m.sizeof(single), leaf_values(t, single, m)))
        elif op == "cast_bytes":
            step(lambda i=i: m.cast(pointer, m.POINTER(m.c_ubyte))[i * size] if size else None)
    trace.append(m.string_at(m.addressof(array), m.sizeof(array)).hex())
    return trace


def aggregates_of(t, found: list) -> list:
    """Every aggregate type `t` holds or points at, members first."""
    if isinstance(t, Aggregate):
        for _, ft in t.fields:
            aggregates_of(ft, found)
        found.append(t)
    elif isinstance(t, ArrayOf):
        aggregates_of(t.element, found)
    elif isinstance(t, PointerTo):
        aggregates_of(t.target, found)
    return found


def layout_differences(sig: Signature, types: Types, lib) -> list:
    """The aggregates of `sig` whose size or alignment in `types` is not gcc's."""
    wrong = []
    for t in [sig.restype, *sig.argtypes]:
        for agg in aggregates_of(t, []):
            size_f, align_f = getattr(lib, f"{agg.name}_size"), getattr(lib, f"{agg.name}_align")
            size_f.restype = align_f.restype = types.m.c_size_t
            cls = types.of(agg)
            if (types.m.sizeof(cls), types.m.alignment(cls)) != (size_f(), align_f()):
                wrong.append(agg.name)
    return wrong


def refused_variadic(sig: Signature):
    """Stock's outcome for a variadic tail with a type C would have promoted (its libffi
    refuses the call), or None."""
    if any(t.kind in ("float", "bool", "char") or t.size < 4 for t in sig.variadic_tail):
        return ("RuntimeError", "ffi_prep_cif_var failed")
    return None


def agrees(expected: dict | None, record: dict) -> bool:
    """True if a call's record is what gcc's callee saw and made (None: not known)."""
    if expected is None:
        return False
    seen_ok = all(
        e is None or e == s for e, s in zip(expected["seen"], record["seen"], strict=False)
    )
    return (
        seen_ok and record["result"] == expected["result"] and record["after"] == expected["after"]
    )


def child_main(args) -> int:
    """Runs signatures `args.start`..`args.stop` of the seed on stock and jitctypes, printing
    one JSON line per finding and a final summary."""
    import ctypes as stock

    import jitctypes.ctypes as ours

    signatures, _ = generate(args.seed, args.signatures)
    modules = [stock, ours]
    libs = {m: m.CDLL(args.library) for m in modules}
    type_sets = {m: Types(m) for m in modules}
    counts = dict.fromkeys(
        [
            "signatures",
            "calls",
            "object_programs",
            "bad_calls",
            "stock_wrong",
            "both_differ_from_gcc",
            "mismatches",
        ],
        0,
    )

    def emit(kind, **payload):
        print(json.dumps({kind: payload}, default=repr), flush=True)

    for sig in signatures[args.start : args.stop]:
        if counts["signatures"]:
            emit("counted", **counts)  # so far: a crash loses only the signature it hit
        emit("progress", index=sig.index)
        cases = {}
        for m in modules:
            try:
                cases[m] = Case(m, libs[m], type_sets[m], sig)
            except Exception as error:
                cases[m] = (type(error).__name__, str(error))
        if any(not isinstance(c, Case) for c in cases.values()):
            outcomes = [c if not isinstance(c, Case) else "ok" for c in cases.values()]
            if outcomes[0] != outcomes[1]:
                counts["mismatches"] += 1
                emit("mismatch", index=sig.index, call=None, stock=outcomes[0], ours=outcomes[1])
            continue
        counts["signatures"] += 1
        # gcc is the referee of layouts: where stock lays a type out differently (some
        # bit-field runs), stock is wrong, and only ours is checked, against gcc.
        stock_layout, our_layout = (layout_differences(sig, type_sets[m], libs[m]) for m in modules)
        if our_layout:
            counts["mismatches"] += 1
            emit("mismatch", index=sig.index, call=None, layout_not_gcc=our_layout)
            continue
        # Where stock crashed on this signature in an earlier child, or lays it out
        # differently from gcc, only ours runs, checked against the referee.
        only_ours = bool(stock_layout) or sig.index in args.stock_crashed
        counts["stock_wrong"] += only_ours
        if not only_ours:
            # Object operations on the types of this signature (not on stock's wrong layouts).
            object_types = [t.target if isinstance(t, PointerTo) else t for t in sig.argtypes]
            for k, t in enumerate(object_types):
                if not isinstance(t, (Aggregate, Scalar)) or (
                    isinstance(t, Scalar) and t not in FIELD_SCALARS
                ):
                    continue
                seed = f"objects:{args.seed}:{sig.index}:{k}"
                emit("progress", index=sig.index, objects=k, module="both")
                traces = [object_program(m, type_sets[m], t, seed) for m in modules]
                counts["object_programs"] += 1
                if traces[0] != traces[1]:
                    counts["mismatches"] += 1
                    emit("mismatch", index=sig.index, objects=k, stock=traces[0], ours=traces[1])
        for j in range(args.calls_per_signature):
            call_seed = f"{args.seed}:{sig.index}:{j}"
            shape = random.Random("shape:" + call_seed)
            with_argtypes = shape.random() < 0.65 or bool(sig.variadic_tail)
            bad = shape.random() < 1 / 7 and not sig.variadic_tail
            errcheck = shape.random() < 0.1
            counts["calls"] += 1
            counts["bad_calls"] += bad
            records = {stock: ({}, None)}
            for m in [ours] if only_ours else modules:
                emit("progress", index=sig.index, call=j, module=m.__name__)
                records[m] = run_call(cases[m], call_seed, with_argtypes, bad, errcheck)
            (stock_record, stock_expected), (our_record, our_expected) = (
                records[stock],
                records[ours],
            )
            ours_right = agrees(our_expected, our_record)
            if only_ours:
                if bad or ours_right or our_record["result"] == refused_variadic(sig):
                    continue
            elif stock_record == our_record:
                # The same: if a good call's outcome is not gcc's, both are wrong (or the
                # referee is): counted, and shown with -v.
                if our_record["result"][0] == "ok" and not bad and not ours_right:
                    counts["both_differ_from_gcc"] += 1
                    emit("both", index=sig.index, call=j, record=our_record, gcc=our_expected)
                continue
            elif ours_right and not agrees(stock_expected, stock_record):
                counts["stock_wrong"] += 1  # where gcc says stock is wrong, ours is right
                continue
            counts["mismatches"] += 1
            emit(
                "mismatch",
                index=sig.index,
                call=j,
                argtypes=with_argtypes,
                bad=bad,
                stock=stock_record,
                ours=our_record,
                gcc=our_expected,
            )
    emit("done", **counts)
    return 0


# ---------------------------------------------------------------------------------------
# The parent: generate, compile, run chunks in children, report.


def describe(sig: Signature) -> str:
    def name(t):
        if t is None:
            return "void"
        if isinstance(t, Scalar):
            return t.ctypes_name
        if isinstance(t, Aggregate):
            late = " (late)" if t.late else ""
            return f"{t.kind} {t.name}{late}{f' pack {t.pack}' if t.pack else ''}"
        if isinstance(t, PointerTo):
            return f"POINTER({name(t.target)})"
        if isinstance(t, Callback):
            return f"CFUNCTYPE({name(t.restype)}, {', '.join(name(a) for a in t.argtypes)})"
        return repr(t)

    tail = (
        f", ...[{', '.join(t.ctypes_name for t in sig.variadic_tail)}]" if sig.variadic_tail else ""
    )
    return f"{name(sig.restype)} {sig.name}({', '.join(name(t) for t in sig.argtypes)}{tail})"


def run_seed(seed: int, options, folder: str) -> dict:
    signatures, generator = generate(seed, options.signatures)
    library = compile_library(c_source(signatures, generator), folder, f"fuzz{seed}")
    totals = dict.fromkeys(
        [
            "signatures",
            "calls",
            "object_programs",
            "bad_calls",
            "stock_wrong",
            "stock_crashes",
            "both_differ_from_gcc",
            "mismatches",
            "crashes",
        ],
        0,
    )
    findings = []
    selected = [options.only] if options.only is not None else range(len(signatures))
    modes = {"jit": {"JITCTYPES_COMPILE_AFTER": "2"}, "libffi": {"JITCTYPES_JIT": "0"}}
    for mode in options.modes:
        env = dict(os.environ, **modes[mode])
        stock_crashes: set[int] = set()
        suspects: dict[int, bool] = {}  # crashes first seen in ours, rerun with ours alone
        position = selected[0] if options.only is not None else 0
        stop = (options.only + 1) if options.only is not None else len(signatures)
        while position < stop:
            chunk_stop = min(position + options.chunk, stop)
            command = [
                sys.executable, os.path.abspath(__file__), "--child", "--seed", str(seed),
                "--signatures", str(options.signatures), "--library", library,
                "--start", str(position), "--stop", str(chunk_stop),
                "--calls-per-signature", str(options.calls_per_signature),
                "--stock-crashed", ",".join(map(str, sorted(stock_crashes))),
            ] + (["-v"] if options.verbose else [])  # fmt: skip
            try:
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=options.timeout
                )
                output, code = done.stdout, done.returncode
            except subprocess.TimeoutExpired as expired:
                output, code = (expired.stdout or b"").decode(), "timeout"
            last, last_step, finished, counted = position, None, False, {}
            for line in output.splitlines():
                record = json.loads(line)
                if "progress" in record:
                    last, last_step = record["progress"]["index"], record["progress"]
                elif "mismatch" in record:
                    findings.append((mode, "mismatch", record["mismatch"]))
                elif "both" in record:
                    findings.append((mode, "both differ from gcc", record["both"]))
                elif "counted" in record or "done" in record:
                    finished = "done" in record
                    counted = record.get("counted") or record["done"]
            for key, value in counted.items():
                totals[key] += value
            if finished:
                position = chunk_stop
            elif last not in stock_crashes:
                # Stock's own crash (its union and bit-field passing), or one of ours right
                # after stock's call of the same signature, which may have corrupted memory
                # (a MEMORY-class union result written short, say): the signature runs again
                # with ours alone, checked against gcc's view. A crash then is ours.
                stock_crashes.add(last)
                suspects[last] = last_step is None or last_step.get("module") != "ctypes"
                totals["stock_crashes"] += 1
                position = last
            else:
                if suspects.pop(last, False):
                    totals["stock_crashes"] -= 1  # it crashed with ours alone too
                totals["crashes"] += 1
                stderr = done.stderr[-2000:] if code != "timeout" else "timeout"
                findings.append(
                    (
                        mode,
                        "crash",
                        {"index": last, "exit": code, "in": last_step, "stderr": stderr},
                    )
                )
                position = last + 1  # go on after the signature that crashed
    totals["mismatches"] = sum(1 for f in findings if f[1] == "mismatch")
    for mode, kind, detail in findings[: options.show]:
        sig = signatures[detail["index"]]
        print(f"\n[{mode}] {kind} in {describe(sig)}")
        print(json.dumps(detail, indent=1, default=repr)[:3000])
        env_prefix = "JITCTYPES_JIT=0 " if mode == "libffi" else ""
        print(
            f"  reproduce: {env_prefix}python {os.path.relpath(__file__)} --seeds {seed} "
            f"--signatures {options.signatures} --only {sig.index} --modes {mode} -v"
        )
    return totals


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="e.g. 0, 0-9, 1,5,7")
    parser.add_argument("--signatures", type=int, default=2000, help="per seed")
    parser.add_argument("--calls-per-signature", type=int, default=15)
    parser.add_argument("--chunk", type=int, default=250, help="signatures per child process")
    parser.add_argument("--modes", nargs="+", default=["jit", "libffi"], choices=["jit", "libffi"])
    parser.add_argument("--only", type=int, help="run this signature index alone")
    parser.add_argument("--show", type=int, default=10, help="findings printed per seed")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stock-crashed", default="", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        options.stock_crashed = {int(i) for i in options.stock_crashed.split(",") if i}
        return child_main(options)
    started = time.monotonic()
    grand = {}
    with tempfile.TemporaryDirectory(prefix="ctypes-fuzz-") as folder:
        for seed in parse_seeds(options.seeds):
            totals = run_seed(seed, options, folder)
            line = ", ".join(f"{k} {v}" for k, v in totals.items())
            print(f"seed {seed}: {line}", flush=True)
            for key, value in totals.items():
                grand[key] = grand.get(key, 0) + value
    elapsed = time.monotonic() - started
    print(
        f"fuzz: {len(parse_seeds(options.seeds))} seeds × {len(options.modes)} modes, "
        + ", ".join(f"{k} {v}" for k, v in grand.items())
        + f" ({elapsed:.0f} s)"
    )
    return 1 if grand.get("mismatches") or grand.get("crashes") else 0


if __name__ == "__main__":
    sys.exit(main())
