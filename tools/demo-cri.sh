#!/usr/bin/env bash
# Stock containerd drives kuasar-sandboxer through CRI: a pod in its own VM runs a busybox
# container; then exec into it, stop and remove everything. containerd and the sandboxer run
# from a scratch directory with their own sockets and are stopped at the end.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
D=$(mktemp -d /tmp/kd.XXXXXX)
export D
CRI_ENV_LOG_LEVEL=info
# shellcheck source=cri-env.sh
. "$TOP/tools/cri-env.sh"

cri() { "$TOP/bin/kuasar-ctl" cri --address "$D/containerd.sock" --log-dir "$D/logs" "$@"; }
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

pod=
cleanup() {
	[ -z "$pod" ] || { cri stopp "$pod" >/dev/null 2>&1 || true; cri rmp "$pod" >/dev/null 2>&1 || true; }
	cri_env_down
	rm -rf --one-file-system "$D"
}
trap cleanup EXIT

cri_env_fetch
cri_env_up
echo "== stock containerd with kuasar-sandboxer as its \"kuasar\" runtime (scratch dir $D)"
cri version
t=$(date +%s%N)
pod=$(cri --hostname demo-pod runp)
echo "RunPodSandbox: $(ms "$t") ms (a VM booted for the pod: ${pod:0:12})"
t=$(date +%s%N)
ctr=$(cri --container hello --image kuasar.invalid/busybox:test create "$pod" -- \
	sh -c 'trap "exit 0" TERM; echo "hello from $(hostname), kernel $(uname -r), in a microVM"; sleep 1000 & wait')
cri start "$ctr"
until [ -s "$D/logs/hello.log" ]; do sleep 0.01; done
echo "CreateContainer + StartContainer to first output: $(ms "$t") ms"
echo "--- container log"
cat "$D/logs/hello.log"
echo "--- ExecSync: cat /proc/1/cmdline; ps"
cri exec "$ctr" -- sh -c 'tr "\0" " " </proc/1/cmdline; echo; ps'
t=$(date +%s%N)
cri --timeout 5 stop "$ctr"
cri rm "$ctr"
cri stopp "$pod"
cri rmp "$pod"
pod=
echo "stop and remove: $(ms "$t") ms"
