#!/usr/bin/env bash
# The main job: builds jitctypes in release mode and runs the Python call-path benchmark —
# ns per call for stock ctypes, jitctypes (compiled stubs), jitctypes on libffi, cffi ABI
# and API mode and a hand-written C extension, in one process, on one C library — then
# prints the table and writes target/bench-python/call_paths.{json,png}.
# Arguments go to benches/python/call_paths.py (e.g. --repeat 11, --quick).
# The Rust layer's criterion benchmarks: scripts/bench-rust.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pip install --quiet "cffi>=1.16" "setuptools>=69" "matplotlib>=3.8"
.venv/bin/python -m pip install --quiet .
.venv/bin/python benches/python/call_paths.py "$@"
