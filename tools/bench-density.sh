#!/usr/bin/env bash
# Idle pods at density, through stock containerd's CRI: N kuasar pods (a VM each) beside N
# runc pods, each a pod with one sleeping busybox container. At each density it reports
#   - CPU per idle pod over 10 s: kuasar's VMM + task proxy, runc's shim + pause + container
#     (utime + stime from /proc, in % of one core);
#   - PSS per pod of the same processes (template clones share the template's pages);
#   - pod start at that density, kuasar vs runc, interleaved (kuasar-ctl cri bench).
#
# usage: tools/bench-density.sh [N...]      (default 10 30 60)
#   CRI_ENV_KERNEL=PATH boots the kuasar pods with another guest kernel (to compare one).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
DENSITIES=${*:-10 30 60}
D=$(mktemp -d /tmp/kd.XXXXXX)
export D
CRI_ENV_LOG_LEVEL=info
CRI_ENV_MEMORY=128
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"

ctl() { cri_ctl "$@"; }
trap cri_env_cleanup EXIT
hz=$(getconf CLK_TCK)

# The processes of each side's pods.
kuasar_pids() {
	pgrep -f -- "kuasar-sandboxer proxy .*--run-dir $D/run" || true
	pgrep -f -- "qemu-system.*$D/run/" || true
}
runc_pids() {
	local shim
	for shim in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $D/containerd.sock" || true); do
		echo "$shim"
		pgrep -P "$shim" || true
	done
}

ticks() { # PID...: their utime + stime, in clock ticks
	local pid sum=0 f
	for pid in "$@"; do
		f=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
		sum=$((sum + ${f% *} + ${f#* }))
	done
	echo "$sum"
}

pss() { # PID...: their PSS, in kB
	local pid sum=0 v
	for pid in "$@"; do
		v=$(awk '$1 == "Pss:" { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

add_pod() { # HANDLER I: a pod with a sleeping container, started
	local pod ctr
	pod=$(ctl --handler "$1" --name "idle-$1-$2" --uid "idle-$1-$2" runp)
	echo "$pod" >>"$D/pods"
	ctr=$(ctl --handler "$1" --image kuasar.invalid/busybox:test --container idle create "$pod" \
		-- sleep 2147483647)
	ctl start "$ctr" >/dev/null
}

# SIDE: "cpu-% pss-MiB" per pod of that side, CPU over 10 s (sampled with the other side).
measure() {
	local n=$1 k0 r0 k1 r1
	mapfile -t kp < <(kuasar_pids)
	mapfile -t rp < <(runc_pids)
	k0=$(ticks "${kp[@]}")
	r0=$(ticks "${rp[@]}")
	sleep 10
	k1=$(ticks "${kp[@]}")
	r1=$(ticks "${rp[@]}")
	awk -v n="$n" -v hz="$hz" -v kt=$((k1 - k0)) -v rt=$((r1 - r0)) -v kp="$(pss "${kp[@]}")" \
		-v rp="$(pss "${rp[@]}")" 'BEGIN {
		printf "%-8d %14.2f%% %14.2f%% %12.1f MiB %10.1f MiB\n", n,
			100 * kt / hz / 10 / n, 100 * rt / hz / 10 / n, kp / 1024 / n, rp / 1024 / n }'
}

cri_env_fetch
cri_env_up
echo "== idle pods at density: kuasar (VM per pod, TCG here, ${CRI_ENV_MEMORY} MiB) vs runc"
echo "   each pod: one busybox sleeping; CPU over 10 s after 5 s to settle"
printf '%-8s %15s %15s %16s %14s\n' "pods" "CPU/pod kuasar" "CPU/pod runc" "PSS/pod kuasar" \
	"PSS/pod runc"
n=0
for want in $DENSITIES; do
	while [ "$n" -lt "$want" ]; do
		add_pod kuasar "$n"
		add_pod runc "$n"
		n=$((n + 1))
	done
	sleep 5
	measure "$n" | tee -a "$D/table"
	ctl --handler kuasar --image kuasar.invalid/busybox:test -n 3 bench runc |
		sed "s/^/   at $n+$n pods: /" >>"$D/starts"
done
echo
echo "== pod start at each density (3 runs each, interleaved, beside the idle pods)"
cat "$D/starts"
