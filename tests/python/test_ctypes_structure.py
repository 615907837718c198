"""jitctypes._ctypes structures and unions against stock ctypes in the same process:
layout, field values and descriptors, bit-fields, `_pack_`, `_anonymous_`, nested
aggregates sharing memory, keep-alive in `_objects`, and the errors of bad `_fields_`."""

import ctypes as stock

import pytest
from jitctypes import _ctypes as ours
from jitctypes import _rawffi
from jitctypes._rawffi import CType, FuncPtr, Memory

CODES = "bBhHiIlLqQfd?cz"


def simple_types(module) -> dict[str, type]:
    return {code: type(f"t_{code}", (module._SimpleCData,), {"_type_": code}) for code in CODES}


STOCK, OURS = simple_types(stock), simple_types(ours)


def declare(module, types, kind, fields, **attributes):
    base = module.Union if kind == "union" else module.Structure
    resolved = [(name, types[code], *rest) for name, code, *rest in fields]
    return type("Decl", (base,), {**attributes, "_fields_": resolved})


DECLARATIONS = [
    ("struct", [("a", "b"), ("b", "i"), ("c", "d")], {}),
    ("struct", [("a", "c"), ("b", "q"), ("c", "h")], {"_pack_": 1}),
    ("struct", [("a", "c"), ("b", "q"), ("c", "h")], {"_pack_": 2}),
    ("struct", [("a", "c"), ("b", "z"), ("c", "?")], {}),
    ("union", [("a", "c"), ("b", "q"), ("c", "f")], {}),
    ("struct", [("a", "B", 3), ("b", "B", 5), ("c", "i")], {}),
]

# Bit-field declarations where stock 3.11 is wrong against gcc: compared with compiled C
# (tests/clib/c/rawffi_test.c) instead. Values per field, written by C and by jitctypes.
GCC_BITFIELDS = {
    "bits_i3_i5_h4": ("struct", [("a", "i", 3), ("b", "i", 5), ("c", "h", 4)], (-3, 11, 5)),
    "bits_b4_b4_u24": ("struct", [("a", "B", 4), ("b", "B", 4), ("c", "I", 24)], (9, 6, 2**23 + 5)),
    "bits_h4_h4_i24_h4": (
        "struct",
        [("a", "h", 4), ("b", "h", 4), ("c", "i", 24), ("d", "h", 4)],
        (-8, 7, -(2**23), 3),
    ),
    "bits_q33_q31": ("struct", [("a", "Q", 33), ("b", "Q", 31)], (2**33 - 1, 2**30 + 1)),
    "bits_union_i7_h3": ("union", [("a", "i", 7), ("b", "h", 3)], (-50,)),
}


@pytest.mark.parametrize("name", sorted(GCC_BITFIELDS))
def test_bitfields_follow_gcc_where_stock_does_not(rawffi_test, name):
    kind, fields, values = GCC_BITFIELDS[name]
    declared = declare(ours, OURS, kind, fields)
    size_t, pointer, long = CType.scalar("L"), CType.scalar("P"), CType.scalar("l")
    assert ours.sizeof(declared) == FuncPtr(rawffi_test.symbol(f"{name}_size"), [], size_t)()
    assert ours.alignment(declared) == FuncPtr(rawffi_test.symbol(f"{name}_align"), [], size_t)()
    by_c = Memory(ours.sizeof(declared))
    padded = list(values) + [0] * (4 - len(values))
    FuncPtr(rawffi_test.symbol(f"set_{name}"), [pointer] + [long] * 4, None)(by_c, *padded)
    by_us = declared()
    for (field_name, *_), value in zip(fields, values, strict=False):
        setattr(by_us, field_name, value)
        assert getattr(by_us, field_name) == value
    copied = Memory(ours.sizeof(declared))
    _rawffi.memmove(copied.address, ours.addressof(by_us), ours.sizeof(declared))
    assert copied.tobytes() == by_c.tobytes()


@pytest.mark.parametrize(("kind", "fields", "attributes"), DECLARATIONS)
def test_layout_and_field_descriptors_match_stock(kind, fields, attributes):
    expected = declare(stock, STOCK, kind, fields, **attributes)
    got = declare(ours, OURS, kind, fields, **attributes)
    assert ours.sizeof(got) == stock.sizeof(expected)
    assert ours.alignment(got) == stock.alignment(expected)
    for name, *_ in fields:
        ours_field, stock_field = getattr(got, name), getattr(expected, name)
        assert (ours_field.offset, ours_field.size) == (stock_field.offset, stock_field.size)
        assert repr(ours_field).replace("t_", "") == repr(stock_field).replace("t_", "")


@pytest.mark.parametrize(("kind", "fields", "attributes"), DECLARATIONS)
def test_field_values_and_bytes_match_stock(kind, fields, attributes):
    expected = declare(stock, STOCK, kind, fields, **attributes)()
    got = declare(ours, OURS, kind, fields, **attributes)()
    for value in (1, -3, 200, 2**40 + 7):
        for name, code, *_ in fields:
            sample = {"c": b"x", "z": b"text", "f": 1.5, "d": -2.5, "?": True}.get(code, value)
            setattr(expected, name, sample)
            setattr(got, name, sample)
            assert getattr(got, name) == getattr(expected, name), name
        size = stock.sizeof(expected)
        ours_bytes = ours.sizeof(got) and bytes(
            (stock.c_char * size).from_address(ours.addressof(got))
        )
        stock_bytes = bytes((stock.c_char * size).from_address(stock.addressof(expected)))
        if "z" not in [code for _, code, *_ in fields]:
            assert ours_bytes == stock_bytes


def test_nested_structures_share_memory_and_keep_objects():
    class Point(ours.Structure):
        _fields_ = [("x", OURS["i"]), ("y", OURS["i"])]

    class Named(ours.Structure):
        _fields_ = [("at", Point), ("name", OURS["z"])]

    named = Named((1, 2), b"origin")
    assert (named.at.x, named.at.y, named.name) == (1, 2, b"origin")
    view = named.at
    view.x = 10
    assert named.at.x == 10 and view._b_base_ is named
    # As stock: the tuple became a Point whose (empty) kept objects are kept under "0".
    assert named._objects == {"0": {}, "1": b"origin"}
    named.at = Point(5, 6)
    assert (named.at.x, named.at.y) == (5, 6)
    with pytest.raises(TypeError, match="incompatible types"):
        named.at = Named()
    with pytest.raises(TypeError, match="expected Point instance, got int"):
        named.at = 5


def test_anonymous_members():
    class Inner(ours.Union):
        _fields_ = [("i", OURS["i"]), ("f", OURS["f"])]

    class Outer(ours.Structure):
        _anonymous_ = ("u",)
        _fields_ = [("tag", OURS["b"]), ("u", Inner)]

    outer = Outer()
    outer.i = 7
    assert outer.u.i == 7 and Outer.i.offset == 4


@pytest.mark.parametrize(
    "anonymous,field_code",
    [(("x",), None), (b"\x00", None), (5, None), (("a",), "i"), ("a", "i")],
)
def test_bad_anonymous_members_as_stock(anonymous, field_code):
    def define(module, types):
        fields = [("a", types[field_code])] if field_code else []
        type("Bad", (module.Structure,), {"_anonymous_": anonymous, "_fields_": fields})

    def outcome(module, types):
        try:
            define(module, types)
        except Exception as error:  # comparing exceptions is the point
            return type(error).__name__, str(error)
        return "ok"

    assert outcome(ours, OURS) == outcome(stock, STOCK)


def test_initializers_and_finality_match_stock():
    for module, types in ((stock, STOCK), (ours, OURS)):
        point = type("P", (module.Structure,), {"_fields_": [("x", types["i"]), ("y", types["i"])]})
        assert (point(y=3).x, point(y=3).y) == (0, 3)
        with pytest.raises(TypeError, match="too many initializers"):
            point(1, 2, 3)
        with pytest.raises(AttributeError, match="_fields_ is final"):
            point._fields_ = []
        later = type("L", (module.Structure,), {})
        assert module.sizeof(later) == 0
        later._fields_ = [("a", types["q"])]
        assert module.sizeof(later) == 8


@pytest.mark.parametrize(
    "fields",
    [
        [("a",)],
        [("a", 5)],
        [(5, "i")],
        [("a", "d", 3)],
        [("a", "i", 0)],
        [("a", "i", 33)],
        [("a", "z", 3)],
    ],
)
def test_bad_fields_raise_what_stock_raises(fields):
    def resolve(types):
        return [
            tuple(types.get(part, part) if k == 1 and isinstance(part, str) else part
                  for k, part in enumerate(field))
            for field in fields
        ]  # fmt: skip

    with pytest.raises(Exception) as stock_error:
        type("S", (stock.Structure,), {"_fields_": resolve(STOCK)})
    with pytest.raises(Exception) as ours_error:
        type("S", (ours.Structure,), {"_fields_": resolve(OURS)})
    assert type(ours_error.value) is type(stock_error.value)
