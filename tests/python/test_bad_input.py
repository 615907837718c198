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
