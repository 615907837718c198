"""Bad input as properties (issue 15), with hypothesis: whatever a program throws at
`_ctypes`, jitctypes raises an exception of the class stock raises, or succeeds where stock
succeeds, and never crashes. Stock `ctypes` and `jitctypes.ctypes` run side by side in this
process; the pytest wrapper (tests/python/test_properties.py) runs it as a child process,
so a crash is a failure that names the property. Inputs that crash stock itself (reading
unmapped memory through `string_at` or `from_address`) are left out: there the C semantics,
a crash, is stock's behaviour too.

    python tests/properties/bad_input.py --examples 2000     # per property
"""

import argparse
import ctypes as stock  # noqa: I001 (after jitctypes.ctypes on purpose: both coexist)
import gc
import struct
import sys

import jitctypes.ctypes as ours
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODULES = (stock, ours)
SIMPLE_NAMES = [
    "c_bool", "c_char", "c_wchar", "c_byte", "c_ubyte", "c_short", "c_ushort", "c_int",
    "c_uint", "c_long", "c_ulong", "c_longlong", "c_ulonglong", "c_float", "c_double",
    "c_longdouble", "c_char_p", "c_wchar_p", "c_void_p", "c_size_t", "c_int8", "c_uint64",
]  # fmt: skip


def outcome_class(action) -> str:
    try:
        action()
    except Exception as error:  # comparing exception classes is the point
        return type(error).__name__
    return "ok"


def same_class(action) -> None:
    """`action(m)` gives the same exception class (or success) on stock and on ours."""
    expected = outcome_class(lambda: action(stock))
    got = outcome_class(lambda: action(ours))
    assert got == expected, f"stock: {expected}, jitctypes: {got}"


# ---- Values a program might pass, described independently of the module ----------------

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
    st.text(max_size=4),
    st.tuples(st.integers(), st.integers()),
    st.just(object),
    st.just(int),
    st.just(3.5j),
)
# A type spec: a simple type name, an array of one, a pointer to one, or junk.
type_spec = st.one_of(
    st.sampled_from(SIMPLE_NAMES).map(lambda name: ("simple", name)),
    st.tuples(st.sampled_from(SIMPLE_NAMES), st.integers(-2, 5)).map(lambda t: ("array",) + t),
    st.sampled_from(SIMPLE_NAMES).map(lambda name: ("pointer", name)),
    st.sampled_from(["struct", "union", "self"]).map(lambda kind: (kind,)),
    junk.map(lambda value: ("junk", value)),
)


def make_type(m, spec, owner=None):
    kind = spec[0]
    if kind == "simple":
        return getattr(m, spec[1])
    if kind == "array":
        return getattr(m, spec[1]) * spec[2]
    if kind == "pointer":
        return m.POINTER(getattr(m, spec[1]))
    if kind in ("struct", "union"):
        base = m.Structure if kind == "struct" else m.Union
        return type("Inner", (base,), {"_fields_": [("x", m.c_int), ("y", m.c_char)]})
    if kind == "self":
        return owner  # a structure containing itself (incomplete, or a recursion)
    return spec[1]


field_name = st.one_of(st.text(max_size=5), st.just("a\0b"), junk)
field_item = st.one_of(
    st.tuples(field_name, type_spec),
    st.tuples(field_name, type_spec, st.integers(-3, 70)),
    st.tuples(field_name),
    st.tuples(field_name, type_spec, st.integers(0, 8), st.integers()),
    junk,
)


@given(
    items=st.lists(field_item, max_size=5),
    kind=st.sampled_from(["struct", "union"]),
    # (A `_pack_` below 16 that is not a power of two is refused by jitctypes and taken by
    # stock, which then lays fields out at odd alignments gcc never makes: ARCHITECTURE.md,
    # differences not mended. Left out here.)
    pack=st.one_of(
        st.none(),
        st.sampled_from([-1, 0, 1, 2, 4, 8, 16, 17, 32, 40, 2**31 - 1, 2**31]),
        junk.filter(lambda value: not isinstance(value, int) or value < 0 or value > 2**40),
    ),
    anonymous=st.one_of(st.none(), st.lists(st.text(max_size=3), max_size=2), junk),
    late=st.booleans(),
)
def fields_property(items, kind, pack, anonymous, late):
    def define(m):
        base = m.Structure if kind == "struct" else m.Union
        namespace = {}
        if pack is not None:
            namespace["_pack_"] = pack
        if anonymous is not None:
            namespace["_anonymous_"] = anonymous
        cls = type("S", (base,), namespace)

        def field(item):
            if not isinstance(item, tuple) or len(item) < 2:
                return item
            return (item[0], make_type(m, item[1], cls), *item[2:])

        fields = [field(item) for item in items]
        if late:
            m.POINTER(cls)
        cls._fields_ = fields
        instance = cls()
        return m.sizeof(cls), bytes(instance), [getattr(instance, f[0]) for f in cls._fields_]

    same_class(define)


@given(
    argtypes=st.one_of(st.none(), st.lists(type_spec, max_size=4), junk),
    args=st.lists(junk, max_size=5),
)
def call_property(argtypes, args):
    def call(m):
        function = m.CDLL(None).labs
        if isinstance(argtypes, list):
            function.argtypes = [make_type(m, spec) for spec in argtypes]
        elif argtypes is not None:
            function.argtypes = argtypes
        function.restype = m.c_long
        return function(*args)

    same_class(call)


@given(value=junk, target=type_spec)
def cast_property(value, target):
    def cast(m):
        return m.cast(value, make_type(m, target))

    same_class(cast)


@given(
    source=st.sampled_from(["owned", "from_buffer", "from_address", "field", "array_item"]),
    size=st.integers(-8, 64),
)
def resize_property(source, size):
    keep = {}

    def resize(m):
        if source == "owned":
            obj = m.c_int()
        elif source == "from_buffer":
            keep[m] = buffer = bytearray(16)
            obj = m.c_int.from_buffer(buffer)
        elif source == "from_address":
            keep[m] = backing = m.c_double()
            obj = m.c_int.from_address(m.addressof(backing))
        elif source == "field":

            class S(m.Structure):
                _fields_ = [("inner", m.c_int * 2)]

            keep[m] = outer = S()
            obj = outer.inner
        else:
            keep[m] = array = (m.c_int * 3)()
            obj = m.pointer(array)
        m.resize(obj, size)
        return m.sizeof(obj)

    same_class(resize)


@given(
    returned=junk,
    raises=st.booleans(),
    # (Not `c_char_p`: a callback returning an int for it returns that address, which the
    # caller then reads, in C as in both implementations.)
    restype=st.sampled_from(["c_int", "c_double", "c_void_p", "c_float", "None", "c_bool"]),
    drop_prototype=st.booleans(),
)
def callback_property(returned, raises, restype, drop_prototype):
    """A callback that returns the wrong type or raises gives C the same result on both
    (stock writes an unraisable report and a zero), after its prototype class died too."""
    reports = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda report: reports.append(type(report.exc_value).__name__)
    results = {}
    try:
        for m in MODULES:

            def body(value):
                if raises:
                    raise ValueError("from the callback")
                return returned

            result_type = None if restype == "None" else getattr(m, restype)
            prototype = m.CFUNCTYPE(result_type, m.c_int)
            callback = prototype(body)
            if drop_prototype:
                del prototype
                gc.collect()
            before = len(reports)
            caller = m.CFUNCTYPE(result_type, m.c_int)(m.cast(callback, m.c_void_p).value)
            try:
                value = caller(5)
                if isinstance(value, float):
                    value = struct.pack("<d", value).hex()  # (NaN compares by its bits)
                reported = reports[before:]
                if reported:
                    # After an unraisable error stock leaves the result buffer as it was
                    # (garbage); ours zeroes it.
                    value = None
                results[m] = ("ok", value, reported)
            except Exception as error:  # the class is compared
                results[m] = (type(error).__name__,)
    finally:
        sys.unraisablehook = previous_hook
    assert results[ours] == results[stock], results


@given(name=st.one_of(st.text(max_size=12), st.binary(max_size=8), junk))
def library_property(name):
    def load(m):
        return m.CDLL(name)

    def symbol(m):
        return getattr(m.CDLL(None), name) if isinstance(name, str) else m.CDLL(None)[name]

    same_class(load)
    same_class(symbol)


PROPERTIES = [
    fields_property,
    call_property,
    cast_property,
    resize_property,
    callback_property,
    library_property,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="per property")
    options = parser.parse_args()
    total = 0
    for prop in PROPERTIES:
        print(f"property {prop.__name__} ...", flush=True)  # names the property that crashed
        settings(
            max_examples=options.examples,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )(prop)()
        total += options.examples
    print(f"bad-input properties: {len(PROPERTIES)} properties, {total} examples, all as stock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
