"""Type definitions (the work the metaclasses do once per class, in Rust since start-up was
measured: pybridge/src/classdef.rs) against stock ctypes in the same process: the errors
of bad `_fields_`, `_pack_`, `_length_`, `_type_` and `(name, dll)` prototypes, class and
message; and what good definitions produce (layout, buffer formats, element access)."""

import ctypes as stock  # noqa: I001 (after jitctypes.ctypes on purpose: both coexist)
import sys

import jitctypes.ctypes as ours
import pytest
from oracle import both


def structure(module, fields, **attributes):
    return type("S", (module.Structure,), {**attributes, "_fields_": fields(module)})


def raising_after_one(error):
    def fields(module):
        yield ("a", module.c_int)
        raise error

    return fields


BAD_FIELDS = {
    "not iterable": lambda m: 5,
    "a list item": lambda m: [["a", m.c_int]],
    "one item": lambda m: [("a",)],
    "four items": lambda m: [("a", m.c_int, 3, 4)],
    "name not str": lambda m: [(5, m.c_int)],
    "type not a class": lambda m: [("a", 5)],
    "type not ctypes": lambda m: [("a", int)],
    "second field bad": lambda m: [("a", m.c_int), ("b", float)],
    "abstract structure": lambda m: [("a", m.Structure)],
    "bits on double": lambda m: [("a", m.c_double, 3)],
    "bits on pointer": lambda m: [("a", m.c_char_p, 3)],
    "zero bits": lambda m: [("a", m.c_int, 0)],
    "too many bits": lambda m: [("a", m.c_int, 33)],
    "bits not int": lambda m: [("a", m.c_int, "3")],
    "huge bits": lambda m: [("a", m.c_int, 2**70)],
    "iteration raises TypeError": lambda m: raising_after_one(TypeError("boom"))(m),
    "iteration raises ValueError": lambda m: raising_after_one(ValueError("boom"))(m),
}


@pytest.mark.parametrize("fields", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_bad_fields_raise_stocks_error_and_message(fields):
    stock_outcome, our_outcome = both(lambda m: structure(m, fields), stock, ours)
    assert our_outcome == stock_outcome


@pytest.mark.parametrize("pack", [-1, True, "1", 1.0, 2**70, 0, 1, 2, 16])
def test_pack_is_checked_as_stock_checks_it(pack):
    def define(module):
        fields = [("a", module.c_char), ("b", module.c_int)]
        cls = type("S", (module.Structure,), {"_pack_": pack, "_fields_": fields})
        return module.sizeof(cls), cls.b.offset

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome[0] == stock_outcome[0]
    if stock_outcome[0] != "OverflowError":  # the messages of a too large int differ
        assert our_outcome == stock_outcome


def test_a_structure_cannot_contain_itself_and_a_used_type_is_final():
    def contain_itself(module):
        cls = type("S", (module.Structure,), {})
        cls._fields_ = [("s", cls)]

    def redefine_a_field_type(module):
        inner = type("Inner", (module.Structure,), {"_fields_": [("x", module.c_int)]})
        type("Outer", (module.Structure,), {"_fields_": [("inner", inner)]})
        inner._fields_ = [("y", module.c_int)]

    for action in (contain_itself, redefine_a_field_type):
        stock_outcome, our_outcome = both(action, stock, ours)
        assert our_outcome == stock_outcome


def describe(cls, module):
    """What a definition produced: size, alignment, each field's offset, size and value
    access, and the buffer its instances export."""
    names = [field[0] for field in getattr(cls, "_fields_", ())]
    fields = [(getattr(cls, name).offset, getattr(cls, name).size) for name in names]
    view = memoryview(cls())
    return module.sizeof(cls), module.alignment(cls), fields, view.format, view.shape, view.itemsize


GOOD_DEFINITIONS = {
    "scalars": lambda m: structure(m, lambda m: [("a", m.c_byte), ("b", m.c_double)]),
    "long codes": lambda m: structure(m, lambda m: [("a", m.c_long), ("b", m.c_ulong)]),
    "packed": lambda m: structure(m, lambda m: [("a", m.c_char), ("b", m.c_int)], _pack_=1),
    "bit-fields": lambda m: structure(m, lambda m: [("a", m.c_uint, 3), ("b", m.c_uint, 5)]),
    "arrays": lambda m: structure(m, lambda m: [("a", m.c_char * 3), ("b", m.c_int * 2 * 3)]),
    "pointers": lambda m: structure(
        m, lambda m: [("p", m.POINTER(m.c_int)), ("q", m.POINTER(m.c_int * 4)), ("s", m.c_char_p)]
    ),
    "nested": lambda m: structure(
        m, lambda m: [("inner", structure(m, lambda m: [("x", m.c_short)]) * 2), ("y", m.c_int)]
    ),
    "union": lambda m: type("U", (m.Union,), {"_fields_": [("a", m.c_int), ("b", m.c_double)]}),
    "big endian": lambda m: type(
        "B", (m.BigEndianStructure,), {"_fields_": [("a", m.c_int), ("b", m.c_short)]}
    ),
    "array of structures": lambda m: structure(m, lambda m: [("x", m.c_float)]) * 3,
    "two-dimensional array": lambda m: m.c_double * 2 * 3,
    "pointer to array": lambda m: m.POINTER(m.c_short * 5),
    "pointer to pointer": lambda m: m.POINTER(m.POINTER(m.c_byte)),
    "function pointer": lambda m: m.CFUNCTYPE(m.c_int, m.c_int),
}


@pytest.mark.parametrize("define", GOOD_DEFINITIONS.values(), ids=GOOD_DEFINITIONS.keys())
def test_definitions_lay_out_and_export_what_stocks_do(define):
    stock_outcome, our_outcome = both(lambda m: describe(define(m), m), stock, ours)
    assert our_outcome == stock_outcome


def test_fields_follow_those_of_a_base_structure():
    def define(module):
        base = structure(module, lambda m: [("a", m.c_char), ("b", m.c_int)])
        derived = type("D", (base,), {"_fields_": [("c", module.c_char), ("d", module.c_int)]})
        value = derived(b"x", 1, b"y", 2)
        return describe(derived, module), value.a, value.b, value.c, value.d

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome == stock_outcome


def test_char_arrays_read_as_bytes_and_other_arrays_as_views():
    def define(module):
        chars = structure(module, lambda m: [("text", m.c_char * 4), ("ints", m.c_int * 2)])
        value = chars(b"abc", (1, 2))
        return value.text, list(value.ints), (module.c_char * 3)(b"x", b"y").value

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome == stock_outcome


BAD_ARRAYS = {
    "no length": lambda m: {"_type_": m.c_int},
    "no type": lambda m: {"_length_": 3},
    "length str": lambda m: {"_type_": m.c_int, "_length_": "3"},
    "length negative": lambda m: {"_type_": m.c_int, "_length_": -1},
    "length 2**63": lambda m: {"_type_": m.c_int, "_length_": 2**63},
    "length bool": lambda m: {"_type_": m.c_int, "_length_": True},
    "type int": lambda m: {"_type_": int, "_length_": 3},
    "type instance": lambda m: {"_type_": 5, "_length_": 3},
    "type abstract": lambda m: {"_type_": m.Structure, "_length_": 3},
}


@pytest.mark.parametrize("namespace", BAD_ARRAYS.values(), ids=BAD_ARRAYS.keys())
def test_array_classes_are_checked_as_stock_checks_them(namespace):
    def define(module):
        return module.sizeof(type("A", (module.Array,), namespace(module)))

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome == stock_outcome


def test_pointer_types_are_checked_and_completed_as_stocks():
    def bad_target(module):
        type("P", (module._Pointer,), {"_type_": 5})

    def completed_later(module):
        incomplete = module.POINTER("Later")
        later = structure(module, lambda m: [("next", incomplete), ("x", m.c_int)])
        module.SetPointerType(incomplete, later)
        value = later(None, 7)
        value.next = module.pointer(later(None, 8))
        return value.next.contents.x, memoryview(incomplete()).format

    for action in (bad_target, completed_later):
        stock_outcome, our_outcome = both(action, stock, ours)
        assert our_outcome == stock_outcome


LIBRARY_SPECS = {
    "str name": lambda lib: (("strlen", lib),),
    "bytes name": lambda lib: ((b"strlen", lib),),
    "one item": lambda lib: (("strlen",),),
    "int name": lambda lib: ((5, lib),),
    "missing symbol": lambda lib: (("no_such_symbol_here", lib),),
    "no handle": lambda lib: (("strlen", object()),),
    "handle not int": lambda lib: (("strlen", type("L", (), {"_handle": "1"})()),),
    "paramflags": lambda lib: (("strlen", lib), ((1, "text"),)),
    "paramflags None": lambda lib: (("strlen", lib), None),
    "paramflags not tuple": lambda lib: (("strlen", lib), [(1,)]),
    "paramflags length": lambda lib: (("strlen", lib), ((1,), (1,))),
}


@pytest.mark.parametrize("arguments", LIBRARY_SPECS.values(), ids=LIBRARY_SPECS.keys())
def test_prototypes_from_a_library_as_stocks(arguments):
    def define(module):
        prototype = module.CFUNCTYPE(module.c_size_t, module.c_char_p)
        function = prototype(*arguments(module.CDLL(None)))
        return function(b"four"), function._objects is not None

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome == stock_outcome


@pytest.mark.skipif(sys.version_info < (3, 13), reason="_align_ is honoured from 3.13 on")
def test_forced_alignment_as_stocks():
    def define(module):
        cls = structure(module, lambda m: [("a", m.c_char)], _align_=16)
        return module.sizeof(cls), module.alignment(cls)

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome == stock_outcome


class Index:
    """An object that is an int only through `__index__`."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


MORE_DEFINITIONS = {
    # A metaclass may change the namespace: the class's own dict is what counts.
    "fields injected by a metaclass": lambda m: _injected_fields(m),
    "bits through __index__": lambda m: (
        type(
            "S", (m.Structure,), {"_fields_": [("a", m.c_int, Index(3)), ("b", m.c_int, 5)]}
        ).a.size
    ),
    "_pack_ through __index__": lambda m: (lambda S: (m.sizeof(S), S.b.offset))(
        type(
            "S",
            (m.Structure,),
            {"_pack_": Index(1), "_fields_": [("a", m.c_char), ("b", m.c_double)]},
        )
    ),
    "a set as _fields_": lambda m: type("S", (m.Structure,), {"_fields_": {("a", m.c_int)}}),
    "a NUL in a field name": lambda m: (
        memoryview(type("S", (m.Structure,), {"_fields_": [("a\0b", m.c_int)]})()).format
    ),
    "a pointer type with _type_ None": lambda m: type("P", (m._Pointer,), {"_type_": None}),
    "an array class of 2**61 ints": lambda m: type(
        "A", (m.Array,), {"_type_": m.c_int, "_length_": 2**61}
    ),
    "an array class of -2**64 ints": lambda m: type(
        "A", (m.Array,), {"_type_": m.c_int, "_length_": -(2**64)}
    ),
    "c_int * 2**61": lambda m: m.c_int * 2**61,
    "c_int * 2**70": lambda m: m.c_int * 2**70,
    "c_int * -1": lambda m: m.c_int * -1,
    "an array class of 2**64 ints": lambda m: type(
        "A", (m.Array,), {"_type_": m.c_int, "_length_": 2**64}
    ),
}


def _injected_fields(module):
    class Injecting(type(module.Structure)):
        def __new__(mcls, name, bases, namespace):
            namespace = dict(namespace)
            namespace["_fields_"] = [("a", module.c_int), ("b", module.c_double)]
            return super().__new__(mcls, name, bases, namespace)

    class S(module.Structure, metaclass=Injecting):
        pass

    return module.sizeof(S), S(1, 2.0).b


@pytest.mark.parametrize("define", MORE_DEFINITIONS.values(), ids=MORE_DEFINITIONS.keys())
def test_more_definitions_as_stock(define):
    stock_outcome, our_outcome = both(
        lambda m: (lambda result: result if not isinstance(result, type) else "a class")(define(m)),
        stock,
        ours,
    )
    assert our_outcome == stock_outcome


def test_character_arrays_convert_in_fields_only():
    def read(module):
        class CC(module.c_char):
            pass

        class S(module.Structure):
            _fields_ = [("names", module.c_char * 8 * 3), ("sub", CC * 4)]

        value = S()
        value.names[1].value = b"bob"
        value.sub = b"ab"
        nested = (module.c_char * 4 * 2)()
        pointed = module.pointer((module.c_char * 3)(b"a"))
        return (
            value.names[1].value,
            type(value.names[1]).__name__,
            value.sub,
            type(nested[0]).__name__,
            type(nested[0:1][0]).__name__,
            type(pointed[0]).__name__,
            (CC * 3)(b"a").value,
        )

    stock_outcome, our_outcome = both(read, stock, ours)
    assert our_outcome == stock_outcome


LIBRARY_EDGES = {
    "three items": lambda m, lib: (("strlen", lib, 3),),
    "RTLD_NEXT handle": lambda m, lib: (("strlen", type("L", (), {"_handle": -1})()),),
    "huge handle": lambda m, lib: (("strlen", type("L", (), {"_handle": 2**70})()),),
    "NUL in the name": lambda m, lib: (("strlen\0xyz", lib),),
    "paramflags without argtypes": lambda m, lib: (("strlen", lib), ((1, "text"),)),
}


@pytest.mark.parametrize("arguments", LIBRARY_EDGES.values(), ids=LIBRARY_EDGES.keys())
def test_prototype_from_library_edges_as_stock(arguments):
    def define(module):
        no_argtypes = type(
            "F", (module._CFuncPtr,), {"_flags_": module._FUNCFLAG_CDECL, "_restype_": module.c_int}
        )
        function = no_argtypes(*arguments(module, module.CDLL(None)))
        return function(b"four")

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome == stock_outcome


@pytest.mark.skipif(sys.version_info < (3, 13), reason="types are set up in __init__ from 3.13")
def test_a_class_made_by_the_metaclass_new_alone_is_abstract():
    def define(module):
        meta = type(module.c_int)
        made = meta.__new__(meta, "X", (module.c_int,), {"_type_": "i"})
        try:
            made()
        except TypeError as error:
            abstract = str(error)
        meta.__init__(made, "X", (module.c_int,), {"_type_": "i"})
        try:
            meta.__init__(made, "X", (module.c_int,), {"_type_": "i"})
        except SystemError as error:
            again = str(error)
        return abstract, made(5).value, again

    stock_outcome, our_outcome = both(define, stock, ours)
    assert our_outcome == stock_outcome
