#!/usr/bin/env bash
# Container root filesystems through stock containerd's CRI: over the 9p share vs as a
# read-only EROFS disk ([sandboxer] rootfs = "block"), two pods of one sandboxer chosen by the
# io.kuasar.rootfs annotation, interleaved. Per container: StartContainer (the task's Create
# and Start through the proxy, with the root disk's hot-add and guest mount for block), and
# inside the container (timed by the guest's /proc/uptime), the first read of a 64 MiB file
# in the image and a walk of 2,000 small files (tar of a tree: what an interpreter's imports
# or a package manager do).
# Block runs on a cached image (another container of the image holds it); the first block
# container, which builds the image from the layers, is reported on its own.
#
# usage: tools/bench-rootfs.sh [RUNS]
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-7}
D=$(mktemp -d /tmp/kb.XXXXXX)
export D
CRI_ENV_LOG_LEVEL=info
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"
IMG=kuasar.invalid/bench-rootfs:test
MIB=64

ctl() { cri_ctl "$@"; }
trap cri_env_cleanup EXIT

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }

# run POD NAME: one container reading the image; prints "START_MS MIB_PER_S WALK_MS".
run() {
	local pod=$1 name=$2 ctr t0 t1 log times
	ctr=$(ctl --name "$name" --uid "uid-$name" --container "$name" --image "$IMG" create "$pod" -- \
		sh -c 'up() { cut -d" " -f1 /proc/uptime; }
			a=$(up); dd if=/data/big of=/dev/null bs=1M 2>/dev/null; b=$(up)
			tar -cf - /data/tree 2>/dev/null | wc -c >/dev/null; c=$(up)
			echo "times $a $b $c"; echo done')
	t0=$(date +%s%N)
	ctl start "$ctr"
	t1=$(date +%s%N)
	log=$D/logs/$name.log
	for _ in $(seq 600); do
		grep -q 'stdout F done' "$log" 2>/dev/null && break
		sleep 0.1
	done
	# The guest's uptime (10 ms steps) around each: busybox has no finer clock.
	times=$(awk '$4 == "times" { print $5, $6, $7 }' "$log" | head -1)
	[ -n "$times" ] || { echo "bench-rootfs: no result in $log:" >&2; cat "$log" >&2; return 1; }
	for _ in $(seq 100); do
		ctl status "$ctr" | grep -q EXITED && break
		sleep 0.1
	done
	ctl rm "$ctr" >/dev/null
	echo "$t0 $t1 $times" | awk -v m="$MIB" '{
		d = $4 - $3; if (d < 0.01) d = 0.01
		printf "%.1f %.1f %.0f\n", ($2 - $1) / 1e6, m / d, ($5 - $4) * 1000 }'
}

cri_env_fetch
if [ ! -f "$CRI_IMAGES/bench-rootfs.tar" ]; then
	l=$D/layer
	mkdir -p "$l/data"
	head -c $((MIB << 20)) /dev/urandom >"$l/data/big"
	for d in $(seq 40); do
		mkdir -p "$l/data/tree/d$d"
		for f in $(seq 50); do head -c 2048 /dev/urandom >"$l/data/tree/d$d/f$f.py"; done
	done
	"$TOP/tests/make-image.sh" --layer "$l" "$CRI_IMAGES/bench-rootfs.tar" "$IMG" sh
	rm -rf "$l"
fi
cri_env_up
"$CTRD_BIN/ctr" -a "$D/containerd.sock" -n k8s.io images import --platform linux/amd64 \
	"$CRI_IMAGES/bench-rootfs.tar" >/dev/null

p9=$(ctl --name p9 --uid uid-p9 --annotation io.kuasar.rootfs=9p runp)
echo "$p9" >>"$D/pods"
pb=$(ctl --name pb --uid uid-pb --annotation io.kuasar.rootfs=block runp)
echo "$pb" >>"$D/pods"

# The first block container builds the image; a holder keeps it cached for the rest.
read -r first_ms first_rate first_walk < <(run "$pb" first)
holder=$(ctl --name holder --uid uid-holder --container holder --image "$IMG" create "$pb" -- sleep 100000)
ctl start "$holder"
run "$p9" warm9p >/dev/null

: >"$D/9p"
: >"$D/block"
for i in $(seq "$RUNS"); do
	if [ $((i % 2)) -eq 1 ]; then
		run "$p9" "a$i" >>"$D/9p"
		run "$pb" "b$i" >>"$D/block"
	else
		run "$pb" "b$i" >>"$D/block"
		run "$p9" "a$i" >>"$D/9p"
	fi
done

col() { cut -d' ' -f"$1" "$2" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
s9=$(col 1 "$D/9p") sb=$(col 1 "$D/block")
r9=$(col 2 "$D/9p") rb=$(col 2 "$D/block")
w9=$(col 3 "$D/9p") wb=$(col 3 "$D/block")
echo "== container root filesystem: 9p share vs EROFS disk (medians of $RUNS interleaved runs)"
printf '%-36s %13s %13s %9s\n' "" "9p" "block" "block/9p"
printf '%-36s %10s ms %10s ms %8sx\n' "StartContainer (Create + Start)" "$s9" "$sb" "$(ratio "$sb" "$s9")"
printf '%-36s %7s MiB/s %7s MiB/s %8sx\n' "read a $MIB MiB file (throughput)" "$r9" "$rb" "$(ratio "$rb" "$r9")"
printf '%-36s %10s ms %10s ms %8sx\n' "walk 2,000 small files (tar)" "$w9" "$wb" "$(ratio "$wb" "$w9")"
echo "first block container (image built from the layers in $(grep -o 'layers built into [^ ]* in [0-9.]* ms' \
	"$D/sandboxer.log" | head -1 | sed 's/.* in //')): StartContainer $first_ms ms, read $first_rate MiB/s, walk $first_walk ms"
