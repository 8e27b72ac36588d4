#!/usr/bin/env bash
# Build the guest kernel from Debian's linux-source-6.1 with kernel/patches/*.patch applied in
# order and kernel/configs/*.conf merged on top of allnoconfig.
#
# The result is cached outside the repo, keyed by a hash of the source package version, the
# fragments, the patches and this script, so a second build (or a CI run on a machine that
# built it before) only copies two files.
#
# usage: tools/build-kernel.sh OUTDIR        writes OUTDIR/vmlinux.bin OUTDIR/bzImage OUTDIR/kernel.config
#        tools/build-kernel.sh --key         prints the cache key
#        tools/build-kernel.sh --check CONFIG  checks every fragment option against CONFIG
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
pkg=linux-source-6.1
tarball=/usr/src/$pkg.tar.xz
cache=${KUASAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuasar}
jobs=${KERNEL_JOBS:-$(nproc)}

say() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { printf 'build-kernel: fatal: %s\n' "$*" >&2; exit 1; }

fragments() { ls "$top"/kernel/configs/*.conf | LC_ALL=C sort; }
patches() { ls "$top"/kernel/patches/*.patch 2>/dev/null | LC_ALL=C sort || true; }

cache_key() {
	local ver
	ver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) ||
		die "$pkg is not installed: run 'make deps'"
	{
		echo "$pkg $ver"
		for f in $(fragments) $(patches) "$0"; do
			echo "== ${f#"$top"/}"
			cat "$f"
		done
	} | sha256sum | cut -c1-16
}

# Every option a fragment sets must hold in the final config: a missing dependency makes
# olddefconfig drop an option silently, and that must fail the build, not the sandbox.
check_config() {
	local final=$1 bad=0 line opt want
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			opt=${line%%=*}
			want=$line
			grep -qxF -- "$want" "$final" || {
				say "requested $want, final config has: $(grep -E "^(# )?$opt[= ]" "$final" || echo 'nothing')"
				bad=1
			}
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			if grep -q "^$opt=" "$final"; then
				say "requested $opt off, final config has: $(grep "^$opt=" "$final")"
				bad=1
			fi
			;;
		esac
	done < <(cat $(fragments))
	[ "$bad" = 0 ] || die "kernel config is missing requested options (see above)"
}

# The vsock transport must re-read the guest CID on a transport reset: a restored clone
# learns its new CID that way. Checked in the source actually built.
check_source() {
	local src=$1 f=$1/net/vmw_vsock/virtio_transport.c
	grep -q 'VIRTIO_VSOCK_EVENT_TRANSPORT_RESET' "$f" &&
		grep -q 'virtio_vsock_update_guest_cid' "$f" ||
		die "$f lacks the guest CID update on transport reset"
	local n
	n=$(awk '/^static void virtio_vsock_event_handle/,/^}/' "$f" | grep -c 'virtio_vsock_update_guest_cid' || true)
	[ "$n" -ge 1 ] || die "virtio_vsock_event_handle does not update the guest CID on reset"
}

build() {
	local out=$1 key dir work
	key=$(cache_key)
	dir=$cache/kernel/$key
	if [ ! -f "$dir/vmlinux.bin" ]; then
		[ -f "$tarball" ] || die "$tarball not found: run 'make deps'"
		mkdir -p "$cache/kernel"
		work=$(mktemp -d "$cache/kernel/build.XXXXXX")
		trap 'rm -rf "$work"' EXIT
		say "cache miss ($key): unpacking $tarball"
		tar -C "$work" -xf "$tarball"
		local src=$work/$pkg
		for p in $(patches); do
			say "applying ${p#"$top"/}"
			patch -d "$src" -p1 --batch --forward <"$p" >/dev/null ||
				die "patch ${p#"$top"/} does not apply"
		done
		check_source "$src"
		make -C "$src" -s allnoconfig
		(cd "$src" && scripts/kconfig/merge_config.sh -m .config $(fragments) >/dev/null)
		make -C "$src" -s olddefconfig
		check_config "$src/.config"
		say "building with -j$jobs"
		make -C "$src" -s -j"$jobs" vmlinux bzImage
		mkdir -p "$work/out"
		cp "$src/vmlinux" "$work/out/vmlinux.bin"
		cp "$src/arch/x86/boot/bzImage" "$work/out/bzImage"
		cp "$src/.config" "$work/out/kernel.config"
		rm -rf "$dir"
		mv "$work/out" "$dir"
		rm -rf "$work"
		trap - EXIT
		say "cached in $dir"
		# Keep the four most recent builds; older keys belong to inputs long gone.
		ls -1dt "$cache"/kernel/*/ 2>/dev/null | grep -v '/build\.' | tail -n +5 |
			xargs -r rm -rf
	fi
	mkdir -p "$out"
	for f in vmlinux.bin bzImage kernel.config; do
		cp "$dir/$f" "$out/$f.tmp" && mv "$out/$f.tmp" "$out/$f"
	done
}

case "${1:-}" in
--key) cache_key ;;
--check) check_config "${2:?usage: --check CONFIG}" && say "all requested options present in $2" ;;
"" | -*) die "usage: $0 OUTDIR | --key | --check CONFIG" ;;
*) build "$1" ;;
esac
