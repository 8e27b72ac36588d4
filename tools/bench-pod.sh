#!/usr/bin/env bash
# Pod start through stock containerd's CRI: the kuasar runtime (a VM per pod) against
# containerd's default runc runtime on the same containerd, interleaved, median ratio.
# Then the sandboxer's memory with 1, 10 and 20 running sandboxes: the daemon, the
# per-sandbox task proxies (RSS and PSS: their code pages are shared) and, for scale, the VMMs
# (restored from a template: PSS counts their shared template pages once), next to what the
# sandboxes' cgroups are charged (what counts against a pod's limit: the template's pages
# are charged to the daemon, once).
#
# Between the two, where a kuasar pod start goes, phase by phase (tools/bench-phases.py reads
# the phases the daemon, the task proxies and the guests logged for this run's pods).
#
# usage: tools/bench-pod.sh [RUNS]
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-9}
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"
cri_env_bench kb
ctl() { cri_ctl "$@"; }

kb() { # FIELD PID...: sum of a /proc/PID/{status,smaps_rollup} field in kB
	local field=$1 pid sum=0 v
	shift
	for pid in "$@"; do
		v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status" "/proc/$pid/smaps_rollup" 2>/dev/null | head -1)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# The sandboxes' cgroups (below cri-env's cgroup_parent): their memory charge, in kB.
charged() {
	local f sum=0
	for f in /sys/fs/cgroup/kuasar-"$(basename "$D")"/*/memory.current \
		/sys/fs/cgroup/memory/kuasar-"$(basename "$D")"/*/memory.usage_in_bytes; do
		[ -f "$f" ] && sum=$((sum + $(cat "$f")))
	done
	echo $((sum / 1024))
}

cri_env_fetch
cri_env_up
echo "== pod start: kuasar (VM per pod, TCG here) vs runc, same containerd"
ctl --handler kuasar --image kuasar.invalid/busybox:test -n "$RUNS" bench runc | tee "$D/bench"

# The kuasar side's call medians, and its pods' lines in the log: where the time went.
echo
sed -n '/^  kuasar /{n;s/.*RunPodSandbox \([0-9.]*\), CreateContainer \([0-9.]*\), StartContainer \([0-9.]*\), to first output \([0-9.]*\).*/\1 \2 \3 \4/p;q}' \
	"$D/bench" >"$D/client"
python3 "$TOP/tools/bench-phases.py" "$D/sandboxer.log" "$D/client"

echo
echo "== sandboxer memory by running sandboxes (VM memory ${CRI_ENV_MEMORY} MiB each)"
printf '%-10s %12s %16s %16s %14s %14s %16s\n' sandboxes "daemon RSS" "proxies RSS" "proxies PSS" \
	"VMMs RSS" "VMMs PSS" "cgroups charged"
n=0
for want in 1 10 20; do
	while [ "$n" -lt "$want" ]; do
		ctl --name "mem-$n" --uid "mem-$n" runp >>"$D/pods"
		n=$((n + 1))
	done
	mapfile -t proxies < <(pgrep -f -- "kuasar-sandboxer proxy .*--run-dir $D/run" || true)
	mapfile -t vmms < <(pgrep -f -- "qemu-system.*$D/run/" || true)
	printf '%-10s %9s kB %13s kB %13s kB %11s kB %11s kB %13s kB\n' "$n" "$(kb VmRSS "$SB_PID")" \
		"$(kb VmRSS "${proxies[@]}")" "$(kb Pss "${proxies[@]}")" "$(kb VmRSS "${vmms[@]}")" \
		"$(kb Pss "${vmms[@]}")" "$(charged)"
done
