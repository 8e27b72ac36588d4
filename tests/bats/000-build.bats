#!/usr/bin/env bats
# Build outputs: the init's size budget and shape, the initrd, the kernel config, the image.

load helpers

@test "kuasar-init is within its 100 KB budget" {
	run make -s -C "$TOP" check-size
	[ "$status" -eq 0 ]
	[ "$(stat -c %s "$BIN/kuasar-init")" -le 102400 ]
}

@test "kuasar-init is a static, stripped executable" {
	run readelf -d "$BIN/kuasar-init"
	[[ "$output" == *"no dynamic section"* ]]
	run readelf -S "$BIN/kuasar-init"
	[[ "$output" != *".symtab"* ]]
}

@test "the initrd holds /init and /dev/console, owned by root" {
	run bash -c "zcat '$BIN/kuasar.initrd' | cpio -itv 2>/dev/null"
	[ "$status" -eq 0 ]
	[[ "$output" == *"root     root"*" init"* ]]
	[[ "$output" == *"crw-------"*"dev/console"* ]]
}

@test "the initrd is reproducible" {
	local a b
	a=$(sha256sum <"$BIN/kuasar.initrd")
	rm -f "$BIN/kuasar.initrd"
	make -s -C "$TOP" bin/kuasar.initrd >/dev/null
	b=$(sha256sum <"$BIN/kuasar.initrd")
	[ "$a" = "$b" ]
}

@test "every option the kernel fragments request is in the final config" {
	run "$TOP/tools/build-kernel.sh" --check "$BIN/kernel.config"
	[ "$status" -eq 0 ]
	grep -qx 'CONFIG_PVH=y' "$BIN/kernel.config"
	grep -qx 'CONFIG_VIRTIO_VSOCKETS=y' "$BIN/kernel.config"
}

@test "the config check catches an option the final config lacks" {
	local cfg=$BATS_TEST_TMPDIR/config
	grep -v '^CONFIG_OVERLAY_FS=' "$BIN/kernel.config" >"$cfg"
	run "$TOP/tools/build-kernel.sh" --check "$cfg"
	[ "$status" -ne 0 ]
	[[ "$output" == *"CONFIG_OVERLAY_FS=y"* ]]
}

@test "the disk image is ext4 with /init and /sbin/init" {
	run debugfs -R 'stat /init' "$BIN/kuasar.img"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Type: regular"* ]]
	run debugfs -R 'stat /sbin/init' "$BIN/kuasar.img"
	[[ "$output" == *"Type: symlink"* ]]
}
