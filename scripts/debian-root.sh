#!/usr/bin/env bash
# A Debian unstable root with CPython 3.14 and 3.15 (release and -dbg builds, their test
# suites, headers), for what this machine's Debian cannot run (their binaries need glibc
# >= 2.38). Made once with debootstrap and cached in target/debian-root; the mirror is read
# from this machine's apt sources (no registry host is written in the repository).
#
#   scripts/debian-root.sh ensure              # make the root if it is missing
#   scripts/debian-root.sh run COMMAND...      # run COMMAND inside it, in this checkout
#
# `run` bind-mounts /proc, /dev, the host's Rust toolchain (~/.cargo, ~/.rustup, at the same
# paths) and this checkout (at the same path), copies in the host's resolv.conf and CA
# bundle (PIP_CERT points at it), runs COMMAND as root with HOME and PATH set, and unmounts
# what it mounted, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
root=${JITCTYPES_DEBIAN_ROOT:-$checkout/target/debian-root}
packages=python3.14,python3.14-dev,python3.14-venv,libpython3.14-testsuite,python3.14-dbg
packages+=,python3.15,python3.15-dev,python3.15-venv,libpython3.15-testsuite,python3.15-dbg
packages+=,gcc,libc6-dev,libffi-dev,make,ca-certificates

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

mirror() {
    # The first deb URI of the machine's own sources (deb822 files first, then the list).
    local found
    found=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security |
        head -n1 | awk '{print $2}')
    if [ -z "$found" ]; then
        found=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | grep -v security |
            head -n1 | awk '{print $2}')
    fi
    [ -n "$found" ] || { echo "debian-root: no apt mirror configured on this machine" >&2; exit 1; }
    echo "$found"
}

ensure() {
    if [ -x "$root/usr/bin/python3.15" ] && [ -f "$root/.jitctypes-complete" ]; then
        return
    fi
    scripts/install-debian-packages.sh debootstrap
    as_root rm -rf "$root"
    mkdir -p "$(dirname "$root")"
    echo "debian-root: debootstrap sid into $root"
    as_root debootstrap --variant=minbase --include="$packages" sid "$root" "$(mirror)" \
        >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
    as_root touch "$root/.jitctypes-complete"
}

mounted=()
unmount() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do as_root umount -l "${mounted[i]}" || true; done
    mounted=()
}

run() {
    ensure
    trap unmount EXIT
    bind() {
        as_root mkdir -p "$root$1"
        as_root mount --bind "$1" "$root$1"
        mounted+=("$root$1")
    }
    as_root mount -t proc proc "$root/proc"
    mounted+=("$root/proc")
    bind /dev
    bind "$HOME/.cargo"
    bind "$HOME/.rustup"
    bind "$checkout"
    as_root cp /etc/resolv.conf "$root/etc/resolv.conf"
    as_root cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca-certificates.crt"
    as_root chroot "$root" /usr/bin/env -i HOME="$HOME" \
        PATH="$HOME/.cargo/bin:/usr/local/bin:/usr/bin:/bin" \
        PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt \
        RUSTUP_HOME="$HOME/.rustup" CARGO_HOME="$HOME/.cargo" \
        /bin/bash -c 'cd "$0" && exec "$@"' "$checkout" "$@"
}

case "${1:-}" in
ensure) ensure ;;
run)
    shift
    run "$@"
    ;;
*)
    echo "usage: $0 ensure | run COMMAND..." >&2
    exit 2
    ;;
esac
