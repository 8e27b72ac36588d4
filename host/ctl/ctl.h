/* Shared by kuasar-ctl's command files. */
#ifndef KUASAR_CTL_H
#define KUASAR_CTL_H

#include <stddef.h>

#include "base/err.h"
#include "vm/vmm.h"

/* The run directory (KUASAR_RUN_DIR), the template store and the default kernel and
 * initrd, found once at start. */
int ctl_setup(kerr_t *err);
const char *ctl_run_dir(void);
/* --run-dir, before the command runs. */
void ctl_set_run_dir(const char *dir);
/* vm_config_defaults plus the kernel and initrd next to this binary, if present. */
void ctl_config_defaults(struct vm_config *cfg);
void ctl_random_id(char *buf, size_t n);
int ctl_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
/* getopt codes shared by boot and run: k kernel, m memory, c vcpus, a accel, q qemu,
 * l log level, T template. 1 if handled, 0 if not one of them, -1 (message printed) if invalid. */
int ctl_vm_option(int c, const char *arg, struct vm_config *cfg);
/* Blocks SIGINT/SIGTERM/SIGHUP and returns a signalfd for them. */
int ctl_watch_signals(void);
int ctl_fail(const kerr_t *err);
/* The template store (KUASAR_TEMPLATE_DIR, KUASAR_TEMPLATE_MEM_DIR or the defaults), and
 * the same only if --template was given (NULL otherwise: cold boots). */
struct tpl_store;
const struct tpl_store *ctl_templates(void);
const struct tpl_store *ctl_template_use(void);

#define GUEST_SHARE "/run/kuasar/shared"
#define RPC_TIMEOUT_NS 30000000000LL

struct ctl_run_opts {
	struct vm_config cfg;
	char id[ID_MAX + 1];
	const char *bundle;
	int interactive;
	int terminal;
	int keep;
	char **args;
	int n_args;
};

struct vm;
/* Lays out <share>/ctr for a bundle: its root bind-mounted, a config.json for the guest. */
int ctl_stage(struct vm *vm, const struct ctl_run_opts *o, kerr_t *err);

/* Benchmark figures (ctl_plot.c). */
struct ctl_stats {
	double min, median, p90, mean;
};
struct ctl_stats ctl_stats_of(const double *v, int n);
struct ctl_row {
	const char *name, *color;
	const double *ms;
	int n;
};
/* An SVG: one row per series, every value a dot on a log axis, the median a bar. */
void ctl_svg(const char *path, const char *title, const char *axis, const struct ctl_row *rows,
             int n_rows);
/* Writes o, pretty, to path (a warning if it cannot) and releases o. */
struct json_object;
void ctl_write_json(const char *path, struct json_object *o);
/* KVM opens but no guest has run under it yet: one throwaway boot decides (remembered for
 * this host boot). -1 with the error printed. */
int ctl_decide_accel(const struct vm_config *cfg, enum accel *accel);

/* Records the network namespace a kept VM was attached to (in its directory, as
 * CTL_NETNS_FILE), for `shutdown` to detach. */
#define CTL_NETNS_FILE "netns"
struct vm;
int ctl_record_netns(const struct vm *vm, const char *netns, kerr_t *err);

int ctl_run(int argc, char **argv);
/* kuasar-ctl appliance (ctl_appliance.c) and bench appliance. */
int ctl_appliance(int argc, char **argv);
/* kuasar-ctl snapshot and fork (ctl_snapshot.c). */
int ctl_snapshot(int argc, char **argv);
int ctl_fork(int argc, char **argv);
int ctl_bench_appliance(int argc, char **argv);
int ctl_bench_fork(int argc, char **argv);
int ctl_bench(int argc, char **argv);
int ctl_template(int argc, char **argv);
int ctl_bench_startup(int argc, char **argv);
/* bench tcp: two pods' network paths side by side (ctl_bench_net.c). */
int ctl_bench_tcp(int argc, char **argv);
int ctl_cri(int argc, char **argv);
int ctl_events(int argc, char **argv);
int ctl_exec(int argc, char **argv);
int ctl_kill(int argc, char **argv);
int ctl_ps(int argc, char **argv);
int ctl_stats(int argc, char **argv);
int ctl_state(int argc, char **argv);
int ctl_pause(int argc, char **argv);
int ctl_resume(int argc, char **argv);
int ctl_update(int argc, char **argv);

#endif
