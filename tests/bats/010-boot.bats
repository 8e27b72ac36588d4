#!/usr/bin/env bats
# Real VMs under the host's accelerator (TCG here): boot, Check, clean shutdown.

load helpers

@test "boot answers Check and shuts down cleanly, leaving nothing behind" {
	run_t 120 0 "$CTL" boot --id b1
	[[ "$output" == *"Check over virtio-serial"* ]]
	[[ "$output" == *"shut down cleanly"* ]]
	[ ! -e "$KUASAR_RUN_DIR/b1" ]
}

@test "boot --json reports a consistent timing breakdown" {
	run_t 120 0 "$CTL" boot --json --id b2
	echo "$output" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["id"] == "b2" and j["link"] == "virtio-serial", j
assert 0 < j["spawn_to_qmp_ms"] < j["spawn_to_link_ms"], j
assert j["guest_kernel_to_init_ms"] > 0 and j["guest_init_to_link_ms"] > 0, j
assert j["accel"] in ("kvm", "tcg") and j["accel_why"], j
assert abs(j["clock_offset_ms"]) < 120000 and j["clock_rtt_ms"] >= 0, j
assert j["kept"] is False and j["shutdown_ms"] >= 0, j
assert j["share_fs_magic"] > 0, j
'
}

@test "a kept VM answers ping, then shutdown removes everything" {
	boot_kept k1
	[ -S "$KUASAR_RUN_DIR/k1/agent.sock" ]
	[ -n "$(vmm_pids)" ]
	run_t 30 0 "$CTL" ping k1
	[[ "$output" == *"kuasar-init 0.1.0 up"*"over virtio-serial"* ]]
	run_t 30 0 "$CTL" list
	[ "$output" = "k1" ]
	# Started from the initramfs, the init moved onto a tmpfs root (pivot_root needs one).
	grep -q "root moved from the initramfs to a tmpfs" "$KUASAR_RUN_DIR/k1/console.log"
	run_t 30 0 "$CTL" shutdown k1
	[ ! -e "$KUASAR_RUN_DIR/k1" ]
	[ -z "$(vmm_pids)" ]
}

@test "the guest's clock is synced to the host's" {
	boot_kept c1
	# boot stepped the guest clock (its RTC only has whole seconds); ping measures again.
	run_t 30 0 "$CTL" ping c1
	local off
	off=$(sed -n 's/.*clock offset \(-\?[0-9.]*\) ms.*/\1/p' <<<"$output")
	[ -n "$off" ]
	python3 -c "import sys; sys.exit(0 if abs(float('$off')) < 1000 else 1)"
	run_t 30 0 "$CTL" shutdown c1
}

@test "two VMs run side by side" {
	boot_kept t1
	boot_kept t2
	run_t 30 0 "$CTL" ping t1
	run_t 30 0 "$CTL" ping t2
	[ "$(vmm_pids | wc -l)" -eq 2 ]
	run_t 30 0 "$CTL" shutdown t1
	run_t 30 0 "$CTL" shutdown t2
}

@test "the guest boots from the disk image without an initrd" {
	run_t 120 0 "$CTL" boot --keep --id d1 --image "$BIN/kuasar.img"
	grep -q '"initrd":""' <(tr -d ' \n' <"$KUASAR_RUN_DIR/d1/vm.json")
	grep -q "root as the kernel mounted it" "$KUASAR_RUN_DIR/d1/console.log"
	run_t 30 0 "$CTL" ping d1
	run_t 30 0 "$CTL" shutdown d1
}

@test "an erofs image boots too" {
	"$TOP/tools/mkimage.sh" --init "$BIN/kuasar-init" --out "$BATS_TEST_TMPDIR/root.erofs" --fs erofs
	run_t 120 0 "$CTL" boot --id e1 --image "$BATS_TEST_TMPDIR/root.erofs"
	[[ "$output" == *"shut down cleanly"* ]]
}
