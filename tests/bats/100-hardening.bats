#!/usr/bin/env bats
# A pod is never lost to its task proxy: many container exits, execs, task connections
# dropped mid-stream and containerd restarts leave every pod READY, and a proxy that does die
# says why. `make stress` runs the long version (STRESS_CYCLES=200).

load cri

setup_file() { cri_setup_file; }
setup() { cri_setup; }
teardown() { cri_teardown_pods; }

# pod NAME: a pod with a container that prints a numbered line every 0.2 s; sets POD, LONG.
pod() {
	POD=$(cri --name "$1" --uid "uid-$1" runp) || return 1
	echo "$POD" >>"$D/pods"
	LONG=$(cri --name "$1" --uid "uid-$1" --container "long-$1" --image kuasar.invalid/busybox:test \
		create "$POD" -- sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done') &&
		cri start "$LONG"
}

daemon_files() { ls /proc/"$SB_PID"/fd | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' /proc/"$1"/status; }

@test "hardening: container exits, execs, dropped task connections and containerd restarts lose no pod" {
	local cycles=${STRESS_CYCLES:-25} i k c pods longs fds0 rss0 proxies
	pod h1
	pods=("$POD")
	longs=("$LONG")
	pod h2
	pods+=("$POD")
	longs+=("$LONG")
	for i in $(seq "$cycles"); do
		for k in 0 1; do
			# A short-lived container: created, started, exits, removed.
			c=$(cri --name "h$((k + 1))" --uid "uid-h$((k + 1))" --container "c$i" \
				--image kuasar.invalid/busybox:test create "${pods[$k]}" -- sh -c "echo bye $i" 2>/dev/null) &&
				cri start "$c" >/dev/null 2>&1 || true
			# A short exec, and one whose client leaves mid-stream.
			cri exec "${longs[$k]}" -- true >/dev/null 2>&1 || true
			timeout 0.5 "$CTL" cri --address "$D/containerd.sock" --timeout 3 exec "${longs[$k]}" \
				-- sleep 2 >/dev/null 2>&1 || true
			[ -n "$c" ] && { cri rm "$c" >/dev/null 2>&1 || { sleep 0.3; cri rm "$c" >/dev/null 2>&1; }; }
		done
		# containerd restarted while containers exit: every task connection drops.
		if [ $((i % 10)) -eq 5 ]; then
			cri_env_stop_pid "$CTRD_PID"
			cri_env_containerd
		fi
		# After a warm-up, the daemon's fds and the proxies' RSS are the baseline.
		if [ "$i" -eq 5 ]; then
			fds0=$(daemon_files)
			proxies=$(pgrep -f -- "kuasar-sandboxer proxy .*--run-dir $D/run" | head -1)
			rss0=$(rss_kb "$proxies")
		fi
	done
	for p in "${pods[@]}"; do
		run cri podstatus "$p"
		[[ "$output" == *"state=SANDBOX_READY"* ]] || { echo "pod $p: $output"; false; }
	done
	for c in "${longs[@]}"; do
		run cri status "$c"
		[[ "$output" == *"state=RUNNING"* ]] || {
			echo "container $c: $output"
			grep -n "${c:0:12}" "$D/sandboxer.log" | tail -5
			grep -n "$c" "$D/containerd.log" | grep -E 'level=(error|warning)' | tail -5
			[ -z "${STRESS_KEEP_LOGS:-}" ] || cp "$D/containerd.log" "$D/sandboxer.log" "$STRESS_KEEP_LOGS/"
			false
		}
	done
	refute grep -E "task proxy [0-9]+ died|fatal signal" "$D/sandboxer.log"
	# The shim answers -info: containerd no longer fails to load the runtime's info.
	refute grep -q "failed to load runtime info" "$D/containerd.log"
	# Flat: the daemon's fds, and the proxy's memory within a margin for its buffers.
	echo "# fds $fds0 -> $(daemon_files); proxy RSS $rss0 -> $(rss_kb "$proxies") kB" >&3
	[ "$(daemon_files)" -le $((fds0 + 2)) ]
	[ "$(rss_kb "$proxies")" -le $((rss0 + 2048)) ]
}

@test "hardening: a task proxy that dies of a signal says so, and the daemon says how" {
	# A pod without containers: with one, containerd could not clean it up through CRI (the
	# container's task went with its proxy), which is the loss the other tests rule out.
	POD=$(cri --name sig --uid uid-sig runp)
	echo "$POD" >>"$D/pods"
	local proxy
	proxy=$(pgrep -f -- "kuasar-sandboxer proxy --id $POD")
	[ -n "$proxy" ]
	kill -SEGV "$proxy"
	wait_until 10 sb_notready "$POD"
	grep -q "fatal signal 11 (pid $proxy" "$D/sandboxer.log"
	grep -q "task proxy $proxy died (killed by signal 11" "$D/sandboxer.log"
}

@test "hardening: a VMM killed with -9: its container is EXITED at once and deleted cleanly" {
	pod vmmkill
	local vmm t0 proxy
	vmm=$(pgrep -f -- "qemu-system.*$D/run/$POD/")
	proxy=$(pgrep -f -- "kuasar-sandboxer proxy --id $POD")
	[ -n "$vmm" ] && [ -n "$proxy" ]
	t0=$(date +%s%N)
	kill -9 "$vmm"
	wait_until 10 sb_notready "$POD"
	# The proxy answers the container's Wait with a killed process's exit: no retries.
	wait_until 5 ctr_exited "$LONG"
	echo "# EXITED after $((($(date +%s%N) - t0) / 1000000)) ms" >&3
	run cri status "$LONG"
	[[ "$output" == *"exit_code=137"* ]]
	cri rm "$LONG"
	refute grep -E 'failed to delete task.*ttrpc: closed|Failed to handle exit event' "$D/containerd.log"
	# With its containers deleted, the proxy exits on its own.
	wait_until 10 bash -c "! kill -0 $proxy 2>/dev/null"
	grep -q "containers to report as exited" "$D/sandboxer.log"
}

@test "hardening: output written while containerd is down reaches the log once it is back" {
	pod talker
	local log="$D/logs/long-talker.log" last
	wait_log "$log" "tick 3"
	cri_env_stop_pid "$CTRD_PID"
	sleep 2 # about ten lines are written with no reader attached
	cri_env_containerd
	wait_until 30 grep -q "tick 40" "$log"
	last=$(grep -o 'tick [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	# Every line from the first to the last, once each and in order.
	run bash -c "grep -o 'tick [0-9]*' '$log' | cut -d' ' -f2 | awk '\$1 != NR { print \"line \" NR \" is tick \" \$1; exit 1 }'"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$last" -ge 40 ]
}

@test "hardening: containerd restarted 20 times: the container still runs (held Waits of gone callers do not pile up)" {
	pod restarts
	local i
	for i in $(seq 20); do
		cri_env_stop_pid "$CTRD_PID"
		cri_env_containerd
		# containerd reconnects and holds a new Wait on the running container.
		wait_until 20 bash -c "'$CTL' cri --address '$D/containerd.sock' status '$LONG' | grep -q RUNNING"
	done
	run cri status "$LONG"
	[[ "$output" == *"state=RUNNING"* ]]
	refute grep -q "waiters for this process" "$D/containerd.log"
}
