#!/usr/bin/env bash
# Builds a raw disk image holding the same guest as the initrd (kuasar-init as /init and
# /sbin/init), for hosts that boot from a disk: root=/dev/vda.
#
# usage: tools/mkimage.sh --init BIN --out IMG [--fs ext4|erofs] [--size MiB]
#
# ext4 images are writable (size fixed by --size, default 16 MiB); erofs images are
# read-only and as small as their content. No mounting, no loop devices.
set -euo pipefail

die() { printf 'mkimage: fatal: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: $0 --init BIN --out IMG [--fs ext4|erofs] [--size MiB]"; }

init= out= fs=ext4 size=16
while [ $# -gt 0 ]; do
	case "$1" in
	--init) init=${2:-}; shift 2 ;;
	--out) out=${2:-}; shift 2 ;;
	--fs) fs=${2:-}; shift 2 ;;
	--size) size=${2:-}; shift 2 ;;
	*) usage ;;
	esac
done
[ -n "$init" ] && [ -n "$out" ] || usage
[ -f "$init" ] || die "$init not found (make bin/kuasar-init)"
case "$fs" in ext4 | erofs) ;; *) die "--fs must be ext4 or erofs" ;; esac
case "$size" in '' | *[!0-9]*) die "--size must be a number of MiB" ;; esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# The same skeleton as guest/rootfs/initrd.list.
mkdir -p "$stage"/{dev,proc,sys,run/kuasar,sbin}
install -d -m 1777 "$stage/tmp"
chmod 0555 "$stage/proc" "$stage/sys"
install -m 0755 "$init" "$stage/init"
ln -s ../init "$stage/sbin/init"
# The kernel opens /dev/console on the root before running init; creating the node needs
# root. Without it the init still gets its console once it has mounted devtmpfs.
if [ "$(id -u)" = 0 ]; then
	mknod -m 0600 "$stage/dev/console" c 5 1
	mknod -m 0666 "$stage/dev/null" c 1 3
fi

rm -f "$out.tmp"
case "$fs" in
ext4)
	E2FSPROGS_FAKE_TIME=1 mke2fs -q -t ext4 -L kuasar -E root_owner=0:0 -O ^has_journal -d "$stage" \
		"$out.tmp" "${size}M" >/dev/null || die "mke2fs failed"
	;;
erofs)
	mkfs.erofs --quiet --all-root -T0 "$out.tmp" "$stage" >/dev/null ||
		die "mkfs.erofs failed"
	;;
esac
mv "$out.tmp" "$out"
