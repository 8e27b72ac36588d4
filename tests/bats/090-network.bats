#!/usr/bin/env bats
# Pod networks through containerd's CRI and Debian's CNI plugins (bridge, host-local with an
# IPv4 and an IPv6 range, portmap) in a bridge and subnets of the test's own: the VM gets the
# pod's interface, the host and other pods reach it, clones of one template do not clash,
# hostPort works, DNS settings reach the container, stats are real, and nothing of ours is
# left in any namespace afterwards.

load cri

setup_file() { cri_setup_file; }
setup() {
	cri_setup
	NETNS_BEFORE=$(ip netns list | wc -l)
	SB_FILES=$(daemon_fds files)
}

# What of ours is left in any namespace: taps, ports on the bridge beyond CNI's, netns.
net_leftovers() {
	local ns
	for ns in $(ip netns list | awk '{print $1}'); do
		ip -n "$ns" link show 2>/dev/null | grep -q _kuasar && echo "tap in $ns;"
	done
	ip link show | grep -q '_kuasar' && echo "tap in the host netns;"
	[ -n "$(ip link show master "$CRI_BRIDGE" 2>/dev/null)" ] && echo "ports on $CRI_BRIDGE;"
	[ "$(ip netns list | wc -l)" -le "$NETNS_BEFORE" ] || echo "netns;"
}

teardown() {
	local left=""
	# A failed test leaves its pods: CRI removes them (and CNI its netns and rules) first.
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods" 2>/dev/null)
	# containerd removes a pod's netns as it finishes RemovePodSandbox: allow it a moment.
	for _ in $(seq 50); do
		left=$(net_leftovers)
		[ -z "$left" ] && break
		sleep 0.1
	done
	if [ -n "$left" ]; then
		for ns in $(ip netns list | awk '{print $1}'); do
			echo "--- netns $ns:" >&2
			ip -n "$ns" -br link show >&2
		done
		grep -E 'netns|network|tap' "$D/sandboxer.log" | tail -20 >&2
	fi
	cri_teardown
	[ -z "$left" ] || { echo "left behind: $left" >&2; return 1; }
}

# All pods removed through CRI, then the daemon holds as many fds as at the start.
remove_pods() {
	local p
	for p in "$@"; do
		cri stopp "$p"
		cri rmp "$p"
	done
}
# daemon_fds files|sockets|netns: the daemon's open fds of one kind. Sockets vary with
# containerd's connections; files (pidfds, pipes, timers, ...) and namespaces must not grow.
daemon_fds() {
	local f t n=0
	for f in /proc/"$SB_PID"/fd/*; do
		t=$(readlink "$f" 2>/dev/null) || continue
		case "$1:$t" in
		sockets:socket:*) n=$((n + 1)) ;;
		netns:net:* | netns:/dev/net/tun) n=$((n + 1)) ;;
		files:socket:*) ;;
		files:*) n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}
fds_back() { [ "$(daemon_fds files)" -le "$SB_FILES" ] && [ "$(daemon_fds netns)" -eq 0 ]; }

@test "network: the host reaches a pod's container on its IPv4 and IPv6 addresses" {
	web alpha --dns-server "$CRI_NET4.53" --dns-search kuasar.test
	local ip ip6
	ip=$(pod_ip "$POD")
	ip6=$(pod_ip6 "$POD")
	[[ "$ip" == "$CRI_NET4".* ]]
	[[ "$ip6" == "$CRI_NET6"* ]]
	wait_until 20 serves "$ip" 8080
	run get "$ip" 8080
	[[ "$output" == *"hello from alpha"* ]]
	wait_until 10 serves "$ip6" 8080
	# The container sees CNI's address on eth0 and the default routes via the bridge.
	run cri exec "$CTR" -- ip addr show eth0
	[[ "$output" == *"inet $ip/24"* ]]
	[[ "$output" == *"inet6 $ip6/64"* ]]
	run cri exec "$CTR" -- ip route
	[[ "$output" == *"default via $CRI_NET4.1 dev eth0"* ]]
	run cri exec "$CTR" -- ip -6 route
	[[ "$output" == *"default via ${CRI_NET6}:1 dev eth0"* ]]
	# The pod's DNS config is what the container reads.
	run cri exec "$CTR" -- cat /etc/resolv.conf
	[[ "$output" == *"nameserver $CRI_NET4.53"* ]]
	[[ "$output" == *"search kuasar.test"* ]]
	# The pod's files are the guest's own copies (a tmpfs), not binds over the 9p share.
	run cri exec "$CTR" -- grep -E " /etc/(resolv.conf|hosts|hostname) " /proc/self/mountinfo
	[ "$(grep -c " - tmpfs " <<<"$output")" -eq 3 ]
	[[ "$output" != *9p* ]]
	# Status says how the VM got its network.
	run poke Status --id "$POD" --hex 1001
	[[ "$output" == *"eth0 "*"via tap0_kuasar (virtio-net"* ]]
	remove_pods "$POD"
	wait_until 10 fds_back
}

@test "network: two pods reach each other; a hostPort mapping reaches the container" {
	local port=$((20000 + NET_ID)) a b
	web one --port "$port:8080"
	a=$POD
	local ctr_a=$CTR
	web two
	b=$POD
	wait_until 20 serves "$(pod_ip "$a")" 8080
	wait_until 20 serves "$(pod_ip "$b")" 8080
	run fetch "$ctr_a" "$(pod_ip "$b")"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from two"* ]]
	run fetch "$CTR" "$(pod_ip6 "$a")"
	[[ "$output" == *"hello from one"* ]]
	# portmap: the host port on the bridge's address leads to pod one.
	wait_until 10 serves "$CRI_NET4.1" "$port"
	run get "$CRI_NET4.1" "$port"
	[[ "$output" == *"hello from one"* ]]
	remove_pods "$a" "$b"
	wait_until 10 fds_back
}

@test "network: two clones of one template start at once on one bridge without clashing" {
	# The first networked pod builds the template; the next two are its clones.
	web seed
	local seed=$POD p1 p2 m1 m2
	cri --name c1 --uid uid-c1 --pod-network runp >"$D/c1" &
	local j1=$!
	cri --name c2 --uid uid-c2 --pod-network runp >"$D/c2" &
	wait $j1
	wait $!
	p1=$(cat "$D/c1")
	p2=$(cat "$D/c2")
	echo "$p1" >>"$D/pods"
	echo "$p2" >>"$D/pods"
	for p in "$p1" "$p2"; do
		run poke Status --id "$p" --hex 1001
		[[ "$output" =~ boot.{1,2}template ]]
	done
	local c1 c2
	c1=$(cri --name c1 --uid uid-c1 --pod-network --container c1 --image kuasar.invalid/busybox:test \
		create "$p1" -- sh -c 'mkdir -p /www && echo hello from c1 >/www/index.html && exec httpd -f -p 8080 -h /www')
	c2=$(cri --name c2 --uid uid-c2 --pod-network --container c2 --image kuasar.invalid/busybox:test \
		create "$p2" -- sh -c 'mkdir -p /www && echo hello from c2 >/www/index.html && exec httpd -f -p 8080 -h /www')
	cri start "$c1"
	cri start "$c2"
	wait_until 20 serves "$(pod_ip "$p1")" 8080
	wait_until 20 serves "$(pod_ip "$p2")" 8080
	wait_until 10 serves "$(pod_ip6 "$p1")" 8080
	wait_until 10 serves "$(pod_ip6 "$p2")" 8080
	[[ "$(get "$(pod_ip "$p1")" 8080)" == *"hello from c1"* ]]
	[[ "$(get "$(pod_ip "$p2")" 8080)" == *"hello from c2"* ]]
	# Each has its pod's MAC, not the template's, and they reach each other.
	m1=$(cri exec "$c1" -- cat /sys/class/net/eth0/address)
	m2=$(cri exec "$c2" -- cat /sys/class/net/eth0/address)
	[ "$m1" != "$m2" ]
	[[ "$m1" != 02:4b:51:* ]]
	run fetch "$c1" "$(pod_ip "$p2")"
	[[ "$output" == *"hello from c2"* ]]
	# CNI's IPv6 address is in use at once: no duplicate detection pending or failed (IFA_F_
	# flags 0x40 tentative, 0x08 dadfailed in /proc/net/if_inet6).
	local flags
	flags=$(cri exec "$c2" -- cat /proc/net/if_inet6 | awk '$6 == "eth0" && $4 == "00" { print $5 }')
	[ -n "$flags" ]
	[ $((0x$flags & 0x48)) -eq 0 ]
	remove_pods "$seed" "$p1" "$p2"
	wait_until 10 fds_back
}

# pod_netns POD: the pod's netns, as containerd gave it to the sandbox's task proxy.
pod_netns() {
	local pid
	pid=$(pgrep -f -- "proxy --id $1 ") || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n '/^--netns$/{n;p;q}'
}
# in_pod NETNS CMD...: CMD in the pod's netns, as containerd's port-forward dials.
in_pod() {
	local ns=$1
	shift
	nsenter --net="$ns" "$@"
}
pf_get() { # NETNS ADDR: an HTTP GET to ADDR:8080 from inside the pod netns
	printf 'GET / HTTP/1.0\r\n\r\n' | in_pod "$1" timeout 10 nc -w 5 "$2" 8080
}

@test "network: the sandbox's processes sit in the pod netns, so its cgroup's network reads are the pod's" {
	web stats
	local ns ino vmm proxy before after
	ns=$(pod_netns "$POD")
	ino=$(stat -L -c %i "$ns")
	proxy=$(pgrep -f -- "proxy --id $POD ")
	vmm=$(pgrep -P "$proxy" -f qemu | head -1)
	[ -n "$vmm" ]
	[ "$(stat -L -c %i "/proc/$proxy/ns/net")" = "$ino" ]
	[ "$(stat -L -c %i "/proc/$vmm/ns/net")" = "$ino" ]
	# What cadvisor reads through a process of the pod's cgroup: the pod's eth0, counting
	# the pod's traffic.
	before=$(awk -F'[: ]+' '$2=="eth0"{print $3}' "/proc/$vmm/net/dev")
	[ -n "$before" ]
	wait_until 20 serves "$(pod_ip "$POD")" 8080
	get "$(pod_ip "$POD")" 8080 >/dev/null
	after=$(awk -F'[: ]+' '$2=="eth0"{print $3}' "/proc/$vmm/net/dev")
	[ "$after" -gt "$before" ]
}

@test "port-forward: localhost:PORT in the pod netns reaches the VM's port (IPv4, IPv6, half-close, many at once); a closed port resets" {
	web pf
	local ns i
	ns=$(pod_netns "$POD")
	[ -n "$ns" ]
	wait_until 20 serves "$(pod_ip "$POD")" 8080
	run pf_get "$ns" 127.0.0.1
	[[ "$output" == *"hello from pf"* ]]
	run pf_get "$ns" ::1
	[[ "$output" == *"hello from pf"* ]]
	# 4 MiB each way through an echo server, the client half-closing its side: every byte
	# comes back, in order, and then the end.
	cri exec "$CTR" -- sh -c 'nc -ll -p 9000 -e cat >/dev/null 2>&1 &'
	head -c 4194304 /dev/urandom >"$BATS_TEST_TMPDIR/in"
	wait_until 10 in_pod "$ns" nc -z 127.0.0.1 9000
	in_pod "$ns" timeout 60 nc -N 127.0.0.1 9000 <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	# 8 at once.
	local pids=""
	for i in $(seq 8); do
		pf_get "$ns" 127.0.0.1 >"$BATS_TEST_TMPDIR/get$i" &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086
	wait $pids # only these: the daemons this test started are children too
	for i in $(seq 8); do
		grep -q "hello from pf" "$BATS_TEST_TMPDIR/get$i"
	done
	# Nothing listens on 9999 in the VM: the connection is reset, nothing is answered.
	run in_pod "$ns" sh -c 'echo hi | timeout 10 nc -w 5 127.0.0.1 9999'
	[ -z "$output" ]
	grep -q "port-forward unavailable" "$D/sandboxer.log" && return 1
	remove_pods "$POD"
	wait_until 10 fds_back
}

@test "network: a host-network pod starts without a NIC and says so" {
	POD=$(cri --name hostnet runp)
	echo "$POD" >>"$D/pods"
	run poke Status --id "$POD" --hex 1001
	[[ "$output" == *"none: host network"* ]]
	grep -q "host network" "$D/sandboxer.log"
	CTR=$(cri --container hn --image kuasar.invalid/busybox:test create "$POD" -- sleep 1000)
	cri start "$CTR"
	run cri exec "$CTR" -- cat /proc/net/dev
	[[ "$output" != *eth0* ]]
	remove_pods "$POD"
}

@test "network: PodSandboxStats and ListPodSandboxStats return real figures" {
	local parent="kuasar-$(basename "$D")/pod-stats"
	web stats --cgroup-parent "/$parent"
	wait_until 20 serves "$(pod_ip "$POD")" 8080
	run cri statsp "$POD"
	[ "$status" -eq 0 ]
	[[ "$output" =~ cpu_ns=[1-9][0-9]* ]]
	[[ "$output" =~ memory_usage=[1-9][0-9]* ]]
	[[ "$output" =~ net=eth0\ rx_bytes=[1-9] ]]
	run cri statsp -
	[[ "$output" == *"id=$POD cpu_ns="* ]]
	remove_pods "$POD"
	# The pod's cgroup is kubelet's (here the test's): ours below it is gone.
	[ -z "$(find /sys/fs/cgroup -path "*/$parent/*" -type d 2>/dev/null)" ]
	find /sys/fs/cgroup -depth -type d -path "*/$parent" -exec rmdir {} \; 2>/dev/null || true
}

@test "network: a killed sandboxer comes back to a networked pod that still serves" {
	web survivor
	local ip
	ip=$(pod_ip "$POD")
	wait_until 20 serves "$ip" 8080
	kill -9 "$SB_PID"
	sandboxer_start
	wait_until 10 sb_state "$POD" ready
	serves "$ip" 8080
	run poke Status --id "$POD" --hex 1001
	[[ "$output" == *"via tap0_kuasar"* ]]
	remove_pods "$POD"
}

@test "network: a netns path that is missing or not a netns fails Start clearly, leaving nothing" {
	run poke Create --id badns --netns /run/netns/kuasar-none-such
	[[ "$output" == *"code=0"* ]]
	run poke Start --id badns
	[[ "$output" == *"network namespace /run/netns/kuasar-none-such: No such file"* ]]
	run poke Shutdown --id badns
	[[ "$output" == *"code=0"* ]]
	run poke Create --id notns --netns /etc/hostname
	run poke Start --id notns
	[[ "$output" == *"/etc/hostname is not a network namespace"* ]]
	run poke Shutdown --id notns
	[ -z "$(pgrep -f -- "$D/run/")" ]
	[ ! -e "$D/run/badns" ]
	[ ! -e "$D/run/notns" ]
}
