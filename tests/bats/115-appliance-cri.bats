#!/usr/bin/env bats
# Pods from appliances through stock containerd: a pod annotated io.kuasar.appliance=NAME
# is restored from <appliance_dir>/NAME's snapshot with its app already serving on the pod's
# network, and its CRI containers still run next to the app.

load cri

setup_file() {
	cri_setup_file
	local l=$BATS_FILE_TMPDIR/www
	mkdir -p "$l/www"
	echo '<h1>warm appliance pod</h1>' >"$l/www/index.html"
	# What the app sees as its resolver settings, served.
	ln -s /etc/resolv.conf "$l/www/resolv.conf"
	"$TOP/tests/make-image.sh" --layer "$l" --expose 8080 "$BATS_FILE_TMPDIR/httpd.tar" \
		kuasar.invalid/httpd:test httpd -f -p 8080 -h /www
}

setup() {
	cri_setup
	# No snapshot yet: the first pod builds it for the sandboxer's VM shape and NIC count.
	"$TOP/tools/mkimage.sh" --app "$BATS_FILE_TMPDIR/httpd.tar" --ready http:8080/ \
		--no-snapshot -o "$D/appliances/web" 2>/dev/null
}

teardown() { cri_teardown_pods; }

pod_ip() { cri podstatus "$1" | sed -n 's/.* ip=\([^ ]*\).*/\1/p'; }

get() { # IP PORT [PATH]
	printf 'GET %s HTTP/1.0\r\n\r\n' "${3:-/}" | timeout 10 nc -w 5 "$1" "$2"
}

@test "a pod annotated with an appliance serves at once, and its containers still run" {
	POD=$(cri --name web --uid uid-web --pod-network --dns-server 10.0.0.53 \
		--dns-search apps.example --annotation io.kuasar.appliance=web runp)
	echo "$POD" >>"$D/pods"
	ip=$(pod_ip "$POD")
	[ -n "$ip" ]
	# No container was created: the app came with the VM, restored serving.
	run get "$ip" 8080
	[[ "$output" == *"200 OK"*"warm appliance pod"* ]]
	# The app resolves names the pod's way, not its image's.
	run get "$ip" 8080 /resolv.conf
	[[ "$output" == *"nameserver 10.0.0.53"* ]]
	[[ "$output" == *"search apps.example"* ]]
	grep -q "appliance $D/appliances/web" "$D/sandboxer.log"
	grep -q 'restored from template' "$D/sandboxer.log"
	CTR=$(cri --name web --uid uid-web --pod-network --container side \
		--image kuasar.invalid/busybox:test create "$POD" -- sh -c 'echo side car; sleep 60')
	cri start "$CTR"
	wait_log "$D/logs/side.log" "side car"
	cri stop "$CTR"
	cri rm "$CTR"
	# A second pod restores from the snapshot the first one built.
	POD2=$(cri --name web2 --uid uid-web2 --pod-network --annotation io.kuasar.appliance=web runp)
	echo "$POD2" >>"$D/pods"
	run get "$(pod_ip "$POD2")" 8080
	[[ "$output" == *"warm appliance pod"* ]]
}

@test "an appliance annotation that is not a plain name is refused" {
	run cri --name bad --uid uid-bad --pod-network --annotation 'io.kuasar.appliance=../web' runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"an appliance name"* ]]
	run cri --name none --uid uid-none --pod-network --annotation io.kuasar.appliance=absent runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"appliance"*"absent"* ]]
}
