#!/usr/bin/env bash
# Installs what is needed and runs every test: lints, the Rust tests (unit, golden IR,
# the C test library, 10,000 random signatures against gcc), then the Python package
# built and installed with pip and its pytest suite, on the JIT path and on libffi, the
# whole-stack differential fuzzer and the version audit (stock vs jitctypes), CPython's
# own ctypes test suite on jitctypes (outcomes must equal a stock run, per test), the test
# suites of real ctypes-heavy packages compared per test with stock, a debug CPython,
# memcheck over two pytest files,
# pyglet's examples under Xvfb (scripts/pyglet-examples.sh installs Xvfb, Mesa and pyglet).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
.venv/bin/ruff check lib_ctypes tests benches
.venv/bin/ruff format --check lib_ctypes tests benches

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

echo "== Python package and tests"
.venv/bin/python -m pip install --quiet .
.venv/bin/python -m pytest -q
echo "== Python tests again with the JIT switched off (every call through libffi)"
JITCTYPES_JIT=0 .venv/bin/python -m pytest -q

echo "== Whole-stack differential fuzzer: 2,000 random signatures, 30,000 calls, each with"
echo "   compiled stubs and with libffi, stock and jitctypes in one process, gcc as referee"
.venv/bin/python tests/fuzz/ctypes_fuzz.py --seeds 0 --signatures 2000

echo "== Version audit: what programs see of _ctypes on this Python, stock vs jitctypes"
.venv/bin/python tests/audit/ctypes_audit.py

echo "== CPython's ctypes suite, unchanged, on jitctypes._ctypes: per test as stock"
echo "   (compiled from every function's first call, then as programs run it, then libffi only)"
baseline="tests/conformance/baseline-$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])').json"
JITCTYPES_COMPILE_AFTER=1 .venv/bin/python -m jitctypes.conformance --compare "$baseline"
.venv/bin/python -m jitctypes.conformance --compare "$baseline"
JITCTYPES_JIT=0 .venv/bin/python -m jitctypes.conformance --compare "$baseline"

echo "== pyglet's example programs on jitctypes under Xvfb, compared with stock (issue 6)"
scripts/pyglet-examples.sh

echo "== Real packages' test suites on stock and on jitctypes, compared per test (the short corpus)"
scripts/corpus.sh --short

echo "== A debug CPython (Py_DEBUG assertions): pytest and CPython's ctypes suite as stock"
scripts/debug-cpython.sh

echo "== Memory errors under valgrind memcheck (the short run; scripts/sanitize.sh for more)"
scripts/sanitize.sh --short

# The conformance suite on another CPython (its own venv and target dir), if this machine
# has it: pyenv's shim exists even where a version is not selected, so the first candidate
# that runs is taken. Extra arguments go to the conformance runner.
conformance_on() {
    local version=$1
    shift
    local python=""
    for candidate in "$HOME"/.pyenv/versions/"$version"*/bin/python"$version" \
        "$(command -v "python$version" || true)"; do
        if [ -n "$candidate" ] && "$candidate" -c 'import sys' 2>/dev/null; then
            python=$candidate
            break
        fi
    done
    echo "== The same suite on CPython $version"
    if [ -z "$python" ]; then
        echo "skipped: no python$version on this machine"
        return
    fi
    local venv=".venv-$version"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "maturin>=1.7,<2"
    PATH="$PWD/$venv/bin:$PATH" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/py$version" \
        "$venv/bin/python" -m pip install --quiet --no-build-isolation .
    JITCTYPES_COMPILE_AFTER=1 "$venv/bin/python" -m jitctypes.conformance \
        --compare "tests/conformance/baseline-$version.json" "$@"
    echo "== Version audit on CPython $version"
    "$venv/bin/python" tests/audit/ctypes_audit.py
}

conformance_on 3.12
# 3.13's four tests of its C base classes' exact MRO differ, for the written reasons.
conformance_on 3.13 --known tests/conformance/known-3.13.json
