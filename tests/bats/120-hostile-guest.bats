#!/usr/bin/env bats
# The guest is hostile: what it writes into its share must never make the host touch what is
# not the sandbox's own. The share is a host directory, so the test plays the guest from the
# host side, at the moments that matter: while a container runs (the bundle moved away and a
# link to a host tmpfs in its place, a link where a block container's rootfs would be), and
# between the host's mkdir of a bundle and of its mounts (a hook only tests set). Each time a
# scratch tmpfs outside the share stays mounted and untouched, and the pod stops cleanly.

load cri

setup_file() { cri_setup_file; }
setup() {
	cri_setup
	# A host mount a planted link will point at, with a file in it.
	SCRATCH=$D/scratch
	mkdir -p "$SCRATCH"
	mount -t tmpfs tmpfs "$SCRATCH"
	mkdir "$SCRATCH/rootfs" "$SCRATCH/mounts"
	mount -t tmpfs tmpfs "$SCRATCH/rootfs"
	echo keep >"$SCRATCH/rootfs/keep"
}
teardown() {
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods" 2>/dev/null)
	umount "$SCRATCH/rootfs" 2>/dev/null || true
	umount "$SCRATCH" 2>/dev/null || true
	cri_teardown
}

# in_proxy_ns CMD...: CMD in the pod's task proxy's mount namespace (its mounts live there,
# a slave of the host's), or in ours once the proxy is gone.
in_proxy_ns() {
	local pid
	pid=$(pgrep -f -- "kuasar-sandboxer proxy --id ${POD:-none} " | head -1 || true)
	if [ -n "$pid" ]; then nsenter -t "$pid" -m "$@"; else "$@"; fi
}

scratch_intact() {
	mountpoint -q "$SCRATCH/rootfs" || { echo "the scratch tmpfs was unmounted" >&2; return 1; }
	in_proxy_ns mountpoint -q "$SCRATCH/rootfs" ||
		{ echo "the scratch tmpfs was unmounted in the proxy's namespace" >&2; return 1; }
	[ "$(cat "$SCRATCH/rootfs/keep")" = keep ] || { echo "its file changed" >&2; return 1; }
	[ -z "$(ls -A "$SCRATCH/mounts")" ] || { echo "files made in the scratch" >&2; return 1; }
}

# a_pod ANNOTATION...: a pod (rootfs as the annotation says) with a running container that
# has a volume; sets POD, CTR and SHARE (the share's host directory).
a_pod() {
	POD=$(cri "$@" runp)
	echo "$POD" >>"$D/pods"
	mkdir -p "$D/vol"
	CTR=$(cri --container app --image kuasar.invalid/busybox:test --mount "$D/vol:/data" \
		create "$POD" -- sh -c 'echo started; exec sleep 1000')
	cri start "$CTR"
	wait_log "$D/logs/app.log" "stdout F started"
	SHARE=$D/run/$POD/shared
}

# remove_all: the container and the pod go cleanly, the scratch intact, no mount left.
remove_all() {
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
	scratch_intact
	wait_until 10 no_share_mounts
	cri stopp "$POD"
	cri rmp "$POD"
	[ ! -e "$D/run/$POD" ]
}

no_share_mounts() {
	! in_proxy_ns cat /proc/self/mounts |
		awk -v d="$SHARE/" 'index($2, d) == 1 { found = 1 } END { exit !found }'
}

@test "hostile guest, 9p: the bundle moved away and a link in its place; Delete detaches only our mounts" {
	a_pod --annotation io.kuasar.rootfs=9p
	[ -d "$SHARE/$CTR/rootfs" ]
	mv "$SHARE/$CTR" "$SHARE/moved"
	ln -s "$SCRATCH" "$SHARE/$CTR"
	# The moved bundle's mounts go with the container, by their fds.
	remove_all
}

@test "hostile guest, block: a link where the rootfs would be, and mounts/ swapped for a link" {
	a_pod --annotation io.kuasar.rootfs=block
	[ ! -e "$SHARE/$CTR/rootfs" ]
	ln -s "$SCRATCH/rootfs" "$SHARE/$CTR/rootfs"
	[ -d "$SHARE/$CTR/mounts" ]
	mv "$SHARE/$CTR/mounts" "$SHARE/$CTR/mounts.moved"
	ln -s "$SCRATCH/mounts" "$SHARE/$CTR/mounts"
	remove_all
}

@test "hostile guest: a link planted between the bundle's mkdir and its mounts is refused, never followed" {
	# The sandboxer runs the hook after each bundle's mkdir; it plants only when armed.
	cat >"$D/hook" <<-EOF
	#!/bin/sh
	[ -e "$D/hook-armed" ] && ln -s "$SCRATCH/mounts" "\$1/mounts"
	exit 0
	EOF
	chmod +x "$D/hook"
	kill "$SB_PID"
	wait "$SB_PID" 2>/dev/null || true
	export KUASAR_TEST_BUNDLE_HOOK=$D/hook
	sandboxer_start
	unset KUASAR_TEST_BUNDLE_HOOK
	POD=$(cri runp)
	echo "$POD" >>"$D/pods"
	touch "$D/hook-armed"
	mkdir -p "$D/vol"
	CTR=$(cri --container app --image kuasar.invalid/busybox:test --mount "$D/vol:/data" \
		create "$POD" -- echo hi)
	run cri start "$CTR"
	[ "$status" -ne 0 ]
	[[ "$output" == *"mounts: File exists"* ]]
	scratch_intact
	cri rm "$CTR"
	# Disarmed, the same pod runs a container: nothing was left in the way.
	rm "$D/hook-armed"
	CTR=$(cri --container ok --image kuasar.invalid/busybox:test --mount "$D/vol:/data" \
		create "$POD" -- echo fine)
	cri start "$CTR"
	wait_log "$D/logs/ok.log" "stdout F fine"
	cri stopp "$POD"
	cri rmp "$POD"
	scratch_intact
}
