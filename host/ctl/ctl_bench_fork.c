/* kuasar-ctl bench fork: a running appliance that has built state (its app counts the
 * requests it served) snapshotted while it serves, and forks of it to their first HTTP
 * answer from the host, one alone and N at once, beside the appliance's restores from its
 * template (one and N at once) and its cold start, interleaved in one run; the private
 * memory of each after its first answer.
 *
 *   kuasar-ctl bench fork DIR --network PARENT_NS,NS1,...,NSN [-n RUNS] [--json F] [--svg F]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "ctl/ctl.h"
#include "ctl/ctl_snap.h"

enum fmode { F_COLD, F_RESTORE, F_RESTOREN, F_FORK1, F_FORKN, F_PAUSE, N_FMODES };
static const char *const fmode_name[N_FMODES] = { "cold", "restore", "restore-N",
	                                          "fork", "fork-N",  "pause" };
#define FB_MAX_RUNS 50
#define FB_MAX_NS 17

struct fbench {
	struct appliance a;
	const char *json_path, *svg_path;
	char *ns[FB_MAX_NS];
	char addr[FB_MAX_NS][INET_ADDRSTRLEN];
	unsigned n_ns, runs, port;
	char parent[ID_MAX + 1];
	double ms[N_FMODES][FB_MAX_RUNS * FB_MAX_NS];
	double snap_total[FB_MAX_RUNS];
	int n[N_FMODES];
	/* each VMM's after its first answer (N at once: once all answered) */
	double uss_sum[N_FMODES], pss_sum[N_FMODES];
	/* of the USS: the guest's own writes (copied pages of its memory file) and TCG's
	 * translated code (the VMM's executable anonymous memory) */
	double own_sum[N_FMODES], tcg_sum[N_FMODES];
	unsigned uss_n[N_FMODES];
};

/* eth0's IPv4 address in the namespace at path. */
static int netns_addr(const char *path, char *out, size_t n, kerr_t *err)
{
	struct ifreq ifr = { .ifr_name = "eth0" };
	int ns = podnet_netns_open(path, err), fd = -1, rc = -1;

	if (ns >= 0)
		fd = podnet_socket_at(ns, AF_INET, SOCK_DGRAM, err);
	if (fd >= 0 && ioctl(fd, SIOCGIFADDR, &ifr) == 0 &&
	    inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, out, (socklen_t)n))
		rc = 0;
	else if (fd >= 0)
		rc = kerr_set(err, EINVAL, "%s: eth0 has no IPv4 address", path);
	if (fd >= 0)
		close(fd);
	if (ns >= 0)
		close(ns);
	return rc;
}

/* kuasar-ctl itself with args, as a user would run it; 0 if it exited 0. */
static int self(const char *const args[])
{
	const char *argv[16] = { "kuasar-ctl", "--run-dir", ctl_run_dir() };
	pid_t pid;
	int st = 0, n = 3;

	for (; args[n - 3] && n < 15; n++)
		argv[n] = args[n - 3];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void stop_kept(const char *id)
{
	const char *args[] = { "shutdown", id, NULL };

	self(args);
}

/* The parent: the appliance kept running on the first namespace, asked five times. */
static int start_parent(struct fbench *b, kerr_t *err)
{
	const char *args[] = { "appliance", "run",     b->a.dir, "--network", b->ns[0],
		               "--id",      b->parent, "--keep", NULL };

	snprintf(b->parent, sizeof(b->parent), "bench-fork-parent-%d", getpid());
	if (self(args) < 0)
		return kerr_set(err, EIO, "the parent did not start (kuasar-ctl appliance run %s)",
		                b->a.dir);
	for (int i = 0; i < 5; i++)
		if (ctl_http_answer(b->addr[0], b->port, mono_ns() + 30000000000LL, err) < 0)
			return kerr_wrap(err, "the parent");
	return 0;
}

/* What of a VMM's memory is the guest's own writes (anonymous pages in its guest-memory
 * file's mapping: each a page copied on write) and TCG's code (anonymous pages in an
 * executable mapping), in KiB, from /proc/PID/smaps. */
static void own_and_code(pid_t pid, double *own, double *code)
{
	char path[64], line[512];
	FILE *f;
	int in_mem = 0, in_code = 0;
	unsigned long long v;

	*own = *code = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	if (!(f = fopen(path, "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char perms[8] = "", name[256] = "";

		if (sscanf(line, "%*x-%*x %7s", perms) == 1) { /* a mapping's first line */
			size_t n;

			if (sscanf(line, "%*x-%*x %*s %*s %*s %*s %255s", name) != 1)
				name[0] = '\0';
			n = strlen(name);

			in_mem = n > 4 && !strcmp(name + n - 4, ".mem");
			in_code = !name[0] && !strcmp(perms, "rwxp");
		} else if (sscanf(line, "Anonymous: %llu", &v) == 1) {
			*own += in_mem ? (double)v : 0;
			*code += in_code ? (double)v : 0;
		}
	}
	fclose(f);
}

/* The private memory of a VMM that answered. */
static void add_memory(struct fbench *b, enum fmode m, pid_t pid)
{
	struct proc_mem pm;
	double own, code;

	if (pid > 0 && proc_mem(pid, &pm, NULL) == 0) {
		own_and_code(pid, &own, &code);
		b->uss_sum[m] += pm.uss_kib / 1024.0;
		b->pss_sum[m] += pm.pss_kib / 1024.0;
		b->own_sum[m] += own / 1024.0;
		b->tcg_sum[m] += code / 1024.0;
		b->uss_n[m]++;
	}
}

/* A cold start or a restore of the appliance, to its first answer. */
static int run_clone(struct fbench *b, enum fmode m, unsigned r, kerr_t *err)
{
	struct clone c = { .netns = b->ns[1] };
	char id[ID_MAX + 1];
	int rc;

	snprintf(id, sizeof(id), "bench-fork-%s-%d-%u", fmode_name[m], getpid(), r);
	if (ctl_clone_start(&b->a, &c, id, m == F_COLD, -1, 0, err) < 0)
		return -1;
	rc = ctl_http_answer(b->addr[1], b->port, c.t0 + 120000000000LL, err);
	if (rc == 0) {
		b->ms[m][b->n[m]++] = (double)(mono_ns() - c.t0) / 1e6;
		add_memory(b, m, c.vm.pid);
	}
	ctl_clone_stop(&c);
	return rc;
}

/* One fork of the snapshot, to its first answer. */
static int run_fork1(struct fbench *b, const char *snap, unsigned r, kerr_t *err)
{
	struct clone c = { .netns = b->ns[1] };
	struct vm_shape sh;
	struct template t;
	char id[ID_MAX + 1];
	unsigned started = 0;
	int lock = ctl_snapshot_open(snap, &sh, &t, err), rc;

	if (lock < 0)
		return -1;
	snprintf(id, sizeof(id), "bench-fork-one-%d-%u", getpid(), r);
	rc = ctl_fork_start(&sh, &t, &c, 1, id, -1, 0, 1, &started, err);
	close(lock);
	if (rc == 0)
		rc = ctl_http_answer(b->addr[1], b->port, c.t0 + 120000000000LL, err);
	if (rc == 0) {
		b->ms[F_FORK1][b->n[F_FORK1]++] = (double)(mono_ns() - c.t0) / 1e6;
		add_memory(b, F_FORK1, c.vm.pid);
	}
	if (started)
		ctl_clone_stop(&c);
	return rc;
}

/* In a child of the bench: VM i started as a user would (kuasar-ctl appliance run or fork,
 * --keep), then its first answer; the time since t0 goes to out (-1 if it failed). */
static void many_child(struct fbench *b, enum fmode m, const char *snap, unsigned i, const char *id,
                       int64_t t0, int out)
{
	const char *run[] = { "appliance", "run", b->a.dir, "--network", b->ns[1 + i],
		              "--id",      id,    "--keep", NULL },
	           *fork[] = {
		           "fork", snap, "--network", b->ns[1 + i], "--id", id, "--keep", NULL
	           };
	double ms = -1;
	kerr_t e;

	if (self(m == F_FORKN ? fork : run) == 0 &&
	    ctl_http_answer(b->addr[1 + i], b->port, mono_ns() + 120000000000LL, &e) == 0)
		ms = (double)(mono_ns() - t0) / 1e6;
	if (write(out, &ms, sizeof(ms)) != sizeof(ms))
		_exit(1);
	_exit(0);
}

/* N restores or N forks at once, each to its first answer; their memory once all answered. */
static int run_many(struct fbench *b, enum fmode m, const char *snap, unsigned r, kerr_t *err)
{
	static char ids[FB_MAX_NS][ID_MAX + 1];
	unsigned n = b->n_ns - 1, bad = 0;
	int64_t t0 = mono_ns();
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return kerr_sys(err, "pipe");
	for (unsigned i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "bench-fork-%s%u-%d-%u", fmode_name[m], i,
		         getpid(), r);
		if (fork() == 0)
			many_child(b, m, snap, i, ids[i], t0, p[1]);
	}
	close(p[1]);
	for (unsigned i = 0; i < n; i++) {
		double ms;

		if (read(p[0], &ms, sizeof(ms)) != sizeof(ms) || ms < 0)
			bad++;
		else
			b->ms[m][b->n[m]++] = ms;
	}
	close(p[0]);
	while (waitpid(-1, NULL, 0) > 0)
		;
	for (unsigned i = 0; i < n; i++)
		add_memory(b, m, vm_find_vmm(ctl_run_dir(), ids[i]));
	for (unsigned i = 0; i < n; i++)
		stop_kept(ids[i]);
	return bad ? kerr_set(err, EIO, "%u of %u at once did not answer", bad, n) : 0;
}

/* One run: cold, restore, a snapshot of the parent, one fork, N forks (interleaved). */
static int run_once(struct fbench *b, unsigned r, kerr_t *err)
{
	char snap[ID_MAX + 1];
	struct vm_snap_times tm;
	int rc;

	if (run_clone(b, F_COLD, r, err) < 0 || run_clone(b, F_RESTORE, r, err) < 0 ||
	    run_many(b, F_RESTOREN, NULL, r, err) < 0)
		return -1;
	snprintf(snap, sizeof(snap), "bench-fork-%d-%u", getpid(), r);
	if (ctl_snapshot_take(b->parent, snap, &tm, err) < 0)
		return -1;
	b->ms[F_PAUSE][b->n[F_PAUSE]++] = tm.pause_ms;
	b->snap_total[r] = tm.total_ms;
	rc = run_fork1(b, snap, r, err);
	if (rc == 0)
		rc = run_many(b, F_FORKN, snap, r, err);
	if (ctl_snapshot_remove(snap, 0, rc < 0 ? NULL : err) < 0 && rc == 0)
		rc = -1;
	return rc;
}

static double mean(const double *sum, const unsigned *n, int m)
{
	return n[m] ? sum[m] / n[m] : 0;
}

static void fbench_report(const struct fbench *b)
{
	struct ctl_stats st[N_FMODES], total = ctl_stats_of(b->snap_total, b->n[F_PAUSE]);
	static const char *const what[N_FMODES] = {
		"kernel boot, app start, to the first HTTP answer",
		"from the appliance's template to the first HTTP answer",
		"N restores started at once, each to its first HTTP answer",
		"one fork of the running parent to its first HTTP answer",
		"N forks started at once, each to its first HTTP answer",
		"the parent stopped while its snapshot was taken",
	};

	for (int m = 0; m < N_FMODES; m++)
		st[m] = ctl_stats_of(b->ms[m], b->n[m]);
	printf("fork: appliance %s (%s), %u interleaved runs, N = %u:\n", b->a.dir,
	       b->a.name[0] ? b->a.name : "?", b->runs, b->n_ns - 1);
	printf("  %-9s %9s %9s %9s %9s\n", "mode", "min ms", "median", "p90", "USS MiB");
	for (int m = 0; m < N_FMODES; m++)
		printf("  %-9s %9.1f %9.1f %9.1f %9.1f   (%s)\n", fmode_name[m], st[m].min,
		       st[m].median, st[m].p90, mean(b->uss_sum, b->uss_n, m), what[m]);
	printf("  snapshot in all (the parent serving again, then the device state saved): "
	       "median %.0f ms\n",
	       total.median);
	printf("  pause, median: %.0f ms (the goal for 256 MiB: <= 300 ms)\n", st[F_PAUSE].median);
	printf("  fork / restore: %.2fx; fork-N / restore-N: %.2fx p50, %.2fx p90 (the goal: fork "
	       "<= 2x restore)\n",
	       st[F_FORK1].median / st[F_RESTORE].median,
	       st[F_FORKN].median / st[F_RESTOREN].median, st[F_FORKN].p90 / st[F_RESTOREN].p90);
	printf("  cold / fork: %.1fx (medians)\n", st[F_COLD].median / st[F_FORK1].median);
	printf("  USS per fork, N at once: %.1f MiB, PSS %.1f MiB; per restore, N at once: %.1f "
	       "MiB (the goal: fork USS <= 25 MiB)\n",
	       mean(b->uss_sum, b->uss_n, F_FORKN), mean(b->pss_sum, b->uss_n, F_FORKN),
	       mean(b->uss_sum, b->uss_n, F_RESTOREN));
	printf(
	    "  of a fork's USS, N at once: its guest's own writes %.1f MiB, TCG's code %.1f MiB, "
	    "the rest the VMM's own and snapshot pages only it had read (restore-N: %.1f, %.1f)\n",
	    mean(b->own_sum, b->uss_n, F_FORKN), mean(b->tcg_sum, b->uss_n, F_FORKN),
	    mean(b->own_sum, b->uss_n, F_RESTOREN), mean(b->tcg_sum, b->uss_n, F_RESTOREN));
}

static void fbench_json(const struct fbench *b)
{
	json_object *o = json_object_new_object(), *modes = json_object_new_object();

	json_object_object_add(o, "appliance", json_object_new_string(b->a.dir));
	json_object_object_add(o, "image", json_object_new_string(b->a.name));
	json_object_object_add(o, "runs", json_object_new_int((int)b->runs));
	json_object_object_add(o, "at_once", json_object_new_int((int)b->n_ns - 1));
	for (int m = 0; m < N_FMODES; m++) {
		json_object *x = json_object_new_object(), *v = json_object_new_array();
		struct ctl_stats st = ctl_stats_of(b->ms[m], b->n[m]);

		for (int i = 0; i < b->n[m]; i++)
			json_object_array_add(v, json_object_new_double(b->ms[m][i]));
		json_object_object_add(x, "ms", v);
		json_object_object_add(x, "median_ms", json_object_new_double(st.median));
		json_object_object_add(x, "p90_ms", json_object_new_double(st.p90));
		if (b->uss_n[m]) {
			json_object_object_add(
			    x, "uss_mib", json_object_new_double(mean(b->uss_sum, b->uss_n, m)));
			json_object_object_add(
			    x, "pss_mib", json_object_new_double(mean(b->pss_sum, b->uss_n, m)));
			json_object_object_add(
			    x, "guest_writes_mib",
			    json_object_new_double(mean(b->own_sum, b->uss_n, m)));
			json_object_object_add(
			    x, "tcg_code_mib",
			    json_object_new_double(mean(b->tcg_sum, b->uss_n, m)));
		}
		json_object_object_add(modes, fmode_name[m], x);
	}
	json_object_object_add(o, "modes", modes);
	json_object_object_add(
	    o, "snapshot_total_median_ms",
	    json_object_new_double(ctl_stats_of(b->snap_total, b->n[F_PAUSE]).median));
	ctl_write_json(b->json_path, o);
}

static void fbench_svg(const struct fbench *b)
{
	static const char *const color[N_FMODES] = { "#cf222e", "#1a7f37", "#4ac26b",
		                                     "#0969da", "#8250df", "#888" };
	struct ctl_row rows[N_FMODES];
	char title[200];

	for (int m = 0; m < N_FMODES; m++)
		rows[m] = (struct ctl_row){ fmode_name[m], color[m], b->ms[m], b->n[m] };
	snprintf(title, sizeof(title),
	         "fork of a running %.100s: to the first HTTP answer, %u runs",
	         b->a.name[0] ? b->a.name : b->a.dir, b->runs);
	ctl_svg(b->svg_path, title, "ms (log scale)", rows, N_FMODES);
}

static int fbench_usage(void)
{
	fprintf(stderr,
	        "usage: kuasar-ctl bench fork DIR --network PARENT_NS,NS1,...,NSN [-n RUNS]\n"
	        "                             [--json FILE] [--svg FILE]\n"
	        "  keeps the appliance DIR running on PARENT_NS (its app counting requests, asked\n"
	        "  5 times), then interleaves RUNS of: a cold start and a restore from its\n"
	        "  template on NS1 and N at once on NS1..NSN, a snapshot of the parent, one fork\n"
	        "  of it on NS1 and N at once (kuasar-ctl appliance run or fork --keep each), to\n"
	        "  the first HTTP answer from the host (each NS: eth0 with an IPv4 address the\n"
	        "  host routes to; 2 to %d namespaces; 5 runs by default)\n",
	        FB_MAX_NS);
	return 2;
}

static int fbench_args(int argc, char **argv, struct fbench *b)
{
	static const struct option opts[] = {
		{ "network", required_argument, 0, 'N' },
		{ "json", required_argument, 0, 'J' },
		{ "svg", required_argument, 0, 'S' },
		{ 0, 0, 0, 0 },
	};
	char *list = NULL, *save = NULL;
	int c;

	b->runs = 5;
	while ((c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		if (c == 'N')
			list = optarg;
		else if (c == 'J')
			b->json_path = optarg;
		else if (c == 'S')
			b->svg_path = optarg;
		else if (c != 'n' || ctl_parse_uint(optarg, 1, FB_MAX_RUNS, &b->runs) < 0)
			return fbench_usage();
	}
	for (char *ns = list ? strtok_r(list, ",", &save) : NULL; ns && b->n_ns < FB_MAX_NS;
	     ns = strtok_r(NULL, ",", &save))
		b->ns[b->n_ns++] = ns;
	return optind + 1 != argc || b->n_ns < 2 ? fbench_usage() : 0;
}

int ctl_bench_fork(int argc, char **argv)
{
	static struct fbench b;
	struct template t;
	struct tpl_info in;
	kerr_t err;
	int rc = fbench_args(argc, argv, &b), built;

	if (rc)
		return rc;
	if (ctl_appliance_load(argv[optind], &b.a, &err) < 0)
		return ctl_fail(&err);
	b.port = b.a.port ? b.a.port : 8080;
	for (unsigned i = 0; i < b.n_ns; i++)
		if (netns_addr(b.ns[i], b.addr[i], sizeof(b.addr[i]), &err) < 0)
			return ctl_fail(&err);
	if (ctl_appliance_accel(&b.a) < 0)
		return 1;
	if (ctl_appliance_snapshot(&b.a, &t, &in, &built, &err) < 0 || start_parent(&b, &err) < 0)
		return ctl_fail(&err);
	for (unsigned r = 0; r < b.runs && rc == 0; r++) {
		fprintf(stderr, "\rbench fork: run %u/%u   ", r + 1, b.runs);
		rc = run_once(&b, r, &err);
	}
	fprintf(stderr, "\r%40s\r", "");
	stop_kept(b.parent);
	if (rc < 0)
		return ctl_fail(&err);
	fbench_report(&b);
	if (b.json_path)
		fbench_json(&b);
	if (b.svg_path)
		fbench_svg(&b);
	return 0;
}
