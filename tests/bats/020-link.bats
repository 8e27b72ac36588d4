#!/usr/bin/env bats
# The guest link survives abuse: garbage, an oversized frame, bad stream ids, unknown
# services and methods, malformed protobuf; the init keeps answering Check.

load helpers

@test "kuasar-init survives the abuse sequence and keeps serving" {
	boot_kept a1
	run_t 120 0 "$BIN/tests/linkpoke" "$KUASAR_RUN_DIR/a1/agent.sock"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ok "*"5 MiB frame: RESOURCE_EXHAUSTED"* ]]
	[[ "$output" != *"not ok"* ]]
	run_t 30 0 "$CTL" ping a1
	[[ "$output" == *"link resets"* ]]
	run_t 30 0 "$CTL" shutdown a1
}

@test "a host that disconnects and comes back gets a fresh session" {
	boot_kept r1
	for i in 1 2 3; do
		run_t 30 0 "$CTL" ping r1
	done
	[[ "$output" == *"link resets 3"* ]]
	run_t 30 0 "$CTL" shutdown r1
}
