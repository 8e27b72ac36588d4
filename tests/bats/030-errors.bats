#!/usr/bin/env bats
# Every failure path says what failed and leaves no VMM, socket or file behind.

load helpers

@test "a missing kernel is a clear error" {
	run_t 30 1 "$CTL" boot --kernel /nonexistent/vmlinux
	[[ "$output" == *"kernel /nonexistent/vmlinux"*"No such file"* ]]
}

@test "ids that could escape the run directory are refused" {
	for id in ../x a/b .. .hidden ""; do
		run_t 30 1 "$CTL" boot --id "$id"
		[[ "$output" == *"invalid id"* ]]
	done
	run_t 30 1 "$CTL" ping ../../etc
	[[ "$output" == *"invalid id"* ]]
}

@test "a duplicate id is refused and the running VM is untouched" {
	boot_kept dup
	run_t 30 1 "$CTL" boot --id dup
	[[ "$output" == *"already exists"* ]]
	run_t 30 0 "$CTL" ping dup
	run_t 30 0 "$CTL" shutdown dup
}

@test "a vsock link on a host without vhost-vsock is refused clearly" {
	[ ! -e /dev/vhost-vsock ] || skip "this host has vhost-vsock"
	run_t 30 1 "$CTL" boot --link vsock
	[[ "$output" == *"vsock link requested but /dev/vhost-vsock: No such file"* ]]
}

@test "a VMM that dies while starting is reported with its last words" {
	run_t 60 1 "$CTL" boot --accel tcg --kernel /etc/hostname
	[[ "$output" == *"the VMM exited with status 1"* ]]
}

@test "a guest that never answers times out and is cleaned up" {
	# An initrd whose /init is a shell that only sleeps: the kernel boots, nobody answers.
	local dir=$BATS_TEST_TMPDIR
	printf '#!/bin/busybox sh\n/bin/busybox sleep 600\n' >"$dir/init"
	cp /bin/busybox "$dir/busybox"
	printf 'dir /dev 0755\nnod /dev/console 0600 c 5 1\ndir /bin 0755\nfile /bin/busybox 0755 busybox\nfile /init 0755 init\n' >"$dir/list"
	"$BIN/mkcpio" -C "$dir" "$dir/list" | gzip >"$dir/silent.initrd"
	run_t 60 1 "$CTL" boot --accel tcg --initrd "$dir/silent.initrd" --timeout 4000
	[[ "$output" == *"no answer from the guest within 4000 ms"* ]]
}

@test "SIGINT during boot stops the VMM and removes its files" {
	"$CTL" boot --id int1 >"$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	# Wait for the VMM to exist, then interrupt the boot.
	wait_until 5 has_vmm
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
	wait_until 5 has_vmm
	kill -9 $pid
	wait $pid || true
	wait_until 5 no_vmm
	# Nothing could remove the directory of a process killed outright; shutdown does,
	# from the state written as soon as the VMM existed.
	run_t 30 0 "$CTL" shutdown kill1
	[[ "$output" == *"was not running"*"removed its files"* ]]
	[ ! -e "$KUASAR_RUN_DIR/kill1" ]
}

@test "a VMM killed under a kept VM is reported, and shutdown cleans up" {
	boot_kept dead
	kill -9 $(vmm_pids)
	wait_until 5 no_vmm
	run_t 30 1 "$CTL" ping dead
	[[ "$output" == *"not running"* ]]
	run_t 30 0 "$CTL" shutdown dead
	[[ "$output" == *"removed its files"* ]]
	[ ! -e "$KUASAR_RUN_DIR/dead" ]
}

@test "unknown ids are clear errors" {
	run_t 30 1 "$CTL" ping nosuch
	[[ "$output" == *"sandbox \`nosuch\` not found"* ]]
	run_t 30 1 "$CTL" shutdown nosuch
	run_t 30 2 "$CTL" frobnicate
}
