#!/usr/bin/env bash
# Puts stock containerd (Debian's unstable suite: 2.1 has the sandbox API; bookworm's 1.6
# does not) into a project-local directory, without touching the machine's apt sources:
# a private apt configuration downloads the .deb and dpkg -x unpacks it. Its binaries need
# only libc6 >= 2.34 and runc, both from bookworm.
#
# usage: tools/fetch-containerd.sh CACHE_DIR   -> prints the directory holding bin/containerd
set -euo pipefail

die() { printf 'fetch-containerd: fatal: %s\n' "$*" >&2; exit 1; }

cache=${1:?usage: $0 CACHE_DIR}
want=2.1.9
top=$(cd "$(dirname "$0")/.." && pwd)
dest=$cache/containerd-$want
if [ -x "$dest/usr/bin/containerd" ] && [ -x "$dest/usr/bin/ctr" ]; then
	echo "$dest/usr/bin"
	exit 0
fi
apt_dir=$cache/apt-unstable
work=$(mktemp -d "$cache/containerd-fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"
(cd "$work" && "$top/tools/apt-private.sh" "$apt_dir" deb unstable -- download containerd >/dev/null 2>&1) ||
	die "apt-get download containerd (unstable) failed"
deb=$(ls "$work"/containerd_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "no .deb downloaded"
version=$(dpkg-deb -f "$deb" Version)
case "$version" in
"$want"*) ;;
*) echo "fetch-containerd: note: unstable has containerd $version (tests were written against $want)" >&2 ;;
esac
rm -rf "$dest.tmp"
dpkg -x "$deb" "$dest.tmp"
"$dest.tmp/usr/bin/containerd" --version >/dev/null || die "the downloaded containerd does not run here"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "$dest/usr/bin"
