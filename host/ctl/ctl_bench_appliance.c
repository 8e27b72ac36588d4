/* kuasar-ctl bench appliance: an appliance's clones restored from its template (to the app's
 * first HTTP answer from the host), cold boots of the same image (the same), and the floor
 * (a clone's VMM alone, until QMP answers), side by side as ratios; then the private memory
 * of K clones running at once.
 *
 *   kuasar-ctl bench appliance DIR --network NETNS [-n RUNS] [-k CLONES] [--json F] [--svg F]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "ctl/ctl.h"
#include "ctl/ctl_clone.h"

enum bmode { B_FLOOR, B_RESTORE, B_COLD, N_BMODES };
static const char *const bmode_name[N_BMODES] = { "floor", "restore", "cold" };
#define BENCH_MAX_RUNS 200

struct abench {
	struct appliance a;
	const char *netns, *json_path, *svg_path;
	unsigned runs, k, port;
	char addr[64];
	double ms[N_BMODES][BENCH_MAX_RUNS];
	/* restore and cold: until the guest answered, was made unique, had its network */
	double launched[N_BMODES][BENCH_MAX_RUNS], unique[N_BMODES][BENCH_MAX_RUNS],
	    net[N_BMODES][BENCH_MAX_RUNS];
	/* restore: the VMM spawned (after the network attach and the template lookup), QMP
	 * answered, the device state loaded */
	double spawned[BENCH_MAX_RUNS], qmp[BENCH_MAX_RUNS], loaded[BENCH_MAX_RUNS];
	int n[N_BMODES];
	double uss_mib[N_BMODES], pss_mib[N_BMODES];
	unsigned mem_k[N_BMODES];
	char key[TPL_KEY_LEN + 1];
	double app_ready_ms;
};

int ctl_http_answer(const char *addr, unsigned port, int64_t deadline, kerr_t *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	static const char req[] = "GET / HTTP/1.0\r\nHost: appliance\r\n\r\n";

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return kerr_set(err, EINVAL, "address %s", addr);
	while (mono_ns() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		char buf[16] = "";
		int e = 0;
		socklen_t len = sizeof(e);

		if (fd < 0)
			return kerr_sys(err, "socket");
		if ((connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
		     errno == EINPROGRESS) &&
		    poll(&p, 1, 200) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 &&
		    !e && write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
			p.events = POLLIN;
			if (poll(&p, 1, ms_until(deadline)) == 1 && read(fd, buf, 5) == 5 &&
			    !memcmp(buf, "HTTP/", 5)) {
				close(fd);
				return 0;
			}
		}
		close(fd);
		usleep(2000);
	}
	return kerr_set(err, ETIMEDOUT, "no HTTP answer from %s:%u", addr, port);
}

static int first_ipv4(const struct pod_net *pn, char *out, size_t n)
{
	for (unsigned i = 0; i < pn->n_ifs; i++)
		for (unsigned j = 0; j < pn->ifs[i].n_addrs; j++)
			if (pn->ifs[i].addrs[j].family == AF_INET)
				return inet_ntop(AF_INET, pn->ifs[i].addrs[j].ip, out, (socklen_t)n)
				           ? 0
				           : -1;
	return -1;
}

static int bench_one(struct abench *b, enum bmode m, unsigned i, kerr_t *err)
{
	struct clone c = { .netns = b->netns };
	char id[ID_MAX + 1];
	int rc;

	snprintf(id, sizeof(id), "bench-app-%s-%d-%u", bmode_name[m], getpid(), i);
	if (m == B_FLOOR) {
		struct vm_config cfg = b->a.cfg;
		struct template t;
		int tap = -1;

		vm_init(&c.vm, id);
		if (tpl_paths(&b->a.store, b->key, &t, err) < 0 ||
		    podnet_scratch_taps(1, &tap, err) < 0)
			return -1;
		c.nic.fd = tap;
		cfg.nics = &c.nic;
		cfg.mem_path = t.mem;
		rc = vm_floor(&c.vm, &cfg, ctl_run_dir(), err);
		close(tap);
		if (rc == 0)
			b->ms[m][b->n[m]++] = (double)(c.vm.t.qmp_ns - c.vm.t.spawn_ns) / 1e6;
		return rc;
	}
	if (ctl_clone_start(&b->a, &c, id, m == B_COLD, -1, 0, err) < 0)
		return -1;
	if (!b->addr[0] && first_ipv4(&c.net, b->addr, sizeof(b->addr)) < 0)
		rc = kerr_set(err, EINVAL, "%s has no IPv4 address to reach the app on", b->netns);
	else
		rc = ctl_http_answer(b->addr, b->port, c.t0 + 120000000000LL, err);
	if (rc == 0 && m == B_RESTORE) {
		b->spawned[b->n[m]] = (double)(c.vm.t.spawn_ns - c.t0) / 1e6;
		b->qmp[b->n[m]] = (double)(c.vm.t.qmp_ns - c.t0) / 1e6;
		b->loaded[b->n[m]] = (double)(c.vm.t.load_ns - c.t0) / 1e6;
	}
	if (rc == 0) {
		b->launched[m][b->n[m]] = (double)(c.t_launched - c.t0) / 1e6;
		b->unique[m][b->n[m]] = (double)(c.t_unique - c.t0) / 1e6;
		b->net[m][b->n[m]] = (double)(c.t_net - c.t0) / 1e6;
		b->ms[m][b->n[m]++] = (double)(mono_ns() - c.t0) / 1e6;
	}
	ctl_clone_stop(&c);
	return rc;
}

/* K clones (or cold boots) at once, serving but idle: their VMMs' private memory. */
static int bench_memory(struct abench *b, enum bmode m, kerr_t *err)
{
	static struct clone cl[MAX_CLONES];
	unsigned started = 0;
	int rc = 0;

	for (unsigned i = 0; i < b->k && rc == 0; i++) {
		char id[ID_MAX + 1];

		fprintf(stderr, "\rbench appliance: memory, %s %u/%u   ", bmode_name[m], i + 1,
		        b->k);
		snprintf(id, sizeof(id), "bench-app-mem-%s-%d-%u", bmode_name[m], getpid(), i);
		memset(&cl[i], 0, sizeof(cl[i]));
		rc = ctl_clone_start(&b->a, &cl[i], id, m == B_COLD, -1, 0, err);
		if (rc == 0)
			started++;
	}
	usleep(300000);
	for (unsigned i = 0; i < started && rc == 0; i++) {
		struct proc_mem pm;

		if ((rc = proc_mem(cl[i].vm.pid, &pm, err)) < 0)
			break;
		b->uss_mib[m] += pm.uss_kib / 1024.0 / started;
		b->pss_mib[m] += pm.pss_kib / 1024.0 / started;
	}
	b->mem_k[m] = started;
	for (unsigned i = 0; i < started; i++)
		ctl_clone_stop(&cl[i]);
	fprintf(stderr, "\r%60s\r", "");
	return rc;
}

static void bench_report(const struct abench *b)
{
	struct ctl_stats st[N_BMODES];

	for (int m = 0; m < N_BMODES; m++)
		st[m] = ctl_stats_of(b->ms[m], b->n[m]);
	printf("appliance %s (%s, ready %s), %u interleaved runs each:\n", b->a.dir,
	       b->a.name[0] ? b->a.name : "?", b->a.ready[0] ? b->a.ready : "at start", b->runs);
	printf("  %-8s %9s %9s %9s\n", "mode", "min ms", "median", "p90");
	for (int m = 0; m < N_BMODES; m++)
		printf("  %-8s %9.1f %9.1f %9.1f   %s\n", bmode_name[m], st[m].min, st[m].median,
		       st[m].p90,
		       m == B_FLOOR     ? "(the clone's VMM alone, until QMP answers)"
		       : m == B_RESTORE ? "(restore to the first HTTP answer from the host)"
		                        : "(kernel boot, app start, to the first HTTP answer)");
	for (int m = B_RESTORE; m < N_BMODES; m++)
		printf("  %s, medians: guest answers %.1f ms, unique +%.1f, network +%.1f, first "
		       "answer +%.1f\n",
		       bmode_name[m], ctl_stats_of(b->launched[m], b->n[m]).median,
		       ctl_stats_of(b->unique[m], b->n[m]).median -
		           ctl_stats_of(b->launched[m], b->n[m]).median,
		       ctl_stats_of(b->net[m], b->n[m]).median -
		           ctl_stats_of(b->unique[m], b->n[m]).median,
		       st[m].median - ctl_stats_of(b->net[m], b->n[m]).median);
	printf("  restore, medians: VMM spawned %.1f ms (network attached, template found), QMP "
	       "+%.1f, state loaded +%.1f\n",
	       ctl_stats_of(b->spawned, b->n[B_RESTORE]).median,
	       ctl_stats_of(b->qmp, b->n[B_RESTORE]).median -
	           ctl_stats_of(b->spawned, b->n[B_RESTORE]).median,
	       ctl_stats_of(b->loaded, b->n[B_RESTORE]).median -
	           ctl_stats_of(b->qmp, b->n[B_RESTORE]).median);
	printf("  restore / floor: %.2fx (medians; the target is <= 3x)\n",
	       st[B_RESTORE].median / st[B_FLOOR].median);
	printf("  cold / restore:  %.1fx (medians; the target for a heavy app is >= 20x)\n",
	       st[B_COLD].median / st[B_RESTORE].median);
	printf("  snapshot: app ready %.0f ms after its start in the template VM\n",
	       b->app_ready_ms);
	printf("private memory per VMM, K running at once (smaps_rollup, mean):\n");
	for (int m = B_RESTORE; m < N_BMODES; m++)
		printf("  %-8s K=%-3u USS %7.1f MiB   PSS %7.1f MiB\n", bmode_name[m], b->mem_k[m],
		       b->uss_mib[m], b->pss_mib[m]);
	if (b->uss_mib[B_RESTORE] > 0)
		printf("  cold / restore private memory: %.1fx\n",
		       b->uss_mib[B_COLD] / b->uss_mib[B_RESTORE]);
}

static void bench_json(const struct abench *b)
{
	json_object *o = json_object_new_object(), *modes = json_object_new_object();

	json_object_object_add(o, "appliance", json_object_new_string(b->a.dir));
	json_object_object_add(o, "image", json_object_new_string(b->a.name));
	json_object_object_add(o, "digest", json_object_new_string(b->a.digest));
	json_object_object_add(o, "ready", json_object_new_string(b->a.ready));
	json_object_object_add(o, "snapshot", json_object_new_string(b->key));
	json_object_object_add(o, "app_ready_ms", json_object_new_double(b->app_ready_ms));
	json_object_object_add(o, "runs", json_object_new_int((int)b->runs));
	for (int m = 0; m < N_BMODES; m++) {
		json_object *x = json_object_new_object(), *v = json_object_new_array();
		struct ctl_stats st = ctl_stats_of(b->ms[m], b->n[m]);

		for (int i = 0; i < b->n[m]; i++)
			json_object_array_add(v, json_object_new_double(b->ms[m][i]));
		json_object_object_add(x, "ms", v);
		json_object_object_add(x, "min_ms", json_object_new_double(st.min));
		json_object_object_add(x, "median_ms", json_object_new_double(st.median));
		json_object_object_add(x, "p90_ms", json_object_new_double(st.p90));
		if (m != B_FLOOR) {
			json_object_object_add(x, "clones", json_object_new_int((int)b->mem_k[m]));
			json_object_object_add(x, "uss_mib", json_object_new_double(b->uss_mib[m]));
			json_object_object_add(x, "pss_mib", json_object_new_double(b->pss_mib[m]));
		}
		json_object_object_add(modes, bmode_name[m], x);
	}
	json_object_object_add(o, "modes", modes);
	ctl_write_json(b->json_path, o);
}

static int bench_usage(void)
{
	fprintf(stderr,
	        "usage: kuasar-ctl bench appliance DIR --network NETNS [-n RUNS] [-k CLONES]\n"
	        "                                  [--port P] [--json FILE] [--svg FILE]\n"
	        "  interleaves RUNS of: the clone's VMM alone (floor), restore to the first HTTP\n"
	        "  answer from the host, cold boot to the first HTTP answer (NETNS: one interface\n"
	        "  with an IPv4 address the host routes to); then CLONES restored and CLONES cold\n"
	        "  at once for their private memory (defaults: 10 runs, 4 clones)\n");
	return 2;
}

static void bench_svg(const struct abench *b)
{
	static const char *const color[N_BMODES] = { "#888", "#1a7f37", "#cf222e" };
	struct ctl_row rows[N_BMODES];
	char title[200];

	for (int m = 0; m < N_BMODES; m++)
		rows[m] = (struct ctl_row){ bmode_name[m], color[m], b->ms[m], b->n[m] };
	snprintf(title, sizeof(title), "appliance %.120s: to the first HTTP answer, %u runs each",
	         b->a.name[0] ? b->a.name : b->a.dir, b->runs);
	ctl_svg(b->svg_path, title, "ms (log scale)", rows, N_BMODES);
}

/* Each run, every mode in turn (interleaved), then the memory of one of each. */
static int bench_runs(struct abench *b, kerr_t *err)
{
	for (unsigned i = 0; i < b->runs; i++)
		for (int m = 0; m < N_BMODES; m++) {
			fprintf(stderr, "\rbench appliance: run %u/%u, %-8s", i + 1, b->runs,
			        bmode_name[m]);
			if (bench_one(b, (enum bmode)m, i, err) < 0)
				return fprintf(stderr, "\n"), -1;
		}
	fprintf(stderr, "\r%60s\r", "");
	return bench_memory(b, B_RESTORE, err) < 0 || bench_memory(b, B_COLD, err) < 0 ? -1 : 0;
}

/* bench appliance's options into b: 0, or the exit status. */
static int bench_args(int argc, char **argv, struct abench *b)
{
	static const struct option opts[] = {
		{ "network", required_argument, 0, 'N' },
		{ "port", required_argument, 0, 'p' },
		{ "json", required_argument, 0, 'J' },
		{ "svg", required_argument, 0, 'S' },
		{ 0, 0, 0, 0 },
	};
	int c;

	b->runs = 10;
	b->k = 4;
	while ((c = getopt_long(argc, argv, "n:k:", opts, NULL)) != -1) {
		switch (c) {
		case 'N': b->netns = optarg; break;
		case 'J': b->json_path = optarg; break;
		case 'S': b->svg_path = optarg; break;
		case 'p':
			if (ctl_parse_uint(optarg, 1, 65535, &b->port) < 0)
				return bench_usage();
			break;
		case 'n':
			if (ctl_parse_uint(optarg, 3, BENCH_MAX_RUNS, &b->runs) < 0)
				return bench_usage();
			break;
		case 'k':
			if (ctl_parse_uint(optarg, 1, MAX_CLONES, &b->k) < 0)
				return bench_usage();
			break;
		default: return bench_usage();
		}
	}
	return optind + 1 != argc || !b->netns ? bench_usage() : 0;
}

int ctl_bench_appliance(int argc, char **argv)
{
	static struct abench b;
	struct template t;
	struct tpl_info in;
	kerr_t err;
	int rc = bench_args(argc, argv, &b), built;

	if (rc)
		return rc;
	if (ctl_appliance_load(argv[optind], &b.a, &err) < 0)
		return ctl_fail(&err);
	if (!b.port)
		b.port = b.a.port;
	if (!b.port)
		return fprintf(stderr, "kuasar-ctl: the appliance is not ready on a TCP port: give "
		                       "--port\n"),
		       2;
	if (ctl_appliance_accel(&b.a) < 0)
		return 1;
	fprintf(stderr, "bench appliance: snapshot ...");
	if (ctl_appliance_snapshot(&b.a, &t, &in, &built, &err) < 0)
		return fprintf(stderr, "\n"), ctl_fail(&err);
	snprintf(b.key, sizeof(b.key), "%s", t.key);
	b.app_ready_ms = in.app_ready_ms;
	if (bench_runs(&b, &err) < 0)
		return ctl_fail(&err);
	bench_report(&b);
	if (b.json_path)
		bench_json(&b);
	if (b.svg_path)
		bench_svg(&b);
	return 0;
}
