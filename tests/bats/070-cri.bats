#!/usr/bin/env bats
# Stock containerd drives kuasar-sandboxer through CRI: pods, containers, exec, restarts,
# killed VMMs, bad input to the Controller.

load cri

setup_file() { cri_setup_file; }
setup() { cri_setup; }
teardown() { cri_teardown; }

@test "CRI: a pod runs a container end to end" {
	POD=$(cri --hostname web runp)
	run cri podstatus "$POD"
	[ "$status" -eq 0 ]
	[[ "$output" == *"state=SANDBOX_READY handler=kuasar"* ]]
	CTR=$(cri --container app --image kuasar.invalid/busybox:test --env GREETING=hello \
		create "$POD" -- sh -c 'echo "$GREETING from $(hostname) on $(uname -r)"; echo to-stderr >&2; exec sleep 1000')
	cri start "$CTR"
	# The container has a UTS namespace of its own with the pod's hostname.
	wait_log "$D/logs/app.log" "stdout F hello from web on"
	wait_log "$D/logs/app.log" "stderr F to-stderr"
	run cri status "$CTR"
	[[ "$output" == *"state=RUNNING"* ]]
	# ExecSync: output, errors and the exit code come back.
	run cri exec "$CTR" -- sh -c 'echo out; echo err >&2; exit 7'
	[ "$status" -eq 7 ]
	[[ "$output" == *out* ]]
	[[ "$output" == *err* ]]
	# The container's rootfs is the image's, mounted into the VM's share.
	run cri exec "$CTR" -- cat /etc/passwd
	[ "$status" -eq 0 ]
	[[ "$output" == *"root:x:0:0"* ]]
	# Its own PID namespace: the guest's init is not visible from inside.
	run cri exec "$CTR" -- cat /proc/1/cmdline
	[[ "$output" == sleep1000* ]]
	cri --timeout 5 stop "$CTR"
	run cri status "$CTR"
	[[ "$output" == *"state=EXITED"* ]]
	cri rm "$CTR"
	[ -z "$(ls "$D/run/$POD/shared")" ]
	cri stopp "$POD"
	run cri podstatus "$POD"
	[[ "$output" == *"state=SANDBOX_NOTREADY"* ]]
	cri rmp "$POD"
	[ ! -e "$D/run/$POD" ]
}

@test "CRI: a container that exits reports its code; task events reach containerd" {
	timeout 60 "$CTRD_BIN/ctr" -a "$D/containerd.sock" events >"$D/events" 2>&1 &
	local ev=$!
	run_pod quick sh -c 'echo bye; exit 3'
	wait_log "$D/logs/quick.log" "stdout F bye"
	wait_until 10 ctr_exited "$CTR"
	run cri status "$CTR"
	[[ "$output" == *"state=EXITED exit_code=3"* ]]
	wait_until 10 grep -q /tasks/exit "$D/events"
	kill $ev 2>/dev/null || true
	grep -q "/tasks/start" "$D/events"
	grep -q "/tasks/exit" "$D/events"
	cri rm "$CTR"
	cri stopp "$POD"
	cri rmp "$POD"
}

@test "CRI: two pods at once, each in its own VM, sized by its limits" {
	# 1.5 CPUs round up to 2 vCPUs; a 256 MiB limit less the 64 MiB the VMM and task
	# proxy keep within it.
	POD=$(cri --name one --uid uid-one --cpu-quota 150000 --cpu-period 100000 --memory 268435456 runp)
	CTR=$(cri --name one --uid uid-one --container one --image kuasar.invalid/busybox:test \
		create "$POD" -- sh -c 'echo one-ready; exec sleep 1000')
	cri start "$CTR"
	local pod1=$POD ctr1=$CTR
	run poke Status --id "$pod1" --hex 1001
	[[ "$output" == *vcpus??2* ]]
	[[ "$output" == *memory_mib??192* ]]
	# Within it, a container's memory is capped below the VM's (less the guest's reserve):
	# what outgrows it is OOM-killed in the container's cgroup, inside the VM.
	run cri exec "$ctr1" -- tail -c 180000000 /dev/zero
	[ "$status" -eq 137 ]
	run cri status "$ctr1"
	[[ "$output" == *"state=RUNNING"* ]]
	run cri exec "$ctr1" -- grep -c ^processor /proc/cpuinfo
	[ "$output" = 2 ]
	run_pod two sh -c 'echo two-ready; exec sleep 1000'
	local pod2=$POD ctr2=$CTR
	wait_log "$D/logs/one.log" one-ready
	wait_log "$D/logs/two.log" two-ready
	[ "$(pgrep -fc -- "$D/run/")" -eq 2 ]
	run cri exec "$ctr1" -- sh -c 'echo x > /tmp/mark; ls /tmp'
	[[ "$output" == *mark* ]]
	# Different VMs: the other pod does not see it.
	run cri exec "$ctr2" -- ls /tmp
	[[ "$output" != *mark* ]]
	cri stopp "$pod1"
	cri stopp "$pod2"
	cri rmp "$pod1"
	cri rmp "$pod2"
}

@test "sandboxer killed with -9 and restarted, then containerd restarted: the pod's container is still reachable" {
	run_pod survivor sh -c 'echo up; exec sleep 1000'
	wait_log "$D/logs/survivor.log" up
	local vmm
	vmm=$(pgrep -f -- "$D/run/$POD/")
	kill -9 "$SB_PID"
	wait "$SB_PID" 2>/dev/null || true
	# The VM outlives the daemon.
	kill -0 "$vmm"
	sandboxer_start
	grep -q "re-adopted VMM $vmm and task proxy" "$D/sandboxer.log"
	run cri exec "$CTR" -- echo still-here
	[ "$status" -eq 0 ]
	[[ "$output" == *still-here* ]]
	run cri podstatus "$POD"
	[[ "$output" == *SANDBOX_READY* ]]
	# containerd restarting reconnects to the same task socket.
	cri_env_stop_pid "$CTRD_PID"
	cri_env_containerd
	run cri exec "$CTR" -- echo after-containerd-restart
	[[ "$output" == *after-containerd-restart* ]]
	# containerd reopened the running container's output: its log carries on.
	cri exec "$CTR" -- sh -c 'echo still-logging > /proc/1/fd/1'
	wait_log "$D/logs/survivor.log" "stdout F still-logging"
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
	cri stopp "$POD"
	cri rmp "$POD"
	refute kill -0 "$vmm" 2>/dev/null
}

@test "a VMM killed with -9: Wait returns and Status says NOTREADY" {
	run poke Create --id victim
	[[ "$output" == code=0* ]]
	run_t 60 0 "$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Start --id victim
	[[ "$output" == code=0* ]]
	[[ "$output" == *"ttrpc+unix://$D/run/victim/task.sock"* ]]
	run poke Status --id victim
	[[ "$output" == *SANDBOX_READY* ]]
	# Many waiters, one of them across a restart of the daemon (containerd retries Wait).
	local w waiters=() i
	for w in 1 2 3; do
		poke Wait --id victim >"$D/wait$w.out" &
		waiters+=($!)
	done
	wait_until 10 sb_waiters victim 3
	kill -9 "$SB_PID"
	wait "$SB_PID" 2>/dev/null || true
	sandboxer_start
	poke Wait --id victim >"$D/wait4.out" &
	waiters+=($!)
	wait_until 10 sb_waiters victim 1
	kill -9 "$(pgrep -f -- "$D/run/victim/")"
	# Each waiter is accounted for: the three held across the daemon's death lost their
	# connection (grpcpoke fails), the fourth got the exit.
	local rc
	for w in 0 1 2 3; do
		rc=0
		timeout 20 tail --pid="${waiters[$w]}" -f /dev/null
		wait "${waiters[$w]}" || rc=$?
		if [ "$w" -lt 3 ]; then
			[ "$rc" -ne 0 ] || { echo "waiter $((w + 1)) got an answer from a dead daemon" >&2; false; }
			[[ "$(cat "$D/wait$((w + 1)).out")" != *code=* ]]
		else
			[ "$rc" -eq 0 ]
			[[ "$(cat "$D/wait4.out")" == code=0*"bytes="* ]]
		fi
	done
	run poke Status --id victim
	[[ "$output" == *SANDBOX_NOTREADY* ]]
	# A second Wait on a stopped sandbox answers at once.
	run_t 5 0 "$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Wait --id victim
	[[ "$output" == code=0* ]]
	run poke Shutdown --id victim
	[[ "$output" == code=0* ]]
	[ ! -e "$D/run/victim" ]
}

@test "bad input to the Controller gets clear errors and the daemon stays up" {
	run poke Status --id nosuch
	[[ "$output" == "code=5 "*"not found"* ]]
	run poke Create --id twice
	[[ "$output" == code=0* ]]
	run poke Create --id twice
	[[ "$output" == "code=6 "*"already exists"* ]]
	run poke Create --id 'a/b'
	[[ "$output" == "code=3 "* ]]
	run poke Create --id '..'
	[[ "$output" == "code=3 "* ]]
	run poke Start --id '../etc'
	[[ "$output" == "code=3 "* ]]
	run poke Create --hex 0aff
	[[ "$output" == "code=3 "*"not a valid protobuf"* ]]
	run poke Create --zeros 17000000
	[[ "$output" == "code=8 "*"larger than"* ]]
	run poke NoSuchMethod
	[[ "$output" == "code=12 "* ]]
	run poke Stop --id nosuch
	[[ "$output" == "code=5 "* ]]
	run poke Metrics --id twice
	[[ "$output" == "code=9 "* ]]
	run poke Update --id twice --hex 1a0022097265736f7572636573
	[[ "$output" == "code=12 "*"resources"* ]]
	# still serving, and the sandbox that exists is intact
	run poke Status --id twice
	[[ "$output" == code=0* ]]
	run poke Shutdown --id twice
	[[ "$output" == code=0* ]]
	kill -0 "$SB_PID"
}

@test "Metrics has the VMM's figures; Platform says linux/amd64" {
	run poke Create --id measured
	run_t 60 0 "$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Start --id measured
	[[ "$output" == code=0* ]]
	# The sandbox's own cgroup holds its task proxy and VMM.
	local cg
	cg=$(cri_env_cgroups | grep '/measured$' | head -1)
	[ -n "$cg" ]
	grep -q "$(pgrep -f -- "$D/run/measured/" | head -1)" "$cg/cgroup.procs"
	run poke Metrics --id measured
	[[ "$output" == code=0* ]]
	[[ "$output" == *io.containerd.cgroups.v2.Metrics* ]]
	run poke Platform --id measured
	[[ "$output" == *linux*amd64* ]]
	run poke Stop --id measured --field2 5
	[[ "$output" == code=0* ]]
	run poke Shutdown --id measured
	[[ "$output" == code=0* ]]
	[ -z "$(cri_env_cgroups)" ]
}

@test "the sandboxer refuses a bad config, naming the line" {
	printf '[hypervisor]\nvcpus = 2\nmemory_in_mb = "lots"\n' >"$D/bad.toml"
	run "$BIN/kuasar-sandboxer" --config "$D/bad.toml" --check-config
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad.toml:3: hypervisor.memory_in_mb: expected a non-negative integer"* ]]
	printf '[hypervisor]\nturbo = true\n' >"$D/bad.toml"
	run "$BIN/kuasar-sandboxer" --config "$D/bad.toml" --check-config
	[[ "$output" == *"bad.toml:2: unknown key \`turbo\` in [hypervisor]"* ]]
	run "$BIN/kuasar-sandboxer" --config "$D/missing.toml" --check-config
	[ "$status" -eq 0 ]
	[[ "$output" == *'memory_in_mb = 256'* ]]
}

@test "the task socket: a stalled client, an oversized frame and garbage do not hold up others" {
	run_pod busy sh -c 'echo ready; exec sleep 1000'
	wait_log "$D/logs/busy.log" ready
	local sock=$D/run/$POD/task.sock
	# A client that sends half a frame and then nothing, and never reads.
	python3 -c '
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(struct.pack(">IIBB", 1000, 1, 1, 0) + b"x" * 10)
time.sleep(60)' "$sock" &
	local stalled=$!
	# An oversized frame is answered with RESOURCE_EXHAUSTED on its stream; garbage after
	# it gets INVALID_ARGUMENT; the connection stays usable.
	run python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
def frame():
    h = b""
    while len(h) < 10: h += s.recv(10 - len(h))
    n, sid, t, f = struct.unpack(">IIBB", h)
    d = b""
    while len(d) < n: d += s.recv(n - len(d))
    return sid, t, d
big = 5 << 20
s.sendall(struct.pack(">IIBB", big, 1, 1, 0) + b"\0" * big)
sid, t, d = frame(); print("big", sid, t, b"\x08" in d[:4], d.decode(errors="replace"))
s.sendall(struct.pack(">IIBB", 4, 3, 1, 0) + b"\xff\xff\xff\xff")
sid, t, d = frame(); print("garbage", sid, t, d.decode(errors="replace"))
s.sendall(struct.pack(">IIBB", 0, 2, 1, 0))
sid, t, d = frame(); print("even", sid, t, d.decode(errors="replace"))' "$sock"
	[ "$status" -eq 0 ]
	[[ "$output" == *"big 1 2 True"*"over the"* ]]
	[[ "$output" == *"garbage 3 2"*"malformed ttrpc request"* ]]
	[[ "$output" == *"even 2 2"*"odd and increasing"* ]]
	# Meanwhile containerd's own calls go through.
	run cri exec "$CTR" -- echo through
	[ "$status" -eq 0 ]
	[[ "$output" == *through* ]]
	kill "$stalled"
	cri stopp "$POD"
	cri rmp "$POD"
}

@test "Stop and Shutdown while a sandbox is starting leave nothing behind" {
	run poke Create --id hasty
	"$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Start --id hasty >"$D/start.out" &
	local starter=$!
	wait_until 10 sb_state hasty starting
	run poke Shutdown --id hasty
	[[ "$output" == code=0* ]]
	wait "$starter" || true
	[[ "$(cat "$D/start.out")" == "code=1 "*"stopped while starting"* ]]
	[ ! -e "$D/run/hasty" ]
	run poke Status --id hasty
	[[ "$output" == "code=5 "* ]]
	# Several waiters on one sandbox all get the answer.
	run poke Create --id waited
	local w waiters=()
	for w in 1 2 3; do
		poke Wait --id waited >"$D/w$w.out" &
		waiters+=($!)
	done
	wait_until 10 sb_waiters waited 3
	run poke Stop --id waited
	[[ "$output" == code=0* ]]
	for w in "${waiters[@]}"; do wait "$w"; done
	for w in 1 2 3; do [[ "$(cat "$D/w$w.out")" == code=0* ]]; done
	run poke Shutdown --id waited
	[[ "$output" == code=0* ]]
}

@test "a task proxy killed with -9: its VMM is stopped, reaped, and the sandbox is NOTREADY" {
	run poke Create --id orphan
	run_t 60 0 "$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Start --id orphan
	[[ "$output" == code=0* ]]
	local proxy vmm i
	proxy=$(pgrep -f -- "kuasar-sandboxer proxy --id orphan ")
	vmm=$(pgrep -f -- "$D/run/orphan/")
	kill -9 "$proxy"
	wait_until 10 sb_notready orphan
	run poke Status --id orphan --hex 1001
	[[ "$output" == *SANDBOX_NOTREADY*"task proxy died"* ]]
	# Gone, not a zombie of the daemon's.
	[ ! -e "/proc/$vmm" ]
	run poke Shutdown --id orphan
	[[ "$output" == code=0* ]]
}

@test "a sandbox whose stop hangs does not hold up the others: Status and Start answer meanwhile" {
	run poke Create --id stuck
	run_t 60 0 "$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Start --id stuck
	[[ "$output" == code=0* ]]
	run poke Create --id other
	[[ "$output" == code=0* ]]
	# A stopped proxy never notices its VMM's death: Shutdown has to wait for it (and kill it
	# after 5 s). The daemon must keep serving everyone else meanwhile.
	local proxy
	proxy=$(pgrep -f -- "kuasar-sandboxer proxy --id stuck ")
	kill -STOP "$proxy"
	poke Shutdown --id stuck >"$D/shutdown.out" &
	local shutter=$!
	wait_until 5 sb_state stuck stopping
	run_t 2 0 "$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Status --id other
	[[ "$output" == code=0*SANDBOX_NOTREADY* ]]
	kill -0 "$shutter" # the Shutdown is still waiting for the proxy
	run_t 60 0 "$BIN/tests/grpcpoke" "$D/sandboxer.sock" /containerd.services.sandbox.v1.Controller/Start --id other
	[[ "$output" == code=0* ]]
	wait "$shutter"
	[[ "$(cat "$D/shutdown.out")" == code=0* ]]
	[ ! -e "/proc/$proxy" ] # killed and reaped, not a zombie of the daemon's
	[ ! -e "$D/run/stuck" ]
	run poke Status --id stuck
	[[ "$output" == "code=5 "* ]]
	run poke Shutdown --id other
	[[ "$output" == code=0* ]]
}

@test "a container that cannot start is a clear error and leaves nothing in the share" {
	POD=$(cri --name broken --uid uid-broken runp)
	CTR=$(cri --container broken --image kuasar.invalid/busybox:test create "$POD" -- /no/such/binary)
	# CRI creates the task at StartContainer: that is where the guest's Create fails.
	run cri start "$CTR"
	[ "$status" -ne 0 ]
	[[ "$output" == *"exec /no/such/binary: No such file or directory"* ]]
	run cri status "$CTR"
	[[ "$output" != *RUNNING* ]]
	cri rm "$CTR"
	[ -z "$(ls "$D/run/$POD/shared")" ]
	# The pod is still good for the next container.
	CTR=$(cri --container ok --image kuasar.invalid/busybox:test create "$POD" -- echo fine)
	cri start "$CTR"
	wait_log "$D/logs/ok.log" "stdout F fine"
	cri stopp "$POD"
	cri rmp "$POD"
	# A pod limit no VM can honour is refused at RunPodSandbox, naming the least that works.
	run cri --name tiny --uid uid-tiny --memory 1 runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"pod memory limit of 1 bytes"*"a sandbox needs a limit of at least 128 MiB"* ]]
}

@test "CRI: pods of one shape restore from one template; Status reports it and the VMM's USS/PSS" {
	P1=$(cri --name t-one --uid uid-t1 runp)
	P2=$(cri --name t-two --uid uid-t2 --hostname two runp)
	run poke Status --id "$P1" --field2 1
	[[ "$output" == code=0* ]]
	[[ "$output" == *"template "* ]]
	[[ "$output" == *vmm_uss_kib* ]] && [[ "$output" == *vmm_pss_kib* ]]
	key=$(grep -o "sandbox $P2: ready in [0-9]* ms (template [0-9a-f]*" "$D/sandboxer.log" | awk '{print $NF}')
	[ -n "$key" ]
	grep -q "sandbox $P1: ready in [0-9]* ms (template $key" "$D/sandboxer.log"
	[ -f "$D/templates/$key/meta.json" ]
	# A container runs in the clone, with the pod's hostname.
	CTR=$(cri --container n --image kuasar.invalid/busybox:test create "$P2" -- sh -c 'echo "up on $(hostname)"; exec sleep 1000')
	cri start "$CTR"
	wait_log "$D/logs/n.log" "stdout F up on two"
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
	cri stopp "$P1"
	cri rmp "$P1"
	cri stopp "$P2"
	cri rmp "$P2"
	# A corrupted template: the next pod cold boots, saying why; the one after rebuilds.
	truncate -s 100 "$D/templates/$key/state"
	P3=$(cri --name t-three --uid uid-t3 runp)
	grep -q "proxy ${P3:0:12}\]: warn: template not used, cold boot: .*is 100 bytes" "$D/sandboxer.log"
	grep -q "sandbox $P3: ready in [0-9]* ms (cold;" "$D/sandboxer.log"
	run poke Status --id "$P3" --field2 1
	[[ "$output" == *cold* ]]
	P4=$(cri --name t-four --uid uid-t4 runp)
	grep -q "sandbox $P4: ready in [0-9]* ms (template $key" "$D/sandboxer.log"
	for p in "$P3" "$P4"; do
		cri stopp "$p"
		cri rmp "$p"
	done
}
