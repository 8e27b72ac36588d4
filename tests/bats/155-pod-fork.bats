#!/usr/bin/env bats
# Forks of a running pod: kuasar-ctl snapshot POD asks the pod's proxy, not containerd; the
# guest lets its share go for the pause and takes it back, the pod goes on serving and
# starting containers, and forks of the snapshot carry on with its container's state, on
# root disks of their own. Teardown fails a test on any VMM, snapshot file, memory file,
# netns or pod leftover.

load cri

setup_file() { cri_setup_file; }
setup() {
	CRI_ENV_ROOTFS=block
	export CRI_ENV_ROOTFS
	cri_setup
	export KUASAR_SNAPSHOT_DIR=$D/snapshots
	export KUASAR_TEMPLATE_MEM_DIR=$D/templates/mem
	NS_PREFIX=kpf-$(basename "$D" | tr -dc 'a-zA-Z0-9')
}

teardown() {
	local f leaked=""
	for f in "$D"/run/*/vm.json; do
		[ -f "$f" ] && [ ! -f "$(dirname "$f")/sandbox.json" ] &&
			"$CTL" shutdown "$(basename "$(dirname "$f")")" >/dev/null 2>&1
	done
	leaked=$(drop_netns "$NS_PREFIX-")
	ip link del kpfh0 2>/dev/null || true
	for f in "$KUASAR_SNAPSHOT_DIR"/*; do
		[ -e "$f" ] && leaked="$leaked snapshot files: $f"
	done
	[ -z "$(ls -A "$KUASAR_TEMPLATE_MEM_DIR/snapshots" 2>/dev/null)" ] ||
		leaked="$leaked snapshot memory: $(ls -A "$KUASAR_TEMPLATE_MEM_DIR/snapshots")"
	cri_teardown_pods
	[ -z "$leaked" ] || { echo "left behind:$leaked" >&2; return 1; }
}

# counter NAME: a networked pod whose container counts five times a second into the page
# busybox httpd serves on port 8080, and says each count on its stdout (which in a fork no
# one reads any more: the guest drops it, the loop must not die of it); sets POD and CTR.
counter() {
	POD=$(cri --name "$1" --uid "uid-$1" --pod-network runp) || return 1
	echo "$POD" >>"$D/pods"
	CTR=$(cri --name "$1" --uid "uid-$1" --pod-network --container "$1" \
		--image kuasar.invalid/busybox:test create "$POD" -- sh -c \
		'mkdir -p /www; (i=0; while :; do i=$((i + 1)); echo $i >/www/n; mv /www/n /www/index.html; echo "tick $i"; sleep 0.2; done) & exec httpd -f -p 8080 -h /www') ||
		return 1
	cri start "$CTR"
}

# A snapshot's short-lived VMM's directory (<id, cut>.snap) is in the run directory.
holder_runs() {
	compgen -G "$D/run/*.snap" >/dev/null
}

count() { # HOST: the counter's value there
	get "$1" 8080 | tail -1 | tr -dc 0-9
}
count_at_least() { # HOST N
	local n
	n=$(count "$1")
	[ -n "$n" ] && [ "$n" -ge "$2" ]
}

# snapped NAME SNAPSHOT: a counter pod NAME (POD, CTR; its address in ip) that has counted
# to 10, its count in before, then snapshotted as SNAPSHOT by kuasar-ctl.
snapped() {
	counter "$1"
	ip=$(pod_ip "$POD")
	wait_until 60 count_at_least "$ip" 10
	before=$(count "$ip")
	run_t 180 0 "$CTL" snapshot "$POD" -o "$2"
}

@test "pod fork: a pod is snapshotted without containerd and runs on; a fork carries on its container's count" {
	snapped cnt ps1
	[[ "$output" == "ps1"* ]]
	at=$(count "$ip")
	grep -q "snapshot: paused" "$D/sandboxer.log"
	# The snapshot has the container's root disk, its own.
	ls "$KUASAR_SNAPSHOT_DIR/ps1/"disk-0.img
	grep -q '"disks"' "$KUASAR_SNAPSHOT_DIR/ps1/meta.json"
	# The parent goes on counting, and still starts containers (its share is back).
	wait_until 20 count_at_least "$ip" $((at + 5))
	CTR2=$(cri --name cnt --uid uid-cnt --pod-network --container two \
		--image kuasar.invalid/busybox:test create "$POD" -- sh -c 'echo two; exec sleep 1000')
	cri start "$CTR2"
	wait_log "$D/logs/two.log" "stdout F two"
	# A fork on a network of its own counts on from the snapshot's value.
	run_t 180 0 "$CTL" fork ps1 --network "$(veth_ns "$NS_PREFIX-0" kpfh0 10.215.0)" --id pf --keep
	f=$(count 10.215.0.2)
	[ -n "$f" ] && [ "$f" -ge "$before" ]
	wait_until 20 count_at_least 10.215.0.2 $((f + 5))
	# The snapshot is in use while the fork maps it.
	run "$CTL" snapshot rm ps1
	[ "$status" -ne 0 ]
	[[ "$output" == *"in use"* ]]
	"$CTL" shutdown pf
	"$CTL" snapshot rm ps1
	cri --timeout 5 stop "$CTR2"
	cri rm "$CTR2"
}

@test "pod fork: a pod annotated io.kuasar.snapshot carries on from it, unique, and runs containers of its own" {
	snapped par ps2
	# Two pods from the snapshot, each on its own CNI address.
	F1=$(cri --name f1 --uid uid-f1 --hostname f1 --pod-network --annotation io.kuasar.snapshot=ps2 runp)
	echo "$F1" >>"$D/pods"
	F2=$(cri --name f2 --uid uid-f2 --hostname f2 --pod-network --annotation io.kuasar.snapshot=ps2 runp)
	echo "$F2" >>"$D/pods"
	grep -q "sandbox $F1: created (.*snapshot ps2" "$D/sandboxer.log"
	grep -q "sandbox $F2: ready in [0-9]* ms (snapshot ps2;" "$D/sandboxer.log"
	ip1=$(pod_ip "$F1")
	ip2=$(pod_ip "$F2")
	[ -n "$ip1" ] && [ -n "$ip2" ] && [ "$ip1" != "$ip2" ] && [ "$ip1" != "$ip" ]
	# Each carries on counting from the snapshot's value, and so does the parent.
	c1=$(count "$ip1")
	c2=$(count "$ip2")
	[ -n "$c1" ] && [ "$c1" -ge "$before" ] && [ -n "$c2" ] && [ "$c2" -ge "$before" ]
	wait_until 20 count_at_least "$ip1" $((c1 + 5))
	wait_until 20 count_at_least "$ip2" $((c2 + 5))
	wait_until 20 count_at_least "$ip" $((c1 + 5))
	# A container of the fork pod's own: its hostname, a disk target the parent's did not
	# have, and it reaches the inherited server on the VM's loopback.
	CTR=$(cri --name f1 --uid uid-f1 --pod-network --container own \
		--image kuasar.invalid/busybox:test create "$F1" -- sh -c 'echo "own on $(hostname)"; exec sleep 1000')
	cri start "$CTR"
	wait_log "$D/logs/own.log" "stdout F own on f1"
	run fetch "$CTR" 127.0.0.1
	[[ "$output" == *"200 OK"* ]]
	[ "$(echo "$output" | tail -1 | tr -dc 0-9)" -ge "$c1" ]
	grep -q "root disk on SCSI target 1" "$D/sandboxer.log"
	# A fork pod is snapshotted in turn, with both disks, and a pod carries on from that.
	run_t 180 0 "$CTL" snapshot "$F1" -o ps3
	ls "$KUASAR_SNAPSHOT_DIR/ps3/disk-0.img" "$KUASAR_SNAPSHOT_DIR/ps3/disk-1.img"
	F3=$(cri --name f3 --uid uid-f3 --pod-network --annotation io.kuasar.snapshot=ps3 runp)
	echo "$F3" >>"$D/pods"
	c3=$(count "$(pod_ip "$F3")")
	[ -n "$c3" ] && [ "$c3" -ge "$c1" ]
	wait_until 20 count_at_least "$(pod_ip "$F3")" $((c3 + 5))
	# The snapshot stays while fork pods map it; once they are gone it can go.
	run "$CTL" snapshot rm ps2
	[ "$status" -ne 0 ]
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
	cri_env_rmpods "$F1" "$F2" "$F3"
	"$CTL" snapshot rm ps2
	"$CTL" snapshot rm ps3
}

@test "pod fork: what cannot be snapshotted or restored is refused clearly, and the pod runs on" {
	# A container on the share (rootfs 9p) keeps it mounted: refused, the pod untouched.
	POD=$(cri --name p9 --uid uid-p9 --pod-network --annotation io.kuasar.rootfs=9p runp)
	echo "$POD" >>"$D/pods"
	CTR=$(cri --name p9 --uid uid-p9 --pod-network --container p9 \
		--image kuasar.invalid/busybox:test create "$POD" -- sh -c 'echo up; exec sleep 1000')
	cri start "$CTR"
	wait_log "$D/logs/p9.log" "stdout F up"
	run "$CTL" snapshot "$POD" -o bad
	[ "$status" -ne 0 ]
	[[ "$output" == *"share"* ]]
	[ ! -e "$KUASAR_SNAPSHOT_DIR/bad" ]
	run cri exec "$CTR" -- echo still
	[[ "$output" == *still* ]]
	# A pod naming a snapshot that does not exist, or a path, fails at RunPodSandbox.
	run cri --name nx --uid uid-nx --annotation io.kuasar.snapshot=nosuch runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"no snapshot \`nosuch\`"* ]]
	run cri --name tr --uid uid-tr --annotation io.kuasar.snapshot=../x runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"snapshot name"* ]]
	run cri --name both --uid uid-both --annotation io.kuasar.snapshot=a \
		--annotation io.kuasar.appliance=b runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"one or the other"* ]]
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
}

# midway NAME SNAPSHOT: a counter pod NAME whose snapshot SNAPSHOT is under way (its
# short-lived VMM runs) in the background, as job $SNAP.
midway() {
	counter "$1"
	wait_until 60 count_at_least "$(pod_ip "$POD")" 5
	"$CTL" snapshot "$POD" -o "$2" >"$D/snap.out" 2>&1 &
	SNAP=$!
	wait_until 20 holder_runs
}

@test "pod fork: a pod stopped or its proxy killed during a snapshot leaves no snapshot, VMM or directory behind" {
	# The pod stops while its snapshot is being taken: the snapshot fails, clearly.
	midway gone half
	cri stopp "$POD"
	run wait "$SNAP"
	[ "$status" -ne 0 ]
	[ ! -e "$KUASAR_SNAPSHOT_DIR/half" ]
	cri rmp "$POD"
	! holder_runs
	# Its proxy killed midway: the daemon's removal of the pod takes the snapshot's VMM.
	midway gone2 half2
	kill -9 "$(pgrep -o -f -- "proxy --id $POD")"
	run wait "$SNAP"
	[ "$status" -ne 0 ]
	# (containerd wants the container that lost its task proxy stopped first)
	cri --timeout 5 stop "$CTR" || true
	cri stopp "$POD" || true
	wait_until 20 cri rmp "$POD"
	! holder_runs
	[ ! -e "$KUASAR_SNAPSHOT_DIR/half2" ]
}
