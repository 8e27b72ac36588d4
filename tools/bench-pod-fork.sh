#!/usr/bin/env bash
# Forks of a running pod through stock containerd (rootfs = block): a pod whose container
# counts five times a second into the page busybox httpd serves is snapshotted while it
# serves (kuasar-ctl snapshot POD: the pause, from its proxy's log), then pods are started,
# interleaved, two ways, each timed from RunPodSandbox to the first HTTP answer of a counter
# on its address:
#   fork:     annotated io.kuasar.snapshot, the inherited counter answers (RunPodSandbox only)
#   template: the same pod without it, the counter started as a container of its own
#             (RunPodSandbox, CreateContainer, StartContainer)
# Medians, p90s and the ratio; then the private memory (USS) of each kind's VMM.
#
# usage: tools/bench-pod-fork.sh [RUNS]
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-5}
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"
cri_env_bench kpf
CRI_ENV_ROOTFS=block
export KUASAR_RUN_DIR=$D/run KUASAR_SNAPSHOT_DIR=$D/snapshots KUASAR_TEMPLATE_MEM_DIR=$D/templates/mem
ctl() { cri_ctl "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

COUNTER='mkdir -p /www; (i=0; while :; do i=$((i + 1)); echo $i >/www/n; mv /www/n /www/index.html; sleep 0.2; done) & exec httpd -f -p 8080 -h /www'

pod() { # NAME [CRI OPTIONS...]: a networked pod; prints its id
	local name=$1
	shift
	ctl --name "$name" --uid "uid-$name" --pod-network "$@" runp | tee -a "$D/pods"
}
counter() { # NAME POD: the counter as a container of POD
	local c
	c=$(ctl --name "$1" --uid "uid-$1" --pod-network --container "$1" \
		--image kuasar.invalid/busybox:test create "$2" -- sh -c "$COUNTER")
	ctl start "$c" >/dev/null
}
ip_of() { ctl podstatus "$1" | sed -n 's/.* ip=\([^ ]*\).*/\1/p'; }
answers() { # IP: the counter's page has a number
	printf 'GET / HTTP/1.0\r\n\r\n' | timeout 2 nc -w 1 "$1" 8080 2>/dev/null | tail -1 | grep -q '^[0-9]'
}
wait_answer() { # IP
	local i
	for i in $(seq 600); do
		answers "$1" && return 0
		sleep 0.02
	done
	echo "no answer from $1" >&2
	return 1
}
uss() { # POD: its VMM's private memory, MiB
	local pid
	pid=$(pgrep -f -- "qemu-system.*$D/run/$1/" | head -1)
	awk '/^Private_(Clean|Dirty):/ { s += $2 } END { printf "%.1f", s / 1024 }' "/proc/$pid/smaps_rollup"
}

cri_env_fetch
cri_env_up
echo "== the parent: a counter pod, snapshotted while it serves"
pod warm >/dev/null
counter warm "$(tail -1 "$D/pods")"
PARENT=$(tail -1 "$D/pods")
wait_answer "$(ip_of "$PARENT")"
sleep 2
for r in $(seq "$RUNS"); do
	"$TOP/bin/kuasar-ctl" snapshot "$PARENT" -o "s$r" >/dev/null 2>&1
done
grep -o 'snapshot: paused [0-9.]* ms, [0-9.]* ms in all' "$D/sandboxer.log" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin]
p = sorted(float(r[2]) for r in rows)
t = [float(r[4]) for r in rows]
print(f"snapshot of the running pod ({len(p)}): pause median {statistics.median(p):.1f} ms "
      f"(min {p[0]:.1f}, max {p[-1]:.1f}), in all median {statistics.median(t):.0f} ms")'

echo "== pod to the counter's first answer, $RUNS runs each, interleaved"
for r in $(seq "$RUNS"); do
	t0=$(now_ms)
	p=$(pod "tpl$r")
	t1=$(now_ms)
	counter "tpl$r" "$p"
	wait_answer "$(ip_of "$p")"
	echo "template $((t1 - t0)) $(($(now_ms) - t0)) $(uss "$p")" >>"$D/times"
	t0=$(now_ms)
	p=$(pod "fork$r" --annotation "io.kuasar.snapshot=s$r")
	t1=$(now_ms)
	wait_answer "$(ip_of "$p")"
	echo "fork $((t1 - t0)) $(($(now_ms) - t0)) $(uss "$p")" >>"$D/times"
done
python3 - "$D/times" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def col(kind, i):
    return sorted(float(r[i]) for r in rows if r[0] == kind)
def p90(v):
    return v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
print(f"{'':10} {'RunPodSandbox ms':>18} {'to first answer ms':>20} {'p90':>8} {'VMM USS MiB':>12}")
for k in ("template", "fork"):
    print(f"{k:10} {statistics.median(col(k, 1)):18.0f} {statistics.median(col(k, 2)):20.0f}"
          f" {p90(col(k, 2)):8.0f} {statistics.median(col(k, 3)):12.1f}")
print(f"fork / template to first answer: {statistics.median(col('fork', 2)) / statistics.median(col('template', 2)):.2f}x"
      f"; RunPodSandbox: {statistics.median(col('fork', 1)) / statistics.median(col('template', 1)):.2f}x")
EOF
echo "== where a start went (the last of each kind, from the task proxies' phase lines)"
for k in template fork; do
	grep -o "phases sandbox start ($k): .*" "$D/sandboxer.log" | tail -1
done
# The snapshots go before the exit trap removes the pods' directory.
cri_env_rmpods $(cat "$D/pods")
: >"$D/pods"
for r in $(seq "$RUNS"); do "$TOP/bin/kuasar-ctl" snapshot rm "s$r" >/dev/null; done
