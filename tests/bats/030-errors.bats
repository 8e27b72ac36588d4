#!/usr/bin/env bats
# Every failure path says what failed and leaves no VMM, socket or file behind.

load helpers

@test "a missing kernel is a clear error" {
	run_t 30 "$CTL" boot --kernel /nonexistent/vmlinux
	[ "$status" -eq 1 ]
	[[ "$output" == *"kernel /nonexistent/vmlinux"*"No such file"* ]]
}

@test "ids that could escape the run directory are refused" {
	for id in ../x a/b .. .hidden ""; do
		run_t 30 "$CTL" boot --id "$id"
		[ "$status" -eq 1 ]
		[[ "$output" == *"invalid id"* ]]
	done
	run_t 30 "$CTL" ping ../../etc
	[ "$status" -eq 1 ]
	[[ "$output" == *"invalid id"* ]]
}

@test "a duplicate id is refused and the running VM is untouched" {
	boot_kept dup
	run_t 30 "$CTL" boot --id dup
	[ "$status" -eq 1 ]
	[[ "$output" == *"already exists"* ]]
	run_t 30 "$CTL" ping dup
	[ "$status" -eq 0 ]
	run_t 30 "$CTL" shutdown dup
	[ "$status" -eq 0 ]
}

@test "a vsock link on a host without vhost-vsock is refused clearly" {
	[ ! -e /dev/vhost-vsock ] || skip "this host has vhost-vsock"
	run_t 30 "$CTL" boot --link vsock
	[ "$status" -eq 1 ]
	[[ "$output" == *"vsock link requested but /dev/vhost-vsock: No such file"* ]]
}

@test "a VMM that dies while starting is reported with its last words" {
	run_t 60 "$CTL" boot --accel tcg --kernel /etc/hostname
	[ "$status" -eq 1 ]
	[[ "$output" == *"the VMM exited with status 1"* ]]
}

@test "a guest that never answers times out and is cleaned up" {
	# An initrd whose /init is a shell that only sleeps: the kernel boots, nobody answers.
	local dir=$BATS_TEST_TMPDIR
	printf '#!/bin/busybox sh\n/bin/busybox sleep 600\n' >"$dir/init"
	cp /bin/busybox "$dir/busybox"
	printf 'dir /dev 0755\nnod /dev/console 0600 c 5 1\ndir /bin 0755\nfile /bin/busybox 0755 busybox\nfile /init 0755 init\n' >"$dir/list"
	"$BIN/mkcpio" -C "$dir" "$dir/list" | gzip >"$dir/silent.initrd"
	run_t 60 "$CTL" boot --accel tcg --initrd "$dir/silent.initrd" --timeout 4000
	[ "$status" -eq 1 ]
	[[ "$output" == *"no answer from the guest within 4000 ms"* ]]
}

@test "SIGINT during boot stops the VMM and removes its files" {
	"$CTL" boot --id int1 >"$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	# Wait for the VMM to exist, then interrupt the boot.
	for _ in $(seq 50); do [ -n "$(vmm_pids)" ] && break; sleep 0.1; done
	[ -n "$(vmm_pids)" ]
	kill -INT $pid
	local rc=0
	wait $pid || rc=$?
	[ "$rc" -eq 1 ]
	grep -q "interrupted by signal 2" "$BATS_TEST_TMPDIR/out"
	[ ! -e "$KUASAR_RUN_DIR/int1" ]
}

@test "kuasar-ctl killed with SIGKILL takes its VMM down with it" {
	"$CTL" boot --id kill1 >/dev/null 2>&1 &
	local pid=$!
	for _ in $(seq 50); do [ -n "$(vmm_pids)" ] && break; sleep 0.1; done
	[ -n "$(vmm_pids)" ]
	kill -9 $pid
	wait $pid || true
	for _ in $(seq 50); do [ -z "$(vmm_pids)" ] && break; sleep 0.1; done
	[ -z "$(vmm_pids)" ]
	# Nothing could remove the directory of a process killed outright; shutdown does,
	# from the state written as soon as the VMM existed.
	run_t 30 "$CTL" shutdown kill1
	[ "$status" -eq 0 ]
	[[ "$output" == *"was not running"*"removed its files"* ]]
	[ ! -e "$KUASAR_RUN_DIR/kill1" ]
}

@test "a VMM killed under a kept VM is reported, and shutdown cleans up" {
	boot_kept dead
	kill -9 $(vmm_pids)
	sleep 0.5
	run_t 30 "$CTL" ping dead
	[ "$status" -eq 1 ]
	[[ "$output" == *"not running"* ]]
	run_t 30 "$CTL" shutdown dead
	[ "$status" -eq 0 ]
	[[ "$output" == *"removed its files"* ]]
	[ ! -e "$KUASAR_RUN_DIR/dead" ]
}

@test "unknown ids are clear errors" {
	run_t 30 "$CTL" ping nosuch
	[ "$status" -eq 1 ]
	[[ "$output" == *"sandbox \`nosuch\` not found"* ]]
	run_t 30 "$CTL" shutdown nosuch
	[ "$status" -eq 1 ]
	run_t 30 "$CTL" frobnicate
	[ "$status" -eq 2 ]
}
