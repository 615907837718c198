#!/usr/bin/env bash
# Installs what is needed and runs every test: lints, the Rust tests (unit, golden IR,
# the C test library, 10,000 random signatures against gcc), then the Python package
# built and installed with pip and its pytest suite, on the JIT path and on libffi, and
# CPython's own ctypes test suite on jitctypes (outcomes must equal a stock run, per test),
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

echo "== CPython's ctypes suite, unchanged, on jitctypes._ctypes: per test as stock"
echo "   (compiled from every function's first call, then as programs run it, then libffi only)"
baseline="tests/conformance/baseline-$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])').json"
JITCTYPES_COMPILE_AFTER=1 .venv/bin/python -m jitctypes.conformance --compare "$baseline"
.venv/bin/python -m jitctypes.conformance --compare "$baseline"
JITCTYPES_JIT=0 .venv/bin/python -m jitctypes.conformance --compare "$baseline"

echo "== pyglet's example programs on jitctypes under Xvfb, compared with stock (issue 6)"
scripts/pyglet-examples.sh

echo "== The same suite on CPython 3.12, if this machine has it (its own venv and target dir)"
PY312=${PY312:-}
if [ -z "$PY312" ]; then
    # pyenv's shim exists even where 3.12 is not selected: take the first that runs.
    for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
        if [ -n "$candidate" ] && "$candidate" -c 'import sys' 2>/dev/null; then
            PY312=$candidate
            break
        fi
    done
fi
if [ -n "$PY312" ]; then
    [ -x .venv-3.12/bin/python ] || "$PY312" -m venv .venv-3.12
    .venv-3.12/bin/python -m pip install --quiet "maturin>=1.7,<2"
    PATH="$PWD/.venv-3.12/bin:$PATH" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/py3.12" \
        .venv-3.12/bin/python -m pip install --quiet --no-build-isolation .
    JITCTYPES_COMPILE_AFTER=1 .venv-3.12/bin/python -m jitctypes.conformance \
        --compare tests/conformance/baseline-3.12.json
else
    echo "skipped: no python3.12 on this machine"
fi
