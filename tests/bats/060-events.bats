#!/usr/bin/env bats
# Task events queued by kuasar-init and served on GetEvents, in containerd's terms.

load helpers

@test "task events follow a container's life, queued until someone listens" {
	local b=$BATS_TEST_TMPDIR/bundle
	"$TOP/tests/make-bundle.sh" "$b" -- sh -c 'mkfifo /dev/shm/f; exec 3<>/dev/shm/f; while true; do read -t 1 x <&3; done' >/dev/null
	run_t 120 0 "$CTL" run --keep --id ev1 "$b"
	run_t 60 5 "$CTL" exec ev1 -- sh -c 'exit 5'
	run_t 30 0 "$CTL" pause ev1
	run_t 30 0 "$CTL" resume ev1
	run_t 30 0 "$CTL" kill ev1 9
	wait_until 10 in_state ev1 stopped
	run_t 60 0 "$CTL" events ev1 --count 9 --timeout 20000
	echo "$output"
	local expected=(
		"/tasks/create container=ev1"
		"/tasks/start container=ev1"
		"/tasks/exec-added container=ev1 exec=exec-"
		"/tasks/exec-started container=ev1 exec=exec-"
		"/tasks/exit container=ev1 id=exec-"
		"/tasks/delete container=ev1"
		"/tasks/paused container=ev1"
		"/tasks/resumed container=ev1"
		"/tasks/exit container=ev1 id=ev1 pid="
	)
	for i in "${!expected[@]}"; do
		[[ "${lines[$i]}" == "${expected[$i]}"* ]] || { echo "line $i: ${lines[$i]}"; return 1; }
	done
	[[ "${lines[4]}" == *"exit_status=5" ]]
	[[ "${lines[8]}" == *"exit_status=137" ]]
	run_t 30 0 "$CTL" shutdown ev1
}

@test "an OOM kill is reported before the exit" {
	local b=$BATS_TEST_TMPDIR/bundle
	"$TOP/tests/make-bundle.sh" "$b" --memory 16777216 -- tail -c 90000000 /dev/zero >/dev/null
	run_t 120 0 "$CTL" run --keep --memory 256 --id ev2 "$b"
	run_t 60 0 "$CTL" events ev2 --count 4 --timeout 30000
	[[ "${lines[2]}" == "/tasks/oom container=ev2" ]]
	[[ "${lines[3]}" == "/tasks/exit container=ev2 id=ev2 "*"exit_status=137" ]]
	run_t 30 0 "$CTL" shutdown ev2
}
