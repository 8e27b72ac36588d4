/* kuasar-ctl bench tcp: the pod network's data path, two pods side by side (a VM pod and a
 * runc pod on one bridge): TCP connect + a small HTTP request/response + close, interleaved,
 * median and p90; then bulk throughput into each pod (a sink on port 9001 that reads and
 * drops). Both pods run the same busybox servers, so the difference is the path. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "net/podnet.h"

#define RR_PORT "8080"
#define BULK_PORT "9001"
#define MAX_REQS 2000
#define BULK_RUNS 3

struct target {
	const char *name, *addr;
	int64_t rr[MAX_REQS];
	double mibs[BULK_RUNS];
};

/* A TCP socket made in the netns at path (NULL: ours); a socket keeps the netns it was made
 * in, so this process can dial into several. */
static int socket_in(const char *netns, int family)
{
	int fd, ns;
	kerr_t e;

	if (!netns)
		return socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ns = podnet_netns_open(netns, &e);
	if (ns < 0)
		return -1;
	fd = podnet_socket_at(ns, family, SOCK_STREAM | SOCK_CLOEXEC, &e);
	close(ns);
	return fd;
}

/* target: ADDR, or NETNS@ADDR to dial from inside that netns (as containerd's port-forward
 * dials localhost in a pod's netns). */
static int dial(const char *target, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai;
	struct timeval tv = { .tv_sec = 10 };
	const char *at = strrchr(target, '@'), *addr = at ? at + 1 : target;
	char netns[256];
	int fd;

	if (at && snprintf(netns, sizeof(netns), "%.*s", (int)(at - target), target) < 0)
		return -1;
	if (getaddrinfo(addr, port, &hints, &ai) != 0)
		return -1;
	fd = socket_in(at ? netns : NULL, ai->ai_family);
	if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	                connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* One request: connect, GET, read the whole answer; its wall time in ns, -1 on error. */
static int64_t one_request(const char *addr)
{
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	int64_t t0 = mono_ns();
	char buf[4096];
	ssize_t n, total = 0;
	int fd = dial(addr, RR_PORT);

	if (fd < 0)
		return -1;
	if (write_all(fd, req, sizeof(req) - 1) < 0) {
		close(fd);
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	close(fd);
	return n < 0 || total == 0 ? -1 : mono_ns() - t0;
}

/* bytes into the sink, then our half closed and the sink's close awaited: all delivered. */
static double one_bulk(const char *addr, size_t bytes)
{
	static char chunk[1 << 16];
	int64_t t0 = mono_ns();
	char c;
	int fd = dial(addr, BULK_PORT);

	if (fd < 0)
		return -1;
	for (size_t sent = 0; sent < bytes; sent += sizeof(chunk))
		if (write_all(fd, chunk, sizeof(chunk)) < 0) {
			close(fd);
			return -1;
		}
	shutdown(fd, SHUT_WR);
	while (read(fd, &c, 1) > 0)
		;
	close(fd);
	return (double)bytes / (1 << 20) / ((double)(mono_ns() - t0) / 1e9);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(struct target *t, unsigned n, unsigned mib)
{
	double med[2], p90[2];

	printf("TCP connect + HTTP GET + close, %u requests each, interleaved\n", n);
	printf("  %-10s %12s %12s\n", "", "median us", "p90 us");
	for (int i = 0; i < 2; i++) {
		qsort(t[i].rr, n, sizeof(int64_t), cmp64);
		med[i] = (double)t[i].rr[n / 2] / 1e3;
		p90[i] = (double)t[i].rr[n * 9 / 10] / 1e3;
		printf("  %-10s %12.0f %12.0f\n", t[i].name, med[i], p90[i]);
	}
	printf("  ratio %s/%s: median %.2fx, p90 %.2fx\n", t[0].name, t[1].name, med[0] / med[1],
	       p90[0] / p90[1]);
	if (!mib)
		return;
	printf("bulk: %u MiB into the pod (a sink that drops it), %d runs each, interleaved\n", mib,
	       BULK_RUNS);
	for (int i = 0; i < 2; i++) {
		qsort(t[i].mibs, BULK_RUNS, sizeof(double), cmpd);
		printf("  %-10s %8.1f MiB/s (median)\n", t[i].name, t[i].mibs[BULK_RUNS / 2]);
	}
	printf("  ratio %s/%s: %.2fx\n", t[0].name, t[1].name,
	       t[0].mibs[BULK_RUNS / 2] / t[1].mibs[BULK_RUNS / 2]);
}

int ctl_bench_tcp(int argc, char **argv)
{
	struct target *t = calloc(2, sizeof(*t));
	unsigned n = 200, mib = 0;
	int a = 1;

	while (a + 1 < argc && argv[a][0] == '-') {
		if (!strcmp(argv[a], "-n") && ctl_parse_uint(argv[a + 1], 10, MAX_REQS, &n) == 0)
			a += 2;
		else if (!strcmp(argv[a], "--bulk") &&
		         ctl_parse_uint(argv[a + 1], 1, 4096, &mib) == 0)
			a += 2;
		else
			break;
	}
	if (!t || argc - a != 4) {
		fprintf(stderr, "usage: kuasar-ctl bench tcp [-n REQUESTS] [--bulk MIB] NAME ADDR "
		                "NAME ADDR\n  each pod serves HTTP on port 8080 and sinks bytes on "
		                "port 9001; ADDR as NETNS@ADDR dials from inside that netns\n");
		free(t);
		return 2;
	}
	for (int i = 0; i < 2; i++) {
		t[i].name = argv[a + 2 * i];
		t[i].addr = argv[a + 2 * i + 1];
	}
	for (unsigned r = 0; r < n; r++)
		for (int k = 0; k < 2; k++) {
			struct target *x =
			    &t[(r + (unsigned)k) & 1]; /* who goes first alternates */

			x->rr[r] = one_request(x->addr);
			if (x->rr[r] < 0) {
				fprintf(stderr, "bench tcp: request %u to %s (%s): %s\n", r,
				        x->name, x->addr, strerror(errno));
				free(t);
				return 1;
			}
		}
	for (int r = 0; r < BULK_RUNS && mib; r++)
		for (int k = 0; k < 2; k++) {
			struct target *x = &t[(r + k) & 1];

			x->mibs[r] = one_bulk(x->addr, (size_t)mib << 20);
			if (x->mibs[r] < 0) {
				fprintf(stderr, "bench tcp: bulk to %s (%s): %s\n", x->name,
				        x->addr, strerror(errno));
				free(t);
				return 1;
			}
		}
	report(t, n, mib);
	free(t);
	return 0;
}
