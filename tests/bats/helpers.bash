# Shared by every tests/bats/*.bats file: paths, a runner with a timeout, and a teardown
# that fails the test if it left a VMM, a socket or a file behind.

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BIN=$TOP/bin
CTL=$BIN/kuasar-ctl

# Every test gets its own short run directory (unix socket paths are limited to 108 bytes).
common_setup() {
	KUASAR_RUN_DIR=$(mktemp -d /tmp/kuasar-test.XXXXXX)
	export KUASAR_RUN_DIR
	# The KVM verdict is per host boot; reuse it so each test does not probe again.
	[ -f /tmp/kuasar-test-accel.json ] && cp /tmp/kuasar-test-accel.json "$KUASAR_RUN_DIR/accel.json"
	return 0
}

# run_t SECONDS STATUS CMD...: bats' run with a hard time limit and the exit status the
# command must have: a number, !N for anything but N, or "any" where the caller checks it.
run_t() {
	local secs=$1 want=$2
	shift 2
	run timeout --kill-after=5 "$secs" "$@"
	case "$want" in
	any) return 0 ;;
	!*) [ "$status" -ne "${want#!}" ] && return 0 ;;
	*) [ "$status" -eq "$want" ] && return 0 ;;
	esac
	echo "run_t: '$*' exited with $status, not $want; its output:" >&2
	printf '%s\n' "$output" >&2
	return 1
}

# wait_until SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails, saying what it
# waited for, when SECONDS have passed. For waiting on a condition, never a fixed sleep.
wait_until() {
	local secs=$1 deadline
	shift
	deadline=$(($(date +%s%N) + secs * 1000000000))
	until "$@"; do
		if [ "$(date +%s%N)" -ge "$deadline" ]; then
			echo "wait_until: still not true after ${secs} s: $*" >&2
			return 1
		fi
		sleep 0.1
	done
}

# veth_ns NAME HOSTIF NET: network namespace NAME whose eth0 (NET.2/24) is a veth to the
# host (HOSTIF, NET.1/24); prints its path.
veth_ns() {
	local ns=$1 hostif=$2 net=$3
	ip netns add "$ns"
	ip link add "$hostif" type veth peer name eth0 netns "$ns"
	ip addr add "$net.1/24" dev "$hostif"
	ip link set "$hostif" up
	ip -n "$ns" addr add "$net.2/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	echo "/run/netns/$ns"
}

# drop_netns PREFIX: deletes every network namespace named PREFIX*, printing what a VM
# attached and should have taken away with it (taps, our tc filters on eth0).
drop_netns() {
	local ns
	for ns in $(ip netns list | awk -v p="$1" 'index($1, p) == 1 { print $1 }'); do
		if ip -n "$ns" link 2>/dev/null | grep -q '_kuasar'; then
			printf ' taps in %s' "$ns"
		fi
		if tc -n "$ns" filter show dev eth0 ingress 2>/dev/null | grep -q .; then
			printf ' tc filters in %s' "$ns"
		fi
		ip netns del "$ns"
	done
}

ctl() {
	"$CTL" "$@"
}

# PIDs of VMM processes started for this test's run directory.
vmm_pids() {
	pgrep -f -- "$KUASAR_RUN_DIR/" || true
}
has_vmm() { [ -n "$(vmm_pids)" ]; }

# in_state ID STATE: kuasar-ctl state says the container is in STATE.
in_state() {
	run timeout 30 "$CTL" state "$1"
	[[ "$output" == "$2"* ]]
}
no_vmm() { [ -z "$(vmm_pids)" ]; }

# Fails when anything of this test is still around; kills leaked VMMs by PID first so one
# failing test does not poison the next.
common_teardown() {
	local leaked="" pids
	pids=$(vmm_pids)
	if [ -n "$pids" ]; then
		kill -9 $pids 2>/dev/null || true
		leaked="VMM processes: $pids"
	fi
	[ -f "$KUASAR_RUN_DIR/accel.json" ] && cp "$KUASAR_RUN_DIR/accel.json" /tmp/kuasar-test-accel.json
	# Mounts first: removing files through a leaked bind mount would reach its source.
	local mounts m
	mounts=$(awk -v d="$KUASAR_RUN_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
	for m in $mounts; do umount -l "$m"; done
	[ -z "$mounts" ] || leaked="$leaked mounts: $mounts"
	local left
	left=$(cd "$KUASAR_RUN_DIR" && find . -mindepth 1 ! -name accel.json | head -5)
	rm -rf --one-file-system "$KUASAR_RUN_DIR"
	[ -z "$leaked" ] || { echo "leaked $leaked" >&2; return 1; }
	[ -z "$left" ] || { echo "leaked files: $left" >&2; return 1; }
}

setup() { common_setup; }
teardown() { common_teardown; }

# boot_kept ID [ARGS...]: starts a VM that stays up, failing the test if it does not.
boot_kept() {
	local id=$1
	shift
	run_t 120 0 "$CTL" boot --keep --id "$id" "$@"
	[ "$status" -eq 0 ] || { echo "$output" >&2; return 1; }
}

# refute CMD...: fails when CMD succeeds. A bare `! CMD` line never fails a bats test (bash's
# errexit ignores negated commands), so the checks that something did not happen use this.
refute() {
	if "$@"; then
		echo "refute: this succeeded: $*" >&2
		return 1
	fi
}
