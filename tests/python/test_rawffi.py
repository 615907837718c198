"""The extension module builds, installs and reports the state of the stub cache."""

import jitctypes
from jitctypes import _rawffi


def test_version_matches_the_package():
    assert jitctypes.__version__ == _rawffi.__version__ == "0.1.0"


def test_stub_cache_stats_start_empty():
    stats = _rawffi.stub_cache_stats()
    assert stats == {"stubs": 0, "code_bytes": 0, "compile_time_us": 0, "libffi_descriptions": 0}
