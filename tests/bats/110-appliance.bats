#!/usr/bin/env bats
# Appliances under TCG: an OCI image archive made bootable (tools/mkimage.sh --app), its
# snapshot saved with the app running and ready, clones restored already serving HTTP on a
# network namespace of their own. Teardown fails a test on any VMM, tap, filter, memory file
# or network namespace left behind.

load helpers

setup_file() {
	# The app: busybox httpd over a busybox image, with a page and CGI scripts in a second
	# layer that also whites out /etc/group (so layering is exercised too).
	local l=$BATS_FILE_TMPDIR/www
	mkdir -p "$l/www/cgi-bin" "$l/etc"
	echo '<h1>kuasar appliance</h1>' >"$l/www/index.html"
	cat >"$l/www/cgi-bin/whoami" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "host $(hostname)"
echo "rand $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
EOF
	cat >"$l/www/cgi-bin/note" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
[ -n "$QUERY_STRING" ] && echo "$QUERY_STRING" >>/www/notes
cat /www/notes 2>/dev/null
echo end
EOF
	chmod 755 "$l/www/cgi-bin/whoami" "$l/www/cgi-bin/note"
	touch "$l/etc/.wh.group"
	"$TOP/tests/make-image.sh" --layer "$l" --expose 8080 "$BATS_FILE_TMPDIR/httpd.tar" \
		kuasar.invalid/httpd:test httpd -f -p 8080 -h /www
	echo changed >"$l/www/version"
	"$TOP/tests/make-image.sh" --layer "$l" --expose 8080 "$BATS_FILE_TMPDIR/httpd2.tar" \
		kuasar.invalid/httpd:test2 httpd -f -p 8080 -h /www
}

setup() {
	common_setup
	export KUASAR_TEMPLATE_MEM_DIR=/dev/shm/kuasar-test-$(basename "$KUASAR_RUN_DIR")
	APP=$KUASAR_RUN_DIR/app
	NS_PREFIX=kapp-$(basename "$KUASAR_RUN_DIR" | tr -dc 'a-zA-Z0-9')
}

# mk_ns I: network namespace kapp-<run>-I whose eth0 (10.211.I.2/24) is a veth to the host
# (kah<I>, 10.211.I.1/24); the clone that attaches to it answers on 10.211.I.2.
mk_ns() {
	veth_ns "$NS_PREFIX-$1" "kah$1" "10.211.$1"
}

teardown() {
	local pid leaked=""
	[ -z "${RUN_PID:-}" ] || kill -TERM "$RUN_PID" 2>/dev/null || true
	[ -z "${RUN_PID:-}" ] || wait "$RUN_PID" 2>/dev/null || true
	# What a clone attached must be gone with it: taps and our tc filters.
	leaked=$(drop_netns "$NS_PREFIX-")
	for i in 0 1 2 3; do ip link del "kah$i" 2>/dev/null || true; done
	if [ -d "$KUASAR_TEMPLATE_MEM_DIR" ] && [ -n "$(ls -A "$KUASAR_TEMPLATE_MEM_DIR")" ]; then
		leaked="$leaked memory files: $(ls "$KUASAR_TEMPLATE_MEM_DIR")"
	fi
	rm -rf "$KUASAR_TEMPLATE_MEM_DIR" "$APP" "$APP"2
	common_teardown
	[ -z "$leaked" ] || { echo "left behind:$leaked" >&2; return 1; }
}

# The snapshot's memory file goes with the appliance's templates (as `template rm` would).
drop_snapshots() {
	rm -rf "$KUASAR_TEMPLATE_MEM_DIR"/*
}

http() { # URL: the body, or fails
	python3 -c 'import sys, urllib.request as u
sys.stdout.write(u.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"
}

# run_bg OUT ARGS...: kuasar-ctl appliance run in the background, its pid in RUN_PID
# and its output file in RUN_OUT.
run_bg() {
	local out=$1
	shift
	"$CTL" appliance run "$@" >"$out" 2>&1 &
	RUN_PID=$! RUN_OUT=$out
}

serving() { # OUT N: N clones said they restored serving
	[ "$(grep -c 'restored serving' "$1")" -ge "$2" ]
}

gone() { ! kill -0 "$1" 2>/dev/null; }

stop_run() { # SIGTERM: every clone stopped, exit status 130
	local st=0
	kill -TERM "$RUN_PID"
	wait_until 30 gone "$RUN_PID"
	wait "$RUN_PID" || st=$?
	RUN_PID=
	[ "$st" -eq 130 ] && return 0
	echo "appliance run exited $st; its output:" >&2
	cat "$RUN_OUT" >&2
	return 1
}

@test "an appliance built from an OCI archive answers HTTP after restore, and stops clean" {
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" -o "$APP"
	[[ "$output" == *"snapshot "*" built"*"app ready"* ]]
	[ -s "$APP/app.erofs" ] && [ -s "$APP/vmlinux" ] && [ -s "$APP/kuasar.initrd" ]
	python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert a["ready"] == "tcp:8080", a
assert a["digest"].startswith("sha256:"), a' "$APP/app.json"
	ns=$(mk_ns 0)
	run_bg "$BATS_TEST_TMPDIR/run.out" "$APP" --network "$ns" --id web0
	wait_until 120 serving "$BATS_TEST_TMPDIR/run.out" 1
	# Restored already serving: the first request is answered, nothing started it.
	run http http://10.211.0.2:8080/
	[ "$status" -eq 0 ]
	[[ "$output" == *"kuasar appliance"* ]]
	run http http://10.211.0.2:8080/cgi-bin/whoami
	[[ "$output" == *"host web0"* ]]
	stop_run
	drop_snapshots
}

@test "two clones of one snapshot serve at once with different hostnames and entropy" {
	# http readiness: the snapshot is taken once a GET is answered (by the CGI, here).
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" \
		--ready http:8080/cgi-bin/whoami -o "$APP"
	grep -q '"ready": "http:8080/cgi-bin/whoami"' "$APP/app.json"
	ns0=$(mk_ns 0)
	ns1=$(mk_ns 1)
	run_bg "$BATS_TEST_TMPDIR/run.out" "$APP" --count 2 --network "$ns0,$ns1" --id pair
	wait_until 180 serving "$BATS_TEST_TMPDIR/run.out" 2
	a=$(http http://10.211.0.2:8080/cgi-bin/whoami)
	b=$(http http://10.211.1.2:8080/cgi-bin/whoami)
	[[ "$a" == *"host pair-0"* ]]
	[[ "$b" == *"host pair-1"* ]]
	ra=$(echo "$a" | sed -n 's/^rand //p')
	rb=$(echo "$b" | sed -n 's/^rand //p')
	[ ${#ra} -eq 32 ] && [ "$ra" != "$rb" ]
	stop_run
	drop_snapshots
}

@test "a clone's writes reach neither the image nor the other clone nor the next one" {
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" -o "$APP"
	before=$(sha256sum "$APP/app.erofs")
	ns0=$(mk_ns 0)
	ns1=$(mk_ns 1)
	run_bg "$BATS_TEST_TMPDIR/run.out" "$APP" --count 2 --network "$ns0,$ns1" --id w
	wait_until 180 serving "$BATS_TEST_TMPDIR/run.out" 2
	run http "http://10.211.0.2:8080/cgi-bin/note?from-clone-0"
	[[ "$output" == *"from-clone-0"* ]]
	run http "http://10.211.1.2:8080/cgi-bin/note"
	[[ "$output" != *"from-clone-0"* ]]
	stop_run
	[ "$(sha256sum "$APP/app.erofs")" = "$before" ]
	run_bg "$BATS_TEST_TMPDIR/run2.out" "$APP" --network "$ns0" --id w2
	wait_until 120 serving "$BATS_TEST_TMPDIR/run2.out" 1
	run http "http://10.211.0.2:8080/cgi-bin/note"
	[[ "$output" == "end"* ]]
	stop_run
	drop_snapshots
}

@test "the snapshot is kept for the same image and readiness, rebuilt when either changes" {
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" -o "$APP"
	k1=$(ls "$APP/templates" | grep -E '^[0-9a-f]{32}$')
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" -o "$APP"
	[[ "$output" == *"snapshot $k1 already built"* ]]
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd2.tar" -o "$APP"
	[[ "$output" == *" built"* ]] && [[ "$output" != *"$k1"* ]]
	# The same image and arguments, another readiness: another snapshot.
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" --ready tcp:8080 \
		-o "$APP"2 -- sh -c 'echo up; exec httpd -f -p 8080 -h /www'
	k2=$(ls "$APP"2/templates | grep -E '^[0-9a-f]{32}$')
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" --ready 'log:^up$' \
		-o "$APP"2 -- sh -c 'echo up; exec httpd -f -p 8080 -h /www'
	[[ "$output" == *" built"* ]] && [[ "$output" != *"$k2"* ]]
	drop_snapshots
}

@test "log readiness: the snapshot is taken once the app's output matches the pattern" {
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" \
		--ready 'log:^serving on port [0-9]+$' -o "$APP" -- \
		sh -c 'echo starting; sleep 1; echo serving on port 8080; exec httpd -f -p 8080 -h /www'
	[[ "$output" == *"app ready"* ]]
	ns=$(mk_ns 0)
	run_bg "$BATS_TEST_TMPDIR/run.out" "$APP" --network "$ns" --id logr
	wait_until 120 serving "$BATS_TEST_TMPDIR/run.out" 1
	run http http://10.211.0.2:8080/
	[[ "$output" == *"kuasar appliance"* ]]
	stop_run
	drop_snapshots
}

@test "a readiness that never comes fails the build with a clear error and leaves nothing" {
	run_t 300 1 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" --ready tcp:9999 \
		--ready-timeout 3000 -o "$APP"
	[[ "$output" == *"the app was not ready within 3000 ms"* ]]
	[ ! -e "$APP" ]
	run_t 300 1 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" --ready tcp:8080 \
		-o "$APP" -- sh -c 'echo giving up >&2; exit 3'
	[[ "$output" == *"the app exited with status 3 before it was ready"*"giving up"* ]]
	[ ! -e "$APP" ]
}

@test "an app's exit ends appliance run with its status and output" {
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" --ready start \
		-o "$APP" -- sh -c 'echo hello from the app; sleep 2; echo bye; exit 7'
	run_t 120 7 "$CTL" appliance run "$APP" --id ex
	[[ "$output" == *"bye"* ]]
	[[ "$output" == *"ex: app exited with status 7"* ]]
	drop_snapshots
}

@test "appliance run --keep leaves clones serving; shutdown ID stops one and clears its netns" {
	run_t 300 0 "$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" -o "$APP"
	ns=$(mk_ns 0)
	run_t 120 0 "$CTL" appliance run "$APP" --network "$ns" --id kept --keep
	[[ "$output" == *"kept"*"stop with kuasar-ctl shutdown ID"* ]]
	run http http://10.211.0.2:8080/
	[[ "$output" == *"kuasar appliance"* ]]
	[ -n "$(tc -n "${ns##*/}" filter show dev eth0 ingress)" ]
	run_t 60 0 "$CTL" shutdown kept
	[ -z "$(tc -n "${ns##*/}" filter show dev eth0 ingress)" ]
	no_vmm
	drop_snapshots
}

@test "oci2bundle keeps a layer's symlinks from leading writes out of the root" {
	local l1=$BATS_TEST_TMPDIR/l1 l2=$BATS_TEST_TMPDIR/l2 out=$BATS_TEST_TMPDIR/out
	local target=$BATS_TEST_TMPDIR/outside
	mkdir -p "$l1" "$l2/evil" "$target"
	ln -s "$target" "$l1/evil"
	echo pwned >"$l2/evil/file"
	# Layer 1 has evil -> an absolute host path; layer 2 writes evil/file.
	"$TOP/tests/make-image.sh" --layer "$l1" --layer "$l2" \
		"$BATS_TEST_TMPDIR/evil.tar" kuasar.invalid/evil:test sh
	run_t 60 0 "$TOP/tools/oci2bundle.py" "$BATS_TEST_TMPDIR/evil.tar" "$out"
	[ ! -e "$target/file" ]
	[ -n "$(find "$out/rootfs" -name file)" ]
	run_t 60 1 "$TOP/tools/oci2bundle.py" "$BATS_TEST_TMPDIR/nonexistent.tar" "$out.2"
	[[ "$output" == *"not a readable tar archive"* ]]
}

@test "oci2bundle refuses a layer member that climbs out, and malformed metadata, with clear errors" {
	local a=$BATS_TEST_TMPDIR/climb.tar
	# A docker-save archive whose one layer has ../escape.
	python3 - "$a" "$BATS_TEST_TMPDIR" <<'PY'
import io, json, sys, tarfile
out, tmp = sys.argv[1:3]
def member(tf, name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as tf:
    member(tf, "../escape", b"x")
cfg = json.dumps({"config": {"Cmd": ["sh"]}}).encode()
with tarfile.open(out, "w") as tf:
    member(tf, "layer.tar", layer.getvalue())
    member(tf, "config.json", cfg)
    member(tf, "manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["x:y"],
                                             "Layers": ["layer.tar"]}]).encode())
PY
	run_t 60 1 "$TOP/tools/oci2bundle.py" "$a" "$BATS_TEST_TMPDIR/out"
	[[ "$output" == *"climbs out of the root"* ]]
	[ ! -e "$BATS_TEST_TMPDIR/escape" ]
	# An OCI index naming a digest that is not sha256 hex.
	mkdir -p "$BATS_TEST_TMPDIR/bad"
	echo '{"imageLayoutVersion": "1.0.0"}' >"$BATS_TEST_TMPDIR/bad/oci-layout"
	echo '{"manifests": [{"digest": "sha256:../../etc/passwd"}]}' >"$BATS_TEST_TMPDIR/bad/index.json"
	tar -C "$BATS_TEST_TMPDIR/bad" -cf "$BATS_TEST_TMPDIR/bad.tar" .
	run_t 60 1 "$TOP/tools/oci2bundle.py" "$BATS_TEST_TMPDIR/bad.tar" "$BATS_TEST_TMPDIR/out2"
	[[ "$output" == *"malformed digest"* ]]
	echo '[1, 2' >"$BATS_TEST_TMPDIR/bad/index.json"
	tar -C "$BATS_TEST_TMPDIR/bad" -cf "$BATS_TEST_TMPDIR/bad.tar" .
	run_t 60 1 "$TOP/tools/oci2bundle.py" "$BATS_TEST_TMPDIR/bad.tar" "$BATS_TEST_TMPDIR/out3"
	[[ "$output" == *"index.json: not JSON"* ]]
}
