"""ctypes' private errno, raw memory, typed reads and writes, bit-fields, strings."""

import pytest
from jitctypes import _rawffi
from jitctypes._rawffi import CType, FuncPtr, Memory, layout, read, write

i32 = CType.scalar("i")


def test_errno_round_trip(rawffi_test, use_jit):
    fail = FuncPtr(
        rawffi_test.symbol("fail_with_errno"), [i32], i32, use_errno=True, use_jit=use_jit
    )
    current = FuncPtr(rawffi_test.symbol("current_errno"), [], i32, use_errno=True, use_jit=use_jit)
    _rawffi.set_errno(0)
    assert fail(42) == -1
    assert _rawffi.get_errno() == 42
    assert _rawffi.set_errno(7) == 42
    assert current() == 7, "the private errno is the C errno during the call"
    plain = FuncPtr(rawffi_test.symbol("fail_with_errno"), [i32], i32, use_jit=use_jit)
    plain(99)
    assert _rawffi.get_errno() == 7, "without use_errno the private copy is untouched"


@pytest.mark.parametrize(
    ("code", "value"),
    [("b", -5), ("B", 250), ("h", -300), ("H", 60000), ("i", -(2**31)), ("I", 2**32 - 1),
     ("l", -(2**63)), ("L", 2**64 - 1), ("q", 2**62), ("Q", 2**64 - 1), ("f", 0.25),
     ("d", -1e-300), ("g", 1e300), ("?", True), ("c", b"x"), ("u", "☃"), ("z", None),
     ("P", 0xDEADBEEF), ("Z", None), ("O", None)],
)  # fmt: skip
def test_typed_values_round_trip_in_memory(code, value):
    memory = Memory(16)
    for swapped in (False, True) if code in "bBhHiIlLqQfd" else (False,):
        ctype = CType.scalar(code, swapped)
        write(memory.address, ctype, value)
        assert read(memory.address, ctype) == value


def test_byte_order_of_swapped_scalars():
    memory = Memory(8)
    write(memory.address, CType.scalar("I", True), 0x01020304)
    assert memory.tobytes()[:4] == b"\x01\x02\x03\x04"
    assert read(memory.address, CType.scalar("I")) == 0x04030201


def test_integers_are_truncated_like_ctypes_and_floats_refused():
    memory = Memory(8)
    write(memory.address, CType.scalar("B"), 0x1FF)
    assert read(memory.address, CType.scalar("B")) == 0xFF
    with pytest.raises(TypeError, match="'float' object cannot be interpreted as an integer"):
        write(memory.address, i32, 1.5)
    with pytest.raises(TypeError):
        write(memory.address, CType.scalar("d"), "1.5")


def test_strings_written_as_pointers_are_kept_alive_by_the_caller():
    memory = Memory(8)
    keep = write(memory.address, CType.scalar("z"), b"kept")
    assert keep == b"kept"
    assert read(memory.address, CType.scalar("z")) == b"kept"
    keep = write(memory.address, CType.scalar("Z"), "wide ☃")
    assert isinstance(keep, Memory)
    assert read(memory.address, CType.scalar("Z")) == "wide ☃"


def test_bitfields_through_a_layout():
    u8, u16, i16 = CType.scalar("B"), CType.scalar("H"), CType.scalar("h")
    computed = layout("struct", [(u8, 3), (i16, 5), (u16, 9)])
    memory = Memory(computed.size)
    fields = computed.fields
    for (offset, _size, bits), ctype, value in zip(
        fields, (u8, i16, u16), (5, -7, 300), strict=True
    ):
        write(memory.address + offset, ctype, value, bits)
    for (offset, _size, bits), ctype, value in zip(
        fields, (u8, i16, u16), (5, -7, 300), strict=True
    ):
        assert read(memory.address + offset, ctype, bits) == value
    # gcc: a:3 at bits 0-2, b:5 at bits 3-7 of the first short, c:9 in the next short.
    assert computed.size == 4 and fields[2][0] == 2


def test_memory_helpers():
    memory = Memory(16)
    _rawffi.memset(memory.address, ord("a"), 8)
    _rawffi.memmove(memory.address + 8, memory.address, 4)
    assert memory.tobytes() == b"a" * 12 + b"\0" * 4
    assert _rawffi.string_at(memory.address) == b"a" * 12
    assert _rawffi.string_at(memory.address, 3) == b"aaa"
    wide = _rawffi.write(memory.address, CType.scalar("Z"), "hé")
    assert _rawffi.wstring_at(wide.address) == "hé"
    assert _rawffi.wstring_at(wide.address, 1) == "h"
