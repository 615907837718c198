"""Shared fixtures: the project's C test libraries, compiled once per session with gcc."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from jitctypes import _rawffi

C_SOURCES = Path(__file__).resolve().parents[1] / "clib" / "c"

# Compile from the first call (programs wait for a few calls): the tests check the compiled
# paths as much as the libffi ones. test_lazy_compilation.py checks the waiting itself.
_rawffi.set_compile_after(1)


def compile_library(source: Path, output: Path) -> Path:
    compiler = os.environ.get("CC") or shutil.which("gcc") or "cc"
    subprocess.run(
        [compiler, "-O1", "-std=gnu11", "-w", "-shared", "-fPIC", "-pthread", "-o", output, source],
        check=True,
    )
    return output


@pytest.fixture(scope="session")
def c_library_paths(tmp_path_factory) -> dict[str, str]:
    """Paths of the compiled test libraries, by name."""
    folder = tmp_path_factory.mktemp("clib")
    return {
        name: str(compile_library(C_SOURCES / f"{name}.c", folder / f"lib{name}.so"))
        for name in ("jittest", "rawffi_test")
    }


@pytest.fixture(scope="session")
def c_libraries(c_library_paths) -> dict[str, _rawffi.Library]:
    return {name: _rawffi.Library(path) for name, path in c_library_paths.items()}


@pytest.fixture(scope="session")
def jittest(c_libraries) -> _rawffi.Library:
    """tests/clib/c/jittest.c: every scalar, struct shapes by value, variadic functions."""
    return c_libraries["jittest"]


@pytest.fixture(scope="session")
def rawffi_test(c_libraries) -> _rawffi.Library:
    """tests/clib/c/rawffi_test.c: callbacks, threads, errno, strings."""
    return c_libraries["rawffi_test"]


@pytest.fixture(params=[True, False], ids=["jit", "libffi"])
def use_jit(request) -> bool:
    """Runs a test on both call paths."""
    return request.param
