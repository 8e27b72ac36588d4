#!/usr/bin/env bash
# Cold boot benchmark (not a test): spawn to the init's first console line with our kernel
# versus Debian's distro kernel, same initrd, runs interleaved so both see the same machine
# load; plus spawn to link ready for ours. Prints min/median and the ratio.
#
# usage: tools/bench-boot.sh [RUNS]   (default 5; env DISTRO_KERNEL overrides the kernel)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
ctl=$top/bin/kuasar-ctl
ours=$top/bin/vmlinux.bin
initrd=$top/bin/kuasar.initrd
distro=${DISTRO_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -f "$distro" ] || { echo "bench-boot: no distro kernel in /boot (make deps installs linux-image-amd64)" >&2; exit 1; }

export KUASAR_RUN_DIR=${KUASAR_RUN_DIR:-$(mktemp -d /tmp/kuasar-bench.XXXXXX)}
out=$(mktemp)
trap 'rm -f "$out"; find "$KUASAR_RUN_DIR" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +' EXIT

for i in $(seq "$runs"); do
	printf '\rbench-boot: run %d/%d' "$i" "$runs" >&2
	printf 'distro %s\n' "$("$ctl" boot --kernel "$distro" --initrd "$initrd" --until console --json | tr -d '\n')" >>"$out"
	printf 'ours %s\n' "$("$ctl" boot --kernel "$ours" --initrd "$initrd" --json | tr -d '\n')" >>"$out"
done
printf '\r' >&2

python3 - "$out" "$runs" "$distro" <<'PY'
import json, statistics, sys
rows = {"distro": [], "ours": []}
for line in open(sys.argv[1]):
    kind, j = line.split(" ", 1)
    rows[kind].append(json.loads(j))
def stat(kind, key):
    v = [r[key] for r in rows[kind] if r.get(key) is not None]
    return min(v), statistics.median(v)
accel = rows["ours"][0]["accel"]
print(f"cold boot, spawn -> init's first console line ({accel}, {sys.argv[2]} interleaved runs each)")
print(f"  {'kernel':34} {'min ms':>9} {'median ms':>10}")
d = stat("distro", "spawn_to_console_ms")
o = stat("ours", "spawn_to_console_ms")
print(f"  {'Debian ' + sys.argv[3].split('/')[-1]:34} {d[0]:9.1f} {d[1]:10.1f}")
print(f"  {'ours (bin/vmlinux.bin, PVH)':34} {o[0]:9.1f} {o[1]:10.1f}")
print(f"  {'ratio Debian / ours':34} {d[0]/o[0]:8.2f}x {d[1]/o[1]:9.2f}x")
l = stat("ours", "spawn_to_link_ms")
q = stat("ours", "spawn_to_qmp_ms")
print(f"ours, spawn -> QMP ready   min {q[0]:7.1f} ms  median {q[1]:7.1f} ms")
print(f"ours, spawn -> link ready  min {l[0]:7.1f} ms  median {l[1]:7.1f} ms (Check answered)")
PY
