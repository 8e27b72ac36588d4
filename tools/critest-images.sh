#!/usr/bin/env bash
# Stand-ins for the images the CRI validation suite (critest, cri-tools v1.36) pulls, built
# locally and pushed to a registry on loopback. Each is Debian's dynamic busybox with its
# applets hard-linked (busybox-static runs applets without exec, which the masked-paths spec
# notices), its libraries, and the users, groups, files and entrypoint that the suite's own
# image sources (cri-tools images/) give the original.
#
# usage: tools/critest-images.sh REGISTRY WORKDIR     (REGISTRY: 127.0.0.1:PORT)
# Needs umoci and skopeo (tools/critest.sh installs them) and root (file owners are kept).
set -euo pipefail

die() { printf 'critest-images: fatal: %s\n' "$*" >&2; exit 1; }

reg=${1:?usage: $0 REGISTRY WORKDIR}
work=${2:?usage: $0 REGISTRY WORKDIR}
top=$(cd "$(dirname "$0")/.." && pwd)
layout=$work/layout
mkdir -p "$work"

# The base tree: busybox and what it links, the users and groups the suite asks for.
base_rootfs() {
	local root=$1 deb lib
	mkdir -p "$work/deb" "$root"/{bin,etc,tmp,root,lib64,lib/x86_64-linux-gnu}
	deb=$(ls "$work"/deb/busybox_*.deb 2>/dev/null | head -1 || true)
	if [ -z "$deb" ]; then
		(cd "$work/deb" && apt-get download busybox >/dev/null 2>&1) || die "apt-get download busybox failed"
		deb=$(ls "$work"/deb/busybox_*.deb | head -1)
	fi
	dpkg -x "$deb" "$work/deb/x"
	cp "$work/deb/x/bin/busybox" "$root/bin/busybox"
	for lib in $(ldd "$root/bin/busybox" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\/lib64/ { print $1 }'); do
		cp -L "$lib" "$root$lib"
	done
	for a in $("$root/bin/busybox" --list); do
		[ "$a" = busybox ] || ln "$root/bin/busybox" "$root/bin/$a"
	done
	# Debian builds busybox without pgrep, which the suite runs (pgrep sleep).
	cat >"$root/bin/pgrep" <<-'SH'
		#!/bin/sh
		# pgrep NAME: the pids of the processes whose name holds NAME (1 if none).
		found=1
		for d in /proc/[0-9]*; do
			read -r comm <"$d/comm" 2>/dev/null || continue
			case "$comm" in *"$1"*) echo "${d#/proc/}" && found=0 ;; esac
		done
		exit $found
	SH
	chmod 755 "$root/bin/pgrep"
	# Nor ipcs (the IPC namespace specs run ipcs -m): util-linux's, which needs only libc.
	cp /usr/bin/ipcs "$root/bin/ipcs"
	chmod 1777 "$root/tmp"
	cat >"$root/etc/passwd" <<-EOF
		root:x:0:0:root:/root:/bin/sh
		www-data:x:33:33:www-data:/var/www:/bin/sh
		default-user:x:1000:1000:default-user:/home/default-user:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$root/etc/group" <<-EOF
		root:x:0:
		www-data:x:33:
		default-user:x:1000:
		group-defined-in-image:x:50000:default-user
		nogroup:x:65534:
	EOF
}

# image NAME:TAG[,TAG...] [umoci config options...]: one image from the tree in
# $work/rootfs plus what the caller put in $work/extra, pushed as REGISTRY/NAME:TAG for each
# tag (the same image, so the same id).
image() {
	local name=${1%%:*} tags=${1#*:} tag=build bundle=$work/bundle t
	shift
	rm -rf "$bundle" "$layout"
	umoci init --layout "$layout"
	umoci new --image "$layout:$tag"
	umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
	cp -a "$work/rootfs/." "$bundle/rootfs/"
	[ -d "$work/extra" ] && cp -a "$work/extra/." "$bundle/rootfs/"
	umoci repack --image "$layout:$tag" "$bundle" >/dev/null
	umoci config --image "$layout:$tag" --os linux --architecture amd64 "$@"
	for t in ${tags//,/ }; do
		skopeo copy -q --dest-tls-verify=false "oci:$layout:$tag" "docker://$reg/$name:$t"
	done
	rm -rf "$work/extra" "$bundle"
}

# extra PATH CONTENT: a file only the next image has.
extra() { mkdir -p "$work/extra/$(dirname "$1")" && printf '%s\n' "$2" >"$work/extra/$1"; }

rm -rf "$work/rootfs"
base_rootfs "$work/rootfs"

# registry.k8s.io/e2e-test-images: a shell box, two web servers on port 80, and a setuid
# program that reports its effective uid (the no-new-privileges specs).
image e2e-test-images/busybox:1.29-2 --config.cmd sh
# The nginx stand-in is a process named nginx whose command line reads "nginx: master
# process" as nginx's does (the host-pid and container-pid specs look for it by name, by
# /var/run/nginx.pid and by /proc/1/cmdline) and answers every request on port 80 with a page.
mkdir -p "$work/extra/usr/sbin" "$work/extra/var/run"
cat >"$work/nginx.c" <<-'C'
	#include <netinet/in.h>
	#include <stdio.h>
	#include <string.h>
	#include <sys/socket.h>
	#include <unistd.h>
	static int serve(void)
	{
		static const char page[] = "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
		                           "<h1>Welcome to nginx!</h1>\n";
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
		int s = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
		FILE *f = fopen("/var/run/nginx.pid", "w");
		char buf[4096];

		if (f)
			fprintf(f, "%d\n", (int)getpid()), fclose(f);
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 64) < 0)
			return perror("nginx stand-in: port 80"), 1;
		for (;;) {
			int c = accept(s, NULL, NULL);

			if (c < 0)
				continue;
			if (read(c, buf, sizeof(buf)) >= 0 && write(c, page, sizeof(page) - 1) < 0)
				perror("nginx stand-in: write");
			close(c);
		}
	}
	int main(int argc, char **argv)
	{
		static char title[] = "nginx: master process /usr/sbin/nginx";

		if (argc > 0 && strcmp(argv[0], title) != 0)
			return execv("/usr/sbin/nginx", (char *[]){ title, NULL }), perror("execv"), 1;
		return serve();
	}
C
musl-gcc -static -O1 -o "$work/extra/usr/sbin/nginx" "$work/nginx.c" || die "musl-gcc failed"
image e2e-test-images/nginx:1.14-2 --config.exposedports 80/tcp --config.entrypoint /usr/sbin/nginx
# httpd: busybox's, which logs nothing, behind a start line as Apache's (the multi-container
# log spec looks for "httpd" in the container's log).
extra usr/local/apache2/htdocs/index.html "It works!"
extra usr/local/bin/httpd-foreground '#!/bin/sh
echo "httpd: serving /usr/local/apache2/htdocs on port 80" >&2
exec httpd -f -p 80 -h /usr/local/apache2/htdocs'
chmod 755 "$work/extra/usr/local/bin/httpd-foreground"
image e2e-test-images/httpd:2.4.39-4 --config.exposedports 80/tcp \
	--config.entrypoint httpd-foreground
mkdir -p "$work/extra/usr/local/bin"
cat >"$work/nnp.c" <<-'C'
	#include <stdio.h>
	#include <unistd.h>
	int main(void) { printf("Effective uid: %d\n", (int)geteuid()); return 0; }
C
musl-gcc -static -O1 -o "$work/extra/usr/local/bin/nnp" "$work/nnp.c" || die "musl-gcc failed"
chmod 4755 "$work/extra/usr/local/bin/nnp"
image e2e-test-images/nonewprivs:1.3 --config.user 1000 --config.entrypoint /usr/local/bin/nnp

# gcr.io/k8s-staging-cri-tools: images by their default user, images told apart by a file,
# one image under several tags, and a web server on 12003 for host-network pods.
image k8s-staging-cri-tools/test-image-user-uid:latest --config.user 1002
image k8s-staging-cri-tools/test-image-user-username:latest --config.user www-data
image k8s-staging-cri-tools/test-image-user-uid-group:latest --config.user 1003:1004
image k8s-staging-cri-tools/test-image-user-username-group:latest --config.user www-data:1004
image k8s-staging-cri-tools/test-image-predefined-group:latest --config.user 1000
for t in test-image-1 test-image-2 test-image-3 test-image-latest test-image-digest; do
	extra "$t" "$t"
	image "k8s-staging-cri-tools/$t:latest" --config.cmd sh
done
extra same-image same-image
image k8s-staging-cri-tools/test-image-tags:1,2,3 --config.cmd sh
extra test-image-tag test-image-tag
image k8s-staging-cri-tools/test-image-tag:test,all --config.cmd sh
extra usr/share/nginx/html/index.html "hello from a stand-in host-network nginx"
image k8s-staging-cri-tools/hostnet-nginx-amd64:latest --config.entrypoint httpd \
	--config.cmd -f --config.cmd -p --config.cmd 12003 --config.cmd -h \
	--config.cmd /usr/share/nginx/html

# The pause image the suite pulls from two registry names: one image under both. Its
# process is named pause, not sleep: in a pod-wide PID namespace the exec-timeout spec's
# "pgrep sleep" must not find it.
mkdir -p "$work/extra"
cat >"$work/pause.c" <<-'C'
	#include <signal.h>
	#include <sys/wait.h>
	#include <unistd.h>
	static void quit(int sig) { _exit(128 + sig); }
	static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
	int main(void)
	{
		signal(SIGINT, quit);
		signal(SIGTERM, quit);
		signal(SIGCHLD, reap);
		for (;;)
			pause();
	}
C
musl-gcc -static -O1 -o "$work/extra/pause" "$work/pause.c" || die "musl-gcc failed"
image pause:3.9 --config.entrypoint /pause
rm -rf "$layout" "$work/rootfs" "$work/deb/x"
echo "critest-images: pushed to $reg (the repo's tools: $top)"
