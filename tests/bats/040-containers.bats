#!/usr/bin/env bats
# OCI containers run by kuasar-init itself (no runc in the guest), through kuasar-ctl run.

load helpers
bats_require_minimum_version 1.5.0

bundle() {
	local dir=$BATS_TEST_TMPDIR/bundle
	"$TOP/tests/make-bundle.sh" "$dir" "$@" >/dev/null
	echo "$dir"
}

run_ctr() {
	run_t 120 any "$CTL" run "$@" # callers check the status they expect
}

@test "a container's stdout and stderr reach the caller" {
	run_ctr "$(bundle -- sh -c 'echo to-out; echo to-err >&2')"
	[ "$status" -eq 0 ]
	[[ "$output" == *"to-out"* ]]
	[[ "$output" == *"to-err"* ]]
}

@test "the container's exit code is kuasar-ctl's" {
	run_ctr "$(bundle -- sh -c 'exit 7')"
	[ "$status" -eq 7 ]
}

@test "command-line args replace the bundle's" {
	run_ctr "$(bundle -- false)" -- echo replaced
	[ "$status" -eq 0 ]
	[ "$output" = "replaced" ]
}

@test "stdin is piped into the container" {
	run bash -c "printf 'line one\nline two\n' | timeout 120 '$CTL' run -i '$(bundle -- wc -l)'"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | tr -d ' ')" = "2" ]
}

@test "the container has its own hostname and pid namespace" {
	run_ctr "$(bundle --hostname box1 -- sh -c 'hostname; echo pid=$$')"
	[ "$status" -eq 0 ]
	[[ "$output" == *"box1"* ]]
	[[ "$output" == *"pid=1"* ]]
}

@test "a read-only root refuses writes" {
	run_ctr "$(bundle --readonly -- touch /newfile)"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
}

@test "a masked path reads as empty" {
	run_ctr "$(bundle --mask /etc/passwd -- sh -c 'echo size=$(wc -c </etc/passwd)')"
	[ "$status" -eq 0 ]
	[[ "$output" == *"size=0"* ]]
}

@test "readonly paths are read-only" {
	run_ctr "$(bundle -- sh -c 'echo x > /proc/sys/kernel/domainname')"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
}

@test "a non-root user runs as that user" {
	run_ctr "$(bundle --user 1000:1000 -- sh -c 'id -u; id -g; touch /root/x')"
	[ "$status" -eq 1 ]
	[[ "$output" == *"1000"* ]]
	[[ "$output" == *"Permission denied"* ]]
}

@test "without CAP_CHOWN chown fails, with it chown works" {
	run_ctr "$(bundle --drop-cap CAP_CHOWN -- sh -c 'touch /tmp/f && chown 1000 /tmp/f')"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run_ctr "$(bundle -- sh -c 'touch /tmp/f && chown 1000 /tmp/f && echo chowned')"
	[ "$status" -eq 0 ]
	[[ "$output" == *"chowned"* ]]
}

@test "the pids limit stops a fork bomb" {
	run_ctr "$(bundle --pids 8 -- sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait')"
	[ "$status" -eq 2 ] # busybox sh gives up at the failed fork
	[[ "$output" == *"Resource temporarily unavailable"* ]] || [[ "$output" == *"can't fork"* ]]
}

@test "a memory hog under a limit is OOM-killed with exit 137" {
	# tail keeps the last 90 MB of an endless stream: it grows until the 16 MB limit hits.
	run_ctr --memory 256 "$(bundle --memory 16777216 -- tail -c 90000000 /dev/zero)"
	[ "$status" -eq 137 ]
}

@test "a config.json the guest refuses is a clear error, and the guest stays up" {
	local b
	b=$(bundle -- true)
	python3 -c "import json,sys; p=sys.argv[1]; j=json.load(open(p)); j['process']['cwd']='relative'; json.dump(j, open(p,'w'))" "$b/config.json"
	run_ctr "$b"
	[ "$status" -eq 1 ]
	[[ "$output" == *"process.cwd: must be an absolute path"* ]]
	[[ "$output" != *"stopped by force"* ]]
}

@test "read-only binds: ro leaves the mounts below writable, rro makes them read-only too" {
	local b root=/run/kuasar/shared/ctr/rootfs
	# A tmpfs with another below it, then two binds of that tree: one ro, one rro.
	b=$(bundle -- sh -c 'echo b >/ro/sub/b && echo "wrote=$(cat /t/sub/b)"
		touch /ro/top 2>&1; touch /rro/sub/c 2>&1; grep " /rro/sub " /proc/self/mountinfo')
	python3 - "$b/config.json" "$root" <<-'PY'
		import json, sys
		p, root = sys.argv[1], sys.argv[2]
		j = json.load(open(p))
		j["mounts"] += [
		    {"destination": "/t", "type": "tmpfs", "source": "t"},
		    {"destination": "/t/sub", "type": "tmpfs", "source": "sub"},
		    {"destination": "/ro", "type": "bind", "source": root + "/t", "options": ["rbind", "ro"]},
		    {"destination": "/rro", "type": "bind", "source": root + "/t", "options": ["rbind", "rro"]},
		]
		json.dump(j, open(p, "w"))
	PY
	run_ctr "$b"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"wrote=b"* ]]
	[[ "$output" == *"/ro/top"*"Read-only file system"* ]]
	[[ "$output" == *"/rro/sub/c"*"Read-only file system"* ]]
	[[ "$output" == *" /rro/sub ro,"* ]]
}

@test "a program that does not exist fails Create, naming it (as runc does)" {
	run timeout 120 "$CTL" run "$(bundle -- /no/such/program)"
	[ "$status" -eq 1 ]
	[[ "$output" == *"exec /no/such/program: No such file or directory"* ]]
	run timeout 120 "$CTL" run "$(bundle -- no-such-command)"
	[ "$status" -eq 1 ]
	[[ "$output" == *"not found in PATH: no-such-command"* ]]
}

@test "a bundle without its root filesystem is refused" {
	local b
	b=$(bundle -- true)
	rm -rf "$b/rootfs"
	run_ctr "$b"
	[ "$status" -eq 1 ]
	[[ "$output" == *"rootfs"* ]]
}

@test "a seccomp rule makes a syscall fail with EPERM" {
	run_ctr "$(bundle --deny-syscall mkdir --deny-syscall mkdirat -- sh -c 'mkdir /tmp/d; echo rc=$?')"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	[[ "$output" == *"rc=1"* ]]
	run_ctr "$(bundle -- sh -c 'mkdir /tmp/d && echo made')"
	[ "$status" -eq 0 ]
	[[ "$output" == *"made"* ]]
}

@test "streamed stdio carries megabytes both ways intact (credit flow control)" {
	head -c 3000000 /dev/urandom >"$BATS_TEST_TMPDIR/in"
	run bash -c "timeout 120 '$CTL' run -i '$(bundle -- cat)' <'$BATS_TEST_TMPDIR/in' >'$BATS_TEST_TMPDIR/out'"
	[ "$status" -eq 0 ]
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "a terminal: the container's own pty, sized by ResizePty, stdin and exit code through it" {
	run bash -c "LINES=33 COLUMNS=101 timeout 120 '$CTL' run -t '$(bundle -- sh -c 'tty; stty size; test -t 0 && echo stdin-tty')'"
	[ "$status" -eq 0 ]
	[[ "$output" == *"/dev/pts/0"* ]]
	[[ "$output" == *"33 101"* ]]
	[[ "$output" == *"stdin-tty"* ]]
	run bash -c "printf 'echo typed-\$((40+2))\nexit 3\n' | timeout 120 '$CTL' run -t -i '$(bundle -- sh)'"
	[ "$status" -eq 3 ]
	[[ "$output" == *"typed-42"* ]]
}

@test "cpu shares and quota land in the container's cgroup, which its cgroup namespace shows as /" {
	run_ctr "$(bundle --cpu 512:50000:100000 --pids 64 -- sh -c 'cat /proc/self/cgroup; cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/pids.max')"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "0::/" ]
	[ "${lines[1]}" = "50000 100000" ]
	# shares 512 map to weight 1 + (510 * 9999) / 262142 = 20
	[ "${lines[2]}" = "20" ]
	[ "${lines[3]}" = "64" ]
}
