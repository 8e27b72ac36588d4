#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need. Idempotent: a
# machine that has them all is left alone and nothing is downloaded.
set -euo pipefail

pkgs=(
	# host build
	gcc make pkg-config
	protobuf-compiler protobuf-c-compiler libprotobuf-c-dev libjson-c-dev
	libmnl-dev libnghttp2-dev
	# guest build: musl, nanopb's generator (its runtime comes from the source package)
	musl-tools nanopb python3 python3-protobuf dpkg-dev linux-libc-dev
	# kernel build
	linux-source-6.1 bc flex bison libelf-dev libssl-dev xz-utils patch
	# images
	cpio gzip erofs-utils e2fsprogs busybox-static
	# make check: formatting, static analysis (ASan and UBSan come with gcc), function sizes
	clang-format cppcheck universal-ctags
	# make fuzz and the fuzz corpora in make check: clang with libFuzzer and the sanitizers
	clang libclang-rt-14-dev
	# run and test
	qemu-system-x86 bats util-linux procps iproute2
	# pod networking tests: the CNI plugins (bridge, host-local, portmap) and a TCP client
	containernetworking-plugins iptables netcat-openbsd iputils-ping
	# containerd from the unstable suite needs runc (also the pod benchmark's baseline)
	runc
	# bench-boot compares against Debian's distro kernel
	linux-image-amd64
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages: ${missing[*]}; run 'make deps' as root" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
