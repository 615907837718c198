"""Bad input raises the Python exception stock ctypes would raise; nothing crashes."""

import pytest
from jitctypes import _rawffi
from jitctypes._rawffi import CType, FuncPtr, Library, Memory, layout, read, write

i32, d = CType.scalar("i"), CType.scalar("d")


def test_unknown_type_code():
    with pytest.raises(ValueError, match="unknown type code"):
        CType.scalar("x")


def test_missing_library_and_symbol():
    with pytest.raises(OSError, match="libno-such-library.so"):
        Library("libno-such-library.so")
    with pytest.raises(OSError):
        _rawffi.dlopen("libno-such-library.so")
    with pytest.raises(AttributeError, match="no_such_symbol"):
        Library(None).symbol("no_such_symbol")
    with pytest.raises(OSError, match="no_such_symbol"):
        _rawffi.dlsym(Library(None).handle, "no_such_symbol")


def test_closed_library(rawffi_test):
    library = Library(None)
    library.close()
    with pytest.raises(ValueError, match="closed"):
        library.symbol("strlen")


def test_wrong_argument_count_and_types(rawffi_test, use_jit):
    fail = FuncPtr(rawffi_test.symbol("fail_with_errno"), [i32], i32, use_jit=use_jit)
    with pytest.raises(TypeError, match=r"takes 1 argument \(0 given\)"):
        fail()
    with pytest.raises(TypeError, match=r"takes 1 argument \(2 given\)"):
        fail(1, 2)
    with pytest.raises(TypeError):
        fail("one")
    with pytest.raises(TypeError):
        fail(1.0)
    strlen = FuncPtr(Library(None).symbol("strlen"), [CType.scalar("z")], CType.scalar("L"))
    with pytest.raises(TypeError, match="bytes or integer address expected instead of str"):
        strlen("text")
    with pytest.raises(TypeError):
        FuncPtr(Library(None).symbol("strlen"), [CType.scalar("b")], i32)(object())


def test_null_function_pointer():
    null = FuncPtr(0, [], i32)
    with pytest.raises(ValueError, match="NULL"):
        null()


def test_null_and_freed_memory():
    with pytest.raises(ValueError, match="NULL pointer access"):
        read(0, i32)
    with pytest.raises(ValueError, match="NULL pointer access"):
        write(0, i32, 1)
    memory = Memory(8)
    memory.free()
    with pytest.raises(ValueError, match="freed"):
        memory.address  # noqa: B018
    with pytest.raises(ValueError, match="freed"):
        memory.tobytes()
    memory.free()  # idempotent


def test_bad_signatures():
    with pytest.raises(TypeError, match="void"):
        FuncPtr(1, [CType.void()], i32)
    with pytest.raises(TypeError, match="array"):
        FuncPtr(1, [CType.array(i32, 4)], i32)
    with pytest.raises(TypeError, match="maximum"):
        FuncPtr(1, [i32] * 1025, i32)
    with pytest.raises(TypeError):
        FuncPtr(1, [CType.scalar("b")], i32, fixed_args=0)  # unpromoted variadic char


def test_bad_layouts():
    with pytest.raises(ValueError, match="_pack_"):
        layout("struct", [(i32, None)], pack=3)
    with pytest.raises(TypeError):
        layout("struct", [(d, 3)])
    with pytest.raises(ValueError):
        layout("struct", [(i32, 33)])
    with pytest.raises(ValueError):
        layout("struct", [(i32, 0)])
    with pytest.raises(ValueError, match="kind"):
        layout("enum", [])


def test_short_buffer_for_a_struct_by_value(jittest):
    pair = layout("struct", [(CType.scalar("q"), None), (d, None)]).ctype
    by_value = FuncPtr(jittest.symbol("S16LD_sum"), [pair], CType.scalar("q"))
    with pytest.raises(ValueError, match="8 bytes given, 16 needed"):
        by_value(b"12345678")
    with pytest.raises(TypeError):
        by_value(12)


def test_bitfields_only_on_integer_types():
    memory = Memory(16)
    for code in "gdzOcu":
        with pytest.raises(TypeError, match="integer or bool"):
            write(memory.address, CType.scalar(code), 1, (0, 8, 8))
        with pytest.raises(TypeError, match="integer or bool"):
            read(memory.address, CType.scalar(code), (0, 8, 8))


def test_byte_swapped_only_where_stock_has_it():
    for code in "zZPOg?u":
        with pytest.raises(ValueError, match="no byte-swapped form"):
            CType.scalar(code, True)


def test_memory_in_use_by_c_cannot_be_freed():
    memory, slot = Memory(16), Memory(8)
    keep = write(slot.address, CType.scalar("P"), memory)
    with pytest.raises(ValueError, match="in use"):
        memory.free()
    del keep
    memory.free()
    with pytest.raises(ValueError, match="freed"):
        write(slot.address, CType.scalar("P"), memory)


def test_a_string_result_pointing_into_an_argument_is_read_before_it_dies():
    wcschr = FuncPtr(Library(None).symbol("wcschr"), [CType.scalar("Z"), i32], CType.scalar("Z"))
    assert wcschr("a" * 300_000 + "xyz", ord("x")) == "xyz"


def test_python_api_results_and_errors_with_the_gil_kept():
    import sys

    api = Library(None)
    new_list = FuncPtr(
        api.symbol("PyList_New"), [CType.scalar("l")], CType.scalar("O"), release_gil=False
    )
    result = new_list(0)
    assert result == [] and sys.getrefcount(result) == 2  # the new reference is taken over
    as_long = FuncPtr(
        api.symbol("PyLong_AsLong"), [CType.scalar("O")], CType.scalar("l"), release_gil=False
    )
    assert as_long(42) == 42
    with pytest.raises(TypeError):
        as_long(None)


def test_bad_memory_requests():
    with pytest.raises(ValueError, match="power of two"):
        Memory(8, 3)
    memory = Memory(8)
    # Stock ctypes' string_at raises what PyBytes_FromStringAndSize says of such a size.
    with pytest.raises(SystemError, match="Negative size"):
        _rawffi.string_at(memory.address, -2)
    write(memory.address, i32, 0xD800)
    assert read(memory.address, CType.scalar("u")) == "\ud800"
