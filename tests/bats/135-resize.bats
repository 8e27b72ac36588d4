#!/usr/bin/env bats
# In-place pod resize as containerd >= 2.3 sends it (UpdatePodSandboxResources becomes
# Controller.Update with the "updated-resources" extension), sent here as raw Controller
# calls since Debian's containerd 2.1 has no such CRI call. Pods boot cold: a VM restored from
# a template has no balloon (qemu.c says why), so only a cold one gives memory back.

load cri

setup_file() { cri_setup_file; }
setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*template*) cri_setup ;;
	*) CRI_ENV_TEMPLATE=false cri_setup ;;
	esac
}
teardown() { cri_teardown_pods; }

BUSYBOX=kuasar.invalid/busybox:test
MiB=1048576

# update ID VALUE: Controller.Update carrying containerd's updated-resources extension with
# VALUE (JSON of CRI's LinuxContainerResources, as containerd's typeurl marshals it).
update() {
	local hex
	hex=$(python3 - "$1" "$2" <<-'PY'
	import sys
	def varint(n):
	    out = b""
	    while True:
	        b, n = n & 0x7f, n >> 7
	        out += bytes([b | (0x80 if n else 0)])
	        if not n:
	            return out
	def field(num, data):
	    return varint(num << 3 | 2) + varint(len(data)) + data
	sid, value = sys.argv[1].encode(), sys.argv[2].encode()
	any_ = field(1, b"io.containerd.cri.v1/UpdatedResources") + field(2, value)
	info = field(1, sid) + field(7, field(1, b"updated-resources") + field(2, any_))
	print((field(1, sid) + field(3, info) + field(4, b"extensions")).hex())
	PY
	)
	poke Update --hex "$hex"
}

# resize ID QUOTA PERIOD MEMORY: the pod's new resources, as kubelet sends them.
resize() {
	update "$1" "{\"Overhead\":null,\"Resources\":{\"cpu_period\":$3,\"cpu_quota\":$2,\"cpu_shares\":512,\"memory_limit_in_bytes\":$4,\"oom_score_adj\":-997}}"
}

# The sandbox's host CPU limit, as "QUOTA PERIOD" on either cgroup version.
host_cpu() {
	local cg
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		cg=$(cri_env_cgroups | grep "/$1\$" | head -1)
		cat "$cg/cpu.max"
	else
		cg=$(cri_env_cgroups | grep "^/sys/fs/cgroup/cpu/.*/$1\$" | head -1)
		echo "$(cat "$cg/cpu.cfs_quota_us") $(cat "$cg/cpu.cfs_period_us")"
	fi
}

# A process that takes 300 MiB, 1 MiB at a time, and says so.
HOG300='BEGIN { while (i < 300) a[i++] = sprintf("%1048576s", ""); print "survived" }'

mem_total() { cri exec "$1" -- awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo; }

@test "resize: CPU and memory down and up again reach the host's cgroup, the guest's pod cgroup and the balloon" {
	POD=$(cri --name rs --memory $((512 * MiB)) --cpu-quota 200000 --cpu-period 100000 runp)
	echo "$POD" >>"$D/pods"
	c=$(cri --container c --image "$BUSYBOX" create "$POD" -- sleep 1000)
	cri start "$c"
	[ "$(host_cpu "$POD")" = "-1 100000" ] || [ "$(host_cpu "$POD")" = "max 100000" ]
	local before shrunk after
	before=$(mem_total "$c")
	# Down: half a CPU, 384 MiB (the VM: 320 MiB once the VMM's 64 are out).
	run resize "$POD" 50000 100000 $((384 * MiB))
	[[ "$output" == code=0* ]]
	[ "$(host_cpu "$POD")" = "50000 100000" ]
	grep -q "pod limits: cpu 50000/100000, memory $(((320 - 24) * MiB))" "$D/run/$POD/console.log"
	wait_until 20 test "$(mem_total "$c")" -le $((before - 100))
	shrunk=$(mem_total "$c")
	run poke Status --id "$POD" --hex 1001
	[[ "$output" == *memory_now_mib*320* ]]
	# A restarted daemon still knows the VM's size now.
	cri_env_stop_pid "$SB_PID"
	sandboxer_start
	run poke Status --id "$POD" --hex 1001
	[[ "$output" == *memory_now_mib*320* ]]
	# Up again to what it booted with: the balloon gives it all back, the limits go.
	run resize "$POD" 200000 100000 $((512 * MiB))
	[[ "$output" == code=0* ]]
	[ "$(host_cpu "$POD")" = "200000 100000" ]
	grep -q "pod limits: cpu 200000/100000, memory 0" "$D/run/$POD/console.log"
	wait_until 20 test "$(mem_total "$c")" -ge $((before - 4))
	after=$(mem_total "$c")
	echo "# MemTotal in the guest: $before MiB, $shrunk MiB resized down, $after MiB up again" >&3
}

@test "resize: more memory or CPUs than the VM booted with is refused, and the pod is untouched" {
	POD=$(cri --name big --memory $((512 * MiB)) --cpu-quota 100000 --cpu-period 100000 runp)
	echo "$POD" >>"$D/pods"
	run resize "$POD" 100000 100000 $((1024 * MiB))
	[[ "$output" == code=3*"cannot grow past that (no memory hotplug)"* ]]
	run resize "$POD" 200000 100000 $((512 * MiB))
	[[ "$output" == code=3*"asks for 2 CPUs and the VM has 1 vCPUs"* ]]
	run resize "$POD" 100000 100000 $((32 * MiB))
	[[ "$output" == code=3*"a sandbox needs a limit of at least"* ]]
	# A malformed extension is refused as such.
	run update "$POD" '{"Resources": [1, 2]}'
	[[ "$output" == code=3*"Resources and Overhead must be objects"* ]]
	run update "$POD" '{"Resources": {"cpu_quota": 1}'
	[[ "$output" == code=3*"not a JSON object"* ]]
	run poke Status --id "$POD"
	[[ "$output" == *SANDBOX_READY* ]]
	[ "$(host_cpu "$POD")" = "-1 100000" ] || [ "$(host_cpu "$POD")" = "max 100000" ]
}

@test "resize: a pod restored from a template has no balloon, and the guest's limit alone holds it" {
	POD=$(cri --name tpl --memory $((512 * MiB)) --cpu-quota 100000 --cpu-period 100000 runp)
	echo "$POD" >>"$D/pods"
	run poke Status --id "$POD" --hex 1001
	[[ "$output" == *template* ]]
	c=$(cri --container c --image "$BUSYBOX" create "$POD" -- sleep 1000)
	cri start "$c"
	local before
	before=$(mem_total "$c")
	run cri exec "$c" -- awk "$HOG300"
	[ "$output" = survived ]
	run resize "$POD" 50000 100000 $((384 * MiB))
	[[ "$output" == code=0* ]]
	[ "$(host_cpu "$POD")" = "50000 100000" ]
	grep -q "pod limits: cpu 50000/100000, memory $(((320 - 24) * MiB))" "$D/run/$POD/console.log"
	grep -q "memory 320 MiB (no balloon: the guest's limit holds it)" "$D/sandboxer.log"
	[ "$(mem_total "$c")" -eq "$before" ]
	# 300 MiB fits the VM, not the resized pod: it dies in the VM, the pod serves on.
	run cri exec "$c" -- awk "$HOG300"
	[ "$status" -eq 137 ]
	run cri exec "$c" -- echo alive
	[ "$output" = alive ]
}
