#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet (one
# `apt-get update` then, none otherwise); as root, or through sudo. Shared by the scripts
# that need system libraries (corpus, pyglet, debug CPython, sanitizer, Debian root).
set -euo pipefail
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$package")
done
[ "${#missing[@]}" -gt 0 ] || exit 0
echo "installing Debian packages: ${missing[*]}"
as_root=()
[ "$(id -u)" = 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
