#!/usr/bin/env bash
# Memory errors under valgrind memcheck (AddressSanitizer needs a nightly Rust for our own
# code and cannot be loaded into an unsanitized CPython; memcheck sees both). Runs the Rust
# tests of `jit` and `rawffi` (the differential tests with fewer signatures) and pytest
# files on jitctypes under memcheck, then keeps the errors that involve our code: a frame of
# the extension, of `jit`/`rawffi`, or of compiled stubs (frames valgrind cannot name, `???`,
# inside the process's anonymous executable mappings). CPython's own reports without a
# suppression file (its small-int and GC internals) are counted apart, not failed on.
#
#   scripts/sanitize.sh --short    # the test command's run: two pytest files (~3 min)
#   scripts/sanitize.sh            # the Rust tests and six pytest files (~16 min)
#   scripts/sanitize.sh --long     # the Rust tests and every pytest file (about an hour)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-debian-packages.sh valgrind
logs=target/sanitize
rm -rf "$logs"
mkdir -p "$logs"
memcheck=(valgrind --tool=memcheck --smc-check=all-non-file --leak-check=no --track-origins=yes --num-callers=40
    --error-limit=no --log-file="$PWD/$logs/memcheck.%p.log")

mode=${1:-}
if [ "$mode" != --short ]; then
echo "== Rust tests of jit and rawffi under memcheck"
# (Their verdicts are printed, not failed on: memcheck computes x87 `long double` in 64 bits,
# so the long double cases of the callback differential test differ under it.)
JITCTYPES_DIFF_COUNT=150 CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="${memcheck[*]}" \
    cargo test --quiet -p jit -p rawffi 2>&1 | grep -E "^test result|FAILED" || true
fi

echo "== pytest on jitctypes under memcheck"
if [ "$mode" = --long ]; then
    files=(tests/python/test_*.py)
elif [ "$mode" = --short ]; then
    files=(tests/python/test_fidelity.py tests/python/test_entry_stubs.py)
else
    files=(tests/python/test_fidelity.py tests/python/test_entry_stubs.py
        tests/python/test_callbacks.py tests/python/test_data_fast_paths.py
        tests/python/test_ctypes_pointer.py tests/python/test_ctypes_array.py)
fi
PYTHONMALLOC=malloc "${memcheck[@]}" .venv/bin/python -m pytest -q -p no:cacheprovider \
    -o faulthandler_timeout=0 "${files[@]}" 2>&1 | tail -1

.venv/bin/python - "$logs" <<'EOF'
"""Sorts memcheck's reports: those with a frame of ours fail the run."""
import pathlib, re, sys

# Our frames: the extension, the crates, or code valgrind finds in no file (compiled stubs;
# an unnamed frame *in* a library, like the system libffi stock uses, is not ours, nor a
# bogus frame, at a stack address (0x1FFE...) or a small number, that an unwind through
# libffi's calls leaves).
OURS = re.compile(
    r"_rawffi\.cpython|lib_rawffi|pybridge|\brawffi::|\bjit::|/jit/src/|/rawffi/src/"
    r"|(?:at|by) 0x(?!1FFE)[0-9A-F]{8,}: \?\?\?$",
    re.MULTILINE,
)
ours, theirs = [], 0
for log in sorted(pathlib.Path(sys.argv[1]).glob("memcheck.*.log")):
    text = log.read_text(errors="replace")
    for block in re.split(r"\n==\d+== \n", text):
        lines = [line for line in block.splitlines() if re.match(r"==\d+== ", line)]
        body = "\n".join(lines)
        if not re.search(r"Invalid (read|write|free)|uninitialised|Mismatched free|overlap", body):
            continue
        if OURS.search(body):
            ours.append(f"{log.name}:\n{body}")
        else:
            theirs += 1
for report in ours:
    print(report, "\n")
print(f"memcheck: {len(ours)} reports involving jitctypes, {theirs} inside CPython alone")
sys.exit(1 if ours else 0)
EOF
