#!/usr/bin/env bash
# Warm appliances against their cold start, in one run: for a busybox httpd appliance and an
# interpreter-heavy one (Python's http.server on Debian's python3, copied with the shared
# libraries and the standard library it needs from this host's Debian packages), interleaved
# runs of the bare VMM (floor), restore to the first HTTP answer from the host and cold boot
# to the first HTTP answer; then the private memory of K clones at once.
#
# The OCI archives and appliances are cached outside the repo (KUASAR_CACHE/appliances,
# keyed by what they are made of); their snapshots are rebuilt only when that changes.
#
# With `fork`: instead, forks of a running Python appliance that counts the requests it
# served (kuasar-ctl bench fork): its snapshot's pause, one fork and N at once to their first
# HTTP answer, beside the same appliance's restore and cold start (FORKS=10 at once,
# FORK_RUNS=5).
#
# usage: tools/bench-appliance.sh [fork]   (RUNS=10 K=4 to change the sizes; OUT=bin/bench)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-10}
K=${K:-4}
OUT=${OUT:-$TOP/bin/bench}
CACHE=${KUASAR_CACHE:-$HOME/.cache/kuasar}/appliances
NS=kuasar-bench-app
HOSTIF=kbapp0

die() { printf 'bench-appliance: fatal: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
mkdir -p "$CACHE" "$OUT"

cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	ip link del "$HOSTIF" 2>/dev/null || true
	for n in $(ip netns list | awk -v p="$NS-f" 'index($1, p) == 1 { print $1 }'); do
		ip netns del "$n"
	done
	rm -rf "$WORK"
}
WORK=$(mktemp -d /tmp/kba.XXXXXX)
trap cleanup EXIT

# The python rootfs: the interpreter, the libraries it and its extension modules link, and
# the standard library (tests, IDLE, tkinter and ensurepip left out), over the busybox base.
python_layer() {
	local dir=$1 py lib
	# Debian's python3 package, whatever else PATH would find first.
	[ -x /usr/bin/python3 ] || die "/usr/bin/python3 not found (make deps installs python3)"
	py=$(readlink -f /usr/bin/python3)
	lib=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
	mkdir -p "$dir/usr/bin" "$dir/www"
	cp -a "$py" "$dir/usr/bin/"
	ln -sf "$(basename "$py")" "$dir/usr/bin/python3"
	tar -C / --exclude='*/test' --exclude='*/tests' --exclude='*/idlelib' \
		--exclude='*/tkinter' --exclude='*/ensurepip' --exclude='*/lib2to3' \
		-cf - "${lib#/}" | tar -C "$dir" -xf -
	{ ldd "$py"; find "$lib/lib-dynload" -name '*.so' -exec ldd {} \; ; } 2>/dev/null |
		awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/lib64\// { print $1 }' |
		sort -u | while read -r so; do
		mkdir -p "$dir$(dirname "$so")"
		cp -aL "$so" "$dir$so"
	done
	echo '<h1>python appliance</h1>' >"$dir/www/index.html"
}

# image NAME -> the OCI archive, built when missing (its key: the inputs' versions).
image() {
	local name=$1 key tar layer=$WORK/layer-$1
	case "$name" in
	httpd) key=$(sha256sum "$TOP/tests/make-image.sh" "$TOP/tests/make-bundle.sh" /bin/busybox |
		sha256sum | cut -c1-16) ;;
	python | counter) key=$( (echo "$name"; /usr/bin/python3 --version
		sha256sum "$TOP/tests/make-image.sh" "$0" /bin/busybox) | sha256sum | cut -c1-16) ;;
	esac
	tar=$CACHE/$name-$key.tar
	if [ ! -f "$tar" ]; then
		rm -f "$CACHE/$name"-*.tar
		mkdir -p "$layer/www"
		case "$name" in
		httpd)
			echo '<h1>busybox appliance</h1>' >"$layer/www/index.html"
			"$TOP/tests/make-image.sh" --layer "$layer" --expose 8080 "$tar.tmp" \
				kuasar.invalid/bench-httpd:1 httpd -f -p 8080 -h /www ;;
		python)
			python_layer "$layer"
			"$TOP/tests/make-image.sh" --layer "$layer" --expose 8080 "$tar.tmp" \
				kuasar.invalid/bench-python:1 python3 -m http.server 8080 --directory /www ;;
		counter)
			python_layer "$layer"
			counter_app >"$layer/www/counter.py"
			"$TOP/tests/make-image.sh" --layer "$layer" --expose 8080 "$tar.tmp" \
				kuasar.invalid/bench-counter:1 python3 /www/counter.py ;;
		esac
		mv "$tar.tmp" "$tar"
	fi
	echo "$tar"
}

# An app with state built in memory: each GET increments a counter and answers its value.
counter_app() {
	cat <<'EOF'
import http.server
count = 0
class Counter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        count += 1
        body = b"count %d\n" % count
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("", 8080), Counter).serve_forever()
EOF
}

# The fork bench: namespaces 0 (the parent) to FORKS, eth0 10.218.I.2 each.
bench_fork() {
	local tar dir list="" i
	tar=$(image counter)
	dir=$CACHE/counter
	"$TOP/tools/mkimage.sh" --app "$tar" -o "$dir" --ready http:8080/ --ready-timeout 300000 >&2
	for i in $(seq 0 "${FORKS:-10}"); do
		ip netns add "$NS-f$i"
		ip link add "kbf$i" type veth peer name eth0 netns "$NS-f$i"
		ip addr add "10.218.$i.1/24" dev "kbf$i"
		ip link set "kbf$i" up
		ip -n "$NS-f$i" addr add "10.218.$i.2/24" dev eth0
		ip -n "$NS-f$i" link set eth0 up
		list=$list${list:+,}/run/netns/$NS-f$i
	done
	"$TOP/bin/kuasar-ctl" bench fork "$dir" --network "$list" -n "${FORK_RUNS:-5}" \
		--json "$OUT/fork.json" --svg "$OUT/fork.svg"
}

if [ "${1:-}" = fork ]; then
	bench_fork
	exit 0
fi

ip netns add "$NS"
ip link add "$HOSTIF" type veth peer name eth0 netns "$NS"
ip addr add 10.212.0.1/24 dev "$HOSTIF"
ip link set "$HOSTIF" up
ip -n "$NS" addr add 10.212.0.2/24 dev eth0
ip -n "$NS" link set eth0 up

for app in httpd python; do
	tar=$(image "$app")
	dir=$CACHE/$app
	# The same archive gives the same disk: the snapshot of an earlier run is kept.
	# http readiness: the snapshot is taken after a first request was answered, so the
	# app's request path is warm in every clone.
	"$TOP/tools/mkimage.sh" --app "$tar" -o "$dir" --ready http:8080/ --ready-timeout 300000 >&2
	"$TOP/bin/kuasar-ctl" bench appliance "$dir" --network "/run/netns/$NS" -n "$RUNS" -k "$K" \
		--json "$OUT/appliance-$app.json" --svg "$OUT/appliance-$app.svg"
	echo
done
