#!/usr/bin/env bash
# The real-application corpus: the test suites of ctypes-heavy packages from PyPI, each run
# once on stock ctypes (`python -m pytest ...`) and once on jitctypes
# (`python -m jitctypes -m pytest ...`), compared per test by tests/corpus/compare.py:
# every test that passes on stock must pass on jitctypes (exit status 1 otherwise).
#
#   scripts/corpus.sh           the whole corpus (~6 minutes on 2 cores)
#   scripts/corpus.sh --short   all but pycryptodome (~2 minutes), for the main test run
#
# Idempotent; run from anywhere, as root or with sudo. It installs the Debian libraries the
# suites load, makes its own virtualenv .venv-corpus from .venv's interpreter (no system
# site-packages) that sees the jitctypes already installed in .venv through a .pth file
# naming a directory with one symlink (jitctypes -> .venv's site-packages/jitctypes), pins
# every package (==), and takes the suites that only sdists ship from PyPI into
# target/corpus/src/. Logs, per-test records and junit files: target/corpus/results/.
#
# The suites, and why (each loads its C library with ctypes on the code paths tested; the
# jitctypes line of the table counts the foreign calls jitctypes made):
#   libarchive-c 5.1   libarchive through ctypes: archive read/write callbacks (CFUNCTYPE),
#                      structs, c_char_p/c_void_p; tests in the sdist. 5.2+ tests use 3.12
#                      f-string syntax, so 5.1 is the newest that runs on 3.11.
#   ifaddr 0.2.0       getifaddrs() and the sockaddr/ifaddrs structure chain via ctypes
#                      (pointers, unions, casts); tiny suite, in the sdist.
#   ctypesgen 1.1.1    generates bindings from C headers (gcc -E), compiles C libraries and
#                      loads them into the pytest process: structs, unions, bitfields,
#                      packing, callbacks, variadics; tests in the sdist.
#   numpy 2.4.3        numpy.ctypeslib (ndpointer, as_array/as_ctypes on every type),
#                      dtype <-> ctypes Structure/Union/array conversion (layout, _pack_,
#                      bitfields, endianness), ndarray.ctypes and the PEP 3118 buffers of
#                      ctypes objects: the ctypes-related tests the wheel ships.
#   llvmlite 0.46.0    llvmlite.binding is libllvmlite through ctypes (hundreds of typed
#                      functions, output parameters, callbacks), and its tests call JIT-
#                      compiled code through CFUNCTYPE pointers; tests in the wheel.
#   mss 10.2.0         screenshots through Xlib and XCB via ctypes (structs by value and by
#                      pointer, arrays, error-handler callbacks), under Xvfb; tests in the
#                      sdist (src/tests).
#   PySDL2 0.9.17      SDL2, SDL2_ttf/image/mixer/gfx via ctypes (a large API: structs,
#                      unions, callbacks, RWops written in Python, pixel buffers), run with
#                      SDL's dummy video and audio drivers; tests in the sdist.
#   pyzbar 0.1.9 and   libzbar and libdmtx via ctypes: barcodes decoded from and encoded
#   pylibdmtx 0.1.10   to images (pixel buffers, structs, symbol iterators); tests and their
#                      images in the wheels; one suite, "barcodes".
#   pycryptodome 4.5.0 (whole corpus only; ~100 s a run) every cipher, hash and
#                      big-number primitive is C called through ctypes when cffi is absent
#                      (it is not installed here), mostly through functions without
#                      argtypes; its self-tests, slow ones included, ship in the wheel.
# Rejected: python-magic (the 0.4.27 sdist has no tests; older sdists ship tests without
# their test data and refuse to run without an en_US.UTF-8 locale); pyusb (its tests that
# run without the PyUSB test device use a mock backend in Python and never reach libusb);
# glfw and psycopg 3 (their sdists ship no tests, and GitHub, where they are, is
# unreachable), so libmagic1, libusb-1.0-0 and libglfw3 are not installed. Subprocesses
# that a suite starts (none is Python with ctypes, as far as seen) would run on stock ctypes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

short=0
case "${1:-}" in
--short) short=1 ;;
"") ;;
*)
    echo "usage: scripts/corpus.sh [--short]" >&2
    exit 2
    ;;
esac

# -- Debian packages: the C libraries the suites load, Xvfb for mss, gcc for ctypesgen
PACKAGES=(
    libarchive13                                       # libarchive-c
    gcc libc6-dev                                      # ctypesgen compiles its test libraries
    xvfb xauth lsof                                    # mss: a virtual X server; leak tests
    libx11-6 libxfixes3 libxrandr2                     # mss: Xlib backend
    libxcb1 libxcb-randr0 libxcb-render0 libxcb-shm0 libxcb-xfixes0   # mss: XCB backends
    libsdl2-2.0-0 libsdl2-ttf-2.0-0 libsdl2-image-2.0-0 libsdl2-mixer-2.0-0 libsdl2-gfx-1.0-0
    libzbar0 libdmtx0b                                 # pyzbar, pylibdmtx
)
scripts/install-debian-packages.sh "${PACKAGES[@]}"

# -- The corpus virtualenv, seeing .venv's jitctypes (installed there, not rebuilt here)
if [ ! -x .venv/bin/python ]; then
    echo "corpus: .venv is missing: run scripts/setup.sh first" >&2
    exit 2
fi
jitctypes_dir=$(.venv/bin/python -c 'import os, jitctypes; print(os.path.dirname(jitctypes.__file__))')
# Made anew if it is broken (its python, or a module of the suites, gone).
imports="import pytest, libarchive, ifaddr, ctypesgen, numpy, hypothesis, llvmlite, mss, PIL"
imports+=", sdl2, pyzbar.pyzbar, pylibdmtx.pylibdmtx, Crypto.Cipher.AES"
if [ -e .venv-corpus ] && { [ ! -x .venv-corpus/bin/python ] \
    || { [ -e .venv-corpus/corpus-requirements.txt ] \
        && ! .venv-corpus/bin/python -c "$imports" 2>/dev/null; }; }; then
    echo "corpus: .venv-corpus is broken: making it anew"
    rm -rf .venv-corpus
fi
if [ ! -x .venv-corpus/bin/python ]; then
    base_python=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
    "$base_python" -m venv .venv-corpus
fi
corpus_python=$root/.venv-corpus/bin/python
site_packages=$("$corpus_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p .venv-corpus/jitctypes-link
ln -sfn "$jitctypes_dir" .venv-corpus/jitctypes-link/jitctypes
echo "$root/.venv-corpus/jitctypes-link" >"$site_packages/jitctypes-link.pth"

REQUIREMENTS=(
    pytest==9.0.2 iniconfig==2.3.1 packaging==26.4 pluggy==1.7.0 Pygments==2.21.0
    libarchive-c==5.1 ifaddr==0.2.0 ctypesgen==1.1.1
    numpy==2.4.3 hypothesis==6.151.9 sortedcontainers==2.4.0
    llvmlite==0.46.0
    mss==10.2.0 pillow==12.1.1 PyVirtualDisplay==3.0
    PySDL2==0.9.17
    pyzbar==0.1.9 pylibdmtx==0.1.10
    pycryptodome==4.5.0
)
stamp=.venv-corpus/corpus-requirements.txt
if [ "$(printf '%s\n' "${REQUIREMENTS[@]}")" != "$(cat "$stamp" 2>/dev/null)" ]; then
    "$corpus_python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
    printf '%s\n' "${REQUIREMENTS[@]}" >"$stamp"
fi

# -- Sources of the suites that only sdists ship
src=target/corpus/src
mkdir -p "$src" target/corpus/run
# pytest looks for its configuration up the tree: without this empty one, suites that have
# none would take the project's own (pyproject.toml: filterwarnings=error, xfail_strict).
printf '[pytest]\n' >target/corpus/pytest.ini
sdist() { # sdist NAME==VERSION DIRNAME: unpacked into $src/DIRNAME once
    local spec=$1 dir=$2
    if [ ! -d "$src/$dir" ]; then
        local tmp
        tmp=$(mktemp -d)
        "$corpus_python" -m pip download --quiet --disable-pip-version-check \
            --no-binary :all: --no-deps "$spec" -d "$tmp"
        tar xzf "$tmp"/*.tar.gz -C "$src"
        rm -rf "$tmp"
        [ -d "$src/$dir" ] || {
            echo "corpus: $spec did not unpack to $src/$dir" >&2
            exit 1
        }
    fi
}
sdist libarchive-c==5.1 libarchive-c-5.1
sdist ifaddr==0.2.0 ifaddr-0.2.0
sdist ctypesgen==1.1.1 ctypesgen-1.1.1
sdist mss==10.2.0 mss-10.2.0
sdist PySDL2==0.9.17 pysdl2-0.9.17

# -- A virtual X server for mss, ended when this script exits
display=""
for n in $(seq 90 120); do
    if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then
        display=$n
        break
    fi
done
Xvfb ":$display" -screen 0 1280x1024x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
trap 'kill "$xvfb_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    [ -e "/tmp/.X11-unix/X$display" ] && break
    sleep 0.1
done

# -- The suites, one at a time
results=target/corpus/results
mkdir -p "$results"
summary=$results/summary.txt
: >"$summary"
status=0
start=$SECONDS
compare() { # compare NAME CWD [--env K=V]... -- PYTEST ARGS
    local name=$1 cwd=$2
    shift 2
    "$corpus_python" tests/corpus/compare.py "$name" --cwd "$cwd" --python "$corpus_python" \
        --out "$results" --summary "$summary" "$@" || status=1
}
common=(-q -p no:cacheprovider)

compare libarchive-c "$src/libarchive-c-5.1" -- "${common[@]}" tests
compare ifaddr "$src/ifaddr-0.2.0" -- "${common[@]}" ifaddr
compare ctypesgen "$src/ctypesgen-1.1.1" -- "${common[@]}" tests/testsuite.py
for dir in numpy llvmlite barcodes pycryptodome; do mkdir -p "target/corpus/run/$dir"; done
compare numpy target/corpus/run/numpy -- "${common[@]}" --pyargs numpy.tests.test_ctypeslib \
    numpy._core.tests.test_dtype numpy._core.tests.test_multiarray \
    -k "ctypes or CTypes or ctypeslib"
compare llvmlite target/corpus/run/llvmlite -- "${common[@]}" \
    --pyargs llvmlite.tests.test_binding llvmlite.tests.test_refprune
# mss: its pyproject's addopts ask for pytest-cov, not needed here
compare mss "$src/mss-10.2.0" --env "DISPLAY=:$display" -- "${common[@]}" -o addopts= src/tests
compare PySDL2 "$src/pysdl2-0.9.17" --env SDL_VIDEODRIVER=dummy --env SDL_AUDIODRIVER=dummy \
    -- "${common[@]}" sdl2/test
compare barcodes target/corpus/run/barcodes -- "${common[@]}" \
    --pyargs pyzbar.tests pylibdmtx.tests
if [ "$short" = 0 ]; then
    compare pycryptodome target/corpus/run/pycryptodome -- "${common[@]}" \
        -p Crypto.SelfTest.plugin --pyargs Crypto.SelfTest
fi

echo
echo "== corpus ($([ "$short" = 1 ] && echo short || echo full)): $((SECONDS - start)) s of suites"
cat "$summary"
if [ "$status" != 0 ]; then
    echo "corpus: a test that passes on stock ctypes does not pass on jitctypes (above)"
fi
exit "$status"
