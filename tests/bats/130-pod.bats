#!/usr/bin/env bats
# What kubelet asks of a pod beyond its containers, on VM pods: one pid namespace for the
# pod when it shares its processes, its sysctls applied in the VM before the first container,
# setuid programs that work, host-network pods refused unless the config allows them, and a
# privileged container that builds its own bridges and firewall in the VM.

load cri

setup_file() { cri_setup_file; }
setup() { cri_setup; }
# A test's host volume, unmounted whatever the test did (the pods' copies are their own).
teardown() {
	umount -R "$D/vol" 2>/dev/null || true
	cri_teardown_pods
}

BUSYBOX=kuasar.invalid/busybox:test

# ctr NAME ARGS...: a container made with cri ARGS and started; its id on stdout.
ctr() {
	local name=$1 id
	shift
	id=$(cri --container "$name" --image "$BUSYBOX" "$@") || return 1
	cri start "$id" >/dev/null || return 1
	echo "$id"
}

@test "pod: a shareProcessNamespace pod's containers see each other's processes, under the pod's own init" {
	POD=$(cri --name share --pid pod runp)
	echo "$POD" >>"$D/pods"
	c1=$(ctr one --pid pod create "$POD" -- sleep 1001)
	c2=$(ctr two --pid pod create "$POD" -- sleep 1002)
	run cri exec "$c2" -- ps -o pid,comm,args
	echo "$output"
	[[ "$output" == *"sleep 1001"* ]]
	[[ "$output" == *"sleep 1002"* ]]
	# PID 1 is the pod's holder, not a container and not the VM's init.
	run cri exec "$c1" -- cat /proc/1/comm
	[ "$output" = kuasar-pod ]
	run cri exec "$c2" -- ps -o comm
	[[ "$output" != *init* ]]
	# A signal from inside does not end the pod's init (its processes would go with it).
	cri exec "$c1" -- kill -9 1 || true
	run cri exec "$c2" -- cat /proc/1/comm
	[ "$output" = kuasar-pod ]
	# A container of the pod stops alone; the other one and the pod go on.
	cri --timeout 5 stop "$c1"
	run cri exec "$c2" -- ps -o args
	[[ "$output" != *"sleep 1001"* ]]
	[[ "$output" == *"sleep 1002"* ]]
	# Without it, each container is alone in its own namespace.
	POD2=$(cri --name alone runp)
	echo "$POD2" >>"$D/pods"
	c3=$(ctr three create "$POD2" -- sleep 1003)
	run cri exec "$c3" -- cat /proc/1/cmdline
	[[ "$output" == sleep1003* ]]
}

@test "pod: sysctls are set in the VM before the first container; bad ones fail the pod clearly" {
	POD=$(cri --name sysctl --sysctl net.ipv4.ip_unprivileged_port_start=80 \
		--sysctl kernel.shm_rmid_forced=1 runp)
	echo "$POD" >>"$D/pods"
	c=$(ctr c create "$POD" -- sleep 1000)
	run cri exec "$c" -- cat /proc/sys/net/ipv4/ip_unprivileged_port_start
	[ "$output" = 80 ]
	run cri exec "$c" -- cat /proc/sys/kernel/shm_rmid_forced
	[ "$output" = 1 ]
	grep -q "2 sysctls set in the VM" "$D/sandboxer.log"
	# Not a sysctl name: refused before any VM starts.
	run cri --name bad --sysctl 'kernel/../../x=1' runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"sysctl"*"an empty part"* ]]
	# A name this kernel lacks: the start fails and says which.
	run cri --name unknown --sysctl net.ipv4.no_such_knob=1 runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"net.ipv4.no_such_knob"*"no such sysctl in the VM's kernel"* ]]
}

@test "pod: a setuid program raises its effective uid, as under runc" {
	mkdir -p "$D/suid"
	cat >"$D/suid/euid.c" <<-'C'
		#include <stdio.h>
		#include <unistd.h>
		int main(int argc, char **argv)
		{
			if (argc > 1)
				return printf("euid=%d uid=%d\n", (int)geteuid(), (int)getuid()) < 0;
			if (setgid(1000) || setuid(1000))
				return perror("drop to 1000"), 1;
			execl(argv[0], argv[0], "child", (char *)0);
			return perror("exec"), 1;
		}
	C
	musl-gcc -static -O1 -o "$D/suid/euid" "$D/suid/euid.c"
	chmod 4755 "$D/suid/euid"
	POD=$(cri --name suid runp)
	echo "$POD" >>"$D/pods"
	c=$(ctr c --mount "$D/suid:/s" create "$POD" -- sleep 1000)
	run cri exec "$c" -- /s/euid
	[ "$output" = "euid=0 uid=1000" ]
}

@test "pod: volumes: read-only is not recursive, host mounts reach the pod (rslave), bidirectional is refused" {
	mkdir -p "$D/vol/sub"
	mount --bind "$D/vol" "$D/vol"
	mount --make-rshared "$D/vol"
	mount -t tmpfs below "$D/vol/sub"
	POD=$(cri --name vol runp)
	echo "$POD" >>"$D/pods"
	c=$(ctr ro --mount "$D/vol:/v:ro" create "$POD" -- sleep 1000)
	run cri exec "$c" -- touch /v/top
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	# The host's tmpfs below the volume is as writable in the pod as under runc.
	cri exec "$c" -- sh -c 'echo from-pod >/v/sub/f'
	[ "$(cat "$D/vol/sub/f")" = from-pod ]
	# Host to container: a mount the host makes after the start shows in the pod.
	c2=$(ctr slave --mount "$D/vol:/s:rslave" create "$POD" -- sleep 1000)
	mkdir -p "$D/vol/late" "$D/late-src"
	echo late >"$D/late-src/flag"
	mount --bind "$D/late-src" "$D/vol/late"
	run cri exec "$c2" -- cat /s/late/flag
	[ "$output" = late ]
	# Bidirectional: what the pod mounts could never reach the host. Refused, and the pod
	# goes on.
	bi=$(cri --container bi --image "$BUSYBOX" --mount "$D/vol:/b:rshared" create "$POD" -- sleep 1)
	run cri start "$bi"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"bidirectional propagation cannot cross the VM"* ]]
	run cri exec "$c" -- cat /v/sub/f
	[ "$output" = from-pod ]
	umount "$D/vol/late"
}

@test "pod: /dev/shm is the pod's: one tmpfs its containers share, none of another pod's" {
	POD=$(cri --name shm runp)
	echo "$POD" >>"$D/pods"
	c1=$(ctr one create "$POD" -- sleep 1001)
	c2=$(ctr two create "$POD" -- sleep 1002)
	cri exec "$c1" -- sh -c 'echo shared >/dev/shm/seg'
	run cri exec "$c2" -- cat /dev/shm/seg
	[ "$output" = shared ]
	run cri exec "$c2" -- sh -c 'grep " /dev/shm " /proc/self/mountinfo'
	[[ "$output" == *"tmpfs"*"size=65536k"* ]]
	POD2=$(cri --name shm2 runp)
	echo "$POD2" >>"$D/pods"
	c3=$(ctr three create "$POD2" -- sleep 1003)
	run cri exec "$c3" -- cat /dev/shm/seg
	[ "$status" -ne 0 ]
}

@test "pod: a host-network pod is refused unless the config allows it" {
	cri_env_stop_pid "$SB_PID"
	sed -i 's/^allow_host_network = .*/allow_host_network = false/' "$D/sandboxer.toml"
	sandboxer_start
	run cri --name hostnet runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"host network: a VM cannot share the host's network stack"* ]]
	[[ "$output" == *"allow_host_network = true"* ]]
	[ -z "$(ls "$D/run" | grep -v accel.json)" ]
}

@test "pod: a privileged container builds a bridge and a veth pair, with netfilter in the VM's kernel; an unprivileged one cannot" {
	POD=$(cri --name priv --privileged runp)
	echo "$POD" >>"$D/pods"
	c=$(ctr c --privileged create "$POD" -- sleep 1000)
	run cri exec "$c" -- sh -c 'ip link add br0 type bridge && ip link add v0 type veth peer name v1 && ip -o link'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"br0:"* ]]
	[[ "$output" == *"v0"*"veth"* || "$output" == *"veth"*"v0"* ]]
	# iptables (legacy and nft) and conntrack are there for docker or a CNI in the pod.
	run cri exec "$c" -- ls /proc/net/ip_tables_names /proc/net/ip6_tables_names /proc/net/nf_conntrack
	[ "$status" -eq 0 ]
	u=$(ctr u create "$POD" -- sleep 1000)
	run cri exec "$u" -- ip link add br1 type bridge
	[ "$status" -ne 0 ]
}
