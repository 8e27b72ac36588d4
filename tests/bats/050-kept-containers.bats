#!/usr/bin/env bats
# A container kept running (run --keep): exec, kill, kill --all, pause/resume, ps, stats.

load helpers

# A container that counts once a second, answers SIGTERM with exit 3, and never waits on a
# child (busybox sh runs its trap at once only then): it paces itself with a timed read on
# a fifo nobody writes.
start_counter() {
	local b=$BATS_TEST_TMPDIR/bundle
	"$TOP/tests/make-bundle.sh" "$b" --memory 33554432 --pids 32 -- sh -c \
		'mkfifo /dev/shm/f; exec 3<>/dev/shm/f; trap "echo got TERM; exit 3" TERM; i=0; while true; do i=$((i+1)); echo $i > /dev/shm/count; read -t 1 x <&3; done' >/dev/null
	run_t 120 0 "$CTL" run --keep --id "$1" "$b"
	wait_until 30 counted "$1" 1
}

# counted ID N: the counter of container ID has reached N (its trap is set from 1 on).
counted() {
	run timeout 30 "$CTL" exec "$1" -- cat /dev/shm/count
	[ "$status" -eq 0 ] && [ "${output:-0}" -ge "$2" ]
}


@test "exec runs in the container's namespaces and returns its exit code" {
	start_counter x1
	run_t 60 4 "$CTL" exec x1 -- sh -c 'hostname; cat /proc/1/cmdline | tr "\0" " "; exit 4'
	[[ "$output" == *"kuasar-test"* ]]
	[[ "$output" == *"trap"* ]]
	run_t 30 0 "$CTL" shutdown x1
}

@test "kill delivers a signal the container handles" {
	start_counter x2
	run_t 30 0 "$CTL" kill x2 15
	wait_until 10 in_state x2 stopped
	[[ "$output" == "stopped pid "*" exit 3" ]]
	grep -q "got TERM" "$KUASAR_RUN_DIR/x2/shared/ctr/stdout"
	run_t 30 1 "$CTL" kill x2 15
	[[ "$output" == *"NOT_FOUND"*"already finished"* ]]
	run_t 30 0 "$CTL" shutdown x2
}

@test "SIGKILL ends it with 137, and kill --all reaches every process" {
	start_counter x3
	run_t 30 0 "$CTL" exec x3 -- sh -c 'sleep 300 & sleep 300 & sleep 0.5; echo started'
	run_t 30 0 "$CTL" ps x3
	[ "$(echo "$output" | wc -l)" -ge 3 ]
	run_t 30 0 "$CTL" kill x3 --all 9
	wait_until 10 in_state x3 stopped
	run_t 30 0 "$CTL" state x3
	[[ "$output" == "stopped pid "*" exit 137" ]]
	run_t 30 0 "$CTL" ps x3
	[ -z "$output" ]
	run_t 30 0 "$CTL" shutdown x3
}

@test "pause freezes the container and resume thaws it" {
	start_counter x4
	run_t 30 0 "$CTL" pause x4
	run_t 30 0 "$CTL" state x4
	[[ "$output" == paused* ]]
	run_t 30 1 "$CTL" pause x4
	[[ "$output" == *"already paused"* ]]
	run_t 30 0 "$CTL" resume x4
	run_t 30 0 "$CTL" state x4
	[[ "$output" == running* ]]
	run_t 30 0 "$CTL" exec x4 -- cat /dev/shm/count
	local a=$output
	wait_until 10 counted x4 $((a + 1))
	run_t 30 0 "$CTL" shutdown x4
}

@test "stats reports the container's real cgroup figures" {
	start_counter x5
	run_t 30 0 "$CTL" stats x5
	[[ "$output" == *"memory "*"(limit 33554432)"* ]]
	[[ "$output" == *"pids "*"(limit 32)"* ]]
	local mem cpu rss
	mem=$(awk '$1=="memory"{print $2}' <<<"$output")
	cpu=$(awk '$1=="cpu_usec"{print $2}' <<<"$output")
	rss=$(awk '$1=="rss"{print $2}' <<<"$output")
	[ "$mem" -gt 0 ] && [ "$cpu" -gt 0 ]
	# memory.stat reaches containerd: anon is kubelet's rss, within the usage.
	[ "$rss" -gt 0 ] && [ "$rss" -le "$mem" ]
	run_t 30 0 "$CTL" shutdown x5
}

@test "commands on an unknown container are clear errors" {
	run_t 30 1 "$CTL" exec nosuch -- true
	[[ "$output" == *"not found"* ]]
}

@test "the container-start benchmark runs end to end (no timing asserted)" {
	local b=$BATS_TEST_TMPDIR/bundle
	"$TOP/tests/make-bundle.sh" "$b" -- echo started >/dev/null
	run_t 300 0 "$CTL" bench container "$b" -n 3
	[[ "$output" == *"ratio container / exec"* ]]
}

@test "update changes a running container's limits" {
	start_counter x6
	run_t 30 0 "$CTL" update x6 --memory 50331648 --pids 40
	run_t 30 0 "$CTL" stats x6
	[[ "$output" == *"(limit 50331648)"* ]]
	[[ "$output" == *"pids "*"(limit 40)"* ]]
	run_t 30 2 "$CTL" update x6 --memory nonsense
	run_t 30 0 "$CTL" shutdown x6
}

# The guest's local timer interrupts so far (CPU0's LOC count in /proc/interrupts).
timer_irqs() {
	"$CTL" exec "$1" -- awk '$1 == "LOC:" { print $2 }' /proc/interrupts
}

@test "an idle guest does not tick: a few timer interrupts a second, not HZ" {
	local b=$BATS_TEST_TMPDIR/bundle t0 t1
	"$TOP/tests/make-bundle.sh" "$b" -- sleep 1000000 >/dev/null
	run_t 120 0 "$CTL" run --keep --id idle1 "$b"
	t0=$(timer_irqs idle1)
	sleep 5
	t1=$(timer_irqs idle1)
	echo "timer interrupts while idle: $(((t1 - t0) / 5)) a second (a periodic tick: 100)"
	[ $(((t1 - t0) / 5)) -lt 30 ]
	run_t 30 0 "$CTL" shutdown idle1
}
