#!/usr/bin/env bash
# Pod start with the warm pool ([sandboxer] pool) against the template path and runc, on one
# containerd, with CNI on both sides:
#   1. the sandboxer without a pool: kuasar vs runc, interleaved;
#   2. the same sandboxer restarted with pool = POOL, once it is full: kuasar vs runc again
#      (the bench's own pace: the pool refills between runs as it can; the log says how many
#      starts it served);
#   3. a burst of 10 pods started at once, kuasar with a full pool and then runc: how many
#      the pool served, p50 and p90 of each;
#   4. what a pooled VM costs: its VMM's unique set size.
# Ratios are to runc measured in the same run.
#
# usage: tools/bench-pool.sh [RUNS]   (POOL=3, BURST=10)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-9}
POOL=${POOL:-3}
BURST=${BURST:-10}
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"
cri_env_bench kp
ctl() { cri_ctl "$@"; }
IMG=kuasar.invalid/busybox:test

# Members ready now: made ready since the log line $1, less those taken or gone since.
pool_ready() {
	local from=$1
	tail -n +"$from" "$D/sandboxer.log" | awk '
		/pool: kuasar-pool-.* ready in/ { n++ }
		/takes the pooled VM/ { n-- }
		/pool: kuasar-pool-.* goes/ { n-- }
		END { print n + 0 }'
}
wait_pool() {
	local i
	for i in $(seq 600); do
		[ "$(pool_ready "$1")" -ge "$POOL" ] && return 0
		sleep 0.2
	done
	echo "the pool did not fill in 120 s" >&2
	return 1
}
with_pool() {
	sed -i "s/^pool = .*/pool = $1/" "$D/sandboxer.toml"
	cri_env_stop_pid "$SB_PID"
	rm -f "$D/sandboxer.sock"
	cri_env_sandboxer
}
bench() { ctl --handler kuasar --pod-network --image "$IMG" -n "$RUNS" bench runc; }
median_of() { sed -n "/^  $2 /{s/.*median *\([0-9.]*\) ms (RunPodSandbox *\([0-9.]*\).*/\1 \2/p;q}" "$1"; }

# burst HANDLER: BURST pods at once, each timed from RunPodSandbox to its first output line.
burst() {
	local h=$1 i jobs=()
	rm -f "$D"/burst.*
	for i in $(seq "$BURST"); do
		(
			n=burst-$h-$i
			t0=$(date +%s%N)
			p=$(ctl --handler "$h" --name "$n" --uid "$n" --pod-network runp)
			echo "$p" >>"$D/pods"
			c=$(ctl --handler "$h" --name "$n" --uid "$n" --pod-network --container "$n" \
				--image "$IMG" create "$p" -- echo started)
			ctl start "$c" >/dev/null
			until [ -s "$D/logs/$n.log" ]; do sleep 0.002; done
			echo $((($(date +%s%N) - t0) / 1000000)) >"$D/burst.$i"
		) &
		jobs+=($!)
	done
	wait "${jobs[@]}" # not the daemons, which are children too
	sort -n "$D"/burst.* | awk -v h="$h" '{ v[NR] = $1 } END {
		printf "  %-7s p50 %6d ms   p90 %6d ms   max %6d ms\n", h, v[int((NR + 1) / 2)],
			v[int(NR * 0.9 + 0.5)], v[NR] }'
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods")
	: >"$D/pods"
}

cri_env_fetch
CRI_ENV_POOL=0 cri_env_up
ctl image "$IMG" >/dev/null
echo "== 1. pool off (each pod restores its VM from the template) vs runc, CNI on both"
bench | tee "$D/off"

echo
echo "== 2. pool = $POOL vs runc (the pool refills between runs at the bench's pace)"
mark=$(($(wc -l <"$D/sandboxer.log") + 1))
with_pool "$POOL"
wait_pool "$mark"
mark2=$(($(wc -l <"$D/sandboxer.log") + 1))
bench | tee "$D/on"
served=$(tail -n +"$mark2" "$D/sandboxer.log" | grep -c 'takes the pooled VM' || true)
echo "  the pool served $served of $RUNS kuasar starts"
read -r off_all off_runp < <(median_of "$D/off" kuasar)
read -r on_all on_runp < <(median_of "$D/on" kuasar)
read -r runc_all runc_runp < <(median_of "$D/on" runc)
read -r runc0_all runc0_runp < <(median_of "$D/off" runc)
awk -v a="$off_all" -v b="$on_all" -v r0="$runc0_all" -v r="$runc_all" -v ar="$off_runp" \
	-v br="$on_runp" -v rr0="$runc0_runp" -v rr="$runc_runp" 'BEGIN {
	printf "\n  %-22s %12s %12s %14s %14s\n", "", "pod start", "ratio runc", "RunPodSandbox", "ratio runc"
	printf "  %-22s %9.1f ms %11.2fx %11.1f ms %13.2fx\n", "kuasar, pool off", a, a / r0, ar, ar / rr0
	printf "  %-22s %9.1f ms %11.2fx %11.1f ms %13.2fx\n", "kuasar, pool on", b, b / r, br, br / rr
	printf "  pool on / pool off: pod start %.2fx, RunPodSandbox %.2fx\n", b / a, br / ar }'

echo
echo "== 3. a burst of $BURST pods at once (kuasar with $POOL pooled VMs ready, then runc)"
mark=$(($(wc -l <"$D/sandboxer.log") + 1))
wait_pool 1 || true
burst kuasar
echo "  the pool served $(tail -n +"$mark" "$D/sandboxer.log" | grep -c 'takes the pooled VM' || true) of $BURST"
burst runc

echo
echo "== 4. what a pooled VM costs (its VMM, unique set size: what its end gives back)"
wait_pool 1 || true
for pid in $(pgrep -f -- "qemu-system.*kuasar-pool-.*$D/run/" || true); do
	awk '/^Private_(Clean|Dirty):/ { s += $2 } END { printf "  pooled VMM %s: USS %d KiB\n", pid, s }' \
		pid="$pid" "/proc/$pid/smaps_rollup"
done
grep -o 'ready in [0-9]* ms ([^)]*USS [0-9]* KiB)' "$D/sandboxer.log" | tail -3 | sed 's/^/  made /'
