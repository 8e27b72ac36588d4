#!/usr/bin/env bats
# VM templates under TCG: build, restore, clones made unique, integrity and removal. Every
# test has its own template store; teardown fails it on any VMM, file or memory file left.

load helpers

setup() {
	common_setup
	export KUASAR_TEMPLATE_DIR=$KUASAR_RUN_DIR/templates
	export KUASAR_TEMPLATE_MEM_DIR=/dev/shm/kuasar-test-$(basename "$KUASAR_RUN_DIR")
}

teardown() {
	local mem=$KUASAR_TEMPLATE_MEM_DIR
	# Every key's lock file stays on purpose (removing it would race a waiter); the
	# templates themselves must be gone once the test removed them.
	rm -rf "$KUASAR_TEMPLATE_DIR"
	rm -rf "$mem"
	common_teardown
}

# The only template key in the store.
only_key() {
	ls "$KUASAR_TEMPLATE_DIR" | grep -E '^[0-9a-f]{32}$'
}

json_field() {
	python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

@test "template build makes a template; a clone restores from it, answers Check and runs a container" {
	run_t 120 0 "$CTL" template build
	[[ "$output" == "template "*" built in "* ]]
	key=$(only_key)
	[ -s "$KUASAR_TEMPLATE_DIR/$key/state" ]
	[ -f "$KUASAR_TEMPLATE_MEM_DIR/$key.mem" ]
	run_t 30 0 "$CTL" template list
	[[ "$output" == "$key"*"256 MiB"*"clones 0"* ]]
	run_t 120 0 "$CTL" boot --template --json --id t1
	echo "$output" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["boot"] == "template" and j["template"] == sys.argv[1], j
assert j["hostname"] == "t1" and j["link"] == "virtio-serial", j
assert 0 < j["spawn_to_qmp_ms"] <= j["spawn_to_load_ms"] < j["spawn_to_link_ms"] <= j["spawn_to_ready_ms"], j
assert j["share_fs_magic"] > 0, j
' "$key"
	tests/make-bundle.sh "$KUASAR_RUN_DIR/bundle" -- sh -c 'echo hello from a clone; hostname' >/dev/null
	run_t 120 0 "$CTL" run --template --id t2 "$KUASAR_RUN_DIR/bundle"
	[[ "$output" == *"hello from a clone"* ]]
	rm -rf "$KUASAR_RUN_DIR/bundle"
	run_t 30 0 "$CTL" template rm "$key"
}

@test "two clones differ in random bytes, boot_id, hostname; their clocks are the host's" {
	run_t 120 0 "$CTL" template build
	# Both clones read the RNG (and boot_id, generated on first read) in a container.
	tests/make-bundle.sh "$KUASAR_RUN_DIR/bundle" -- \
		sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; cat /proc/sys/kernel/random/boot_id; date +%s' >/dev/null
	run_t 120 0 "$CTL" run --template --id r1 "$KUASAR_RUN_DIR/bundle"
	a=$output
	run_t 120 0 "$CTL" run --template --id r2 "$KUASAR_RUN_DIR/bundle"
	b=$output
	rm -rf "$KUASAR_RUN_DIR/bundle"
	echo "clone 1: $a" >&2
	echo "clone 2: $b" >&2
	[ "$(sed -n 1p <<<"$a")" != "$(sed -n 1p <<<"$b")" ]
	[ "$(sed -n 2p <<<"$a")" != "$(sed -n 2p <<<"$b")" ]
	[ ${#a} -gt 64 ]
	now=$(date +%s)
	t=$(sed -n 3p <<<"$b")
	[ $((now - t)) -le 3 ] && [ $((t - now)) -le 1 ]

	boot_kept h1 --template
	boot_kept h2 --template
	run_t 30 0 "$CTL" ping h1
	[[ "$output" == *"hostname h1, cid "* ]]
	p1=$output
	run_t 30 0 "$CTL" ping h2
	[[ "$output" == *"hostname h2, cid "* ]]
	p2=$output
	# The clock is synced to well within 1 s (ping measures the offset afresh).
	for p in "$p1" "$p2"; do
		off=$(sed -E 's/.*clock offset (-?[0-9.]+) ms.*/\1/' <<<"$p")
		python3 -c 'import sys; assert abs(float(sys.argv[1])) < 1000, sys.argv[1]' "$off"
	done
	# A vsock CID exists only with vhost-vsock; where it does, clones must differ.
	c1=$(sed -E 's/.*cid ([0-9]+),.*/\1/' <<<"$p1")
	c2=$(sed -E 's/.*cid ([0-9]+),.*/\1/' <<<"$p2")
	if [ -e /dev/vhost-vsock ]; then [ "$c1" != "$c2" ]; else [ "$c1" = 0 ] && [ "$c2" = 0 ]; fi
	run_t 30 0 "$CTL" shutdown h1
	run_t 30 0 "$CTL" shutdown h2
	run_t 30 0 "$CTL" template rm --all
}

@test "the template's memory file is byte-identical after clones ran and wrote memory" {
	run_t 120 0 "$CTL" template build
	key=$(only_key)
	before=$(sha256sum <"$KUASAR_TEMPLATE_MEM_DIR/$key.mem")
	# A container that writes 32 MiB of guest memory.
	tests/make-bundle.sh "$KUASAR_RUN_DIR/bundle" -- \
		sh -c 'dd if=/dev/urandom of=/dev/shm/fill bs=1M count=32 2>/dev/null; echo wrote' >/dev/null
	run_t 120 0 "$CTL" run --template --id w1 "$KUASAR_RUN_DIR/bundle"
	[[ "$output" == *wrote* ]]
	boot_kept w2 --template
	run_t 30 0 "$CTL" shutdown w2
	rm -rf "$KUASAR_RUN_DIR/bundle"
	[ "$(sha256sum <"$KUASAR_TEMPLATE_MEM_DIR/$key.mem")" = "$before" ]
	run_t 30 0 "$CTL" template rm "$key"
}

@test "a changed initrd yields a new key and never restores the old template" {
	run_t 120 0 "$CTL" template build
	old=$(only_key)
	cp "$BIN/kuasar.initrd" "$KUASAR_RUN_DIR/changed.initrd"
	# Same init, one more byte: a different input, so a different template.
	printf '\0' >>"$KUASAR_RUN_DIR/changed.initrd"
	run_t 120 0 "$CTL" boot --template --json --id n1 --initrd "$KUASAR_RUN_DIR/changed.initrd"
	new=$(echo "$output" | json_field template)
	[ "$(echo "$output" | json_field boot)" = template ]
	[ -n "$new" ] && [ "$new" != "$old" ]
	[[ "$(echo "$output" | json_field boot_note)" == "built template $new"* ]]
	[ -f "$KUASAR_TEMPLATE_DIR/$old/meta.json" ] && [ -f "$KUASAR_TEMPLATE_DIR/$new/meta.json" ]
	# The original initrd still maps to the old key.
	run_t 120 0 "$CTL" boot --template --json --id n2
	[ "$(echo "$output" | json_field template)" = "$old" ]
	rm -f "$KUASAR_RUN_DIR/changed.initrd"
	# prune keeps what was used recently, removes what was not (no clone maps either).
	run_t 30 0 "$CTL" template prune --unused-for 3600
	[ "$status" -eq 0 ] && [ -z "$output" ]
	run_t 30 0 "$CTL" template list
	[[ "$output" == *"memory file holds"*"used "*"s ago"* ]]
	run_t 30 0 "$CTL" template prune --unused-for 0
	[ "$(grep -c "^removed template" <<<"$output")" -eq 2 ]
}

@test "a truncated or corrupted state file: clear error, cold boot, then a fresh template" {
	run_t 120 0 "$CTL" template build
	key=$(only_key)
	state=$KUASAR_TEMPLATE_DIR/$key/state
	truncate -s 1000 "$state"
	run_t 120 0 "$CTL" boot --template --json --id x1
	[[ "$output" == *"template not used"*"is 1000 bytes"*"truncated"* ]]
	[[ "$output" == *'"boot":"cold"'* ]]
	# It was removed; the next start builds a fresh one and restores.
	[ ! -e "$state" ]
	run_t 120 0 "$CTL" boot --template --json --id x2
	[[ "$(echo "$output" | json_field boot_note)" == "built template $key"* ]]
	# Same size, one flipped byte: the checksum catches it.
	python3 - "$state" <<-'PY'
	import sys
	with open(sys.argv[1], "r+b") as f:
	    f.seek(4000); b = f.read(1); f.seek(4000); f.write(bytes([b[0] ^ 0xff]))
	PY
	run_t 120 0 "$CTL" boot --template --id x3
	[[ "$output" == *"does not match its SHA-256 (corrupted)"* ]]
	[[ "$output" == *"cold boot, guest answered"* ]]
	run_t 30 0 "$CTL" template list
	[[ "$output" == "no templates"* ]]
}

@test "template rm refuses while a clone maps it, --force is safe; deleting sandboxes leaves only the template" {
	run_t 120 0 "$CTL" template build
	key=$(only_key)
	boot_kept u1 --template
	boot_kept u2 --template
	run_t 30 0 "$CTL" template list --json
	[ "$(echo "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["clones"])')" = 2 ]
	run_t 30 !0 "$CTL" template rm "$key"
	[[ "$output" == *"in use by 2 clones"* ]]
	# A taken id or a bad one is the caller's error, not the template's: it stays.
	run_t 30 !0 "$CTL" boot --template --id u1
	[ "$status" -ne 0 ] && [[ "$output" == *"already exists"* ]]
	run_t 30 !0 "$CTL" boot --template --id ../u
	[ "$status" -ne 0 ] && [[ "$output" == *"invalid id"* ]]
	[ -f "$KUASAR_TEMPLATE_DIR/$key/meta.json" ]
	# Per-sandbox memory: each clone's VMM, with its template.
	run_t 30 0 "$CTL" list -l
	[ "$(grep -c "^u[12] .*template .*VMM .*USS .*PSS .*$key" <<<"$output")" -eq 2 ]
	run_t 30 0 "$CTL" shutdown u1
	run_t 30 0 "$CTL" shutdown u2
	# Only the template is left: its files and memory, no VMM, no sandbox directory.
	[ -z "$(vmm_pids)" ]
	[ "$(cd "$KUASAR_RUN_DIR" && ls | grep -v -e accel.json -e templates)" = "" ]
	[ "$(ls "$KUASAR_TEMPLATE_MEM_DIR")" = "$key.mem" ]
	# --force while a clone runs: the clone keeps working on its private mapping.
	boot_kept u3 --template
	run_t 30 0 "$CTL" template rm --force "$key"
	[[ "$output" == *"still mapped by VMM pid"* ]]
	[ ! -e "$KUASAR_TEMPLATE_MEM_DIR/$key.mem" ]
	run_t 30 0 "$CTL" ping u3
	run_t 30 0 "$CTL" shutdown u3
}

@test "concurrent first starts build one template under the lock and all restore" {
	for i in 1 2 3; do
		timeout 180 "$CTL" boot --template --json --id p$i >"$KUASAR_RUN_DIR/p$i.out" 2>&1 &
	done
	wait
	built=0
	for i in 1 2 3; do
		[ "$(json_field boot <"$KUASAR_RUN_DIR/p$i.out")" = template ]
		if [[ "$(json_field boot_note <"$KUASAR_RUN_DIR/p$i.out")" == "built template"* ]]; then
			built=$((built + 1))
		fi
		rm "$KUASAR_RUN_DIR/p$i.out"
	done
	[ "$built" -eq 1 ]
	[ "$(only_key | wc -l)" -eq 1 ]
	run_t 30 0 "$CTL" template rm --all
}

@test "the startup benchmark runs end to end and writes its JSON and SVG (no timing asserted)" {
	run_t 300 0 "$CTL" bench startup -n 3 -k 1 --json "$KUASAR_RUN_DIR/b.json" --svg "$KUASAR_RUN_DIR/b.svg"
	[[ "$output" == *"restore / floor:"* ]] && [[ "$output" == *"cold / restore:"* ]]
	python3 - "$KUASAR_RUN_DIR/b.json" "$KUASAR_RUN_DIR/b.svg" <<-'PY'
	import json, sys, xml.dom.minidom
	j = json.load(open(sys.argv[1]))
	for m in ("floor", "restore", "cold"):
	    s = j["modes"][m]
	    assert len(s["ms"]) == 3 and 0 < s["min_ms"] <= s["median_ms"] <= s["p90_ms"], (m, s)
	assert j["restore_over_floor"] > 0 and j["cold_over_restore"] > 0, j
	for m in ("restore", "cold"):
	    mem = j["memory_per_sandbox"][m]
	    assert mem["sandboxes"] == 1 and 0 < mem["uss_mib"] <= mem["pss_mib"] <= mem["rss_mib"], mem
	svg = xml.dom.minidom.parse(sys.argv[2])
	assert len(svg.getElementsByTagName("circle")) == 9
	PY
	rm -f "$KUASAR_RUN_DIR/b.json" "$KUASAR_RUN_DIR/b.svg"
	run_t 30 0 "$CTL" template rm --all
}
