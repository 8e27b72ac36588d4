#!/usr/bin/env bats
# The warm pool ([sandboxer] pool): VMs restored and made unique before any pod asks, taken
# by RunPodSandbox with the pod's network moved in; each pooled pod unique; an empty pool, or
# a pooled VM whose VMM died, falls back to the template path; a killed daemon's pool is
# discarded by the next one; pool = 0 starts nothing.

load cri

setup_file() { cri_setup_file; }
setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*"two pooled"* | *"killed daemon"*) export CRI_ENV_POOL=2 ;;
	*"pool = 0"*) export CRI_ENV_POOL=0 ;;
	*) export CRI_ENV_POOL=1 ;;
	esac
	cri_setup
}
teardown() {
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods" 2>/dev/null)
	# The daemon's pool goes with it: whatever is left after that is a leak.
	cri_env_stop_pid "${SB_PID:-}"
	SB_PID=
	cri_teardown
}

# pooled N: N members ready (the first one builds the template: up to 120 s).
pooled() { [ "$(grep -c 'pool: kuasar-pool-.* ready in' "$D/sandboxer.log")" -ge "$1" ]; }
ready_members() { grep -o 'pool: kuasar-pool-[^ ]* ready in' "$D/sandboxer.log" | awk '{print $2}'; }
gone_members() { grep -o 'pool: kuasar-pool-[^ ]* goes' "$D/sandboxer.log" | awk '{print $2}'; }
# pool_procs: pooled proxies and VMMs running.
pool_procs() { pgrep -f -- "kuasar-pool-.*$D/|$D/run/.pool" || true; }
boot_of() { poke Status --id "$1" --hex 1001 | grep -ao 'boot[^a-z]\{1,2\}[a-z]*' | sed 's/^boot[^a-z]*//'; }

# in_vm CTR: what makes a VM itself, one per line.
in_vm() {
	cri exec "$1" -- sh -c 'cat /sys/class/net/eth0/address; hostname;
		cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1; date +%s'
}

@test "pool: it fills, and a pod takes a pooled VM that serves HTTP on its pod IP" {
	wait_until 180 pooled 1
	[ -d "$D/run/.pool/$(ready_members | head -1)" ]
	web alpha
	grep -q "sandbox $POD: takes the pooled VM" "$D/sandboxer.log"
	[ "$(boot_of "$POD")" = pool ]
	grep -q "phases sandbox start (pool)" "$D/sandboxer.log"
	local ip
	ip=$(pod_ip "$POD")
	wait_until 20 serves "$ip" 8080
	run get "$ip" 8080
	[[ "$output" == *"hello from alpha"* ]]
	# The VM's directory is the sandbox's now; the pool made another member.
	[ -S "$D/run/$POD/task.sock" ]
	[ ! -e "$D/run/.pool/$(ready_members | head -1)" ]
	wait_until 180 pooled 2
	# Its VMM and proxy are in the pod's cgroup, no longer in the member's.
	local vmm
	vmm=$(sed -n 's/.*"vmm_pid": *\([0-9]*\).*/\1/p' "$D/run/$POD/sandbox.json")
	grep -q "/$POD\$" /proc/"$vmm"/cgroup
	# A restarted daemon re-adopts it by its pooled name (the proxy's and the VMM's).
	cri_env_stop_pid "$SB_PID"
	rm -f "$D/sandboxer.sock"
	sandboxer_start
	wait_until 10 grep -q "sandbox $POD: re-adopted VMM $vmm" "$D/sandboxer.log"
	[ "$(boot_of "$POD")" = pool ]
	run cri exec "$CTR" -- cat /www/index.html
	[[ "$output" == *"hello from alpha"* ]]
}

@test "pool: two pooled pods differ in MAC, hostname, boot id and entropy, with the right clock" {
	wait_until 240 pooled 2
	web one --hostname one
	local a=$CTR pa=$POD
	web two --hostname two
	local b=$CTR pb=$POD
	[ "$(boot_of "$pa")" = pool ]
	[ "$(boot_of "$pb")" = pool ]
	local va vb now
	va=$(in_vm "$a")
	vb=$(in_vm "$b")
	now=$(date +%s)
	echo "$va" >&2
	echo "$vb" >&2
	for i in 1 2 3 4; do
		[ "$(sed -n "${i}p" <<<"$va")" != "$(sed -n "${i}p" <<<"$vb")" ]
	done
	for v in "$va" "$vb"; do
		local t
		t=$(sed -n 5p <<<"$v")
		[ $((now - t)) -le 5 ]
		[ $((t - now)) -le 5 ]
	done
	[ "$(sed -n 2p <<<"$va")" = one ]
	[ "$(sed -n 2p <<<"$vb")" = two ]
}

@test "pool: an empty pool, and a pooled VM whose VMM died, fall back to the template path" {
	wait_until 180 pooled 1
	web first
	[ "$(boot_of "$POD")" = pool ]
	# The pool refills only after a start: the next pod right away finds it empty.
	web second
	[ "$(boot_of "$POD")" = template ]
	wait_until 20 serves "$(pod_ip "$POD")" 8080
	# A member whose VMM is killed goes and is never handed out.
	wait_until 180 pooled 2
	local m
	m=$(ready_members | tail -1)
	pkill -9 -f -- "kuasar-$m,"
	web third
	refute grep -q "takes the pooled VM $m" "$D/sandboxer.log"
	wait_until 20 serves "$(pod_ip "$POD")" 8080
	wait_until 10 grep -q "pool: $m goes" "$D/sandboxer.log"
}

@test "pool: a killed daemon's pool is discarded by the next one, leaving nothing" {
	wait_until 240 pooled 2
	[ -n "$(pool_procs)" ]
	kill -9 "$SB_PID"
	wait_until 5 sh -c "! kill -0 $SB_PID 2>/dev/null"
	# Its members outlive it, until the next daemon discards them (and refills).
	[ -n "$(pool_procs)" ]
	local old
	old=$(ready_members)
	sed -i 's/^pool = .*/pool = 0/' "$D/sandboxer.toml"
	rm -f "$D/sandboxer.sock"
	sandboxer_start
	for m in $old; do
		wait_until 10 grep -q "pool: discarding $m" "$D/sandboxer.log"
		[ ! -e "$D/run/.pool/$m" ]
		refute pgrep -f -- "kuasar-$m"
		[ -z "$(find /sys/fs/cgroup -maxdepth 3 -name "$m")" ]
	done
	[ -z "$(pool_procs)" ]
	# pool = 0: nothing pooled again, and no pool directory is left.
	[ ! -e "$D/run/.pool" ]
	web after
	[ "$(boot_of "$POD")" = template ]
}

@test "pool: pool = 0 starts no member" {
	web plain
	sleep 2
	[ "$(boot_of "$POD")" = template ]
	[ -z "$(pool_procs)" ]
	refute grep -q 'pool:' "$D/sandboxer.log"
	[ ! -e "$D/run/.pool" ]
}
