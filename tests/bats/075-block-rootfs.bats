#!/usr/bin/env bats
# rootfs = "block": a CRI container's image layers reach the VM as a read-only EROFS disk on
# its virtio-scsi bus, under a tmpfs overlay in the guest, instead of over the 9p share. It
# runs, execs and stops like a 9p one and leaves no image, disk or mount behind.

load cri

setup_file() { cri_setup_file; }
setup() {
	CRI_ENV_ROOTFS=block
	export CRI_ENV_ROOTFS
	LOOPS=$(losetup -a 2>/dev/null | wc -l)
	cri_setup
}
teardown() {
	# shellcheck disable=SC2046
	cri_env_rmpods $(cat "$D/pods" 2>/dev/null)
	local left
	left=$(ls -A "$D/rootfs-cache" 2>/dev/null | grep -vx '.lock' || true)
	cri_teardown
	[ -z "$left" ] || { echo "left in the rootfs cache: $left" >&2; return 1; }
	# Disks go to QEMU as files: no loop device is ever made.
	[ "$(losetup -a 2>/dev/null | wc -l)" -eq "$LOOPS" ] || { echo "loop devices left" >&2; return 1; }
}

images() { find "$D/rootfs-cache" -name '*.erofs' 2>/dev/null | wc -l; }
no_images() { [ "$(images)" -eq 0 ]; }

# pod_app HOSTNAME CMD TEXT: a pod running busybox container `app` with CMD until it prints
# TEXT; sets POD and CTR.
pod_app() {
	POD=$(cri --hostname "$1" runp)
	echo "$POD" >>"$D/pods"
	CTR=$(cri --container app --image kuasar.invalid/busybox:test create "$POD" -- sh -c "$2")
	cri start "$CTR"
	wait_log "$D/logs/app.log" "stdout F $3"
}

@test "block rootfs: containers run and exec on a shared image; their writes stay in the VM" {
	pod_app blk 'echo hello >/tmp/w; echo started; exec sleep 1000' started
	grep -q "root disk on SCSI target 0, 1 layers built into" "$D/sandboxer.log"
	# The root is the guest's overlay over the disk, not a mount of the share.
	run cri exec "$CTR" -- sh -c 'grep " / " /proc/mounts; head -1 /etc/passwd; cat /tmp/w'
	[ "$status" -eq 0 ]
	[[ "$output" == "overlay / overlay "* ]]
	[[ "$output" == *"root:x:0:0"* ]]
	[[ "$output" == *hello* ]]
	# containerd's upper layer for the container got none of it.
	[ -z "$(find "$D/root" -path '*snapshots*/fs/tmp/w' 2>/dev/null)" ]
	[ -z "$(ls "$D/run/$POD/shared/$CTR" | grep -x rootfs)" ]
	# A second container of the image takes the cached image, on its own disk.
	CTR2=$(cri --container two --image kuasar.invalid/busybox:test create "$POD" -- \
		sh -c 'cat /tmp/w 2>&1; echo two; exec sleep 1000')
	cri start "$CTR2"
	wait_log "$D/logs/two.log" "stdout F two"
	grep -q "root disk on SCSI target 1, .*(cached)" "$D/sandboxer.log"
	grep -q "No such file" "$D/logs/two.log"
	[ "$(images)" -eq 1 ]
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
	[ "$(images)" -eq 1 ]
	cri --timeout 5 stop "$CTR2"
	cri rm "$CTR2"
	# The last user gone, the image goes; the disks were unplugged cleanly.
	wait_until 10 no_images
	refute grep -q "warn: root disk of" "$D/sandboxer.log"
	# A new container after that gets SCSI target 0 again, and a fresh image.
	CTR3=$(cri --container three --image kuasar.invalid/busybox:test create "$POD" -- \
		sh -c 'echo three; exec sleep 1000')
	cri start "$CTR3"
	wait_log "$D/logs/three.log" "stdout F three"
	[ "$(grep -c "root disk on SCSI target 0, 1 layers built" "$D/sandboxer.log")" -eq 2 ]
	cri --timeout 5 stop "$CTR3"
	cri rm "$CTR3"
	cri stopp "$POD"
	cri rmp "$POD"
	[ "$(images)" -eq 0 ]
	refute grep -q "$D/rootfs-cache" /proc/self/mounts
}

@test "block rootfs: the io.kuasar.rootfs annotation picks the share per pod; bad values are refused" {
	POD=$(cri --name p9 --uid uid-p9 --annotation io.kuasar.rootfs=9p runp)
	echo "$POD" >>"$D/pods"
	CTR=$(cri --name p9 --uid uid-p9 --container app --image kuasar.invalid/busybox:test \
		create "$POD" -- sh -c 'grep " / " /proc/mounts; exec sleep 1000')
	cri start "$CTR"
	wait_log "$D/logs/app.log" "stdout F"
	refute grep -q "root disk" "$D/sandboxer.log"
	grep -q "rootfs 9p" "$D/sandboxer.log"
	cri --timeout 5 stop "$CTR"
	cri rm "$CTR"
	run cri --name bad --uid uid-bad --annotation io.kuasar.rootfs=nfs runp
	[ "$status" -ne 0 ]
	[[ "$output" == *"io.kuasar.rootfs"*"9p or block"* ]]
}

@test "block rootfs: the pod's VM going away releases its disks' images" {
	pod_app gone 'echo up; exec sleep 1000' up
	[ "$(images)" -eq 1 ]
	kill -9 "$(pgrep -f -- "qemu.*$D/run/$POD/")"
	wait_until 20 no_images
	cri rm "$CTR" || true
}
