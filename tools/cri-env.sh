# Sourced: stock containerd plus kuasar-sandboxer in one directory, with their own sockets,
# state and configs, images imported offline. Used by the CRI tests, `make demo-cri` and
# `make bench-pod`. Needs TOP (the source tree) and D (a short directory: unix socket paths
# are limited to 108 bytes) set by the caller.
#
#   cri_env_fetch          containerd (cached) and the image archives
#   cri_env_up             write configs, start both, import images
#   cri_env_sandboxer      (re)start the sandboxer alone
#   cri_env_containerd     (re)start containerd alone
#   cri_env_rmpods POD...  stop and remove pods through CRI
#   cri_env_down           stop both by PID (sandboxes are the caller's to remove first),
#                          then remove the environment's bridge
#
# Pod networks: CNI (Debian's plugins in /usr/lib/cni) with a bridge + host-local (an IPv4
# and an IPv6 range) + portmap conflist, in a bridge and subnets of this environment's own:
# bridge kb<NET_ID>, 10.203.<NET_ID>.0/24 and fd00:6b75:<NET_ID>::/64, where NET_ID
# (1-250) comes from CRI_ENV_NET_ID or the directory's name.
#
# CRI_ENV_KERNEL boots the sandboxes with another guest kernel than bin/vmlinux.bin;
# CRI_ENV_PAUSE_IMAGE is containerd's sandbox (pause) image instead of the local busybox one.
# CTRD_BIN (a directory with containerd and ctr) runs another containerd than Debian's 2.1
# (make critest with an upstream build); CRI_ENV_REGISTRY_CONFIG (a hosts.toml tree) is
# containerd's registry config_path. CRI_ENV_PORTMAP_SNAT=true lets the host reach a pod's
# hostPort on 127.0.0.1 (portmap masquerades it, as Kubernetes' default CNI configs do).

CTRD_BIN=${CTRD_BIN:-}
CRI_IMAGES=${CRI_IMAGES:-/tmp/kuasar-images}

cri_env_fetch() {
	[ -n "$CTRD_BIN" ] ||
		CTRD_BIN=$("$TOP/tools/fetch-containerd.sh" "${KUASAR_CACHE:-$HOME/.cache/kuasar}") || return 1
	export CTRD_BIN
	mkdir -p "$CRI_IMAGES"
	[ -f "$CRI_IMAGES/busybox.tar" ] ||
		"$TOP/tests/make-image.sh" "$CRI_IMAGES/busybox.tar" kuasar.invalid/busybox:test sh || return 1
	[ -f "$CRI_IMAGES/pause.tar" ] ||
		"$TOP/tests/make-image.sh" "$CRI_IMAGES/pause.tar" kuasar.invalid/pause:test sleep 2147483647
}

cri_env_wait_socket() {
	local i
	for i in $(seq 300); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	echo "no socket at $1" >&2
	return 1
}

cri_env_sandboxer() {
	"$TOP/bin/kuasar-sandboxer" --config "$D/sandboxer.toml" >>"$D/sandboxer.log" 2>&1 &
	SB_PID=$!
	cri_env_wait_socket "$D/sandboxer.sock" || { cat "$D/sandboxer.log" >&2; return 1; }
}

cri_env_containerd() {
	rm -f "$D/containerd.sock"
	# containerd-shim-kuasar-v1 (a link to the sandboxer) must be on containerd's PATH: it
	# resolves the runtime name to it when reloading tasks after a restart.
	PATH=$TOP/bin:$CTRD_BIN:$PATH "$CTRD_BIN/containerd" --config "$D/containerd.toml" >>"$D/containerd.log" 2>&1 &
	CTRD_PID=$!
	cri_env_wait_socket "$D/containerd.sock" || { tail -20 "$D/containerd.log" >&2; return 1; }
	# The socket comes before the CRI service is initialized (every call, Version too,
	# answers "server is not initialized yet" until then): up to 20 s more for that.
	local i
	for i in $(seq 200); do
		"$TOP/bin/kuasar-ctl" cri --address "$D/containerd.sock" version >/dev/null 2>&1 &&
			return 0
		sleep 0.1
	done
	echo "containerd's CRI did not come up" >&2
	tail -20 "$D/containerd.log" >&2
	return 1
}

cri_env_net_id() {
	[ -n "${CRI_ENV_NET_ID:-}" ] && { echo "$CRI_ENV_NET_ID"; return; }
	echo $(($(printf '%s' "$D" | cksum | cut -d' ' -f1) % 250 + 1))
}

cri_env_cni() {
	NET_ID=$(cri_env_net_id)
	CRI_BRIDGE=kb$NET_ID
	CRI_NET4=10.203.$NET_ID
	CRI_NET6=fd00:6b75:$NET_ID:
	export NET_ID CRI_BRIDGE CRI_NET4 CRI_NET6
	mkdir -p "$D/cni"
	cat >"$D/cni/10-kuasar-test.conflist" <<-JSON
	{
	  "cniVersion": "1.0.0",
	  "name": "kuasar-test-$NET_ID",
	  "plugins": [
	    {
	      "type": "bridge", "bridge": "$CRI_BRIDGE", "isGateway": true, "ipMasq": false,
	      "hairpinMode": true,
	      "ipam": {
	        "type": "host-local", "dataDir": "$D/cni-ipam",
	        "ranges": [[{"subnet": "$CRI_NET4.0/24"}], [{"subnet": "${CRI_NET6}:/64"}]],
	        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
	      }
	    },
	    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": ${CRI_ENV_PORTMAP_SNAT:-false}}
	  ]
	}
	JSON
}

cri_env_up() {
	mkdir -p "$D/run" "$D/logs"
	cri_env_cni
	[ -f /tmp/kuasar-test-accel.json ] && cp /tmp/kuasar-test-accel.json "$D/run/accel.json"
	cat >"$D/sandboxer.toml" <<-TOML
	[sandbox]
	log_level = "${CRI_ENV_LOG_LEVEL:-debug}"
	[hypervisor]
	kernel_path = "${CRI_ENV_KERNEL:-$TOP/bin/vmlinux.bin}"
	initrd_path = "$TOP/bin/kuasar.initrd"
	memory_in_mb = ${CRI_ENV_MEMORY:-256}
	template = ${CRI_ENV_TEMPLATE:-true}
	kernel_params = "${CRI_ENV_KERNEL_PARAMS:-}"
	[sandboxer]
	listen = "$D/sandboxer.sock"
	run_dir = "$D/run"
	containerd_ttrpc = "$D/containerd.sock.ttrpc"
	stop_timeout_secs = 5
	cgroup_parent = "kuasar-$(basename "$D")"
	template_dir = "$D/templates"
	template_memory_dir = "$D/templates/mem"
	appliance_dir = "${CRI_ENV_APPLIANCE_DIR:-$D/appliances}"
	snapshot_dir = "$D/snapshots"
	rootfs = "${CRI_ENV_ROOTFS:-9p}"
	rootfs_cache_dir = "$D/rootfs-cache"
	allow_host_network = ${CRI_ENV_HOST_NETWORK:-true}
	pool = ${CRI_ENV_POOL:-0}
	pool_idle_secs = ${CRI_ENV_POOL_IDLE:-600}
	TOML
	cat >"$D/containerd.toml" <<-TOML
	version = 3
	root = "$D/root"
	state = "$D/state"
	[grpc]
	  address = "$D/containerd.sock"
	[ttrpc]
	  address = "$D/containerd.sock.ttrpc"
	# These machines deny CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below ours.
	[plugins."io.containerd.cri.v1.runtime"]
	  restrict_oom_score_adj = true
	[plugins."io.containerd.cri.v1.runtime".cni]
	  bin_dirs = ["/usr/lib/cni"]
	  conf_dir = "$D/cni"
	  max_conf_num = 1
	$(sed "s#/run/kuasar-sandboxer.sock#$D/sandboxer.sock#" "$TOP/image/containerd/kuasar.toml")
	[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
	  runtime_type = "io.containerd.runc.v2"
	[plugins."io.containerd.cri.v1.images".pinned_images]
	  sandbox = "${CRI_ENV_PAUSE_IMAGE:-kuasar.invalid/pause:test}"
	$([ -n "${CRI_ENV_REGISTRY_CONFIG:-}" ] && printf '[plugins."io.containerd.cri.v1.images".registry]\n  config_path = "%s"' "$CRI_ENV_REGISTRY_CONFIG")
	TOML
	cri_env_sandboxer || return 1
	cri_env_containerd || return 1
	local img
	for img in busybox pause; do
		"$CTRD_BIN/ctr" -a "$D/containerd.sock" -n k8s.io images import --platform linux/amd64 \
			"$CRI_IMAGES/$img.tar" >/dev/null || return 1
	done
}

# For the benchmarks: a scratch environment in /tmp/PREFIX.XXXXXX ($D), info logs, 128 MiB
# VMs, and cri_env_cleanup on exit. Then cri_env_fetch and cri_env_up.
cri_env_bench() {
	D=$(mktemp -d "/tmp/$1.XXXXXX")
	export D
	CRI_ENV_LOG_LEVEL=info
	CRI_ENV_MEMORY=128
	trap cri_env_cleanup EXIT
}

# For scripts on one environment (the benchmarks): kuasar-ctl's CRI client, and an exit
# trap that removes the pods listed in $D/pods, stops both daemons and removes $D.
cri_ctl() { "$TOP/bin/kuasar-ctl" cri --address "$D/containerd.sock" --log-dir "$D/logs" "$@"; }
cri_env_cleanup() {
	# An EXIT trap: every step is tried, and a step that fails must not become the
	# script's exit status under the caller's set -e (bash keeps the status it exited with).
	set +e
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods" 2>/dev/null)
	cri_env_down
	rm -rf --one-file-system "$D" || echo "cleanup: $D could not be removed entirely" >&2
}

# cri_env_rmpods POD...: stops and removes pods through CRI, ignoring those already gone.
cri_env_rmpods() {
	local p
	for p in "$@"; do
		"$TOP/bin/kuasar-ctl" cri --address "$D/containerd.sock" stopp "$p" >/dev/null 2>&1 || true
		"$TOP/bin/kuasar-ctl" cri --address "$D/containerd.sock" rmp "$p" >/dev/null 2>&1 || true
	done
}

cri_env_stop_pid() { # PID: TERM, then KILL after 10 s
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

# Sandbox cgroups left under this environment's parent (there should be none).
cri_env_cgroups() {
	find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -type d -path "*/kuasar-$(basename "$D")/*" 2>/dev/null
}

cri_env_down() {
	local cg
	cri_env_stop_pid "${CTRD_PID:-}"
	cri_env_stop_pid "${SB_PID:-}"
	for cg in $(cri_env_cgroups) $(find /sys/fs/cgroup -maxdepth 2 -type d -name "kuasar-$(basename "$D")" 2>/dev/null); do
		rmdir "$cg" 2>/dev/null || true
	done
	[ -f "$D/run/accel.json" ] && cp "$D/run/accel.json" /tmp/kuasar-test-accel.json
	# CNI leaves its bridge when the last pod goes; it is this environment's.
	[ -n "${CRI_BRIDGE:-}" ] && ip link del "$CRI_BRIDGE" 2>/dev/null
	return 0
}
