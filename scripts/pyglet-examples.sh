#!/usr/bin/env bash
# Issue 6: pyglet's example programs, unmodified, on stock ctypes and on jitctypes under a
# virtual X server with Mesa's software OpenGL. Installs what it needs (Debian packages,
# pyglet), fetches the pyglet sdist (it ships examples/) into target/, then runs the pytest
# that compares each example: it must run, be served by jitctypes, print what stock prints
# and, where its picture does not change with time, draw the same pixels.
# Screenshots, logs and report.json: target/pyglet-compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-pyglet.sh
version=$(.venv/bin/python -c 'import pyglet; print(pyglet.version)')
source_dir=target/pyglet-src
if [ ! -d "$source_dir/pyglet-$version/examples" ]; then
    mkdir -p "$source_dir"
    .venv/bin/python -m pip download --quiet --no-binary :all: --no-deps \
        "pyglet==$version" -d "$source_dir"
    tar xzf "$source_dir/pyglet-$version.tar.gz" -C "$source_dir"
fi
export PYGLET_EXAMPLES="$PWD/$source_dir/pyglet-$version/examples"
.venv/bin/python -m pytest -q tests/pyglet "$@"
