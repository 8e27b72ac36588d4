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
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"
cri_env_bench kd
ctl() { cri_ctl "$@"; }
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
	local meta=(--handler "$1" --name "idle-$1-$2" --uid "idle-$1-$2")
	pod=$(ctl "${meta[@]}" runp)
	echo "$pod" >>"$D/pods"
	# The pod's metadata again: CreateContainer carries the pod's config.
	ctr=$(ctl "${meta[@]}" --image kuasar.invalid/busybox:test --container idle create "$pod" \
		-- sleep 2147483647)
	ctl start "$ctr" >/dev/null
}

# One table row: per pod, CPU over 10 s (kuasar's VMM alone, then with its task proxy; runc's
# shim, pause and container) and PSS.
measure() {
	local n=$1 v0 k0 r0 v1 k1 r1
	mapfile -t vp < <(pgrep -f -- "qemu-system.*$D/run/" || true)
	mapfile -t kp < <(kuasar_pids)
	mapfile -t rp < <(runc_pids)
	v0=$(ticks "${vp[@]}")
	k0=$(ticks "${kp[@]}")
	r0=$(ticks "${rp[@]}")
	sleep 10
	v1=$(ticks "${vp[@]}")
	k1=$(ticks "${kp[@]}")
	r1=$(ticks "${rp[@]}")
	awk -v n="$n" -v hz="$hz" -v vt=$((v1 - v0)) -v kt=$((k1 - k0)) -v rt=$((r1 - r0)) \
		-v kp="$(pss "${kp[@]}")" -v rp="$(pss "${rp[@]}")" 'BEGIN {
		c = 100 / hz / 10 / n
		printf "%-6d %10.2f%% %12.2f%% %10.2f%% %12.1f MiB %8.1f MiB\n", n, vt * c, kt * c,
			rt * c, kp / 1024 / n, rp / 1024 / n }'
}

cri_env_fetch
cri_env_up
echo "== idle pods at density: kuasar (VM per pod, TCG here, ${CRI_ENV_MEMORY} MiB) vs runc"
echo "   each pod: one busybox sleeping; CPU over 10 s after 5 s to settle"
printf '%-6s %11s %13s %11s %16s %12s\n' "pods" "CPU/VMM" "CPU/pod kuasar" "CPU/pod runc" \
	"PSS/pod kuasar" "PSS/pod runc"
n=0
for want in $DENSITIES; do
	while [ "$n" -lt "$want" ]; do
		add_pod kuasar "$n"
		add_pod runc "$n"
		n=$((n + 1))
	done
	sleep 5
	measure "$n"
	ctl --handler kuasar --image kuasar.invalid/busybox:test -n 3 bench runc 2>/dev/null |
		sed "s/^/   at $n+$n pods: /" >>"$D/starts"
done
echo
echo "== pod start at each density (3 runs each, interleaved, beside the idle pods)"
cat "$D/starts"
