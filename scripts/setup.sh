#!/usr/bin/env bash
# Installs what building and testing jitctypes needs on a fresh machine, idempotently:
# the Python tools in a project virtualenv (.venv). The Rust toolchain, gcc and Python 3.11
# come with the machine; this script checks for them and says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo gcc; do
    command -v "$tool" >/dev/null || { echo "setup: $tool is required but not installed" >&2; exit 1; }
done
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { echo "setup: CPython >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "maturin>=1.7,<2" "pytest>=8" "ruff>=0.6" "hypothesis>=6.100"
