#!/usr/bin/env bats
# Forks of a running VM under TCG: an appliance kept running builds state (an HTTP counter,
# a shell loop, notes), is snapshotted while it serves (kuasar-ctl snapshot), and forks
# carry on from that moment, each made unique and on a network of its own. Teardown fails a
# test on any VMM, tap, filter, snapshot or memory file, bridge or namespace left behind.

load helpers

setup_file() {
	local l=$BATS_FILE_TMPDIR/www
	mkdir -p "$l/www/cgi-bin"
	cat >"$l/www/cgi-bin/count" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
n=$(cat /tmp/count 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >/tmp/count
echo "count $n"
EOF
	cat >"$l/www/cgi-bin/loop" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
cat /tmp/loop
EOF
	cat >"$l/www/cgi-bin/whoami" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "host $(hostname)"
echo "mac $(cat /sys/class/net/eth0/address)"
echo "ip $(ip -4 -o addr show dev eth0 | awk '{ print $4 }')"
echo "rand $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
EOF
	cat >"$l/www/cgi-bin/note" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
[ -n "$QUERY_STRING" ] && echo "$QUERY_STRING" >>/tmp/notes
cat /tmp/notes 2>/dev/null
echo end
EOF
	cat >"$l/www/cgi-bin/peer" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
printf 'GET /cgi-bin/whoami HTTP/1.0\r\n\r\n' | nc -w 10 "$QUERY_STRING" 8080
EOF
	cat >"$l/www/cgi-bin/forked" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
cat /tmp/forked 2>/dev/null || echo 0
EOF
	chmod 755 "$l"/www/cgi-bin/*
	# The app: a shell loop counting five times a second beside busybox httpd, under a
	# shell that counts the fork signals it asked for (KUASAR_FORK_SIGNAL).
	"$TOP/tests/make-image.sh" --layer "$l" --expose 8080 --env KUASAR_FORK_SIGNAL=USR1 \
		"$BATS_FILE_TMPDIR/app.tar" kuasar.invalid/fork:test sh -c \
		'n=0; trap "n=\$((n + 1)); echo \$n >/tmp/forked" USR1
		(i=0; while :; do i=$((i + 1)); echo $i >/tmp/loop; sleep 0.2; done) &
		httpd -f -p 8080 -h /www &
		while :; do wait; done'
	"$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/app.tar" -o "$BATS_FILE_TMPDIR/app" \
		--no-snapshot >/dev/null
}

setup() {
	common_setup
	export KUASAR_TEMPLATE_MEM_DIR=/dev/shm/kuasar-test-$(basename "$KUASAR_RUN_DIR")
	export KUASAR_TEMPLATE_DIR=$KUASAR_RUN_DIR/templates
	export KUASAR_SNAPSHOT_DIR=$KUASAR_RUN_DIR/snapshots
	APP=$BATS_FILE_TMPDIR/app
	NS_PREFIX=kfork-$(basename "$KUASAR_RUN_DIR" | tr -dc 'a-zA-Z0-9')
	BR=kfbr$(basename "$KUASAR_RUN_DIR" | tr -dc 'a-zA-Z0-9' | tail -c 6)
}

# mk_ns I: namespace <prefix>-I whose eth0 (10.213.I.2/24) is a veth to the host (kfh<I>,
# 10.213.I.1/24).
mk_ns() {
	veth_ns "$NS_PREFIX-$1" "kfh$1" "10.213.$1"
}

# mk_bridged I: namespace <prefix>-bI on the bridge $BR, eth0 10.214.0.(10+I)/24.
mk_bridged() {
	local i=$1 ns=$NS_PREFIX-b$1
	ip link show "$BR" >/dev/null 2>&1 || {
		ip link add "$BR" type bridge
		ip addr add 10.214.0.1/24 dev "$BR"
		ip link set "$BR" up
	}
	ip netns add "$ns"
	ip link add "kfb$i" type veth peer name eth0 netns "$ns"
	ip link set "kfb$i" master "$BR" up
	ip -n "$ns" addr add "10.214.0.$((10 + i))/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	echo "/run/netns/$ns"
}

teardown() {
	local f leaked=""
	for f in "$KUASAR_RUN_DIR"/*/vm.json; do
		[ -f "$f" ] && "$CTL" shutdown "$(basename "$(dirname "$f")")" >/dev/null 2>&1
	done
	leaked=$(drop_netns "$NS_PREFIX-")
	for i in 0 1 2 3; do ip link del "kfh$i" 2>/dev/null || true; done
	ip link del "$BR" 2>/dev/null || true
	for f in "$KUASAR_SNAPSHOT_DIR"/*; do
		[ -e "$f" ] && leaked="$leaked snapshot files: $f"
	done
	if [ -d "$KUASAR_TEMPLATE_MEM_DIR/snapshots" ]; then
		leaked="$leaked snapshot memory: $(ls -A "$KUASAR_TEMPLATE_MEM_DIR/snapshots")"
	fi
	rm -rf "$KUASAR_TEMPLATE_MEM_DIR" "$KUASAR_SNAPSHOT_DIR" "$KUASAR_TEMPLATE_DIR" "$APP/templates"
	common_teardown
	[ -z "$leaked" ] || { echo "left behind:$leaked" >&2; return 1; }
}

http() { # URL: the body, or fails
	python3 -c 'import sys, urllib.request as u
sys.stdout.write(u.urlopen(sys.argv[1], timeout=20).read().decode())' "$1"
}

# parent NETNS: the appliance kept running as `parent` on NETNS (its snapshot built first,
# in this test's memory directory).
parent() {
	run_t 300 0 "$CTL" appliance run "$APP" --network "$1" --id parent --keep
}

field() { # TEXT KEY: the value of the line "KEY value"
	echo "$1" | sed -n "s/^$2 //p"
}

loop_at_least() { # URL N
	[ "$(http "$1")" -ge "$2" ]
}

@test "a shell loop's counter continues in each fork from the snapshot's value; the parent's continues too" {
	parent "$(mk_ns 0)"
	wait_until 60 loop_at_least http://10.213.0.2:8080/cgi-bin/loop 10
	run_t 120 0 "$CTL" snapshot parent -o s1
	[[ "$output" == "s1"* ]]
	at=$(http http://10.213.0.2:8080/cgi-bin/loop)
	run_t 120 0 "$CTL" fork s1 --count 2 --network "$(mk_ns 1),$(mk_ns 2)" --id f --keep
	[[ "$output" == *"f-0: forked in"* ]]
	[[ "$output" == *"f-1: forked in"* ]]
	for i in 1 2; do
		v=$(http "http://10.213.$i.2:8080/cgi-bin/loop")
		# From the snapshot's value on (a restart would count from 1), and still counting.
		[ "$v" -ge 10 ]
		[ "$v" -le $((at + 100)) ]
		wait_until 30 loop_at_least "http://10.213.$i.2:8080/cgi-bin/loop" $((v + 3))
	done
	wait_until 30 loop_at_least http://10.213.0.2:8080/cgi-bin/loop $((at + 3))
	run_t 30 0 "$CTL" shutdown f-0
	run_t 30 0 "$CTL" shutdown f-1
	run_t 30 0 "$CTL" snapshot rm s1
}

@test "the HTTP counter answers in each fork with the snapshot's count + 1; a fork of a running VM needs no name" {
	parent "$(mk_ns 0)"
	for n in 1 2 3; do
		[ "$(http http://10.213.0.2:8080/cgi-bin/count)" = "count $n" ]
	done
	run_t 120 0 "$CTL" snapshot parent -o s1
	[ "$(http http://10.213.0.2:8080/cgi-bin/count)" = "count 4" ]
	run_t 120 0 "$CTL" fork s1 --count 2 --network "$(mk_ns 1),$(mk_ns 2)" --id f --keep
	[ "$(http http://10.213.1.2:8080/cgi-bin/count)" = "count 4" ]
	[ "$(http http://10.213.2.2:8080/cgi-bin/count)" = "count 4" ]
	[ "$(http http://10.213.0.2:8080/cgi-bin/count)" = "count 5" ]
	# By id: a snapshot is taken for the forks and goes once they map it.
	run_t 30 0 "$CTL" shutdown f-0
	run_t 120 0 "$CTL" fork parent --network "/run/netns/$NS_PREFIX-1" --id g --keep
	[[ "$output" == *"parent snapshotted: paused"* ]]
	[ "$(http http://10.213.1.2:8080/cgi-bin/count)" = "count 6" ]
	run_t 30 0 "$CTL" snapshot list
	[[ "$output" == *"s1 "*"parent"* ]]
	[[ "$output" != *"parent-fork-"* ]]
	run_t 30 0 "$CTL" shutdown g
	run_t 30 0 "$CTL" shutdown f-1
	run_t 30 0 "$CTL" snapshot rm s1
}

@test "two forks at once on one bridge get different MACs, IPs, hostnames and entropy, and reach each other" {
	parent "$(mk_ns 0)"
	run_t 120 0 "$CTL" fork parent --count 2 --network "$(mk_bridged 0),$(mk_bridged 1)" \
		--id b --keep
	a=$(http http://10.214.0.10:8080/cgi-bin/whoami)
	# b-0 asks b-1 across the bridge, from inside its VM.
	b=$(http "http://10.214.0.10:8080/cgi-bin/peer?10.214.0.11")
	[ "$(field "$a" host)" = b-0 ]
	[ "$(field "$b" host)" = b-1 ]
	[ "$(field "$a" ip)" = 10.214.0.10/24 ]
	[ "$(field "$b" ip)" = 10.214.0.11/24 ]
	[ "$(field "$a" mac)" = "$(ip -n "$NS_PREFIX-b0" -br link show eth0 | awk '{ print $3 }')" ]
	[ "$(field "$b" mac)" = "$(ip -n "$NS_PREFIX-b1" -br link show eth0 | awk '{ print $3 }')" ]
	[ "$(field "$a" mac)" != "$(field "$b" mac)" ]
	ra=$(field "$a" rand)
	rb=$(field "$b" rand)
	[ ${#ra} -eq 32 ]
	[ "$ra" != "$rb" ]
	# The parent keeps its own address, on its own network.
	[ "$(field "$(http http://10.213.0.2:8080/cgi-bin/whoami)" ip)" = 10.213.0.2/24 ]
}

@test "a fork's writes reach neither the parent nor another fork nor the snapshot's memory file" {
	parent "$(mk_ns 0)"
	http "http://10.213.0.2:8080/cgi-bin/note?before" >/dev/null
	run_t 120 0 "$CTL" snapshot parent -o s1
	mem=$KUASAR_TEMPLATE_MEM_DIR/snapshots/s1.mem
	before=$(sha256sum <"$mem")
	run_t 120 0 "$CTL" fork s1 --count 2 --network "$(mk_ns 1),$(mk_ns 2)" --id w --keep
	run http "http://10.213.1.2:8080/cgi-bin/note?from-fork-0"
	[[ "$output" == *before*from-fork-0* ]]
	run http "http://10.213.2.2:8080/cgi-bin/note"
	[[ "$output" == *before* ]]
	[[ "$output" != *from-fork-0* ]]
	run http "http://10.213.0.2:8080/cgi-bin/note"
	[[ "$output" == *before* ]]
	[[ "$output" != *from-fork-0* ]]
	[ "$(sha256sum <"$mem")" = "$before" ]
	run_t 30 0 "$CTL" shutdown w-0
	run_t 30 0 "$CTL" shutdown w-1
	run_t 30 0 "$CTL" snapshot rm s1
}

@test "a container that asked for KUASAR_FORK_SIGNAL gets it after each restore and fork, the parent not again" {
	parent "$(mk_ns 0)"
	p=$(http http://10.213.0.2:8080/cgi-bin/forked)
	# The parent is a clone of the appliance's snapshot: told once already.
	[ "$p" -eq 1 ]
	run_t 120 0 "$CTL" fork parent --count 2 --network "$(mk_ns 1),$(mk_ns 2)" --id s --keep
	[ "$(http http://10.213.1.2:8080/cgi-bin/forked)" -eq $((p + 1)) ]
	[ "$(http http://10.213.2.2:8080/cgi-bin/forked)" -eq $((p + 1)) ]
	[ "$(http http://10.213.0.2:8080/cgi-bin/forked)" -eq "$p" ]
}

@test "a snapshot of a VM with its 9p share mounted, cold booted, or a pod without its proxy fails clearly and the VM runs on" {
	boot_kept t1 --template
	run_t 60 1 "$CTL" snapshot t1 -o bad
	[[ "$output" == *"snapshot \`t1\`"*"will not migrate"*"VirtFS"* ]]
	run_t 30 0 "$CTL" ping t1
	boot_kept c1
	run_t 60 1 "$CTL" snapshot c1 -o bad
	[[ "$output" == *"was cold booted"* ]]
	run_t 30 0 "$CTL" ping c1
	# A directory with the sandboxer's sandbox.json is a pod's, whose proxy is asked (bats
	# 155): without its VM's vm.json or its task proxy, refused and nothing is left.
	mkdir "$KUASAR_RUN_DIR/pod1"
	echo '{}' >"$KUASAR_RUN_DIR/pod1/sandbox.json"
	run_t 30 1 "$CTL" snapshot pod1 -o bad
	[[ "$output" == *"sandbox \`pod1\`"*"vm.json"* ]]
	cp "$KUASAR_RUN_DIR/t1/vm.json" "$KUASAR_RUN_DIR/pod1/"
	run_t 30 1 "$CTL" snapshot pod1 -o bad
	[[ "$output" == *"pod \`pod1\`: its task proxy"* ]]
	rm -r "$KUASAR_RUN_DIR/pod1"
	[ ! -e "$KUASAR_SNAPSHOT_DIR/bad" ]
	[ ! -e "$KUASAR_RUN_DIR/t1.snap" ]
	run_t 30 0 "$CTL" shutdown t1
	run_t 30 0 "$CTL" shutdown c1
}

@test "rm of a snapshot in use is refused; once its forks stop it goes" {
	parent "$(mk_ns 0)"
	run_t 120 0 "$CTL" snapshot parent -o s1
	run_t 120 0 "$CTL" fork s1 --network "$(mk_ns 1)" --id u --keep
	run_t 30 1 "$CTL" snapshot rm s1
	[[ "$output" == *"snapshot \`s1\` is in use: 1 fork maps its memory"* ]]
	[ -f "$KUASAR_TEMPLATE_MEM_DIR/snapshots/s1.mem" ]
	[ "$(http http://10.213.1.2:8080/cgi-bin/count)" = "count 1" ]
	run_t 30 0 "$CTL" shutdown u
	run_t 30 0 "$CTL" snapshot rm s1
	[ ! -e "$KUASAR_SNAPSHOT_DIR/s1" ]
	run_t 30 1 "$CTL" snapshot rm s1
	[[ "$output" == *"no snapshot \`s1\`"* ]]
	run_t 30 1 "$CTL" snapshot rm ../s1
	[[ "$output" == *"invalid id"* ]]
	run_t 30 1 "$CTL" snapshot parent -o s1.lock
	[[ "$output" == *"may not end in .lock"* ]]
}

@test "a fork whose netns is missing fails clearly, and nothing is left behind" {
	parent "$(mk_ns 0)"
	run_t 120 0 "$CTL" snapshot parent -o s1
	run_t 120 1 "$CTL" fork s1 --network /run/netns/kuasar-no-such-ns --id m --keep
	[[ "$output" == *"m: network"*"kuasar-no-such-ns"* ]]
	[ ! -e "$KUASAR_RUN_DIR/m" ]
	run_t 120 1 "$CTL" fork parent --network /run/netns/kuasar-no-such-ns --id m --keep
	[ ! -e "$KUASAR_RUN_DIR/m" ]
	run_t 30 0 "$CTL" snapshot list
	[[ "$output" != *"parent-fork-"* ]]
	run_t 30 0 "$CTL" snapshot rm s1
	run_t 30 0 "$CTL" shutdown parent
	[ -z "$(vmm_pids)" ]
}
