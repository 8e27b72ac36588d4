/* kuasar-ctl bench startup: how fast a sandbox starts, restored from a template, against
 * the two numbers that frame it, all measured interleaved in one run (these machines are
 * noisy, so only ratios within a run mean anything):
 *
 *   floor    the clone's VMM process alone: started, held paused, until QMP answers
 *   restore  template restore until the guest answers Check (and until made unique)
 *   cold     kernel boot until the guest answers Check (and until prepared)
 *
 * Then K sandboxes of each kind run side by side and their VMMs' private (USS) and
 * proportional (PSS) memory is read from smaps_rollup. Prints a one-screen summary, and
 * writes JSON and an SVG plot of the latency distributions. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "vm/launch.h"
#include "vm/template.h"
#include "vm/vm.h"

#define MAX_RUNS 500
#define MAX_K 32

enum mode { M_FLOOR, M_RESTORE, M_COLD, N_MODES };
static const char *const mode_name[N_MODES] = { "floor", "restore", "cold" };

struct series {
	double link[MAX_RUNS];  /* ms: QMP (floor) or Check answered */
	double ready[MAX_RUNS]; /* ms: made unique and share mounted */
	double qmp[MAX_RUNS];   /* ms: QMP answered */
	double load[MAX_RUNS];  /* ms: device state handed over (restore) */
	int n;
};

struct mem_figures {
	double uss_mib, pss_mib, rss_mib; /* mean per VMM */
	int k;
};

struct bench {
	struct vm_config cfg;
	unsigned runs, k;
	const char *json_path, *svg_path;
	struct series s[N_MODES];
	struct mem_figures mem[N_MODES]; /* restore and cold */
	char key[TPL_KEY_LEN + 1];
	double build_ms;
	int built;
};

static int usage(void)
{
	fprintf(
	    stderr,
	    "usage: kuasar-ctl bench startup [-n RUNS] [-k SANDBOXES] [--json FILE] [--svg FILE]\n"
	    "                                [--memory MiB] [--vcpus N] [--kernel K] [--initrd I]\n"
	    "  interleaves RUNS starts of each: bare VMM (floor), template restore, cold boot;\n"
	    "  then runs SANDBOXES of each kind at once for their memory (defaults: 20, 5)\n");
	return 2;
}

static int parse(int argc, char **argv, struct bench *b)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, 0, 'K' }, { "initrd", required_argument, 0, 'i' },
		{ "memory", required_argument, 0, 'm' }, { "vcpus", required_argument, 0, 'c' },
		{ "accel", required_argument, 0, 'a' },  { "json", required_argument, 0, 'J' },
		{ "svg", required_argument, 0, 'S' },    { 0, 0, 0, 0 },
	};
	int c;

	ctl_config_defaults(&b->cfg);
	b->runs = 20;
	b->k = 5;
	while ((c = getopt_long(argc, argv, "n:k:", opts, NULL)) != -1) {
		/* -k is the sandbox count here; --kernel is the shared 'k'. */
		int handled = ctl_vm_option(c == 'K' ? 'k' : c == 'k' ? 0 : c, optarg, &b->cfg);

		if (handled < 0)
			return -1;
		if (handled)
			continue;
		switch (c) {
		case 'n':
			if (ctl_parse_uint(optarg, 3, MAX_RUNS, &b->runs) < 0)
				return fprintf(stderr, "kuasar-ctl: -n: 3 to %d\n", MAX_RUNS), -1;
			break;
		case 'k':
			if (ctl_parse_uint(optarg, 1, MAX_K, &b->k) < 0)
				return fprintf(stderr, "kuasar-ctl: -k: 1 to %d\n", MAX_K), -1;
			break;
		case 'i': b->cfg.initrd = optarg; break;
		case 'J': b->json_path = optarg; break;
		case 'S': b->svg_path = optarg; break;
		default: return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

#define stats_of ctl_stats_of

static double ms_between(int64_t a, int64_t b)
{
	return (double)(b - a) / 1e6;
}

/* One start of mode m; VMs are killed right after (they are not what is measured). */
static int one_start(struct bench *b, enum mode m, int i, kerr_t *err)
{
	struct series *s = &b->s[m];
	struct guest_prep prep;
	struct vm_config c = b->cfg;
	struct vm vm;
	char id[ID_MAX + 1];
	int rc;

	snprintf(id, sizeof(id), "bench-%s-%d-%d", mode_name[m], getpid(), i);
	vm_init(&vm, id);
	if (m == M_FLOOR) {
		struct template t;

		if (tpl_paths(ctl_templates(), b->key, &t, err) < 0)
			return -1;
		c.mem_path = t.mem;
		if (vm_floor(&vm, &c, ctl_run_dir(), err) < 0)
			return -1;
		s->link[s->n] = s->ready[s->n] = ms_between(vm.t.spawn_ns, vm.t.qmp_ns);
		s->n++;
		return 0;
	}
	rc = vm_launch(&vm, &c, m == M_RESTORE ? ctl_templates() : NULL, ctl_run_dir(), 0, err);
	if (rc == 0 && m == M_RESTORE && strcmp(vm.boot_mode, "template")) {
		vm_destroy(&vm);
		return kerr_set(err, EIO, "restore fell back to a %s", vm.boot_note);
	}
	if (rc == 0 && vm_prepare_guest(&vm, &prep, err) < 0)
		rc = -1;
	if (rc == 0) {
		s->ready[s->n] = ms_between(vm.t.spawn_ns, mono_ns());
		s->link[s->n] = ms_between(vm.t.spawn_ns, vm.t.link_ns);
		s->qmp[s->n] = ms_between(vm.t.spawn_ns, vm.t.qmp_ns);
		s->load[s->n] = vm.t.load_ns ? ms_between(vm.t.spawn_ns, vm.t.load_ns) : 0;
		s->n++;
	}
	vm_destroy(&vm);
	return rc;
}

static void progress(const struct bench *b, unsigned i, enum mode m)
{
	const struct series *r = &b->s[M_RESTORE], *c = &b->s[M_COLD], *f = &b->s[M_FLOOR];

	fprintf(
	    stderr,
	    "\rbench startup: round %u/%u %-7s  last: floor %5.1f  restore %6.1f  cold %7.1f ms ",
	    i + 1, b->runs, mode_name[m], f->n ? f->link[f->n - 1] : 0.0,
	    r->n ? r->link[r->n - 1] : 0.0, c->n ? c->link[c->n - 1] : 0.0);
}

/* Rounds rotate the order of the three modes, so none always runs first or last. */
static int latency_rounds(struct bench *b, kerr_t *err)
{
	for (unsigned i = 0; i < b->runs; i++)
		for (int j = 0; j < N_MODES; j++) {
			enum mode m = (enum mode)((i + (unsigned)j) % N_MODES);

			progress(b, i, m);
			if (one_start(b, m, (int)i, err) < 0)
				return kerr_wrap(err, "%s run %u", mode_name[m], i + 1);
		}
	fprintf(stderr, "\r%100s\r", "");
	return 0;
}

/* K VMs of one kind at once, prepared like sandboxes; their VMMs' memory, then gone. */
static int memory_round(struct bench *b, enum mode m, kerr_t *err)
{
	static struct vm vms[MAX_K];
	struct mem_figures *f = &b->mem[m];
	unsigned started = 0;
	int rc = 0;

	for (unsigned i = 0; i < b->k && rc == 0; i++) {
		struct guest_prep prep;
		char id[ID_MAX + 1];

		fprintf(stderr, "\rbench startup: memory, %s sandbox %u/%u   ", mode_name[m], i + 1,
		        b->k);
		snprintf(id, sizeof(id), "bench-mem-%s-%d-%u", mode_name[m], getpid(), i);
		vm_init(&vms[i], id);
		rc = vm_launch(&vms[i], &b->cfg, m == M_RESTORE ? ctl_templates() : NULL,
		               ctl_run_dir(), 0, err);
		if (rc == 0) {
			started++;
			rc = vm_prepare_guest(&vms[i], &prep, err);
		}
	}
	/* Let the guests settle (deferred work after the share mount) before reading. */
	usleep(300000);
	for (unsigned i = 0; i < started && rc == 0; i++) {
		struct proc_mem pm;

		if (proc_mem(vms[i].pid, &pm, err) < 0) {
			rc = -1;
			break;
		}
		f->uss_mib += pm.uss_kib / 1024.0 / started;
		f->pss_mib += pm.pss_kib / 1024.0 / started;
		f->rss_mib += pm.rss_kib / 1024.0 / started;
	}
	f->k = (int)started;
	for (unsigned i = 0; i < started; i++)
		vm_destroy(&vms[i]);
	fprintf(stderr, "\r%60s\r", "");
	return rc < 0 ? kerr_wrap(err, "memory with %u %s sandboxes", b->k, mode_name[m]) : 0;
}

static json_object *json_series(const struct series *s)
{
	json_object *o = json_object_new_object(), *link = json_object_new_array(),
	            *ready = json_object_new_array();
	struct ctl_stats st = stats_of(s->link, s->n);

	for (int i = 0; i < s->n; i++) {
		json_object_array_add(link, json_object_new_double(s->link[i]));
		json_object_array_add(ready, json_object_new_double(s->ready[i]));
	}
	json_object_object_add(o, "ms", link);
	json_object_object_add(o, "ready_ms", ready);
	json_object_object_add(o, "min_ms", json_object_new_double(st.min));
	json_object_object_add(o, "median_ms", json_object_new_double(st.median));
	json_object_object_add(o, "p90_ms", json_object_new_double(st.p90));
	st = stats_of(s->ready, s->n);
	json_object_object_add(o, "ready_median_ms", json_object_new_double(st.median));
	st = stats_of(s->qmp, s->n);
	json_object_object_add(o, "qmp_median_ms", json_object_new_double(st.median));
	st = stats_of(s->load, s->n);
	json_object_object_add(o, "load_median_ms", json_object_new_double(st.median));
	return o;
}

static void write_json(const struct bench *b, double r_floor, double c_restore)
{
	json_object *o = json_object_new_object(), *modes = json_object_new_object(),
	            *mem = json_object_new_object();

	json_object_object_add(o, "template", json_object_new_string(b->key));
	json_object_object_add(o, "template_built_ms",
	                       b->built ? json_object_new_double(b->build_ms) : NULL);
	json_object_object_add(o, "runs", json_object_new_int((int)b->runs));
	json_object_object_add(o, "memory_mib", json_object_new_int((int)b->cfg.memory_mib));
	json_object_object_add(o, "vcpus", json_object_new_int((int)b->cfg.vcpus));
	for (int m = 0; m < N_MODES; m++)
		json_object_object_add(modes, mode_name[m], json_series(&b->s[m]));
	json_object_object_add(o, "modes", modes);
	json_object_object_add(o, "restore_over_floor", json_object_new_double(r_floor));
	json_object_object_add(o, "cold_over_restore", json_object_new_double(c_restore));
	for (int m = M_RESTORE; m < N_MODES; m++) {
		json_object *x = json_object_new_object();

		json_object_object_add(x, "sandboxes", json_object_new_int(b->mem[m].k));
		json_object_object_add(x, "uss_mib", json_object_new_double(b->mem[m].uss_mib));
		json_object_object_add(x, "pss_mib", json_object_new_double(b->mem[m].pss_mib));
		json_object_object_add(x, "rss_mib", json_object_new_double(b->mem[m].rss_mib));
		json_object_object_add(mem, mode_name[m], x);
	}
	json_object_object_add(o, "memory_per_sandbox", mem);
	ctl_write_json(b->json_path, o);
}

static void write_svg(const struct bench *b)
{
	static const char *const color[N_MODES] = { "#888", "#1a7f37", "#cf222e" };
	struct ctl_row rows[N_MODES];
	char title[160];

	for (int m = 0; m < N_MODES; m++)
		rows[m] = (struct ctl_row){ mode_name[m], color[m], b->s[m].link, b->s[m].n };
	snprintf(title, sizeof(title), "sandbox start, %u interleaved runs each (%u MiB, %u vCPU)",
	         b->runs, b->cfg.memory_mib, b->cfg.vcpus);
	ctl_svg(b->svg_path, title, "ms from VMM spawn (log scale)", rows, N_MODES);
}

static void summary(const struct bench *b, double r_floor, double c_restore)
{
	printf("sandbox start (%u MiB, %u vCPU, template %s%s), %u interleaved runs each:\n",
	       b->cfg.memory_mib, b->cfg.vcpus, b->key, b->built ? ", built for this run" : "",
	       b->runs);
	printf("  %-8s %9s %9s %9s   %s\n", "mode", "min ms", "median", "p90",
	       "ready (unique) median");
	for (int m = 0; m < N_MODES; m++) {
		struct ctl_stats st = stats_of(b->s[m].link, b->s[m].n),
		                 rd = stats_of(b->s[m].ready, b->s[m].n);

		printf("  %-8s %9.1f %9.1f %9.1f   %s", mode_name[m], st.min, st.median, st.p90,
		       m == M_FLOOR ? "(QEMU until QMP answers, no guest)\n" : "");
		if (m != M_FLOOR)
			printf("%.1f ms\n", rd.median);
	}
	{
		const struct series *r = &b->s[M_RESTORE];
		double q = stats_of(r->qmp, r->n).median, l = stats_of(r->load, r->n).median,
		       a = stats_of(r->link, r->n).median, u = stats_of(r->ready, r->n).median;

		printf("  restore, medians: QMP %.1f ms, state handed over +%.1f, guest answers "
		       "+%.1f, unique and share mounted +%.1f\n",
		       q, l - q, a - l, u - a);
	}
	printf("  restore / floor: %.2fx (medians; the target on TCG is <= 1.3x)\n", r_floor);
	printf("  cold / restore:  %.1fx (medians; the target is >= 25x)\n", c_restore);
	printf("memory per sandbox, %u running of each kind (VMM smaps_rollup, mean):\n", b->k);
	printf("  %-8s %9s %9s %9s\n", "", "USS MiB", "PSS MiB", "RSS MiB");
	for (int m = M_RESTORE; m < N_MODES; m++)
		printf("  %-8s %9.1f %9.1f %9.1f\n", mode_name[m], b->mem[m].uss_mib,
		       b->mem[m].pss_mib, b->mem[m].rss_mib);
	if (b->mem[M_RESTORE].uss_mib > 0)
		printf("  cold / restore private memory: %.1fx (the target is >= 8x)\n",
		       b->mem[M_COLD].uss_mib / b->mem[M_RESTORE].uss_mib);
	if (b->json_path)
		printf("  json: %s\n", b->json_path);
	if (b->svg_path)
		printf("  plot: %s\n", b->svg_path);
}

int ctl_bench_startup(int argc, char **argv)
{
	static struct bench b;
	struct template t;
	struct tpl_info in;
	enum accel accel;
	kerr_t err;
	int lock;
	double r_floor, c_restore;

	if (parse(argc, argv, &b) < 0)
		return usage();
	/* Undecided on a fresh host: one boot decides it, as `kuasar-ctl boot` would. */
	if (accel_known(b.cfg.accel, ctl_run_dir(), &accel) < 0 &&
	    ctl_decide_accel(&b.cfg, &accel) < 0)
		return 1;
	b.cfg.accel = accel;
	fprintf(stderr, "bench startup: template for %u MiB, %u vCPU (%s) ...", b.cfg.memory_mib,
	        b.cfg.vcpus, accel_name(accel));
	lock = tpl_acquire(ctl_templates(), &b.cfg, accel, 1, &t, &in, &b.built, &err);
	if (lock < 0)
		return fprintf(stderr, "\n"), ctl_fail(&err);
	close(lock);
	snprintf(b.key, sizeof(b.key), "%s", t.key);
	b.build_ms = in.build_ms;
	fprintf(stderr, "\r%80s\r", "");
	if (latency_rounds(&b, &err) < 0 || memory_round(&b, M_RESTORE, &err) < 0 ||
	    memory_round(&b, M_COLD, &err) < 0)
		return fprintf(stderr, "\n"), ctl_fail(&err);
	r_floor = stats_of(b.s[M_RESTORE].link, b.s[M_RESTORE].n).median /
	          stats_of(b.s[M_FLOOR].link, b.s[M_FLOOR].n).median;
	c_restore = stats_of(b.s[M_COLD].link, b.s[M_COLD].n).median /
	            stats_of(b.s[M_RESTORE].link, b.s[M_RESTORE].n).median;
	summary(&b, r_floor, c_restore);
	if (b.json_path)
		write_json(&b, r_floor, c_restore);
	if (b.svg_path)
		write_svg(&b);
	return 0;
}
