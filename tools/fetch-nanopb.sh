#!/usr/bin/env bash
# Unpack nanopb's runtime (pb_common.c, pb_encode.c, pb_decode.c) from Debian's source
# package into DEST/nanopb-VERSION, for compiling against musl inside the guest build.
# The source package's version must match the generator Debian installed.
#
# usage: tools/fetch-nanopb.sh VERSION DEST
set -euo pipefail

die() { printf 'fetch-nanopb: fatal: %s\n' "$*" >&2; exit 1; }

ver=${1:?usage: fetch-nanopb.sh VERSION DEST}
dest=${2:?usage: fetch-nanopb.sh VERSION DEST}
top=$(cd "$(dirname "$0")/.." && pwd)

installed=$(dpkg-query -W -f='${Version}' nanopb 2>/dev/null) || die "nanopb is not installed: run 'make deps'"
case "$installed" in "$ver"-*) ;; *) die "nanopb generator is $installed, expected $ver" ;; esac

[ -f "$dest/nanopb-$ver/pb.h" ] && exit 0
mkdir -p "$dest"
work=$(mktemp -d "$dest/.nanopb.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && "$top/tools/apt-private.sh" "$dest/apt" deb-src bookworm -- \
	source --download-only "nanopb=$installed" >/dev/null 2>&1) ||
	die "apt-get source nanopb=$installed failed"
tar -C "$work" -xzf "$work"/nanopb_"$ver".orig.tar.gz
[ -f "$work/nanopb-$ver/pb_decode.c" ] || die "nanopb-$ver/pb_decode.c missing from the source package"
rm -rf "$dest/nanopb-$ver"
mv "$work/nanopb-$ver" "$dest/nanopb-$ver"
