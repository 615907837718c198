"""jitctypes._ctypes simple types against stock ctypes, the oracle, in the same process:
class creation, sizes, `.value` conversions and their exceptions, `repr`, `bool`,
byte-swapped variants, `from_address`, `byref`. (Issue 4, first part.)"""

import ctypes as stock

import pytest
from jitctypes import _ctypes as ours
from oracle import outcome
from oracle import simple as simple_type

CODES = "cbBhHiIlLqQfdg?uzZPO"
VALUES = [
    0, 1, -1, 255, 2**31, -(2**63), 2**64 + 5, 1.5, -2.25, True, None, b"x", b"", b"ab",
    bytearray(b"y"), "s", "", "ab", "☃", object, 3 + 4j,
]  # fmt: skip


@pytest.mark.parametrize("code", CODES)
def test_sizes_and_alignments(code):
    assert ours.sizeof(simple_type(ours, code)) == stock.sizeof(simple_type(stock, code))
    assert ours.alignment(simple_type(ours, code)) == stock.alignment(simple_type(stock, code))


@pytest.mark.parametrize("code", CODES)
def test_value_conversions_and_errors(code):
    stock_type, our_type = simple_type(stock, code), simple_type(ours, code)
    for value in VALUES:
        if code in "zZ" and isinstance(value, int) and value not in (0, False):
            continue  # an integer address: reading `.value` would dereference garbage
        expected = outcome(lambda: stock_type(value).value)  # noqa: B023
        got = outcome(lambda: our_type(value).value)  # noqa: B023
        if code == "O" and expected[0] == "ok":
            assert got == ("ok", value)
            continue
        assert got[0] == expected[0], f"{code}({value!r}): {got} vs stock {expected}"
        if expected[0] == "ok":
            assert got == expected, f"{code}({value!r})"


@pytest.mark.parametrize("code", "bBhHiIlLqQfd?")
def test_repr_and_bool(code):
    for value in (0, 1, 100):
        assert repr(simple_type(ours, code)(value)).replace("jitctypes", "") == repr(
            simple_type(stock, code)(value)
        )
        assert bool(simple_type(ours, code)(value)) == bool(simple_type(stock, code)(value))


def test_user_subclasses_keep_their_instances():
    class Ours(simple_type(ours, "i")):
        pass

    class Stock(simple_type(stock, "i")):
        pass

    assert repr(Ours(3)).startswith("<Ours object at 0x")
    assert repr(Stock(3)).startswith("<Stock object at 0x")
    assert isinstance(Ours(3).__ctypes_from_outparam__(), Ours)
    assert simple_type(ours, "i")(3).__ctypes_from_outparam__() == 3


def test_class_definition_errors_match():
    for namespace in ({}, {"_type_": 5}, {"_type_": "x"}, {"_type_": "ii"}):
        expected = outcome(lambda: type("T", (stock._SimpleCData,), namespace))  # noqa: B023
        got = outcome(lambda: type("T", (ours._SimpleCData,), namespace))  # noqa: B023
        assert got == expected
    assert outcome(ours._SimpleCData) == outcome(stock._SimpleCData)


def test_byte_swapped_types():
    big = simple_type(ours, "I").__ctype_be__
    value = big(0x01020304)
    assert value.value == 0x01020304
    little = simple_type(ours, "I")
    assert little.from_address(ours.addressof(value)).value == 0x04030201
    assert simple_type(ours, "b").__ctype_be__ is not None


def test_from_address_and_byref_share_memory():
    c_int = simple_type(ours, "i")
    owner = c_int(42)
    view = c_int.from_address(ours.addressof(owner))
    assert view.value == 42 and not view._b_needsfree_ and owner._b_needsfree_
    view.value = 7
    assert owner.value == 7
    reference = ours.byref(owner)
    assert reference._obj is owner
    with pytest.raises(TypeError, match="byref"):
        ours.byref(5)
    with pytest.raises(TypeError):
        ours.addressof(5)
    with pytest.raises(TypeError):
        ours.sizeof(5)
    assert ours.sizeof(owner) == 4


class _Library:
    """What `in_dll` needs of a `CDLL`: its handle."""

    def __init__(self, handle: int):
        self._handle = handle


BUFFER_SCENARIOS = {
    "from_buffer": lambda m: simple_type(m, "i").from_buffer(bytearray(b"\x01\x02\x00\x00")).value,
    "from_buffer offset": lambda m: (
        simple_type(m, "h").from_buffer(bytearray(b"\0\0\7\0"), 2).value
    ),
    "from_buffer read-only": lambda m: simple_type(m, "i").from_buffer(b"1234"),
    "from_buffer too small": lambda m: simple_type(m, "q").from_buffer(bytearray(4)),
    "from_buffer negative offset": lambda m: simple_type(m, "b").from_buffer(bytearray(4), -1),
    "from_buffer keeps the buffer": lambda m: (
        type(simple_type(m, "i").from_buffer(bytearray(4))._objects).__name__
    ),
    "from_buffer_copy": lambda m: simple_type(m, "I").from_buffer_copy(b"\xff\0\0\1").value,
    "from_buffer_copy too small": lambda m: simple_type(m, "d").from_buffer_copy(b"12", 1),
    "in_dll missing": lambda m: simple_type(m, "i").in_dll(
        _Library(stock.CDLL(None)._handle), "no_such_symbol_here"
    ),
}


@pytest.mark.parametrize("name", sorted(BUFFER_SCENARIOS))
def test_buffers_and_symbols_match_stock(name):
    assert outcome(lambda: BUFFER_SCENARIOS[name](ours)) == outcome(
        lambda: BUFFER_SCENARIOS[name](stock)
    )


def test_from_buffer_shares_memory_and_in_dll_finds_variables():
    data = bytearray(4)
    view = simple_type(ours, "i").from_buffer(data)
    view.value = 0x01020304
    assert data == bytearray(b"\x04\x03\x02\x01")
    handle = stock.CDLL(None)._handle
    ours_stdout = simple_type(ours, "P").in_dll(_Library(handle), "stdout").value
    assert ours_stdout == stock.c_void_p.in_dll(stock.CDLL(None), "stdout").value
