#!/usr/bin/env bash
# The CRI validation suite (critest, from cri-tools) against one containerd with two runtime
# handlers, runc and kuasar, in the same run; prints the side-by-side tally and the specs
# that fail only with kuasar. Not part of make test or CI: critest is not in Debian and is
# built here from a cri-tools source tree the developer brings.
#
# usage: CRITOOLS_SRC=DIR tools/critest.sh       (make critest)
#   CRITOOLS_SRC     an exported cri-tools tree (v1.36: its Go modules are vendored); needed
#                    once, the binary is cached in $KUASAR_CACHE/critest/
#   CTRD_BIN         a directory with an upstream containerd and ctr (default: Debian's 2.1)
#   CRITEST_FOCUS    a ginkgo regex to run part of the suite; CRITEST_SKIP one to leave out
#   CRITEST_HANDLERS the handlers to run, in order (default "runc kuasar")
# Go comes from Debian's unstable suite (tools/apt-private.sh, unpacked in the cache), and
# the suite's images are stand-ins pushed to Debian's docker-registry on loopback
# (tools/critest-images.sh); containerd's hosts.toml sends the suite's registry names there.
set -euo pipefail

die() { printf 'critest: fatal: %s\n' "$*" >&2; exit 1; }

TOP=$(cd "$(dirname "$0")/.." && pwd)
cache=${KUASAR_CACHE:-$HOME/.cache/kuasar}
go_dir=$cache/go-1.26
bin=$cache/critest/critest
port=${CRITEST_REGISTRY_PORT:-5055}
handlers=${CRITEST_HANDLERS:-runc kuasar}

# Go 1.26 from unstable, into the cache: the machine's apt sources stay as they are.
fetch_go() {
	local work
	[ -x "$go_dir/usr/lib/go-1.26/bin/go" ] && return
	work=$(mktemp -d "$cache/go-fetch.XXXXXX")
	(cd "$work" && "$TOP/tools/apt-private.sh" "$cache/apt-unstable" deb unstable -- \
		download golang-1.26-go golang-1.26-src >/dev/null 2>&1) ||
		die "apt-get download golang-1.26 (unstable) failed"
	rm -rf "$go_dir"
	for d in "$work"/golang-1.26-*.deb; do dpkg -x "$d" "$go_dir"; done
	rm -rf "$work"
}

build_critest() {
	[ -x "$bin" ] && [ -z "${CRITOOLS_SRC:-}" ] && return
	[ -n "${CRITOOLS_SRC:-}" ] && [ -f "$CRITOOLS_SRC/cmd/critest/cri_test.go" ] ||
		die "set CRITOOLS_SRC to a cri-tools source tree (v1.36, with its vendor/ directory)"
	fetch_go
	mkdir -p "$(dirname "$bin")"
	echo "critest: building from $CRITOOLS_SRC"
	(cd "$CRITOOLS_SRC" && PATH=$go_dir/usr/lib/go-1.26/bin:$PATH GOFLAGS=-mod=vendor \
		GOPROXY=off GOTOOLCHAIN=local GOCACHE=$cache/gocache go test -c ./cmd/critest -o "$bin") ||
		die "go test -c ./cmd/critest failed"
}

# docker-registry, skopeo and umoci are only this tool's: installed here, not by make deps.
tools() {
	command -v docker-registry >/dev/null && command -v skopeo >/dev/null &&
		command -v umoci >/dev/null && return
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry skopeo umoci >/dev/null ||
		die "apt-get install docker-registry skopeo umoci failed"
}

registry_up() {
	mkdir -p "$D/registry"
	cat >"$D/registry/config.yml" <<-EOF
		version: 0.1
		storage:
		  filesystem:
		    rootdirectory: $D/registry/data
		http:
		  addr: 127.0.0.1:$port
	EOF
	docker-registry serve "$D/registry/config.yml" >"$D/registry/log" 2>&1 &
	REG_PID=$!
	for _ in $(seq 50); do
		curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
		sleep 0.1
	done
	curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || die "the registry did not start: $(tail -3 "$D/registry/log")"
	local h
	for h in registry.k8s.io gcr.io k8s.gcr.io; do
		mkdir -p "$D/certs.d/$h"
		printf 'server = "https://%s"\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' \
			"$h" "$port" >"$D/certs.d/$h/hosts.toml"
	done
}

# Pods the suite left (a failed spec may skip its own cleanup) are not in $D/pods: their
# task proxies are asked to stop (each powers its VM off) before the daemons go, so no VM
# outlives the run.
stop_left_pods() {
	local i
	pkill -TERM -f -- "kuasar-sandboxer proxy .*--run-dir $D/run" || return 0
	for i in $(seq 100); do
		pgrep -f -- "kuasar-sandboxer proxy .*--run-dir $D/run" >/dev/null || break
		sleep 0.1
	done
	pkill -KILL -f -- "qemu-system.*$D/run/" || true
}

cleanup() {
	set +e
	[ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null
	stop_left_pods
	cri_env_cleanup
}

run_suite() { # HANDLER
	local h=$1 skip=${CRITEST_SKIP:-}
	mkdir -p "$D/report-$h"
	echo "== critest, runtime handler $h"
	"$bin" -runtime-endpoint "unix://$D/containerd.sock" -image-endpoint "unix://$D/containerd.sock" \
		-runtime-handler "$h" -ginkgo.no-color -ginkgo.junit-report "$D/report-$h/junit.xml" \
		${CRITEST_FOCUS:+-ginkgo.focus "$CRITEST_FOCUS"} ${skip:+-ginkgo.skip "$skip"} \
		>"$D/critest-$h.log" 2>&1 || true
	grep -E '^(Ran|FAIL!|SUCCESS!)' "$D/critest-$h.log" | tail -2 || true
	mkdir -p "$cache/critest/last"
	cp "$D/critest-$h.log" "$cache/critest/last/$h.log"
	cat "$D"/report-"$h"/*.xml >"$cache/critest/last/$h.xml" 2>/dev/null || true
}

[ "$(id -u)" = 0 ] || die "run as root (containerd, QEMU, the registry's images keep owners)"
build_critest
tools
D=$(mktemp -d /tmp/kct.XXXXXX)
export D
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"
trap cleanup EXIT
registry_up
"$TOP/tools/critest-images.sh" "127.0.0.1:$port" "$D/images" >/dev/null
# runc's pods get the stand-in pause (a process named pause): in a pod-wide PID namespace
# the exec-timeout spec's "pgrep sleep" must not find the busybox sleep the local one runs.
export CRI_ENV_REGISTRY_CONFIG=$D/certs.d CRI_ENV_LOG_LEVEL=info CRI_ENV_PORTMAP_SNAT=true \
	CRI_ENV_PAUSE_IMAGE=registry.k8s.io/pause:3.9
cri_env_fetch
cri_env_up
for h in $handlers; do run_suite "$h"; done
python3 "$TOP/tools/critest-compare.py" "$cache/critest/last" $handlers
