/* kuasar-ctl appliance: OCI images made bootable, restored with their app already serving.
 *
 * An appliance directory (tools/mkimage.sh --app makes it) holds app.json, the kernel, the
 * initrd and app.erofs: the app's OCI bundle (config.json, rootfs/, ready) as a read-only
 * disk that kuasar-init runs at boot. `build` boots it once, waits until the guest reports
 * the app ready, and saves a template of the VM with the app running (<dir>/templates, its
 * memory in the template memory directory). `run` restores clones of it, each made unique
 * (entropy, clock, hostname) and given its network; a missing template is built first.
 *
 *   kuasar-ctl appliance build DIR [--timeout MS] [--accel A]
 *   kuasar-ctl appliance run DIR [--network NETNS] [--count N] [--id ID] [--cold] [--keep]
 *   kuasar-ctl bench appliance DIR --network NETNS [-n RUNS] [-k CLONES] [--json F] [--svg F]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "ctl/ctl.h"
#include "net/podnet.h"
#include "proxy/guestnet.h"
#include "vm/appliance.h"
#include "vm/launch.h"
#include "vm/template.h"
#include "vm/vm.h"

#define MAX_CLONES 32

/* One running copy: its VM, and its network (a pod netns, or a scratch tap). */
struct clone {
	struct vm vm;
	const char *netns;
	struct pod_net net;
	struct vm_nic nic;
	int attached;
	/* CLOCK_MONOTONIC: start, the guest answered, made unique, network set up */
	int64_t t0, t_launched, t_unique, t_net;
	off_t log_off;
	int done;
	unsigned exit_status;
};

static int scratch_taps(unsigned n, int *fds, kerr_t *err)
{
	return podnet_scratch_taps(n, fds, err);
}

/* The appliance at dir with kuasar-ctl's defaults, one NIC (clones get a pod's network
 * or a tap that goes nowhere) and the template memory directory from the environment. */
static int appliance_load(const char *dir, struct appliance *a, kerr_t *err)
{
	struct vm_config base;

	ctl_config_defaults(&base);
	if (appliance_open(dir, &base, getenv("KUASAR_TEMPLATE_MEM_DIR"), a, err) < 0)
		return -1;
	a->cfg.n_nics = 1;
	a->store.scratch_taps = scratch_taps;
	return 0;
}

static int resolve_accel(struct appliance *a)
{
	enum accel accel;

	if (vm_known_accel(&a->cfg, ctl_run_dir(), &accel) < 0 &&
	    ctl_decide_accel(&a->cfg, &accel) < 0)
		return -1;
	a->cfg.accel = accel;
	return 0;
}

/* ---- build ---- */

static int build_snapshot(struct appliance *a, struct template *t, struct tpl_info *in, int *built,
                          kerr_t *err)
{
	char key[TPL_KEY_LEN + 1];
	int64_t deadline = mono_ns() + (int64_t)(a->cfg.app_timeout_ms + 60000) * 1000000;
	int fd, rc;

	*built = 0;
	if (tpl_key(&a->store, &a->cfg, a->cfg.accel, key, err) < 0 ||
	    tpl_paths(&a->store, key, t, err) < 0 || mkdir_p(a->store.dir, 0755, err) < 0)
		return -1;
	fd = tpl_lock(t, 1, deadline, err);
	if (fd < 0)
		return -1;
	rc = tpl_verify(t, in, err);
	if (rc < 0 && (err->errnum == ENOENT || err->errnum == EBADMSG)) {
		rc = tpl_build(&a->store, &a->cfg, a->cfg.accel, t, in, err);
		*built = rc == 0;
		/* A build that failed leaves nothing: no lock file, no empty store. */
		if (rc < 0) {
			unlink(t->lock);
			rmdir(a->store.dir);
		}
	}
	close(fd);
	return rc;
}

static int appliance_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, 0, 't' },
		{ "accel", required_argument, 0, 'a' },
		{ 0, 0, 0, 0 },
	};
	static struct appliance a;
	struct template t;
	struct tpl_info in;
	enum accel accel = ACCEL_AUTO;
	unsigned timeout = 0;
	kerr_t err;
	int c, built;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 't' && ctl_parse_uint(optarg, 100, 3600000, &timeout) < 0)
			return fprintf(stderr, "kuasar-ctl: --timeout: 100 to 3600000 ms\n"), 2;
		if (c == '?')
			return 2;
		if (c == 'a' && accel_parse(optarg, &accel) < 0)
			return fprintf(stderr, "kuasar-ctl: --accel: auto, kvm or tcg\n"), 2;
	}
	if (optind + 1 != argc)
		return fprintf(stderr, "usage: kuasar-ctl appliance build DIR [--timeout MS]\n"), 2;
	if (appliance_load(argv[optind], &a, &err) < 0)
		return ctl_fail(&err);
	if (timeout)
		a.cfg.app_timeout_ms = (int)timeout;
	a.cfg.accel = accel;
	if (resolve_accel(&a) < 0)
		return 1;
	if (build_snapshot(&a, &t, &in, &built, &err) < 0)
		return ctl_fail(&err);
	printf("appliance %s: snapshot %s %s (%s)\n", a.dir, t.key,
	       built ? "built" : "already built", in.accel);
	if (built)
		printf("  booted, app ready %.0f ms after its start, saved: %.0f ms in all; "
		       "device state %lld bytes\n",
		       in.app_ready_ms, in.build_ms, in.state_bytes);
	return 0;
}

/* ---- clones ---- */

static int clone_net(struct clone *c, struct vm_config *cfg, kerr_t *err)
{
	memset(&c->nic, 0, sizeof(c->nic));
	c->nic.fd = -1;
	if (!c->netns)
		return podnet_scratch_taps(1, &c->nic.fd, err) < 0 ? -1 : (cfg->nics = &c->nic, 0);
	if (podnet_attach(c->netns, &c->net, err) < 0)
		return -1;
	c->attached = 1;
	if (c->net.n_ifs != 1)
		return kerr_set(err, EINVAL, "%s has %u interfaces; an appliance takes exactly one",
		                c->netns, c->net.n_ifs);
	c->nic.fd = c->net.ifs[0].tap_fd;
	memcpy(c->nic.mac, c->net.ifs[0].mac, 6);
	c->nic.mtu = c->net.ifs[0].mtu;
	cfg->nics = &c->nic;
	cfg->vhost_net = podnet_vhost_usable();
	return 0;
}

static void clone_release_net(struct clone *c)
{
	kerr_t e;

	if (c->netns) {
		podnet_close_fds(&c->net);
		if (c->attached && podnet_detach(c->netns, &e) < 0)
			fprintf(stderr, "kuasar-ctl: warning: %s\n", e.msg);
		c->attached = 0;
	} else if (c->nic.fd >= 0) {
		close(c->nic.fd);
	}
	c->nic.fd = -1;
}

/* Starts one clone (or a cold boot with cold set): restored, unique, networked. */
static int clone_start(struct appliance *a, struct clone *c, const char *id, int cold, int sigfd,
                       int keep, kerr_t *err)
{
	struct vm_config cfg = a->cfg;
	struct guest_prep prep;
	int rc;

	vm_init(&c->vm, id);
	c->vm.sigfd = sigfd;
	c->vm.no_share = 1;
	c->t0 = mono_ns();
	if (clone_net(c, &cfg, err) < 0) {
		clone_release_net(c);
		return kerr_wrap(err, "%s: network", id);
	}
	rc = vm_launch(&c->vm, &cfg, cold ? NULL : &a->store, ctl_run_dir(), keep, err);
	if (rc == 0 && !cold && strcmp(c->vm.boot_mode, "template"))
		rc = kerr_set(err, EIO, "%s: not restored (%s)", id, c->vm.boot_note);
	c->t_launched = mono_ns();
	if (rc == 0)
		rc = vm_prepare_guest(&c->vm, &prep, err);
	c->t_unique = mono_ns();
	if (rc == 0 && c->netns)
		rc = guestnet_setup(&c->vm.link, &c->net, !cold, NULL, mono_ns() + RPC_TIMEOUT_NS,
		                    err);
	c->t_net = mono_ns();
	if (rc < 0) {
		vm_destroy(&c->vm);
		clone_release_net(c);
		return kerr_wrap(err, "%s", id);
	}
	return 0;
}

static void clone_stop(struct clone *c)
{
	kerr_t e;

	if (c->vm.pid > 0 && !c->vm.exited)
		vm_shutdown(&c->vm, 5000, &e);
	vm_destroy(&c->vm);
	clone_release_net(c);
}

/* The app's state as the guest reports it: 1 if it exited (status filled), 0 if running. */
static int app_exited(struct clone *c, unsigned *status, kerr_t *err)
{
	agent_check_t *r = NULL;
	int rc = 0;

	if (agent_check(&c->vm.link, &r, mono_ns() + RPC_TIMEOUT_NS, err) < 0)
		return -1;
	if (r->app && (r->app->state == KUASAR__SANDBOX__V1__APP_STATUS__STATE__EXITED ||
	               r->app->state == KUASAR__SANDBOX__V1__APP_STATUS__STATE__FAILED)) {
		*status = r->app->state == KUASAR__SANDBOX__V1__APP_STATUS__STATE__EXITED
		              ? r->app->exit_status
		              : 127;
		rc = 1;
	}
	agent_check_free(r);
	return rc;
}

/* New console output (the app's, copied there by kuasar-init) to stdout. */
static void tail_console(struct clone *c, int prefix)
{
	char buf[8192];
	int fd = open(c->vm.paths.console_log, O_RDONLY | O_CLOEXEC);
	ssize_t n, start;

	if (fd < 0)
		return;
	while ((n = pread(fd, buf, sizeof(buf), c->log_off)) > 0) {
		c->log_off += n;
		if (!prefix) {
			fwrite(buf, 1, (size_t)n, stdout);
			continue;
		}
		/* Whole lines only, each with its clone's id: a line still being written is
		 * read again next time (unless it fills the buffer). */
		start = 0;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n') {
				printf("[%s] %.*s", c->vm.id, (int)(i - start + 1), buf + start);
				start = i + 1;
			}
		if (!start && n == (ssize_t)sizeof(buf)) {
			printf("[%s] %.*s\n", c->vm.id, (int)n, buf);
			start = n;
		}
		c->log_off += start - n;
		if (start < n)
			break;
	}
	fflush(stdout);
	close(fd);
}

static int run_usage(void)
{
	fprintf(stderr,
	        "usage: kuasar-ctl appliance run DIR [--network NETNS] [--count N] [--id ID]\n"
	        "                                [--cold] [--keep]\n"
	        "  restores N clones of the appliance's snapshot (building it if missing), each\n"
	        "  unique and on its own network (NETNS: one per clone, comma-separated, or one\n"
	        "  for a single clone); prints the apps' output until they all exit (the exit\n"
	        "  code is the first non-zero one) or SIGINT/SIGTERM stops them; --keep: prints\n"
	        "  their ids and leaves them running (kuasar-ctl shutdown ID stops one)\n");
	return 2;
}

struct run_opts {
	const char *dir, *id;
	char *netns_list;
	unsigned count;
	int cold, keep;
};

static int parse_run(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{ "network", required_argument, 0, 'N' }, { "count", required_argument, 0, 'n' },
		{ "id", required_argument, 0, 'i' },      { "cold", no_argument, 0, 'C' },
		{ "keep", no_argument, 0, 'K' },          { 0, 0, 0, 0 },
	};
	int c;

	o->count = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'N': o->netns_list = optarg; break;
		case 'n':
			if (ctl_parse_uint(optarg, 1, MAX_CLONES, &o->count) < 0)
				return fprintf(stderr, "kuasar-ctl: --count: 1 to %d\n",
				               MAX_CLONES),
				       -1;
			break;
		case 'i': o->id = optarg; break;
		case 'C': o->cold = 1; break;
		case 'K': o->keep = 1; break;
		default: return -1;
		}
	}
	if (optind + 1 != argc)
		return -1;
	o->dir = argv[optind];
	return 0;
}

static int assign_netns(struct clone *cl, unsigned n, char *list, kerr_t *err)
{
	char *save = NULL, *ns = list ? strtok_r(list, ",", &save) : NULL;
	unsigned i = 0;

	for (; ns && i < n; ns = strtok_r(NULL, ",", &save))
		cl[i++].netns = ns;
	if (list && (i != n || ns))
		return kerr_set(err, EINVAL, "--network names %s network namespaces for %u clones",
		                i < n ? "fewer" : "more", n);
	return 0;
}

/* Until every app exited or a signal came: the apps' output, then their exits. */
static int supervise(struct clone *cl, unsigned n, int sigfd)
{
	unsigned left = n, first_bad = 0;

	while (left) {
		struct pollfd p = { .fd = sigfd, .events = POLLIN };
		kerr_t e;

		if (poll(&p, 1, 200) > 0) {
			fprintf(stderr, "kuasar-ctl: stopping %u clone%s\n", left,
			        left == 1 ? "" : "s");
			return 130;
		}
		for (unsigned i = 0; i < n; i++) {
			struct clone *c = &cl[i];
			int rc;

			if (c->done)
				continue;
			vm_console_pump(&c->vm);
			tail_console(c, n > 1);
			rc = app_exited(c, &c->exit_status, &e);
			if (rc == 0)
				continue;
			if (rc < 0) {
				fprintf(stderr, "kuasar-ctl: %s: %s\n", c->vm.id, e.msg);
				c->exit_status = 255;
			}
			c->done = 1;
			left--;
			fprintf(stderr, "kuasar-ctl: %s: app exited with status %u\n", c->vm.id,
			        c->exit_status);
			if (c->exit_status && !first_bad)
				first_bad = c->exit_status;
		}
	}
	return (int)first_bad;
}

/* --keep: the clones outlive us. Each one's netns is recorded next to it, so that
 * `kuasar-ctl shutdown ID` takes our filters and qdiscs out of it. */
static int keep_clones(struct clone *cl, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct clone *c = &cl[i];
		kerr_t e;

		if (c->netns && ctl_record_netns(&c->vm, c->netns, &e) < 0)
			fprintf(stderr, "kuasar-ctl: warning: %s\n", e.msg);
		if (c->netns)
			podnet_close_fds(&c->net); /* the VMM holds the taps now */
		else if (c->nic.fd >= 0)
			close(c->nic.fd);
		vm_release(&c->vm);
		printf("%s\n", c->vm.id);
	}
	fprintf(stderr, "kuasar-ctl: %u clone%s kept; stop with kuasar-ctl shutdown ID\n", n,
	        n == 1 ? "" : "s");
	return 0;
}

static int appliance_run(int argc, char **argv)
{
	static struct clone cl[MAX_CLONES];
	static struct appliance a;
	struct run_opts o = { 0 };
	char base[ID_MAX + 1];
	unsigned started = 0;
	kerr_t err;
	int sigfd, rc = 0;

	if (parse_run(argc, argv, &o) < 0)
		return run_usage();
	if (appliance_load(o.dir, &a, &err) < 0 ||
	    assign_netns(cl, o.count, o.netns_list, &err) < 0)
		return ctl_fail(&err);
	if (resolve_accel(&a) < 0)
		return 1;
	if (o.id)
		snprintf(base, sizeof(base), "%.*s", ID_MAX - 4, o.id);
	else
		ctl_random_id(base, sizeof(base)); /* vm-XXXXXXXX */
	sigfd = ctl_watch_signals();
	for (unsigned i = 0; i < o.count && rc == 0; i++) {
		char id[ID_MAX + 1];
		double ms;

		if (o.count == 1)
			snprintf(id, sizeof(id), "%s", base);
		else
			snprintf(id, sizeof(id), "%.*s-%u", ID_MAX - 4, base, i);
		if (clone_start(&a, &cl[i], id, o.cold, sigfd, o.keep, &err) < 0) {
			rc = ctl_fail(&err);
			break;
		}
		started++;
		ms = (double)(mono_ns() - cl[i].t0) / 1e6;
		fprintf(stderr, "kuasar-ctl: %s: %s in %.1f ms, hostname %s%s%s\n", id,
		        o.cold ? "cold booted" : "restored serving", ms, cl[i].vm.hostname,
		        cl[i].netns ? ", network " : "", cl[i].netns ? cl[i].netns : "");
	}
	if (rc == 0 && o.keep)
		return keep_clones(cl, started);
	if (rc == 0)
		rc = supervise(cl, started, sigfd);
	for (unsigned i = 0; i < started; i++) {
		tail_console(&cl[i], started > 1);
		clone_stop(&cl[i]);
	}
	return rc;
}

int ctl_appliance(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "build"))
		return appliance_build(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return appliance_run(argc - 1, argv + 1);
	fprintf(stderr, "usage: kuasar-ctl appliance build DIR [--timeout MS]\n"
	                "       kuasar-ctl appliance run DIR [--network NETNS] [--count N] "
	                "[--id ID] [--cold]\n"
	                "  DIR: made by tools/mkimage.sh --app IMAGE.tar -o DIR\n");
	return 2;
}

/* ---- bench appliance ---- */

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

/* Until an HTTP answer's first bytes arrive from addr:port (connects retried every 2 ms,
 * each attempt given 200 ms). */
static int http_answer(const char *addr, unsigned port, int64_t deadline, kerr_t *err)
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
	if (clone_start(&b->a, &c, id, m == B_COLD, -1, 0, err) < 0)
		return -1;
	if (!b->addr[0] && first_ipv4(&c.net, b->addr, sizeof(b->addr)) < 0)
		rc = kerr_set(err, EINVAL, "%s has no IPv4 address to reach the app on", b->netns);
	else
		rc = http_answer(b->addr, b->port, c.t0 + 120000000000LL, err);
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
	clone_stop(&c);
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
		rc = clone_start(&b->a, &cl[i], id, m == B_COLD, -1, 0, err);
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
		clone_stop(&cl[i]);
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
	if (appliance_load(argv[optind], &b.a, &err) < 0)
		return ctl_fail(&err);
	if (!b.port)
		b.port = b.a.port;
	if (!b.port)
		return fprintf(stderr, "kuasar-ctl: the appliance is not ready on a TCP port: give "
		                       "--port\n"),
		       2;
	if (resolve_accel(&b.a) < 0)
		return 1;
	fprintf(stderr, "bench appliance: snapshot ...");
	if (build_snapshot(&b.a, &t, &in, &built, &err) < 0)
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
