"""The extension module builds, installs and reports the state of the stub cache."""

import jitctypes
from jitctypes import _rawffi
from jitctypes._rawffi import CType, FuncPtr, Library


def test_version_matches_the_package():
    assert jitctypes.__version__ == _rawffi.__version__ == "0.1.0"


def test_a_new_signature_compiles_one_stub_and_reuses_it():
    strlen = Library(None).symbol("strlen")
    # A signature no other test uses: (u16, u16, u16, u16, u16, u16, u16) -> i16.
    argtypes = [CType.scalar("H")] * 7
    before = _rawffi.stub_cache_stats()
    FuncPtr(strlen, argtypes, CType.scalar("h"))
    after_first = _rawffi.stub_cache_stats()
    FuncPtr(strlen, argtypes, CType.scalar("h"))
    after_second = _rawffi.stub_cache_stats()
    if _rawffi.jit_enabled():
        assert after_first["stubs"] == before["stubs"] + 1
        assert after_first["code_bytes"] > before["code_bytes"]
        assert after_first["compile_time_us"] >= before["compile_time_us"]
    assert after_second == after_first
