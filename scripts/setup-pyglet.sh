#!/usr/bin/env bash
# Installs what running pyglet's examples on jitctypes needs (issue 6), idempotently:
# a virtual X server (Xvfb, xvfb-run) with Mesa's software OpenGL (llvmpipe, GLX and EGL),
# the X client libraries pyglet loads with ctypes, fontconfig/freetype with a font for text,
# then pyglet 2.1.x into the project virtualenv (.venv, made by scripts/setup.sh).
# Runs as root on Debian (no sudo); `apt-get update` only when a package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
    xvfb xauth                                  # Xvfb and xvfb-run (which needs xauth)
    libgl1 libglx-mesa0 libgl1-mesa-dri         # libGL.so.1 (GLVND) + Mesa GLX + llvmpipe
    libglu1-mesa libegl1 libegl-mesa0 libgles2  # libGLU, EGL (pyglet's headless option), GLES
    libx11-6 libxext6 libxrandr2 libxinerama1   # X client libraries pyglet dlopens
    libxcursor1 libxi6 libxxf86vm1 libxkbcommon0
    libfontconfig1 libfreetype6 fontconfig fonts-dejavu-core   # text rendering
    xdotool                                     # synthetic key/mouse input for the examples
)

scripts/install-debian-packages.sh "${PACKAGES[@]}"

if [ ! -x .venv/bin/python ]; then
    scripts/setup.sh
fi
.venv/bin/python -m pip install --quiet "pyglet>=2.1,<2.2"
.venv/bin/python -c 'import pyglet; print("setup-pyglet: pyglet", pyglet.version)'
