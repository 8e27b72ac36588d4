#!/usr/bin/env bash
# Builds an OCI bundle for tests and demos: a busybox root filesystem (Debian's
# busybox-static, one link per applet) and a config.json shaped like `runc spec` output,
# adjusted by options.
#
# usage: tests/make-bundle.sh DIR [--user UID:GID] [--readonly] [--hostname H]
#            [--memory BYTES] [--pids N] [--drop-cap CAP_X] [--deny-syscall NAME]
#            [--terminal] [--env K=V] [--mask PATH] [--cpu SHARES:QUOTA:PERIOD] [-- ARGS...]
set -euo pipefail

die() { printf 'make-bundle: fatal: %s\n' "$*" >&2; exit 1; }

dir=${1:-}
[ -n "$dir" ] || die "usage: $0 DIR [options] [-- ARGS...]"
shift
busybox=/bin/busybox
[ -x "$busybox" ] || die "busybox not found (make deps installs busybox-static)"

opts=()
args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--) shift; args=("$@"); break ;;
	--readonly | --terminal) opts+=("$1"); shift ;;
	--user | --hostname | --memory | --pids | --drop-cap | --deny-syscall | --env | --mask | \
		--cpu)
		[ $# -ge 2 ] || die "$1 needs a value"
		opts+=("$1" "$2"); shift 2 ;;
	*) die "unknown option $1" ;;
	esac
done

rm -rf "$dir"
mkdir -p "$dir/rootfs"/{bin,dev,proc,sys,tmp,etc,root,home/user}
chmod 1777 "$dir/rootfs/tmp"
cp "$busybox" "$dir/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$dir/rootfs/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\n' >"$dir/rootfs/etc/group"
chown 1000:1000 "$dir/rootfs/home/user" 2>/dev/null || true

python3 - "$(cd "$(dirname "$0")/../tools" && pwd)" "$dir/config.json" "${opts[@]}" --args "${args[@]}" <<'PY'
import json, sys

tools, out = sys.argv[1:3]
argv = sys.argv[3:]
sys.dont_write_bytecode = True  # nothing written into tools/
sys.path.insert(0, tools)
from oci2bundle import CAPS as caps, MOUNTS  # the defaults appliances get too
spec = {
    "ociVersion": "1.1.0",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm", "HOME=/root"],
        "cwd": "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": False},
    "hostname": "kuasar-test",
    "mounts": [dict(m) for m in MOUNTS] + [
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}
i = 0
while i < len(argv):
    a = argv[i]
    if a == "--args":
        if argv[i + 1:]:
            spec["process"]["args"] = argv[i + 1:]
        break
    v = argv[i + 1] if i + 1 < len(argv) else None
    if a == "--readonly":
        spec["root"]["readonly"] = True; i += 1; continue
    if a == "--terminal":
        spec["process"]["terminal"] = True; i += 1; continue
    if a == "--user":
        uid, gid = v.split(":"); spec["process"]["user"] = {"uid": int(uid), "gid": int(gid)}
    elif a == "--hostname":
        spec["hostname"] = v
    elif a == "--memory":
        spec["linux"]["resources"]["memory"] = {"limit": int(v)}
    elif a == "--pids":
        spec["linux"]["resources"]["pids"] = {"limit": int(v)}
    elif a == "--drop-cap":
        for k in spec["process"]["capabilities"]:
            spec["process"]["capabilities"][k].remove(v)
    elif a == "--deny-syscall":
        sc = spec["linux"].setdefault("seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                                   "architectures": ["SCMP_ARCH_X86_64"],
                                                   "syscalls": []})
        sc["syscalls"].append({"names": [v], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    elif a == "--env":
        spec["process"]["env"].append(v)
    elif a == "--mask":
        spec["linux"]["maskedPaths"].append(v)
    elif a == "--cpu":
        shares, quota, period = (int(x) for x in v.split(":"))
        spec["linux"]["resources"]["cpu"] = {"shares": shares, "quota": quota, "period": period}
    i += 2
json.dump(spec, open(out, "w"), indent=2)
PY
