"""jitctypes._ctypes pointers against stock ctypes in the same process: `pointer`,
`POINTER` and its cache, `contents`, indexing and slicing, NULL access, keep-alive,
incomplete types completed later, and pointer fields of structures."""

import ctypes as stock

import pytest
from jitctypes import _ctypes as ours
from oracle import both as compare
from oracle import simple


def _through_pointer(module):
    value = simple(module, "i")(42)
    target = module.pointer(value)
    target[0] = 7
    return value.value, target.contents.value, bool(target), module.sizeof(target)


def _array_through_pointer(module):
    c_int = simple(module, "i")
    array = (c_int * 4)(10, 20, 30, 40)
    walker = module.POINTER(c_int)(c_int.from_address(module.addressof(array)))
    return walker[2], walker[1:3], walker[3:0:-1]


def _char_pointer_slice(module):
    c_char = simple(module, "c")
    text = (c_char * 6)()
    text.value = b"hello"
    return module.POINTER(c_char)(c_char.from_address(module.addressof(text)))[0:5]


def _keeps_what_the_target_keeps(module):
    text = simple(module, "z")(b"kept")
    holder = module.pointer(text)
    again = module.pointer(holder)
    return sorted(holder._objects), sorted(again._objects), holder.contents.value


SCENARIOS = {
    "through a pointer": _through_pointer,
    "array through a pointer": _array_through_pointer,
    "char slices are bytes": _char_pointer_slice,
    "NULL contents": lambda m: m.POINTER(simple(m, "i"))().contents,
    "NULL index": lambda m: m.POINTER(simple(m, "i"))()[0],
    "NULL is false": lambda m: bool(m.POINTER(simple(m, "i"))()),
    "slice without stop": lambda m: m.pointer(simple(m, "i")(1))[0:],
    "other ctypes contents": lambda m: setattr(
        m.pointer(simple(m, "i")()), "contents", simple(m, "h")()
    ),
    "non-ctypes contents": lambda m: setattr(m.pointer(simple(m, "i")()), "contents", 5),
    "not a type": lambda m: m.POINTER(5),
    "cached": lambda m: (lambda t: m.POINTER(t) is m.POINTER(t))(simple(m, "d")),
    "keeps its target": lambda m: sorted(m.pointer(simple(m, "i")(3))._objects),
    "keeps what its target keeps": _keeps_what_the_target_keeps,
    "pointer of a non-ctypes object": lambda m: m.pointer(5),
    "pointer of a class": lambda m: m.pointer(simple(m, "i")),
    "pointer of an array": lambda m: list(m.pointer((simple(m, "i") * 3)(1, 2, 3)).contents),
    "pointer of a pointer": lambda m: m.pointer(m.pointer(simple(m, "i")(4)))[0][0],
    "an array's pointer keeps what the array keeps": lambda m: sorted(
        m.pointer((simple(m, "i") * 3)())._objects
    ),
    "pointer() with no argument": lambda m: m.pointer(),
    "pointer() with a keyword": lambda m: m.pointer(obj=simple(m, "i")()),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_matches_stock(name):
    expected, got = compare(SCENARIOS[name], stock, ours)
    assert got == expected


def test_incomplete_pointer_types_and_linked_structures():
    c_int = simple(ours, "i")

    class Node(ours.Structure):
        pass

    link = ours.POINTER(Node)
    Node._fields_ = [("value", c_int), ("next", link)]
    first, second = Node(1), Node(2)
    first.next = ours.pointer(second)
    assert first.next.contents.value == 2 and first.next[0].value == 2
    first.next.contents.value = 5
    assert second.value == 5
    incomplete = ours.POINTER("Later")
    with pytest.raises(TypeError, match="has no _type_"):
        incomplete()
    incomplete.set_type(c_int)
    assert incomplete(c_int(9)).contents.value == 9
