#!/usr/bin/env bash
# The pod network, measured against a baseline in the same run (tools/cri-env.sh: stock
# containerd, Debian's CNI bridge + host-local + portmap in a bridge of the run's own):
#   1. data path: a kuasar pod (VM; CNI's veth joined to a tap by tc redirect, virtio-net)
#      and a runc pod (the veth itself) on one bridge, each serving the same busybox HTTP
#      and sink: TCP connect + request/response latency and bulk throughput from the host;
#   2. port-forward: localhost dialled inside each pod's netns, as containerd does;
#   3. pod start with CNI on both sides: kuasar vs runc;
#   4. what the network adds to a kuasar pod start: with CNI vs host network (template
#      restores on both sides once the first start has built the templates).
#
# usage: tools/bench-net.sh   (RUNS=9 REQS=200 MIB=64 to change the sizes)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-9}
REQS=${REQS:-200}
MIB=${MIB:-64}
D=$(mktemp -d /tmp/kn.XXXXXX)
export D
CRI_ENV_LOG_LEVEL=info
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"

ctl() { cri_ctl "$@"; }
trap cri_env_cleanup EXIT

SERVE='mkdir -p /www; echo "hello from the pod network benchmark" >/www/index.html
	nc -ll -p 9001 -e dd of=/dev/null 2>/dev/null &
	exec httpd -f -p 8080 -h /www'

# web HANDLER: a networked pod serving on 8080 (HTTP) and 9001 (sink); prints its IPv4.
web() {
	local h=$1 pod ctr ip i
	pod=$(ctl --handler "$h" --name "net-$h" --uid "net-$h" --pod-network runp)
	echo "$pod" >>"$D/pods"
	ctr=$(ctl --handler "$h" --name "net-$h" --uid "net-$h" --pod-network --container "net-$h" \
		--image kuasar.invalid/busybox:test create "$pod" -- sh -c "$SERVE")
	ctl start "$ctr" >/dev/null
	ip=$(ctl podstatus "$pod" | sed -n 's/.* ip=\([^ ]*\).*/\1/p')
	for i in $(seq 100); do
		printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 nc -w 2 "$ip" 8080 2>/dev/null | grep -q hello && break
		sleep 0.2
	done
	echo "$ip"
}

# netns_of IP: the netns (path) whose interfaces hold IP.
netns_of() {
	local ns
	for ns in $(ip netns list | awk '{print $1}'); do
		if ip -n "$ns" -o addr show | grep -q " $1/"; then
			echo "/var/run/netns/$ns"
			return
		fi
	done
	echo "bench-net: no netns holds $1" >&2
	return 1
}

cri_env_fetch
cri_env_up
echo "== data path: kuasar pod (VM: veth -> tc redirect -> tap -> virtio-net) vs runc pod (veth), one bridge"
ipk=$(web kuasar)
ipr=$(web runc)
"$TOP/bin/kuasar-ctl" bench tcp -n "$REQS" --bulk "$MIB" kuasar "$ipk" runc "$ipr"
echo
echo "== port-forward: localhost:PORT dialled inside each pod's netns, as containerd's PortForward does"
echo "   (kuasar: sk_lookup steers it to the task proxy, a stream on the guest link, the VM's"
echo "   loopback; runc: the container's own socket)"
"$TOP/bin/kuasar-ctl" bench tcp -n "$REQS" --bulk "$MIB" \
	kuasar "$(netns_of "$ipk")@127.0.0.1" runc "$(netns_of "$ipr")@127.0.0.1"
# shellcheck disable=SC2046
cri_env_rmpods $(cat "$D/pods")
rm "$D/pods"

echo
echo "== pod start with CNI on both sides"
ctl --handler kuasar --pod-network --image kuasar.invalid/busybox:test -n "$RUNS" bench runc
echo
echo "== what the pod network adds to a pod start (with CNI vs host network): kuasar, then runc"
ctl --handler kuasar --pod-network --image kuasar.invalid/busybox:test -n "$RUNS" bench kuasar/hostnet
ctl --handler runc --pod-network --image kuasar.invalid/busybox:test -n "$RUNS" bench runc/hostnet
echo "(CNI's own plugins run in containerd for both runtimes: kuasar's delta minus runc's is ours)"
grep -h 'network set up' "$D/sandboxer.log" | sed -n 's/.*network set up: \(.*\)/  sandboxer: \1/p' | tail -3
