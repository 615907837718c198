"""The version audit: observable behaviours of `_ctypes` that a program can see, probed on
the running CPython, on stock and on jitctypes, which must give the same answers.

    python tests/audit/ctypes_audit.py                 # stock vs jitctypes on this Python
    python tests/audit/ctypes_audit.py --dump out.json # stock's answers (for VERSIONS.md)
    python tests/audit/ctypes_audit.py --versions a.json b.json    # what differs between versions

Each implementation runs the probes in its own process as programs see it (`python -m
jitctypes` for ours: `_ctypes` is then ours, under stock's names). A probe's answer is a
value, or the exception's class and message; addresses are blanked. The probes whose stock
answers differ between 3.11, 3.12 and 3.13 are listed in `tests/audit/VERSIONS.md`, which
`--versions` writes. Stdlib only.
"""

import json
import re
import subprocess
import sys

PROBES = {}

# Differences from stock that are accepted, each with its reason (printed with -v).
KNOWN = {
    "bitfield_layouts": "jitctypes lays these bit-fields out as gcc does; stock 3.11-3.13 does "
    "not (tests/python/test_ctypes_structure.py::test_bitfields_follow_gcc_where_stock_does_not)",
    "mro": "the pyo3 base class of Array, _Pointer, CFuncPtr and _SimpleCData stands between "
    "the class and _CData in __mro__ (issue 17: the base classes made with a metaclass)",
}


def probe(function):
    PROBES[function.__name__] = function
    return function


def outcome(action):
    try:
        value = action()
    except Exception as error:  # comparing exceptions is the point
        return [type(error).__name__, re.sub(r"0x[0-9a-f]+", "0x…", str(error))]
    return ["ok", blank(value)]


def blank(value):
    """JSON-able, with addresses blanked."""
    if isinstance(value, str):
        value = value.replace(sys.executable, "<python>")
        return re.sub(r"0x[0-9a-f]+|(?<=\()\d{9,}(?=\))", "0x…", value)
    if isinstance(value, (list, tuple)):
        return [blank(item) for item in value]
    if isinstance(value, dict):
        return {str(key): blank(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return blank(repr(value))


def describe_class(cls):
    return {
        "module": cls.__module__,
        "qualname": cls.__qualname__,
        "repr": repr(cls),
        "metaclass": type(cls).__name__,
        "mro": [klass.__name__ for klass in cls.__mro__],
    }


# ---- The module -------------------------------------------------------------------------


@probe
def stock_names_present(m, c):
    """Every name of stock's `_ctypes` exists (ours may have more)."""
    return sorted(name for name in dir(c) if not name.startswith("__"))


@probe
def public_classes(m, c):
    return {
        name: describe_class(getattr(c, name))
        for name in sorted(dir(c))
        if isinstance(getattr(c, name), type) and not name.startswith("_jitctypes")
    }


@probe
def module_functions(m, c):
    return {
        name: [getattr(c, name).__module__, getattr(c, name).__name__]
        for name in sorted(dir(c))
        if callable(getattr(c, name)) and not isinstance(getattr(c, name), type)
    }


@probe
def version_constants(m, c):
    return [
        getattr(c, name, "absent")
        for name in ("__version__", "CTYPES_MAX_ARGCOUNT", "SIZEOF_TIME_T")
    ]


# ---- Types made at run time -------------------------------------------------------------


@probe
def carg_object(m, c):
    return describe_class(type(m.byref(m.c_int())))


@probe
def carg_reprs(m, c):
    return [
        repr(m.c_int.from_param(3)),
        repr(m.c_char_p.from_param(b"x")),
        repr(m.byref(m.c_int())),
    ]


@probe
def field_descriptor(m, c):
    class S(m.Structure):
        _fields_ = [("a", m.c_int), ("b", m.c_uint8, 3)]

    field = S.__dict__["a"]
    attributes = sorted(name for name in dir(field) if not name.startswith("__"))
    return [describe_class(type(field)), repr(field), repr(S.b), attributes]


@probe
def made_types(m, c):
    return [
        describe_class(m.c_int * 3),
        describe_class(m.POINTER(m.c_short)),
        describe_class(m.CFUNCTYPE(m.c_int)),
        describe_class(type(m.create_string_buffer(3))),
    ]


@probe
def pointer_type_cache(m, c):
    return [hasattr(m, "_pointer_type_cache"), hasattr(c, "_pointer_type_cache"),
            m.POINTER(m.c_int) is m.POINTER(m.c_int)]  # fmt: skip


@probe
def instance_reprs(m, c):
    class S(m.Structure):
        _fields_ = [("a", m.c_int)]

    return [repr(x) for x in (m.c_int(5), m.c_char(b"x"), m.c_wchar_p("w"), m.c_void_p(16),
                              m.c_bool(True), m.c_double(1.5), S(), m.pointer(m.c_int(1)),
                              (m.c_int * 2)(), m.c_char_p(b"abc"))]  # fmt: skip


# ---- Rules that changed between versions ---------------------------------------------------


@probe
def align_attribute(m, c):
    class S(m.Structure):
        _align_ = 16
        _fields_ = [("a", m.c_char)]

    return [m.alignment(S), m.sizeof(S)]


@probe
def union_is_mutable(m, c):
    return outcome(lambda: setattr(m.Union, "_jitctypes_probe_", 1) or "set")


@probe
def structure_is_mutable(m, c):
    return outcome(lambda: setattr(m.Structure, "_jitctypes_probe_", 1) or "set")


@probe
def metaclass_new_without_init(m, c):
    meta = type(m.Structure)
    made = meta.__new__(meta, "X", (m.Structure,), {"_fields_": [("a", m.c_int)]})
    return outcome(lambda: m.sizeof(made))


@probe
def pack_without_layout(m, c):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class S(m.Structure):
            _pack_ = 1
            _fields_ = [("a", m.c_char), ("b", m.c_int)]

    return [m.sizeof(S), [type(w.message).__name__ for w in caught]]


@probe
def swapped_bitfields(m, c):
    class S(m.BigEndianStructure):
        _fields_ = [("a", m.c_uint16, 3), ("b", m.c_uint16, 13)]

    s = S(5, 77)
    return [bytes(s), s.a, s.b]


@probe
def bitfield_layouts(m, c):
    """Layouts where stock and gcc have disagreed (follow the running version's stock)."""

    class A(m.Structure):
        _fields_ = [
            ("a", m.c_int, 19),
            ("b", m.c_int, 1),
            ("c", m.c_int, 2),
            ("d", m.c_int, 16),
            ("e", m.c_byte),
        ]

    class B(m.Structure):
        _fields_ = [("a", m.c_uint8, 4), ("b", m.c_uint32, 30), ("c", m.c_uint8, 4)]

    return [
        [m.sizeof(t), m.alignment(t), [getattr(t, f[0]).offset for f in t._fields_]] for t in (A, B)
    ]


@probe
def union_by_value_in_argtypes(m, c):
    class U(m.Union):
        _fields_ = [("a", m.c_int), ("b", m.c_double)]

    f = m.CDLL(None).labs
    return outcome(lambda: setattr(f, "argtypes", [U]) or "accepted")


@probe
def bitfield_struct_by_value_in_argtypes(m, c):
    class S(m.Structure):
        _fields_ = [("a", m.c_int, 3)]

    f = m.CDLL(None).labs
    return outcome(lambda: setattr(f, "argtypes", [S]) or "accepted")


@probe
def variadic_unpromoted_extras(m, c):
    snprintf = m.CDLL(None).snprintf
    snprintf.argtypes = [m.c_char_p, m.c_size_t, m.c_char_p]
    buf = m.create_string_buffer(16)
    return [
        outcome(lambda t=t: snprintf(buf, 16, b"%d", t(1)))
        for t in (m.c_float, m.c_short, m.c_bool, m.c_int)
    ]


# ---- Errors -------------------------------------------------------------------------------

BAD_INPUTS = {
    "c_int_str": lambda m: m.c_int("x"),
    "c_char_p_int": lambda m: m.c_char_p(5),
    "c_char_long": lambda m: m.c_char(b"ab"),
    "c_wchar_long": lambda m: m.c_wchar("ab"),
    "pointer_of_int": lambda m: m.POINTER(5),
    "pointer_to_int": lambda m: m.pointer(5),
    "sizeof_int": lambda m: m.sizeof(5),
    "byref_int": lambda m: m.byref(5),
    "addressof_int": lambda m: m.addressof(5),
    "array_negative": lambda m: m.c_int * -1,
    "array_too_many": lambda m: (m.c_int * 2)(1, 2, 3),
    "array_index": lambda m: (m.c_int * 2)()[5],
    "fields_not_sequence": lambda m: type(m.Structure)("S", (m.Structure,), {"_fields_": 5}),
    "fields_bad_item": lambda m: type(m.Structure)("S", (m.Structure,), {"_fields_": [("a",)]}),
    "fields_bad_type": lambda m: type(m.Structure)("S", (m.Structure,), {"_fields_": [("a", int)]}),
    "bitfield_too_wide": lambda m: type(m.Structure)(
        "S", (m.Structure,), {"_fields_": [("a", m.c_int, 33)]}
    ),
    "bitfield_on_double": lambda m: type(m.Structure)(
        "S", (m.Structure,), {"_fields_": [("a", m.c_double, 3)]}
    ),
    "struct_too_many_init": lambda m: type(m.Structure)(
        "S", (m.Structure,), {"_fields_": [("a", m.c_int)]}
    )(1, 2),
    "struct_bad_keyword": lambda m: type(m.Structure)(
        "S", (m.Structure,), {"_fields_": [("a", m.c_int)]}
    )(b=1),
    "cast_int_type": lambda m: m.cast(1, int),
    "cast_float": lambda m: m.cast(1.5, m.c_void_p),
    "cast_to_c_int": lambda m: m.cast(1, m.c_int),
    "cast_to_structure": lambda m: m.cast(1, m.Structure),
    "cast_to_instance": lambda m: m.cast(1, 5),
    "resize_small": lambda m: m.resize(m.c_int(), 2),
    "from_buffer_readonly": lambda m: m.c_int.from_buffer(b"abcd"),
    "from_buffer_small": lambda m: m.c_int.from_buffer(bytearray(2)),
    "argtypes_not_sequence": lambda m: setattr(m.CDLL(None).labs, "argtypes", 5),
    "argtypes_no_from_param": lambda m: setattr(m.CDLL(None).labs, "argtypes", [int]),
    "restype_bad": lambda m: setattr(m.CDLL(None).labs, "restype", 5),
    "errcheck_none": lambda m: setattr(m.CDLL(None).labs, "errcheck", None),
    "call_wrong_type": lambda m: _with_argtypes(m, [m.c_int])("x"),
    "call_too_few": lambda m: _with_argtypes(m, [m.c_int, m.c_int])(1),
    "call_float_no_argtypes": lambda m: m.CDLL(None).labs(1.5),
    "call_big_int_no_argtypes": lambda m: m.CDLL(None).labs(2**70),
    "missing_symbol": lambda m: m.CDLL(None).no_such_symbol_here,
    "missing_library": lambda m: m.CDLL("libno-such-library.so.9"),
    "callback_bad_restype": lambda m: m.CFUNCTYPE(m.c_int * 2)(lambda: 0),
    "function_no_argument": lambda m: m.CFUNCTYPE(m.c_int)(),
    "set_pointer_type_twice": lambda m: _set_pointer_type_twice(m),
}


def _with_argtypes(m, argtypes):
    f = m.CDLL(None).labs
    f.argtypes = argtypes
    return f


def _set_pointer_type_twice(m):
    class N(m.Structure):
        pass

    p = m.POINTER("N_incomplete")
    m.SetPointerType(p, N)
    return m.SetPointerType(p, N)


@probe
def errors(m, c):
    return {name: outcome(lambda action=action: action(m)) for name, action in BAD_INPUTS.items()}


# ---- Running ------------------------------------------------------------------------------


def run_probes() -> dict:
    import _ctypes as c
    import ctypes as m

    return {
        name: outcome(lambda function=function: function(m, c)) for name, function in PROBES.items()
    }


def implementation_answers(implementation: str) -> dict:
    command = [sys.executable] + (["-m", "jitctypes"] if implementation == "jitctypes" else [])
    done = subprocess.run(command + [__file__, "--probe"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{implementation}: probes failed:\n{done.stderr}")
    return json.loads(done.stdout)


def known_reason(name: str, stock_value, our_value) -> str | None:
    """The reason a difference is accepted, if it is one of `KNOWN`."""
    if name in KNOWN:
        return KNOWN[name]
    if isinstance(stock_value, dict) and isinstance(our_value, dict):
        differing = {key for key in stock_value if stock_value[key] != our_value.get(key)}
        if differing == {"mro"}:
            return KNOWN["mro"]
    return None


def differences(stock: dict, ours: dict) -> tuple[list[str], list[str]]:
    """(differences, accepted differences with their reasons)."""
    found = []
    for name in stock:
        expected, got = stock[name], ours.get(name)
        if name == "stock_names_present" and expected[0] == "ok" and got and got[0] == "ok":
            missing = sorted(set(expected[1]) - set(got[1]))
            if missing:
                found.append(f"{name}: missing {missing}")
            continue
        if name == "public_classes" and expected[0] == "ok" and got and got[0] == "ok":
            for cls, description in expected[1].items():
                if got[1].get(cls) != description:
                    found.append((f"{name}.{cls}", description, got[1].get(cls)))
            continue
        if isinstance(expected, list) and expected[0] == "ok" and isinstance(expected[1], dict):
            for key, value in expected[1].items():
                other = got[1].get(key) if got and got[0] == "ok" else got
                if other != value:
                    found.append((f"{name}.{key}", value, other))
            continue
        if name == "made_types" and expected[0] == "ok" and got and got[0] == "ok":
            for index, (value, other) in enumerate(zip(expected[1], got[1], strict=False)):
                if value != other:
                    found.append((f"{name}.{index}", value, other))
            continue
        if expected != got:
            found.append((name, expected, got))
    unexplained, accepted = [], []
    for key, value, other in found:
        reason = known_reason(key.split(".")[0], value, other)
        line = f"{key}: stock {value}\n      ours  {other}"
        (accepted if reason else unexplained).append(
            line + (f"\n      accepted: {reason}" if reason else "")
        )
    return unexplained, accepted


def version_table(paths: list[str]) -> str:
    """Markdown: the probes whose stock answers differ between the given dumps."""
    dumps = {}
    for path in paths:
        with open(path) as file:
            data = json.load(file)
        dumps[data["version"]] = data["answers"]
    versions = sorted(dumps)
    lines = [f"| probe | {' | '.join(versions)} |", "|---|" + "---|" * len(versions)]

    def flat(answers):
        for name, answer in answers.items():
            if answer[0] == "ok" and isinstance(answer[1], dict):
                for key, value in answer[1].items():
                    yield f"{name}.{key}", value
            else:
                yield name, answer

    flattened = {v: dict(flat(dumps[v])) for v in versions}
    keys = sorted(set().union(*flattened.values()))
    for key in keys:
        answers = [flattened[v].get(key, "absent") for v in versions]
        if key.endswith("present") and all(isinstance(a, list) and a[0] == "ok" for a in answers):
            # Name lists: what each version adds or drops relative to the first.
            first = set(answers[0][1])
            answers = [answers[0][1][:0]] + [
                {"added": sorted(set(a[1]) - first), "dropped": sorted(first - set(a[1]))}
                for a in answers[1:]
            ]
        values = [json.dumps(answer, ensure_ascii=False) for answer in answers]
        if len(set(values)) > 1:
            cells = [value.replace("|", "\\|")[:160] for value in values]
            lines.append(f"| `{key}` | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> int:
    if "--probe" in sys.argv:
        print(json.dumps(run_probes()))
        return 0
    if "--dump" in sys.argv:
        path = sys.argv[sys.argv.index("--dump") + 1]
        version = ".".join(map(str, sys.version_info[:3]))
        with open(path, "w") as file:
            json.dump(
                {"version": version, "answers": implementation_answers("stock")}, file, indent=1
            )
        return 0
    if "--versions" in sys.argv:
        print(version_table(sys.argv[sys.argv.index("--versions") + 1 :]))
        return 0
    stock, ours = implementation_answers("stock"), implementation_answers("jitctypes")
    found, accepted = differences(stock, ours)
    for line in found + (accepted if "-v" in sys.argv else []):
        print("  " + line)
    version = ".".join(map(str, sys.version_info[:3]))
    print(
        f"version audit on {version}: {len(PROBES)} probes, {len(found)} differences from stock, "
        f"{len(accepted)} accepted ({', '.join(sorted({a.split(':')[0] for a in accepted}))})"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
