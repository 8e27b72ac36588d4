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
	run_t 120 "$CTL" run --keep --id "$1" "$b"
	[ "$status" -eq 0 ] || { echo "$output" >&2; return 1; }
}

@test "exec runs in the container's namespaces and returns its exit code" {
	start_counter x1
	run_t 60 "$CTL" exec x1 -- sh -c 'hostname; cat /proc/1/cmdline | tr "\0" " "; exit 4'
	[ "$status" -eq 4 ]
	[[ "$output" == *"kuasar-test"* ]]
	[[ "$output" == *"trap"* ]]
	run_t 30 "$CTL" shutdown x1
}

@test "kill delivers a signal the container handles" {
	start_counter x2
	sleep 2
	run_t 30 "$CTL" kill x2 15
	[ "$status" -eq 0 ]
	for _ in $(seq 30); do
		run_t 30 "$CTL" state x2
		[[ "$output" == stopped* ]] && break
		sleep 0.2
	done
	[[ "$output" == "stopped pid "*" exit 3" ]]
	grep -q "got TERM" "$KUASAR_RUN_DIR/x2/shared/ctr/stdout"
	run_t 30 "$CTL" kill x2 15
	[ "$status" -eq 1 ]
	[[ "$output" == *"NOT_FOUND"*"already finished"* ]]
	run_t 30 "$CTL" shutdown x2
}

@test "SIGKILL ends it with 137, and kill --all reaches every process" {
	start_counter x3
	run_t 30 "$CTL" exec x3 -- sh -c 'sleep 300 & sleep 300 & sleep 0.5; echo started'
	run_t 30 "$CTL" ps x3
	[ "$(echo "$output" | wc -l)" -ge 3 ]
	run_t 30 "$CTL" kill x3 --all 9
	[ "$status" -eq 0 ]
	sleep 1
	run_t 30 "$CTL" state x3
	[[ "$output" == "stopped pid "*" exit 137" ]]
	run_t 30 "$CTL" ps x3
	[ -z "$output" ]
	run_t 30 "$CTL" shutdown x3
}

@test "pause freezes the container and resume thaws it" {
	start_counter x4
	sleep 2
	run_t 30 "$CTL" pause x4
	[ "$status" -eq 0 ]
	run_t 30 "$CTL" state x4
	[[ "$output" == paused* ]]
	run_t 30 "$CTL" pause x4
	[ "$status" -eq 1 ]
	[[ "$output" == *"already paused"* ]]
	run_t 30 "$CTL" resume x4
	[ "$status" -eq 0 ]
	run_t 30 "$CTL" state x4
	[[ "$output" == running* ]]
	run_t 30 "$CTL" exec x4 -- cat /dev/shm/count
	local a=$output
	sleep 2.5
	run_t 30 "$CTL" exec x4 -- cat /dev/shm/count
	[ "$output" -gt "$a" ]
	run_t 30 "$CTL" shutdown x4
}

@test "stats reports the container's real cgroup figures" {
	start_counter x5
	run_t 30 "$CTL" stats x5
	[ "$status" -eq 0 ]
	[[ "$output" == *"memory "*"(limit 33554432)"* ]]
	[[ "$output" == *"pids "*"(limit 32)"* ]]
	local mem cpu
	mem=$(awk '$1=="memory"{print $2}' <<<"$output")
	cpu=$(awk '$1=="cpu_usec"{print $2}' <<<"$output")
	[ "$mem" -gt 0 ] && [ "$cpu" -gt 0 ]
	run_t 30 "$CTL" shutdown x5
}

@test "commands on an unknown container are clear errors" {
	run_t 30 "$CTL" exec nosuch -- true
	[ "$status" -eq 1 ]
	[[ "$output" == *"not found"* ]]
}

@test "the container-start benchmark runs end to end (no timing asserted)" {
	local b=$BATS_TEST_TMPDIR/bundle
	"$TOP/tests/make-bundle.sh" "$b" -- echo started >/dev/null
	run_t 300 "$CTL" bench container "$b" -n 3
	[ "$status" -eq 0 ]
	[[ "$output" == *"ratio container / exec"* ]]
}

@test "update changes a running container's limits" {
	start_counter x6
	run_t 30 "$CTL" update x6 --memory 50331648 --pids 40
	[ "$status" -eq 0 ]
	run_t 30 "$CTL" stats x6
	[[ "$output" == *"(limit 50331648)"* ]]
	[[ "$output" == *"pids "*"(limit 40)"* ]]
	run_t 30 "$CTL" update x6 --memory nonsense
	[ "$status" -eq 2 ]
	run_t 30 "$CTL" shutdown x6
}
