#!/usr/bin/env bash
# Disk images for the guest.
#
# usage: tools/mkimage.sh --init BIN --out IMG [--fs ext4|erofs] [--size MiB]
#   A raw disk holding the same guest as the initrd (kuasar-init as /init and /sbin/init),
#   for hosts that boot from a disk: root=/dev/vda. ext4 images are writable (size fixed by
#   --size, default 16 MiB); erofs images are read-only and as small as their content.
#
# usage: tools/mkimage.sh --app IMAGE.tar [--ready tcp:PORT | http:PORT[/PATH] | log:PATTERN | start]
#                         [--ready-timeout MS] [--memory MiB] [--vcpus N] [--kernel K]
#                         [--initrd I] [--no-snapshot] -o DIR [-- ARGS...]
#   An appliance: the OCI image archive's app as an EROFS disk (its runtime bundle:
#   config.json from the image config, rootfs/ from its layers, the readiness spec), with
#   the kernel, the initrd and app.json in DIR; then `kuasar-ctl appliance build DIR` boots
#   it once and saves a snapshot with the app running and ready (--no-snapshot: not now).
#   http: waits for an answer to a GET of PATH (and so warms the app's request path up
#   before the snapshot). Without --ready, an image exposing one TCP port is ready when that
#   port accepts, any other once started. ARGS replace the image's entrypoint and command. The same image
#   and options give the same disk, byte for byte, so the snapshot is kept; a changed
#   image or readiness makes a new one.
#
# No mounting, no loop devices.
set -euo pipefail

die() { printf 'mkimage: fatal: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: $0 --init BIN --out IMG [--fs ext4|erofs] [--size MiB] | --app IMAGE.tar [--ready SPEC] -o DIR [-- ARGS...]"; }
here=$(cd "$(dirname "$0")" && pwd)

# ---- appliances ----
app_usage() { die "usage: $0 --app IMAGE.tar [--ready tcp:PORT|http:PORT/PATH|log:PATTERN|start] [--ready-timeout MS] [--memory MiB] [--vcpus N] [--kernel K] [--initrd I] [--no-snapshot] -o DIR [-- ARGS...]"; }
appliance() {
	local image= ready= out= memory=256 vcpus=1 snapshot=1 timeout=120000 args=()
	local kernel="$here/../bin/vmlinux.bin" initrd="$here/../bin/kuasar.initrd"
	local ctl="$here/../bin/kuasar-ctl"
	while [ $# -gt 0 ]; do
		case "$1" in
		--app) image=${2:-}; shift 2 ;;
		--ready) ready=${2:-}; [ -n "$ready" ] || app_usage; shift 2 ;;
		-o | --out) out=${2:-}; shift 2 ;;
		--memory) memory=${2:-}; shift 2 ;;
		--ready-timeout) timeout=${2:-}; shift 2 ;;
		--vcpus) vcpus=${2:-}; shift 2 ;;
		--kernel) kernel=${2:-}; shift 2 ;;
		--initrd) initrd=${2:-}; shift 2 ;;
		--no-snapshot) snapshot=0; shift ;;
		--) shift; args=("$@"); break ;;
		*) app_usage ;;
		esac
	done
	[ -n "$image" ] && [ -n "$out" ] || app_usage
	[ -f "$image" ] || die "$image: no such file"
	case "$memory$vcpus$timeout" in *[!0-9]* | '') die "--memory, --vcpus and --ready-timeout are numbers" ;; esac
	[ -f "$kernel" ] || die "kernel $kernel not found (make kernel)"
	[ -f "$initrd" ] || die "initrd $initrd not found (make bin/kuasar.initrd)"
	[ "$(id -u)" = 0 ] || die "run as root: the app's files keep their owners"
	command -v mkfs.erofs >/dev/null || die "mkfs.erofs not found (make deps installs erofs-utils)"

	local summary
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT
	local opts=()
	[ -n "$ready" ] && opts+=(--ready "$ready")
	[ ${#args[@]} -gt 0 ] && opts+=(-- "${args[@]}")
	summary=$("$here/oci2bundle.py" "$image" "$stage/bundle" "${opts[@]}") ||
		die "$image: could not make the app's bundle"
	local made=0
	[ -d "$out" ] || made=1
	mkdir -p "$out"
	# A fixed UUID and time: the same bundle gives the same disk, and keeps its snapshot.
	SOURCE_DATE_EPOCH=0 mkfs.erofs --quiet -U 6b756173-6172-4170-8000-000000000000 \
		"$out/app.erofs.tmp" "$stage/bundle" >/dev/null || die "mkfs.erofs failed"
	mv "$out/app.erofs.tmp" "$out/app.erofs"
	cp --reflink=auto "$kernel" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
	cp --reflink=auto "$initrd" "$out/kuasar.initrd.tmp" &&
		mv "$out/kuasar.initrd.tmp" "$out/kuasar.initrd"
	python3 - "$out/app.json" "$summary" "$memory" "$vcpus" "$timeout" <<'PY'
import json, sys
path, summary, memory, vcpus, timeout = sys.argv[1:6]
app = json.loads(summary)
app.update({"kernel": "vmlinux", "initrd": "kuasar.initrd", "disk": "app.erofs",
            "memory_mib": int(memory), "vcpus": int(vcpus), "ready_timeout_ms": int(timeout)})
with open(path + ".tmp", "w") as f:
    json.dump(app, f, indent=1)
    f.write("\n")
PY
	mv "$out/app.json.tmp" "$out/app.json"
	printf 'mkimage: appliance %s: %s, disk %s bytes\n' "$out" "$summary" \
		"$(stat -c %s "$out/app.erofs")" >&2
	if [ "$snapshot" = 1 ]; then
		[ -x "$ctl" ] || die "$ctl not found (make host)"
		if ! "$ctl" appliance build "$out"; then
			# Nothing half made stays: the files written here go, the directory too if
			# this made it (the build itself left no snapshot, VM or memory file).
			rm -rf "$out"/{app.erofs,vmlinux,kuasar.initrd,app.json,templates}
			[ "$made" = 0 ] || rmdir "$out" 2>/dev/null || true
			die "$out: the snapshot could not be built"
		fi
	fi
}
case " $* " in *" --app "*) appliance "$@"; exit ;; esac

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
