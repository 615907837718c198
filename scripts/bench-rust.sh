#!/usr/bin/env bash
# The Rust layer's benchmarks: builds in release mode and runs the criterion benchmarks of the
# call paths — ns per call through a compiled stub, through libffi and as a direct call —
# and the stub compile time, then prints them as one table with ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo bench -p benches --bench call_paths -- "$@"
.venv/bin/python benches/summarize_criterion.py target/criterion
