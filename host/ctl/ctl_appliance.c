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
#include "ctl/ctl_clone.h"
#include "net/podnet.h"
#include "proxy/guestnet.h"
#include "vm/appliance.h"
#include "vm/launch.h"
#include "vm/template.h"
#include "vm/vm.h"

static int scratch_taps(unsigned n, int *fds, kerr_t *err)
{
	return podnet_scratch_taps(n, fds, err);
}

/* The appliance at dir with kuasar-ctl's defaults, one NIC (clones get a pod's network
 * or a tap that goes nowhere) and the template memory directory from the environment. */
int ctl_appliance_load(const char *dir, struct appliance *a, kerr_t *err)
{
	struct vm_config base;

	ctl_config_defaults(&base);
	if (appliance_open(dir, &base, getenv("KUASAR_TEMPLATE_MEM_DIR"), a, err) < 0)
		return -1;
	a->cfg.n_nics = 1;
	a->store.scratch_taps = scratch_taps;
	return 0;
}

int ctl_appliance_accel(struct appliance *a)
{
	enum accel accel;

	if (accel_known(a->cfg.accel, ctl_run_dir(), &accel) < 0 &&
	    ctl_decide_accel(&a->cfg, &accel) < 0)
		return -1;
	a->cfg.accel = accel;
	return 0;
}

/* ---- build ---- */

int ctl_appliance_snapshot(struct appliance *a, struct template *t, struct tpl_info *in, int *built,
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
	if (ctl_appliance_load(argv[optind], &a, &err) < 0)
		return ctl_fail(&err);
	if (timeout)
		a.cfg.app_timeout_ms = (int)timeout;
	a.cfg.accel = accel;
	if (ctl_appliance_accel(&a) < 0)
		return 1;
	if (ctl_appliance_snapshot(&a, &t, &in, &built, &err) < 0)
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
int ctl_clone_start(struct appliance *a, struct clone *c, const char *id, int cold, int sigfd,
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
	if (c->fork_state) {
		snprintf(c->vm.boot_mode, sizeof(c->vm.boot_mode), "fork");
		rc = vm_restore(&c->vm, &cfg, c->fork_state, ctl_run_dir(), keep, err);
	} else {
		rc = vm_launch(&c->vm, &cfg, cold ? NULL : &a->store, ctl_run_dir(), keep, err);
	}
	if (rc == 0 && !cold && !c->fork_state && strcmp(c->vm.boot_mode, "template"))
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

void ctl_clone_stop(struct clone *c)
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

int ctl_assign_netns(struct clone *cl, unsigned n, char *list, kerr_t *err)
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

static int stopping(unsigned left)
{
	fprintf(stderr, "kuasar-ctl: stopping %u clone%s\n", left, left == 1 ? "" : "s");
	return 130;
}

/* Until every app exited or a signal came: the apps' output, then their exits. A signal
 * that arrives while a clone is asked how its app is doing is read by that call (EINTR). */
static int supervise(struct clone *cl, unsigned n, int sigfd)
{
	unsigned left = n, first_bad = 0;

	while (left) {
		struct pollfd p = { .fd = sigfd, .events = POLLIN };
		kerr_t e;

		if (poll(&p, 1, 200) > 0)
			return stopping(left);
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
			if (rc < 0 && e.errnum == EINTR) /* the signal came during the check */
				return stopping(left);
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

int ctl_clones_finish(struct clone *cl, unsigned started, int rc, int keep, int sigfd)
{
	if (rc == 0 && keep)
		return keep_clones(cl, started);
	if (rc == 0)
		rc = supervise(cl, started, sigfd);
	for (unsigned i = 0; i < started; i++) {
		tail_console(&cl[i], started > 1);
		ctl_clone_stop(&cl[i]);
	}
	return rc;
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
	if (ctl_appliance_load(o.dir, &a, &err) < 0 ||
	    ctl_assign_netns(cl, o.count, o.netns_list, &err) < 0)
		return ctl_fail(&err);
	if (ctl_appliance_accel(&a) < 0)
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
		if (ctl_clone_start(&a, &cl[i], id, o.cold, sigfd, o.keep, &err) < 0) {
			rc = ctl_fail(&err);
			break;
		}
		started++;
		ms = (double)(mono_ns() - cl[i].t0) / 1e6;
		fprintf(stderr, "kuasar-ctl: %s: %s in %.1f ms, hostname %s%s%s\n", id,
		        o.cold ? "cold booted" : "restored serving", ms, cl[i].vm.hostname,
		        cl[i].netns ? ", network " : "", cl[i].netns ? cl[i].netns : "");
	}
	return ctl_clones_finish(cl, started, rc, o.keep, sigfd);
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
