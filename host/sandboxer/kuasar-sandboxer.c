/* kuasar-sandboxer: one daemon for all sandboxes. containerd's sandbox proxy plugin talks
 * to it over gRPC (containerd.services.sandbox.v1.Controller); each sandbox is a VM with
 * its own task socket. One epoll loop; VMMs outlive the daemon and are re-adopted when it
 * starts again. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "proxy/proxy.h"
#include "sandboxer/sandbox.h"
#include "sandboxer/sb_cgroup.h"

static const char usage[] =
    "usage: kuasar-sandboxer [--config FILE] [--listen SOCKET] [--run-dir DIR]\n"
    "                        [--containerd-ttrpc SOCKET] [--log-level LEVEL] [--check-config]\n"
    "\n"
    "Serves containerd's sandbox Controller API; one VM per sandbox.\n"
    "  --config FILE   configuration (default " CONFIG_DEFAULT_PATH "; a missing file\n"
    "                  means defaults)\n"
    "  --check-config  parse the configuration, print the effective values, exit\n";

struct sigwatch {
	struct loop_watch w;
	struct sandboxer *sbx;
};

static void on_signal(struct loop_watch *w, uint32_t events)
{
	struct sigwatch *s = (struct sigwatch *)w;
	struct signalfd_siginfo si;

	if (read(w->fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGCHLD) {
		sandbox_reap_orphans(s->sbx);
		return;
	}
	log_info("signal %u: exiting; running sandboxes keep running and are re-adopted on restart",
	         si.ssi_signo);
	s->sbx->loop.stop = 1;
}

static void print_config(const struct sb_config *c)
{
	printf(
	    "[sandbox]\nlog_level = \"%s\"\n\n[hypervisor]\npath = \"%s\"\nvcpus = %u\n"
	    "memory_in_mb = %u\nkernel_path = \"%s\"\nimage_path = \"%s\"\ninitrd_path = \"%s\"\n"
	    "kernel_params = \"%s\"\nentropy_source = \"%s\"\ndebug = %s\naccel = \"%s\"\n"
	    "link = \"%s\"\nboot_timeout_ms = %u\ntemplate = %s\n\n[sandboxer]\nlisten = \"%s\"\n"
	    "run_dir = \"%s\"\n"
	    "containerd_ttrpc = \"%s\"\nmemory_overhead_mb = %u\nstop_timeout_secs = %u\n"
	    "cgroup_parent = \"%s\"\ntemplate_dir = \"%s\"\ntemplate_memory_dir = \"%s\"\n"
	    "appliance_dir = \"%s\"\nsnapshot_dir = \"%s\"\nrootfs = \"%s\"\nrootfs_cache_dir = "
	    "\"%s\"\npool = %u\n"
	    "pool_idle_secs = %u\n",
	    c->log_level, c->qemu, c->vcpus, c->memory_mib, c->kernel, c->image, c->initrd,
	    c->kernel_params, c->entropy_source, c->debug ? "true" : "false", accel_name(c->accel),
	    link_name(c->link), c->boot_timeout_ms, c->template ? "true" : "false", c->listen,
	    c->run_dir, c->containerd_ttrpc, c->overhead_mib, c->stop_timeout_secs,
	    c->cgroup_parent, c->template_dir, c->template_memory_dir, c->appliance_dir,
	    c->snapshot_dir, c->rootfs_block ? "block" : "9p", c->rootfs_cache_dir, c->pool,
	    c->pool_idle_secs);
}

/* SIGCHLD too: as subreaper we inherit the orphans of every process below us (a VMM whose
 * proxy died, a tool a killed builder ran), and each is reaped when it exits. */
static int setup_signals(struct sigwatch *s, struct sandboxer *sbx, kerr_t *err)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGCHLD, 0 };

	/* A client that goes away is an error return, never the daemon's death. */
	signal(SIGPIPE, SIG_IGN);
	log_catch_fatal();
	s->w.fd = signalfd_for(sigs);
	if (s->w.fd < 0)
		return kerr_sys(err, "signalfd");
	s->w.fn = on_signal;
	s->sbx = sbx;
	return loop_add(&sbx->loop, &s->w, EPOLLIN, err);
}

static int copy_opt(char *dst, size_t n, const char *src, const char *name)
{
	if (strlen(src) >= n) {
		fprintf(stderr, "kuasar-sandboxer: fatal: %s is longer than %zu bytes\n", name,
		        n - 1);
		return -1;
	}
	strcpy(dst, src);
	return 0;
}

/* The command line over config.toml: 0, or the exit status (--help and --check-config
 * answered, or an error said). */
static int configure(int argc, char **argv, struct sandboxer *sbx)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "containerd-ttrpc", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = CONFIG_DEFAULT_PATH, *v[4] = { 0 };
	int check = 0, c;
	kerr_t err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'l': v[0] = optarg; break;
		case 'r': v[1] = optarg; break;
		case 't': v[2] = optarg; break;
		case 'L': v[3] = optarg; break;
		case 'C': check = 1; break;
		case 'h': fputs(usage, stdout); return -1;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (config_load(&sbx->cfg, config, &err) < 0) {
		fprintf(stderr, "kuasar-sandboxer: fatal: %s\n", err.msg);
		return 1;
	}
	if ((v[0] && copy_opt(sbx->cfg.listen, sizeof(sbx->cfg.listen), v[0], "--listen") < 0) ||
	    (v[1] && copy_opt(sbx->cfg.run_dir, sizeof(sbx->cfg.run_dir), v[1], "--run-dir") < 0) ||
	    (v[2] && copy_opt(sbx->cfg.containerd_ttrpc, sizeof(sbx->cfg.containerd_ttrpc), v[2],
	                      "--containerd-ttrpc") < 0) ||
	    (v[3] &&
	     copy_opt(sbx->cfg.log_level, sizeof(sbx->cfg.log_level), v[3], "--log-level") < 0))
		return 2;
	sbx->config_path = config;
	if (check) {
		print_config(&sbx->cfg);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct sandboxer sbx;
	struct sigwatch sig;
	kerr_t err;
	int rc;

	if (!strncmp(basename(argv[0]), "containerd-shim-kuasar", 22))
		return shim_compat_main(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "proxy"))
		return proxy_main(argc - 1, argv + 1);
	rc = configure(argc, argv, &sbx);
	if (rc)
		return rc < 0 ? 0 : rc;
	log_set_level(sbx.cfg.debug ? "debug" : sbx.cfg.log_level);
	/* VMMs are orphaned when their starter exits: they become our children, so their exit
	 * status reaches us. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sb_cgroup_self(sbx.own_cgroup, sizeof(sbx.own_cgroup));
	if (mkdir_p(sbx.cfg.run_dir, 0755, &err) < 0 || loop_init(&sbx.loop, &err) < 0 ||
	    setup_signals(&sig, &sbx, &err) < 0) {
		fprintf(stderr, "kuasar-sandboxer: fatal: %s\n", err.msg);
		return 1;
	}
	sandbox_recover_all(&sbx);
	pool_init(&sbx.pool, &sbx);
	sbx.grpc.methods = controller_methods;
	sbx.grpc.n_methods = controller_n_methods;
	sbx.grpc.ctx = &sbx;
	if (grpc_server_listen(&sbx.grpc, &sbx.loop, sbx.cfg.listen, &err) < 0) {
		fprintf(stderr, "kuasar-sandboxer: fatal: %s\n", err.msg);
		return 1;
	}
	log_info("listening on %s (run dir %s, %u sandboxes re-adopted)", sbx.cfg.listen,
	         sbx.cfg.run_dir, sbx.n_sandboxes);
	loop_run(&sbx.loop);
	pool_stop(&sbx.pool);
	grpc_server_close(&sbx.grpc);
	unlink(sbx.cfg.listen);
	return 0;
}
