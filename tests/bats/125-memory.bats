#!/usr/bin/env bats
# A pod that outgrows its memory behaves as under runc: kubelet's pod cgroup (here the test's,
# with the pod's limit on it) holds the VMM and task proxy, the VM is sized to fit inside it,
# and what outgrows the pod is OOM-killed inside the guest (exit 137, OOMKilled) while the
# pod goes on, its cgroup under its limit.

load cri

setup_file() { cri_setup_file; }
setup() {
	cri_setup
	PARENT="kuasar-$(basename "$D")/pod-mem"
	LIMIT=$((320 * 1024 * 1024))
	pod_cgroup
}
teardown() {
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods" 2>/dev/null)
	find /sys/fs/cgroup -depth -type d -path "*/$PARENT" -exec rmdir {} \; 2>/dev/null || true
	cri_teardown
}

# pod_cgroup: the pod's cgroup with its memory limit, as kubelet makes it; MEMCG is its
# memory controller directory.
pod_cgroup() {
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		MEMCG=/sys/fs/cgroup/$PARENT
		mkdir -p "$MEMCG"
		echo +memory >"/sys/fs/cgroup/kuasar-$(basename "$D")/cgroup.subtree_control" 2>/dev/null || true
		echo "$LIMIT" >"$MEMCG/memory.max"
	else
		MEMCG=/sys/fs/cgroup/memory/$PARENT
		mkdir -p "$MEMCG"
		echo "$LIMIT" >"$MEMCG/memory.limit_in_bytes"
	fi
}

# A process that grows by 1 MiB at a time until it is killed (small steps: no allocation is
# ever refused for being larger than the VM).
HOG='BEGIN { while (1) a[i++] = sprintf("%1048576s", "") }'

usage() { cat "$MEMCG/memory.current" 2>/dev/null || cat "$MEMCG/memory.usage_in_bytes"; }
# How often the cgroup hit its limit (v2: memory.events max; v1: failcnt).
limit_hits() {
	if [ -f "$MEMCG/memory.events" ]; then
		awk '$1 == "max" { print $2 }' "$MEMCG/memory.events"
	else
		cat "$MEMCG/memory.failcnt"
	fi
}

@test "memory: what outgrows the pod is OOM-killed inside its VM (137, OOMKilled); the pod goes on, under its limit" {
	POD=$(cri --name mem --uid uid-mem --memory "$LIMIT" --cgroup-parent "/$PARENT" runp)
	echo "$POD" >>"$D/pods"
	# 320 MiB less the VMM's and proxy's 64.
	run poke Status --id "$POD" --hex 1001
	[[ "$output" == *memory_mib??256* ]]
	CTR=$(cri --name mem --uid uid-mem --container web --image kuasar.invalid/busybox:test \
		create "$POD" -- sh -c 'echo up; exec sleep 1000')
	cri start "$CTR"
	wait_log "$D/logs/web.log" "stdout F up"
	# An exec that grows past the pod's memory (the container has no limit of its own).
	run cri exec "$CTR" -- awk "$HOG"
	[ "$status" -eq 137 ]
	run cri exec "$CTR" -- echo still-serving
	[[ "$output" == *still-serving* ]]
	# A container whose own process does: it exits 137, and CRI says OOMKilled.
	local hog
	hog=$(cri --name mem --uid uid-mem --container hog --image kuasar.invalid/busybox:test \
		create "$POD" -- awk "$HOG")
	cri start "$hog"
	wait_until 60 ctr_exited "$hog"
	run cri status "$hog"
	[[ "$output" == *"exit_code=137 reason=OOMKilled"* ]]
	# The sandboxer says so, with the pod cgroup's figures.
	grep -q "container $hog was OOM-killed inside the VM (its cgroup" "$D/sandboxer.log"
	run cri podstatus "$POD"
	[[ "$output" == *SANDBOX_READY* ]]
	# The pod's cgroup held it all: under its limit now, and the host never had to reclaim
	# it at the limit for long (the guest's OOM killer acted first).
	local used hits
	used=$(usage)
	hits=$(limit_hits)
	echo "# pod cgroup: $((used >> 20)) MiB of $((LIMIT >> 20)) MiB, $hits limit hits" >&3
	[ "$used" -lt "$LIMIT" ]
	[ "$hits" -lt 100 ]
	cri rm "$hog"
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
	cri stopp "$POD"
	cri rmp "$POD"
}

@test "memory: a pod limit too small for any VM fails RunPodSandbox, naming the least that works" {
	run cri --name small --uid uid-small --memory $((100 * 1024 * 1024)) runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"leaves 36 MiB for the VM"*"at least 128 MiB"* ]]
}

ms() { echo $(($(date +%s%N) / 1000000)); }

@test "a guest that stops answering: stats answer within 1 s, StopContainer with a 2 s grace ends, removal leaves nothing" {
	run_pod stuck sh -c 'echo up; exec sleep 1000'
	wait_log "$D/logs/stuck.log" "stdout F up"
	local pod1=$POD ctr1=$CTR vmm t0 took
	echo "$pod1" >>"$D/pods"
	run_pod fine sh -c 'echo up; exec sleep 1000'
	wait_log "$D/logs/fine.log" "stdout F up"
	echo "$POD" >>"$D/pods"
	# One answer while the guest is well: what the proxy gives for it later.
	run cri stats -
	[[ "$output" == *"id=$ctr1"* ]]
	vmm=$(pgrep -f -- "$D/run/$pod1/")
	kill -STOP "$vmm"
	# containerd's ListContainerStats asks every task: the stuck one answers from its last.
	t0=$(ms)
	run cri stats -
	took=$(($(ms) - t0))
	echo "# ListContainerStats with a stuck guest: ${took} ms" >&3
	[ "$status" -eq 0 ]
	[[ "$output" == *"id=$ctr1"* ]]
	[[ "$output" == *"id=$CTR"* ]]
	[ "$took" -lt 1000 ]
	# A stop with a 2 s grace ends within grace + 2 s: the Kill the guest does not answer
	# stops the VM, and the container has exited with 137.
	t0=$(ms)
	cri --timeout 2 stop "$ctr1"
	took=$(($(ms) - t0))
	echo "# StopContainer (2 s grace) of a stuck guest's container: ${took} ms" >&3
	[ "$took" -lt 4000 ]
	run cri status "$ctr1"
	[[ "$output" == *"state=EXITED exit_code=137"* ]]
	grep -q "did not answer Kill.*stopping the VM" "$D/sandboxer.log"
	refute kill -0 "$vmm" 2>/dev/null
	cri rm "$ctr1"
	cri stopp "$pod1"
	cri rmp "$pod1"
	[ ! -e "$D/run/$pod1" ]
	# The other pod never noticed.
	run cri exec "$CTR" -- echo fine
	[[ "$output" == *fine* ]]
}
