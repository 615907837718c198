"""Fast data paths (pybridge/src/scalar.rs, slots.rs): structure and union fields, array
elements, `.value` and `T(v)` construction read and write native-order integer, bool,
float and double values directly when the value is an exact int, bool or float; anything
else takes the generic path. Both must behave as stock ctypes does.

Every scenario runs on stock ctypes and on jitctypes.ctypes in one process; results are
compared by type and repr (so True is not 1 and NaN equals NaN), exceptions by class and
message."""

import ctypes as stock  # noqa: I001 (after jitctypes.ctypes on purpose: both coexist)
import functools
import sys

import jitctypes.ctypes as ours
import pytest
from oracle import outcome


class IntSubclass(int):
    pass


class FloatSubclass(float):
    pass


class Index:
    """Not an int, but usable as one (`operator.index`)."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value

    def __repr__(self):
        return f"Index({self.value})"


# The fast scalars, then types that always take the generic path (as a control).
FAST_TYPES = [
    "c_byte", "c_ubyte", "c_short", "c_ushort", "c_int", "c_uint", "c_long", "c_ulong",
    "c_longlong", "c_ulonglong", "c_int8", "c_uint8", "c_int16", "c_uint16", "c_int32",
    "c_uint32", "c_int64", "c_uint64", "c_size_t", "c_ssize_t", "c_bool", "c_float",
    "c_double",
]  # fmt: skip
GENERIC_TYPES = ["c_longdouble", "c_char", "c_wchar", "c_void_p"]


def values_for(bits: int) -> dict:
    return {
        "0": 0,
        "-1": -1,
        "2**bits-1": 2**bits - 1,
        "2**bits": 2**bits,
        "-2**(bits-1)-1": -(2 ** (bits - 1)) - 1,
        "2**100": 2**100,
        "-2**100": -(2**100),
        "True": True,
        "False": False,
        "1.5": 1.5,
        "-0.0": -0.0,
        "nan": float("nan"),
        "inf": float("inf"),
        "1e300": 1e300,
        "subnormal": 5e-324,
        "10**400": 10**400,
        "int subclass": IntSubclass(-7),
        "big int subclass": IntSubclass(2**bits + 3),
        "float subclass": FloatSubclass(2.5),
        "__index__": Index(5),
        "str": "1",
        "bytes": b"\x01",
        "None": None,
    }


VALUE_LABELS = list(values_for(8))


def normal(value):
    """A comparable, readable form: bools and floats tagged with their type (True is not
    1, NaN equals NaN), simple-type instances with their class, sequences element-wise."""
    if isinstance(value, bool):
        return f"<bool {value}>"
    if isinstance(value, float):
        return f"<float {value!r}>"
    if isinstance(value, list | tuple):
        return [normal(item) for item in value]
    if value is None or isinstance(value, int | bytes | str):
        return value
    if hasattr(value, "_type_") and hasattr(value, "value"):  # a simple-type instance
        return [f"<{type(value).__name__}>", normal(value.value)]
    return f"<{type(value).__name__}>"


def both(action):
    """`action(m)` on stock and on ours, as comparable outcomes (class names in messages
    without the package name, which differs)."""
    results = [normal(outcome(lambda m=m: action(m))) for m in (stock, ours)]
    if results[1][0] != "ok":
        results[1][1] = results[1][1].replace("jitctypes.ctypes.", "ctypes.")
    return results


def contents(type_name, instance):
    """The bytes of `instance`, unless it holds long doubles: stock fills their 6 padding
    bytes with whatever was on its stack."""
    return "<unspecified>" if type_name == "c_longdouble" else bytes(instance)


# Classes are made once per module and type: creating them is the slow part.
@functools.cache
def aggregate(m, type_name: str, kind: str):
    scalar = getattr(m, type_name)
    if kind == "union":
        fields = [("x", scalar), ("raw", m.c_uint64 * 2)]
        return type(f"U_{type_name}", (m.Union,), {"_fields_": fields})
    fields = [("before", m.c_char), ("x", scalar), ("after", m.c_char)]
    namespace = {"_fields_": fields}
    base = m.Structure
    if kind == "packed":
        namespace["_pack_"] = 1
    elif kind == "big-endian":
        base = m.BigEndianStructure
    elif kind == "little-endian":
        base = m.LittleEndianStructure
    return type(f"S_{type_name}_{kind}", (base,), namespace)


@functools.cache
def array_type(m, type_name: str, length: int = 3):
    return getattr(m, type_name) * length


def write_field(kind):
    def operation(m, type_name, value):
        instance = aggregate(m, type_name, kind)()
        instance.x = value
        neighbours = () if kind == "union" else (instance.before, instance.after)
        return instance.x, neighbours, contents(type_name, instance), instance._objects

    return operation


def write_element(m, type_name, value):
    array = array_type(m, type_name)()
    array[1] = value
    return array[1], array[-2], array[:], contents(type_name, array), array._objects


def write_value(m, type_name, value):
    instance = getattr(m, type_name)()
    instance.value = value
    return instance.value, contents(type_name, instance), instance._objects


def construct(m, type_name, value):
    instance = getattr(m, type_name)(value)
    return instance.value, contents(type_name, instance)


def construct_with_keyword(m, type_name, value):
    # Stock ignores keywords of simple types: the value stays zero.
    instance = getattr(m, type_name)(value=value)
    return instance.value, contents(type_name, instance)


def construct_with_extra(m, type_name, value):
    return getattr(m, type_name)(value, value).value


def construct_structure(m, type_name, value):
    declared = aggregate(m, type_name, "natural")
    return declared(b"a", value).x, declared(x=value).x, declared(after=b"z", x=value).after


def construct_array(m, type_name, value):
    array = array_type(m, type_name)(value, value)
    return array[:], contents(type_name, array)


def write_through_pointer(m, type_name, value):
    target = getattr(m, type_name)()
    pointer = m.pointer(target)
    pointer[0] = value
    return pointer[0], target.value, contents(type_name, target)


def write_through_buffer(m, type_name, value):
    """`from_buffer` views: the fast paths must write into the viewed memory."""
    buffer = bytearray(32)
    declared = aggregate(m, type_name, "packed")
    declared.from_buffer(buffer, 1).x = value
    array_type(m, type_name).from_buffer(buffer, 16)[0] = value
    return contents(type_name, buffer)


OPERATIONS = {
    "field": write_field("natural"),
    "packed field": write_field("packed"),
    "big-endian field": write_field("big-endian"),
    "little-endian field": write_field("little-endian"),
    "union field": write_field("union"),
    "element": write_element,
    ".value": write_value,
    "T(v)": construct,
    "T(value=v)": construct_with_keyword,
    "T(v, v)": construct_with_extra,
    "structure constructor": construct_structure,
    "array constructor": construct_array,
    "from_buffer": write_through_buffer,
    "pointer element": write_through_pointer,
}


def bits_of(type_name: str) -> int:
    return stock.sizeof(getattr(stock, type_name)) * 8


@pytest.mark.parametrize("label", VALUE_LABELS)
@pytest.mark.parametrize("type_name", FAST_TYPES + GENERIC_TYPES)
def test_writes_and_reads_agree_with_stock(type_name, label):
    value = values_for(bits_of(type_name))[label]
    differences = {}
    for name, operation in OPERATIONS.items():
        expected, got = both(lambda m: operation(m, type_name, value))  # noqa: B023
        if expected != got:
            differences[name] = {"stock": expected, "ours": got}
    assert not differences


@pytest.mark.parametrize("type_name", FAST_TYPES + GENERIC_TYPES)
def test_fresh_instances_agree_with_stock(type_name):
    def fresh(m):
        scalar = getattr(m, type_name)
        structure = aggregate(m, type_name, "natural")()
        return (
            scalar().value,
            bytes(scalar()),
            structure.x,
            array_type(m, type_name)()[:],
            scalar(**{}).value,
            outcome(lambda: scalar(1, 2, 3)),
        )

    expected, got = both(fresh)
    assert got == expected


# ---------------------------------------------------------------------------------------
# Array indices.

INDICES = {
    "0": 0,
    "2": 2,
    "-1": -1,
    "-3": -3,
    "3 (past the end)": 3,
    "-4 (before the start)": -4,
    "True": True,
    "False": False,
    "int subclass": IntSubclass(1),
    "__index__": Index(1),
    "2**100": 2**100,
    "-2**100": -(2**100),
    "2**63": 2**63,
    "-2**63": -(2**63),
    "1.0": 1.0,
    "str": "1",
    "None": None,
    "slice": slice(0, 2),
    "reversed slice": slice(None, None, -1),
    "slice with huge bounds": slice(-(2**100), 2**100),
}
ELEMENT_VALUES = {
    "c_int": -5,
    "c_uint8": 200,
    "c_int64": -(2**63),
    "c_double": 0.25,
    "c_float": 1e40,
    "c_bool": 7,
    "c_char": b"z",
    "c_wchar": "☃",
    "c_longdouble": 1.5,
}


def differences_per_type(type_names, action):
    """{type name: (stock, ours)} where `action(m, type_name)` differs."""
    differences = {}
    for type_name in type_names:
        expected, got = both(lambda m: action(m, type_name))  # noqa: B023
        if expected != got:
            differences[type_name] = {"stock": expected, "ours": got}
    return differences


@pytest.mark.parametrize("index_label", INDICES)
def test_array_indices_agree_with_stock(index_label):
    index = INDICES[index_label]

    def index_array(m, type_name):
        value = ELEMENT_VALUES[type_name]
        array = array_type(m, type_name)()
        read_before = outcome(lambda: array[index])
        if isinstance(index, slice):
            count = len(range(*index.indices(3)))
            as_sequence = value * count if type_name in ("c_char", "c_wchar") else [value] * count
            written = outcome(lambda: array.__setitem__(index, as_sequence))
        else:
            written = outcome(lambda: array.__setitem__(index, value))
        deleted = outcome(lambda: array.__delitem__(index))
        return read_before, written, outcome(lambda: array[index]), array[:], deleted

    assert not differences_per_type(ELEMENT_VALUES, index_array)


POINTER_INDICES = {
    "0": 0,
    "1": 1,
    "-1": -1,
    "True": True,
    "False": False,
    "int subclass": IntSubclass(1),
    "__index__": Index(-1),
    "2**100": 2**100,
    "-2**100": -(2**100),
    "2**63": 2**63,
    "1.0": 1.0,
    "str": "1",
    "None": None,
    "slice": slice(-1, 2),
    "slice without stop": slice(0, None),
    "slice with step": slice(1, -2, -1),
}


@pytest.mark.parametrize("index_label", POINTER_INDICES)
def test_pointer_indices_agree_with_stock(index_label):
    """A pointer to the middle element of a three-element array: -1..1 are valid."""
    index = POINTER_INDICES[index_label]

    def index_pointer(m, type_name):
        value = ELEMENT_VALUES[type_name]
        scalar = getattr(m, type_name)
        array = array_type(m, type_name)()
        pointer = m.cast(m.byref(array, m.sizeof(scalar)), m.POINTER(scalar))
        read_before = outcome(lambda: pointer[index])
        if isinstance(index, slice):
            written = outcome(lambda: pointer.__setitem__(index, [value]))
        else:
            written = outcome(lambda: pointer.__setitem__(index, value))
        deleted = outcome(lambda: pointer.__delitem__(index))
        return read_before, written, outcome(lambda: pointer[index]), array[:], deleted

    assert not differences_per_type(ELEMENT_VALUES, index_pointer)


def test_null_and_incomplete_pointers():
    def run(m):
        null = m.POINTER(m.c_int)()
        results = [
            outcome(lambda: null[0]),
            outcome(lambda: null.__setitem__(0, 1)),
            outcome(lambda: null.__setitem__(0, 1.5)),
            outcome(lambda: null[1.0]),
            outcome(lambda: null.contents),
        ]
        incomplete = m.POINTER("later")
        early = incomplete()
        results.append(outcome(lambda: early[0]))
        m.SetPointerType(incomplete, m.c_int16)
        late = incomplete(m.c_int16(-3))
        results += [late[0], outcome(lambda: late.__setitem__(0, 2**16 + 5)), late[0]]
        results += [outcome(lambda: early[0]), outcome(lambda: early.__setitem__(0, 1))]
        return results

    expected, got = both(run)
    assert got == expected


def test_pointers_to_subclasses_and_swapped_types():
    def run(m):
        class MyInt(m.c_int):
            pass

        mine = m.pointer(MyInt(4))
        mine[0] = 5
        swapped = m.pointer(m.c_uint32.__ctype_be__(1))
        swapped[0] = 0x01020304
        return mine[0], mine.contents, swapped[0], bytes(swapped.contents)

    expected, got = both(run)
    assert got == expected


def test_arrays_of_every_length_reject_the_index_after_the_end():
    def run(m):
        results = []
        for length in (0, 1, 2, 7):
            array = (m.c_int * length)()
            for index in (length, -length - 1, length - 1, -length):
                results.append(outcome(lambda array=array, index=index: array[index]))
                results.append(
                    outcome(lambda array=array, index=index: array.__setitem__(index, 9))
                )
            results.append(array[:])
        return results

    expected, got = both(run)
    assert got == expected


# ---------------------------------------------------------------------------------------
# Aggregates beyond one scalar.


@pytest.mark.parametrize("pack", [None, 1, 2])
def test_unaligned_and_mixed_fields(pack):
    def run(m):
        namespace = {
            "_fields_": [
                ("a", m.c_uint8),
                ("b", m.c_int64),
                ("c", m.c_int16),
                ("d", m.c_double),
                ("e", m.c_bool),
                ("f", m.c_float),
                ("g", m.c_uint32),
                ("h", m.c_uint16),
            ]  # fmt: skip
        }
        if pack:
            namespace["_pack_"] = pack
        declared = type("Mixed", (m.Structure,), namespace)
        instance = declared()
        values = (255, -(2**63), -2, 1e-300, True, 3.5, 2**32 - 1, 0xFFFF)
        for name, value in zip("abcdefgh", values, strict=True):
            setattr(instance, name, value)
        before = bytes(instance)
        for name in "abcdefgh":
            setattr(instance, name, getattr(instance, name))
        offsets = [getattr(declared, name).offset for name in "abcdefgh"]
        return (
            m.sizeof(declared),
            offsets,
            before,
            bytes(instance),
            [getattr(instance, name) for name in "abcdefgh"],
        )

    expected, got = both(run)
    assert got == expected


@pytest.mark.parametrize("base", ["BigEndianStructure", "LittleEndianStructure"])
def test_byte_swapped_fields_and_types(base):
    def run(m):
        fields = [
            ("a", m.c_int16),
            ("b", m.c_uint32),
            ("c", m.c_double),
            ("d", m.c_float),
            ("e", m.c_int64),
            ("f", m.c_int8),
        ]
        declared = type("Swapped", (getattr(m, base),), {"_fields_": fields})
        instance = declared(-2, 0x01020304, 1.5, -0.25, -(2**40), -1)
        swapped_int = m.c_uint32.__ctype_be__(0x01020304)
        swapped_double = m.c_double.__ctype_be__()
        swapped_double.value = 2.5
        swapped_array = (m.c_int16.__ctype_be__ * 2)(1, -2)
        swapped_array[0] = 0x1234
        return (
            bytes(instance),
            [instance.a, instance.b, instance.c, instance.d, instance.e, instance.f],
            bytes(swapped_int),
            swapped_int.value,
            bytes(swapped_double),
            bytes(swapped_array),
            swapped_array[:],
        )

    expected, got = both(run)
    assert got == expected


def test_bit_fields():
    # Runs of one storage type separated by whole members: layouts on which stock 3.11
    # agrees with gcc (test_ctypes_structure.py compares the others with C).
    def run(m):
        fields = [
            ("a", m.c_uint, 3), ("b", m.c_int, 5), ("c", m.c_int), ("d", m.c_uint8, 1),
            ("e", m.c_uint8, 7), ("f", m.c_int16), ("g", m.c_int64, 33), ("h", m.c_int64, 31),
            ("i", m.c_bool, 1),
        ]  # fmt: skip
        declared = type("Bits", (m.Structure,), {"_fields_": fields})
        names = [field[0] for field in fields]
        layout = [(getattr(declared, name).offset, getattr(declared, name).size) for name in names]
        instance = declared()
        results = [m.sizeof(declared), layout]
        for value in (0, 1, -1, 7, 8, 15, 16, -16, -17, 2**32, 2**100, True, 1.5, None, "1"):
            for name in names:
                results.append(
                    outcome(lambda name=name, value=value: setattr(instance, name, value))
                )
                results.append(getattr(instance, name))
            results.append(bytes(instance))
        return results

    expected, got = both(run)
    assert got == expected


def test_unions_share_memory_between_fast_fields():
    def run(m):
        declared = type(
            "Overlay",
            (m.Union,),
            {
                "_fields_": [
                    ("d", m.c_double),
                    ("q", m.c_uint64),
                    ("i", m.c_int32),
                    ("b", m.c_bool),
                    ("f", m.c_float),
                    ("bytes", m.c_ubyte * 8),
                ]
            },
        )
        overlay = declared()
        results = []
        for name, value in [
            ("d", -1.5),
            ("q", 2**64 - 1),
            ("i", -2),
            ("b", 2),
            ("f", 0.1),
            ("q", 0x0200000000000000),
        ]:
            setattr(overlay, name, value)
            results.append(
                [overlay.d, overlay.q, overlay.i, overlay.b, overlay.f, overlay.bytes[:]]
            )
        return results

    expected, got = both(run)
    assert got == expected


def test_bool_storage_with_other_bytes_reads_as_stock_reads_it():
    def run(m):
        raw = bytearray(b"\x00\x01\x02\xff")
        declared = type("Flags", (m.Structure,), {"_fields_": [(n, m.c_bool) for n in "abcd"]})
        flags = declared.from_buffer(raw)
        array = (m.c_bool * 4).from_buffer(raw)
        single = m.c_bool.from_buffer(raw, 2)
        return [flags.a, flags.b, flags.c, flags.d], array[:], single.value

    expected, got = both(run)
    assert got == expected


def test_nested_aggregates_and_arrays_in_structures():
    def run(m):
        inner = type("Inner", (m.Structure,), {"_fields_": [("v", m.c_int16), ("w", m.c_double)]})
        outer = type(
            "Outer",
            (m.Structure,),
            {
                "_fields_": [
                    ("n", m.c_uint8),
                    ("inner", inner),
                    ("items", m.c_int32 * 3),
                    ("grid", (m.c_float * 2) * 2),
                ]
            },
        )
        instance = outer()
        instance.inner.v = -3
        instance.inner.w = 0.5
        instance.items[2] = -(2**31)
        instance.items[-3] = 2**32 + 1
        instance.grid[1][0] = 0.1
        points = (inner * 2)()
        points[1].v = 40000
        points[-1].w = -1
        return bytes(instance), instance.items[:], instance.grid[1][:], bytes(points)

    expected, got = both(run)
    assert got == expected


def test_structure_constructors():
    def run(m):
        base = type("Base", (m.Structure,), {"_fields_": [("a", m.c_int8), ("b", m.c_double)]})
        derived = type("Derived", (base,), {"_fields_": [("c", m.c_uint16), ("d", m.c_bool)]})
        union = type("Either", (m.Union,), {"_fields_": [("i", m.c_int32), ("f", m.c_float)]})
        attempts = [
            lambda: derived(1, 2.5, 3, 4),
            lambda: derived(1, c=70000),
            lambda: derived(-129, 2, 3, 4, 5),
            lambda: derived(1, a=2),
            lambda: derived(nonexistent=1),
            lambda: derived(1.5),
            lambda: derived(b=2**2000),
            lambda: union(-1),
            lambda: union(f=1.5),
            lambda: union(1, 2),
            lambda: base(*[1, 2]),
            lambda: base(IntSubclass(3), FloatSubclass(0.5)),
        ]
        return [outcome(lambda attempt=attempt: bytes(attempt())) for attempt in attempts]

    expected, got = both(run)
    assert got == expected


def test_subclasses_of_simple_types_give_instances():
    def run(m):
        class MyInt(m.c_int):
            pass

        class MyDouble(m.c_double):
            pass

        declared = type("Holder", (m.Structure,), {"_fields_": [("i", MyInt), ("d", MyDouble)]})
        holder = declared(5, 1.5)
        holder.i = 7
        array = (MyInt * 2)(1, 2)
        array[0] = 9
        instance = MyInt(3)
        instance.value = 11
        return holder.i, holder.d, array[0], array[:], instance, MyInt(True), bytes(holder)

    expected, got = both(run)
    assert got == expected


def test_char_and_wchar_arrays_are_not_scalars():
    def run(m):
        chars = (m.c_char * 4)()
        wides = (m.c_wchar * 4)()
        results = []
        for value in (b"a", 97, "a", b"ab", None, 1.5, 256, -1, True):
            results.append(outcome(lambda value=value: chars.__setitem__(1, value)))
            results.append(chars[1])
        for value in ("x", "☃", b"x", 120, "xy", None):
            results.append(outcome(lambda value=value: wides.__setitem__(2, value)))
            results.append(wides[2])
        chars.value = b"hi"
        wides.value = "yo"
        results += [chars.raw, chars.value, chars[:], wides.value, wides[:]]
        declared = type("Text", (m.Structure,), {"_fields_": [("c", m.c_char), ("w", m.c_wchar)]})
        text = declared()
        for value in (b"q", 113, "q", None):
            results.append(outcome(lambda value=value: setattr(text, "c", value)))
            results.append(outcome(lambda value=value: setattr(text, "w", value)))
            results.append((text.c, text.w))
        return results

    expected, got = both(run)
    assert got == expected


# ---------------------------------------------------------------------------------------
# Memory that moves or is shared.


def test_resized_arrays_and_values_write_where_the_memory_now_is():
    def run(m):
        array = (m.c_int * 2)(1, 2)
        m.resize(array, 32)
        array[1] = -5
        array[0] = 2**40 + 7
        value = m.c_double(1.0)
        m.resize(value, 24)
        value.value = -2.5
        small = m.c_uint8(3)
        m.resize(small, 64)
        small.value = 300
        declared = type("Grown", (m.Structure,), {"_fields_": [("x", m.c_int16)]})
        grown = declared(1)
        m.resize(grown, 40)
        grown.x = -1
        return (
            array[:],
            outcome(lambda: array[2]),
            outcome(lambda: array.__setitem__(2, 1)),
            m.string_at(m.addressof(array), 8),
            m.sizeof(array),
            value.value,
            m.string_at(m.addressof(value), 8),
            small.value,
            m.string_at(m.addressof(small), 1),
            grown.x,
            m.string_at(m.addressof(grown), 2),
        )

    expected, got = both(run)
    assert got == expected


def test_views_share_memory_with_their_base():
    def run(m):
        base = (m.c_uint8 * 16)()
        as_int = m.c_int32.from_buffer(base, 4)
        as_int.value = -2
        as_double = m.c_double.from_address(m.addressof(base) + 8)
        as_double.value = 1.0
        pointer = m.pointer(m.c_int16(5))
        pointer[0] = -7
        pointer.contents.value += 1
        cast = m.cast(base, m.POINTER(m.c_uint16))
        cast[1] = 0xABCD
        copy = m.c_int32.from_buffer_copy(bytes(base), 4)
        copy.value = 99
        return base[:], as_int.value, pointer[0], cast[0:3], copy.value, base[4:8]

    expected, got = both(run)
    assert got == expected


# ---------------------------------------------------------------------------------------
# Field descriptors used directly.


def descriptor_structures(m):
    fast = type("Fast", (m.Structure,), {"_fields_": [("a", m.c_int), ("b", m.c_double)]})
    generic = type("Generic", (m.Structure,), {"_fields_": [("a", m.c_char), ("b", m.c_char_p)]})
    large = type("Large", (m.Structure,), {"_fields_": [("items", m.c_int * 8)]})
    swapped = type("Swapped", (m.BigEndianStructure,), {"_fields_": [("a", m.c_int)]})
    return fast, generic, large, swapped


MISUSES = {
    "get, int": lambda m, s: s[0].a.__get__(5),
    "get, object": lambda m, s: s[0].b.__get__(object()),
    "get, None with owner": lambda m, s: s[0].a.__get__(None, s[0]) is s[0].a,
    "get, None without owner": lambda m, s: s[0].a.__get__(None),
    "get, the class": lambda m, s: s[0].a.__get__(s[0]),
    "get, generic field, int": lambda m, s: s[1].a.__get__(5),
    "get, byte-swapped field, int": lambda m, s: s[3].a.__get__(5),
    "get, other structure": lambda m, s: s[0].a.__get__(s[2]((1, 2, 3))),
    "get, other structure, second field": lambda m, s: s[0].b.__get__(s[2]((0, 0, 0, 1))),
    "get, simple instance": lambda m, s: s[0].a.__get__(m.c_int(7)),
    "get, array": lambda m, s: s[0].a.__get__((m.c_int * 4)(8, 9)),
    "set, int": lambda m, s: s[0].a.__set__(5, 1),
    "set, object": lambda m, s: s[0].b.__set__(object(), 1.0),
    "set, None": lambda m, s: s[0].a.__set__(None, 1),
    "set, the class": lambda m, s: s[0].a.__set__(s[0], 1),
    "set, generic field, int": lambda m, s: s[1].a.__set__(5, b"x"),
    "set, other structure": lambda m, s: written(s[2](), lambda o: s[0].a.__set__(o, -1)),
    "set, other structure, second field": lambda m, s: written(
        s[2](), lambda o: s[0].b.__set__(o, 2.5)
    ),
    "set, simple instance": lambda m, s: written(m.c_int64(), lambda o: s[0].a.__set__(o, 3)),
    "set, array": lambda m, s: written((m.c_int * 4)(), lambda o: s[0].a.__set__(o, 4)),
    "set, wrong value type": lambda m, s: s[0].a.__set__(s[0](), 1.5),
    "delete": lambda m, s: s[0].a.__delete__(s[0]()),
    "delete, int": lambda m, s: s[0].a.__delete__(5),
    "del attribute": lambda m, s: delattr(s[0](), "b"),
}


def written(target, action):
    action(target)
    return bytes(target)


@pytest.mark.parametrize("misuse", MISUSES)
def test_descriptor_misuse_agrees_with_stock(misuse):
    expected, got = both(lambda m: MISUSES[misuse](m, descriptor_structures(m)))
    assert got == expected


# ---------------------------------------------------------------------------------------
# The `value` descriptor and construction used in unusual ways.

VALUE_MISUSES = {
    "get, other simple type": lambda m: m.c_int.value.__get__(m.c_double(2.5)),
    "set, other simple type": lambda m: written_value(
        m.c_double(), lambda o: m.c_int.value.__set__(o, 5)
    ),
    "set, char pointer type": lambda m: m.c_int.value.__set__(m.c_char_p(), 5),
    "get, int": lambda m: m.c_int.value.__get__(5),
    "set, int": lambda m: m.c_int.value.__set__(5, 1),
    "get, structure": lambda m: m.c_int.value.__get__(descriptor_structures(m)[0]()),
    "delete": lambda m: delattr(m.c_int(1), "value"),
    "delete, double": lambda m: delattr(m.c_double(1), "value"),
    "__new__ ignores its arguments": lambda m: m.c_int.__new__(m.c_int, 5).value,
    "__new__ of an array type": lambda m: (m.c_int * 2).__new__(m.c_int * 2, 1, 2)[:],
    "__new__ with the wrong class": lambda m: m.c_int.__new__(m.c_double, 5).value,
    "__new__ of a non-subtype": lambda m: m.c_int.__new__(int),
    "__init__ again": lambda m: reinitialised(m.c_int(3), 7),
    "__init__ again, no argument": lambda m: reinitialised(m.c_double(3), None),
    "__init__ again, keyword": lambda m: m.c_int(3).__init__(value=9),
}


def written_value(target, action):
    action(target)
    return target.value


def reinitialised(instance, value):
    if value is None:
        instance.__init__()
    else:
        instance.__init__(value)
    return instance.value


@pytest.mark.parametrize("misuse", VALUE_MISUSES)
def test_value_descriptor_and_construction_misuse_agree_with_stock(misuse):
    expected, got = both(VALUE_MISUSES[misuse])
    assert got == expected


def test_subclasses_overriding_init_and_new():
    # Explicit base calls: stock 3.11 cannot create simple-type subclasses whose methods
    # use zero-argument super() (its metaclass mishandles the __class__ cell).
    def run(m):
        class Doubled(m.c_int):
            def __init__(self, value):
                m.c_int.__init__(self, value * 2)

        class Ignoring(m.c_int):
            def __init__(self, value):
                pass

        class Shifted(m.c_int16):
            def __new__(cls, value):
                instance = m.c_int16.__new__(cls)
                instance.value = value + 1
                return instance

        base = m.c_uint8 * 3

        class DoubledArray(base):
            def __init__(self, *values):
                base.__init__(self, *(value * 2 for value in values))

        return (
            Doubled(5).value,
            Ignoring(5).value,
            Shifted(2**15 - 1).value,
            DoubledArray(1, 200)[:],
            outcome(lambda: Doubled(1.5)),
        )

    expected, got = both(run)
    assert got == expected


def test_values_in_a_shared_library():
    import _ctypes_test

    def run(m):
        library = m.CDLL(_ctypes_test.__file__)
        integer = m.c_int.in_dll(library, "an_integer")
        get = library.get_an_integer
        get.restype = m.c_int
        original = integer.value
        try:
            integer.value = -(2**31)
            first = (integer.value, get())
            integer.value = 2**32 + 5
            return first, (integer.value, get())
        finally:
            integer.value = original

    expected, got = both(run)
    assert got == expected


def test_init_and_new_replaced_after_the_class_is_made():
    # Classes are called through their own `tp_vectorcall` (slots.rs `construct`), which
    # must notice a `__new__` or `__init__` set on the class later and defer to them.
    def run(m):
        class Later(m.c_int):
            pass

        class LaterNew(m.c_int):
            pass

        class Point(m.Structure):
            _fields_ = [("x", m.c_int), ("y", m.c_int)]

        before = Later(1).value, LaterNew(1).value, bytes(Point(1, 2))
        Later.__init__ = lambda self, value: m.c_int.__init__(self, value + 100)

        def new(cls, value):
            instance = m.c_int.__new__(cls)
            instance.value = -value
            return instance

        LaterNew.__new__ = new
        Point.__init__ = lambda self, *values: m.Structure.__init__(self, *values[::-1])
        after = Later(1).value, LaterNew(1).value, bytes(Point(1, 2))
        del Later.__init__, LaterNew.__new__, Point.__init__
        restored = Later(1).value, LaterNew(1).value, bytes(Point(1, 2))
        return before, after, restored

    expected, got = both(run)
    assert got == expected


def test_no_call_can_be_set_on_the_metaclasses_or_their_bases():
    # Classes are called through their own vectorcall, which a `__call__` set on a
    # metaclass (or a base of one) would not replace: none can be set, as on stock's.
    for m in (stock, ours):
        for base in type(m.c_int).__mro__[:-2] + type(m.Structure).__mro__[:-2]:
            with pytest.raises(TypeError):
                base.__call__ = lambda cls, *args: 0


def test_a_metaclass_call_override_is_what_instantiation_runs():
    def run(m):
        class Meta(type(m.c_int)):
            def __call__(cls, *args, **kwargs):
                return ("called", args, kwargs)

        class Counted(m.c_int, metaclass=Meta):
            pass

        return Counted(1), Counted(value=2), Counted()

    expected, got = both(run)
    assert got == expected


def test_constructors_called_every_way():
    def run(m):
        pair = m.c_int16 * 2
        point = type("Point", (m.Structure,), {"_fields_": [("x", m.c_int), ("y", m.c_int)]})
        pointer = m.POINTER(m.c_int)
        target = m.c_int(7)
        calls = [
            lambda: m.c_int(*[5]).value,
            lambda: m.c_int(**{}).value,
            lambda: m.c_int(value=5).value,
            lambda: m.c_int(5, extra=1).value,
            lambda: functools.partial(m.c_double, 2.5)().value,
            lambda: list(map(m.c_uint8, [1, 255, 256]))[2].value,
            lambda: pair(*(1, 2))[:],
            lambda: pair(1, 2, 3)[:],
            lambda: bytes(point(y=3)),
            lambda: bytes(point(*(1,), **{"y": 2})),
            lambda: pointer(target).contents.value,
            lambda: bool(pointer()),
            lambda: m.c_int("five"),
            lambda: m.c_char_p(b"text").value,
            lambda: m.c_int.__call__(3).value,
            lambda: type(m.c_int).__call__(m.c_int, 4).value,
        ]
        return [outcome(call) for call in calls]

    expected, got = both(run)
    assert got == expected


def test_an_incomplete_pointer_type_cannot_be_instantiated():
    def run(m):
        incomplete = m.POINTER("Later")
        complete = m.POINTER(m.c_int)
        return (
            outcome(incomplete),
            outcome(lambda: incomplete(m.c_int())),
            outcome(lambda: complete(m.c_int(), m.c_int())),
        )

    expected, got = both(run)
    assert got == expected


def test_construction_releases_what_it_was_given():
    # Objects made and freed in place (cdata.rs `place_in_new_object`, `dealloc_in_place`)
    # release their class, the objects they keep and failed constructors' arguments.
    def run(m):
        text = b"kept by an array" + bytes(8)
        value = 2**70
        cls = type("Pair", (m.c_char_p * 2,), {})
        point = type("Point", (m.Structure,), {"_fields_": [("x", m.c_int), ("y", m.c_int)]})
        before = [sys.getrefcount(text), sys.getrefcount(value), sys.getrefcount(cls)]
        point_count = sys.getrefcount(point)
        for _ in range(1000):
            array = cls(text, text)
            array[1] = text
            del array
            outcome(lambda: m.c_int(value))
            outcome(lambda: cls(value))
            # Keyword calls take `type.__call__` and pyo3's `tp_new`.
            point(x=1, y=2)
            point(1, y=value)
            outcome(lambda: m.c_int(x=value))
            outcome(lambda: cls(text, x=text))
        after = [sys.getrefcount(text), sys.getrefcount(value), sys.getrefcount(cls)]
        return after == before and sys.getrefcount(point) == point_count

    assert both(run) == [["ok", "<bool True>"]] * 2
