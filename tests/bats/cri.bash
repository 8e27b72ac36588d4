# Stock containerd plus kuasar-sandboxer for one test (tools/cri-env.sh), in a directory
# of its own, both stopped by PID in teardown, which then checks nothing was left behind.
load helpers

# shellcheck source=../../tools/cri-env.sh
. "$TOP/tools/cri-env.sh"
CRI_IMAGES=${BATS_FILE_TMPDIR:-/tmp}/images

cri_setup_file() { cri_env_fetch; }

sandboxer_start() { cri_env_sandboxer; }

cri_setup() {
	D=$(mktemp -d /tmp/kc.XXXXXX)
	export D
	KUASAR_RUN_DIR=$D/run
	export KUASAR_RUN_DIR
	cri_env_up
}

# cri ARGS...: kuasar-ctl's CRI client against this test's containerd.
cri() {
	"$CTL" cri --address "$D/containerd.sock" --log-dir "$D/logs" "$@"
}

# poke METHOD ARGS...: one raw call to the sandboxer's Controller.
poke() {
	local m=$1
	shift
	"$BIN/tests/grpcpoke" "$D/sandboxer.sock" "/containerd.services.sandbox.v1.Controller/$m" "$@"
}

# Conditions for wait_until, read from the sandboxer's verbose Status (field 2 = true).
sb_waiters() { poke Status --id "$1" --hex 1001 | grep -q "waiters\.\.$2"; }
sb_state() { poke Status --id "$1" --hex 1001 | grep -q "state\.\.$2"; }
sb_notready() { poke Status --id "$1" | grep -q SANDBOX_NOTREADY; }
ctr_exited() { cri status "$1" | grep -q EXITED; }

# run_pod NAME: a pod with a busybox container running CMD; sets POD and CTR.
run_pod() {
	local name=$1
	shift
	POD=$(cri --name "$name" --uid "uid-$name" runp) || return 1
	CTR=$(cri --name "$name" --uid "uid-$name" --container "$name" \
		--image kuasar.invalid/busybox:test create "$POD" -- "$@") || return 1
	cri start "$CTR"
}

# wait_log FILE TEXT: up to 20 s for TEXT to show up in a container log.
wait_log() {
	wait_until 20 grep -q -- "$2" "$1" 2>/dev/null && return 0
	echo "\"$2\" not in $1:" >&2
	cat "$1" >&2 2>/dev/null
	return 1
}

# cri_teardown_pods: teardown for tests that list their pods in $D/pods.
cri_teardown_pods() {
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods" 2>/dev/null)
	cri_teardown
}

cri_teardown() {
	local leaked="" pids mounts m left cgroups
	cgroups=$(cri_env_cgroups)
	[ -z "$cgroups" ] || leaked="cgroups: $cgroups"
	# Leaked sandbox processes (proxies, VMMs) go first, so their cgroups can be removed.
	pids=$(pgrep -f -- "$D/" | grep -vxF -e "${SB_PID:-x}" -e "${CTRD_PID:-x}" || true)
	if [ -n "$pids" ]; then
		kill -9 $pids 2>/dev/null || true
		sleep 0.2
		leaked="$leaked processes: $pids"
	fi
	cri_env_down
	mounts=$(awk -v d="$D/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
	for m in $mounts; do umount -l "$m"; done
	# containerd's own (snapshots of runc containers) are its business; ours are below run/.
	case "$mounts" in *"$D/run/"*) leaked="$leaked mounts: $mounts" ;; esac
	left=$(cd "$D/run" && find . -mindepth 1 ! -name accel.json | head -5)
	if [ -n "$leaked$left" ] || [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		echo "--- sandboxer log" >&2
		tail -30 "$D/sandboxer.log" >&2
		echo "--- containerd errors" >&2
		grep -E 'level=(error|warning)' "$D/containerd.log" | tail -10 >&2
	fi
	rm -rf --one-file-system "$D"
	[ -z "$leaked" ] || { echo "leaked $leaked" >&2; return 1; }
	[ -z "$left" ] || { echo "leaked files: $left" >&2; return 1; }
}

# web NAME [CRI OPTIONS...]: a networked pod whose container serves "hello from NAME" over
# HTTP on port 8080 (busybox httpd); sets POD and CTR.
web() {
	local name=$1
	shift
	POD=$(cri --name "$name" --uid "uid-$name" --pod-network "$@" runp) || return 1
	echo "$POD" >>"$D/pods"
	CTR=$(cri --name "$name" --uid "uid-$name" --pod-network --container "$name" \
		--image kuasar.invalid/busybox:test create "$POD" -- sh -c \
		"mkdir -p /www && echo hello from $name >/www/index.html && exec httpd -f -p 8080 -h /www") ||
		return 1
	cri start "$CTR"
}

pod_ip() { cri podstatus "$1" | sed -n 's/.* ip=\([^ ]*\).*/\1/p'; }
pod_ip6() { cri podstatus "$1" | sed -n 's/.* ips=\([^ ,]*\).*/\1/p'; }

# get HOST PORT: an HTTP GET from the host.
get() {
	printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 nc -w 5 "$1" "$2"
}
serves() { get "$@" | grep -q "hello from"; }
# fetch CTR HOST: an HTTP GET on port 8080 from inside a container (busybox nc: Debian's
# static busybox wget crashes).
fetch() {
	cri exec "$1" -- sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 $2 8080"
}
