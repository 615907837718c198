"""Stubs are compiled only for functions called often (`JITCTYPES_COMPILE_AFTER`): before
that, calls go through libffi; a signature compiled for already is used at once."""

import jitctypes
import jitctypes.ctypes as ours
import pytest
from jitctypes import _rawffi

pytestmark = pytest.mark.skipif(
    not _rawffi.jit_enabled(), reason="compilation is what is tested: the JIT is switched off"
)

WAIT = 5


@pytest.fixture
def waiting():
    _rawffi.set_compile_after(WAIT)
    yield
    _rawffi.set_compile_after(1)  # the suite's setting (conftest.py)


def declare(path, name, restype, argtypes):
    function = getattr(ours.CDLL(path), name)
    function.restype, function.argtypes = restype, argtypes
    return function


def entry_calls(signature: str) -> int:
    return jitctypes.stats()["signatures"].get(signature, {}).get("entry_stub_calls", 0)


def test_a_function_is_compiled_for_after_the_waiting_calls(waiting, c_library_paths):
    # A signature no other test uses, so that nothing is compiled for it yet.
    signature = "fn(u16, u16, u16) -> u16"
    assert not jitctypes.stats()["signatures"].get(signature, {}).get("entry_stubs")
    add3 = declare(c_library_paths["jittest"], "add3_u16", ours.c_uint16, [ours.c_uint16] * 3)
    stubs_before = jitctypes.stats()["stub_cache"]["stubs"]
    results = [add3(k, 1, 2) for k in range(WAIT)]
    assert results == [k + 3 for k in range(WAIT)]
    assert jitctypes.stats()["stub_cache"]["stubs"] == stubs_before, "compiled too early"
    assert entry_calls(signature) == 0
    results = [add3(k, 1, 2) for k in range(WAIT, 4 * WAIT)]
    assert results == [k + 3 for k in range(WAIT, 4 * WAIT)]
    assert jitctypes.stats()["stub_cache"]["stubs"] == stubs_before + 1
    assert entry_calls(signature) > 0, "the compiled entry did not take over"


def test_a_signature_compiled_already_is_used_at_once(waiting, c_library_paths):
    path = c_library_paths["jittest"]
    first = declare(path, "add3_u16", ours.c_uint16, [ours.c_uint16] * 3)
    for k in range(4 * WAIT):
        first(k, 0, 0)
    before = entry_calls("fn(u16, u16, u16) -> u16")
    second = declare(path, "add3_u16", ours.c_uint16, [ours.c_uint16] * 3)
    assert [second(1, 2, 3), second(4, 5, 6)] == [6, 15]
    assert entry_calls("fn(u16, u16, u16) -> u16") == before + 1
