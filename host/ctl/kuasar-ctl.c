/* kuasar-ctl: boot sandbox VMs and talk to kuasar-init.
 *
 *   kuasar-ctl boot [--kernel K] [--initrd I | --image IMG] [--memory MiB] [--vcpus N]
 *                   [--accel auto|kvm|tcg] [--json] [--keep] [--id ID]
 *   kuasar-ctl ping ID
 *   kuasar-ctl shutdown ID
 *   kuasar-ctl list */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "net/podnet.h"
#include "rpc/agent.h"
#include "vm/launch.h"
#include "vm/template.h"
#include "vm/vm.h"

#define SHUTDOWN_TIMEOUT_MS 10000
#define PING_TIMEOUT_MS 10000

#define fail ctl_fail

static double ms(int64_t ns)
{
	return (double)ns / 1e6;
}

struct boot_opts {
	struct vm_config cfg;
	char id[ID_MAX + 1];
	char hostname[HOSTNAME_MAX + 1];
	int json, keep;
};

static int boot_usage(void)
{
	fprintf(stderr,
	        "usage: kuasar-ctl boot [--kernel K] [--initrd I] [--memory MiB] [--vcpus N]\n"
	        "                       [--accel auto|kvm|tcg] [--timeout MS] [--log-level L]\n"
	        "                       [--image IMG] [--id ID] [--keep] [--json]\n"
	        "                       [--until link|console] [--link auto|serial|vsock]\n"
	        "                       [--template] [--hostname NAME]\n"
	        "  --template: restore from the template of this VM's shape (built on first\n"
	        "  use; KUASAR_TEMPLATE_DIR, KUASAR_TEMPLATE_MEM_DIR), cold boot if unusable\n"
	        "  --until console: stop at the init's first console line and kill the VM (for\n"
	        "  benchmarking kernels whose guest cannot answer, e.g. a distro kernel)\n");
	return 2;
}

/* One of boot's own options (not a VM option ctl_vm_option takes): 0, or -1 with a message. */
static int boot_option(int c, const char *arg, struct boot_opts *o, int *initrd_set)
{
	unsigned timeout;

	switch (c) {
	case 'i':
		o->cfg.initrd = arg;
		*initrd_set = 1;
		return 0;
	case 'd': o->cfg.image = arg; return 0;
	case 'L':
		if (link_parse(arg, &o->cfg.link) < 0)
			return fprintf(stderr, "kuasar-ctl: --link: auto, serial or vsock\n"), -1;
		return 0;
	case 'u':
		if (strcmp(arg, "link") && strcmp(arg, "console"))
			return fprintf(stderr, "kuasar-ctl: --until: link or console\n"), -1;
		o->cfg.until_console = !strcmp(arg, "console");
		return 0;
	case 'n': snprintf(o->id, sizeof(o->id), "%s", arg); return 0;
	case 'H': snprintf(o->hostname, sizeof(o->hostname), "%s", arg); return 0;
	case 'K': o->keep = 1; return 0;
	case 'j': o->json = 1; return 0;
	case 't':
		if (ctl_parse_uint(arg, 100, 3600000, &timeout) < 0)
			return fprintf(stderr, "kuasar-ctl: --timeout: 100 to 3600000 ms\n"), -1;
		o->cfg.boot_timeout_ms = (int)timeout;
		return 0;
	default: return -1;
	}
}

static int parse_boot(int argc, char **argv, struct boot_opts *o)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, 0, 'k' },
		{ "initrd", required_argument, 0, 'i' },
		{ "memory", required_argument, 0, 'm' },
		{ "vcpus", required_argument, 0, 'c' },
		{ "accel", required_argument, 0, 'a' },
		{ "timeout", required_argument, 0, 't' },
		{ "log-level", required_argument, 0, 'l' },
		{ "id", required_argument, 0, 'n' },
		{ "qemu", required_argument, 0, 'q' },
		{ "keep", no_argument, 0, 'K' },
		{ "json", no_argument, 0, 'j' },
		{ "image", required_argument, 0, 'd' },
		{ "until", required_argument, 0, 'u' },
		{ "link", required_argument, 0, 'L' },
		{ "template", no_argument, 0, 'T' },
		{ "hostname", required_argument, 0, 'H' },
		{ 0, 0, 0, 0 },
	};
	int c, initrd_set = 0;

	ctl_config_defaults(&o->cfg);
	ctl_random_id(o->id, sizeof(o->id));
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int handled = ctl_vm_option(c, optarg, &o->cfg);

		if (handled < 0 || (!handled && boot_option(c, optarg, o, &initrd_set) < 0))
			return -1;
	}
	/* A disk image carries the init itself; an initrd only if asked for as well. */
	if (o->cfg.image && !initrd_set)
		o->cfg.initrd = NULL;
	return optind == argc ? 0 : -1;
}

static int check_inputs(const struct vm_config *cfg, kerr_t *err)
{
	if (access(cfg->kernel, R_OK) < 0)
		return kerr_sys(err, "kernel %s (build it with 'make bin/vmlinux.bin')",
		                cfg->kernel);
	if (cfg->image && access(cfg->image, R_OK) < 0)
		return kerr_sys(err, "disk image %s (build it with 'make bin/kuasar.img')",
		                cfg->image);
	if (cfg->initrd && access(cfg->initrd, R_OK) < 0)
		return kerr_sys(err, "initrd %s (build it with 'make bin/kuasar.initrd')",
		                cfg->initrd);
	return 0;
}

struct boot_report {
	struct guest_prep prep;
	int64_t ready_ns; /* made unique, share mounted: what a sandbox waits for */
	int64_t shutdown_ns;
	struct proc_mem mem; /* of a kept VM's VMM */
};

static void print_json(const struct vm *vm, const struct boot_opts *o, const struct boot_report *r)
{
	json_object *j = json_object_new_object();
	const struct vm_times *t = &vm->t;

	json_object_object_add(j, "id", json_object_new_string(vm->id));
	json_object_object_add(j, "accel", json_object_new_string(accel_name(vm->accel)));
	json_object_object_add(j, "accel_why", json_object_new_string(vm->accel_why));
	json_object_object_add(j, "link", json_object_new_string(vm->link_kind));
	json_object_object_add(j, "boot", json_object_new_string(vm->boot_mode));
	json_object_object_add(j, "template", json_object_new_string(vm->template_key));
	json_object_object_add(j, "boot_note", json_object_new_string(vm->boot_note));
	json_object_object_add(j, "hostname", json_object_new_string(vm->hostname));
	json_object_object_add(j, "cid", json_object_new_int64(vm->cid));
	json_object_object_add(j, "spawn_to_load_ms",
	                       t->load_ns ? json_object_new_double(ms(t->load_ns - t->spawn_ns))
	                                  : NULL);
	json_object_object_add(j, "spawn_to_ready_ms",
	                       json_object_new_double(ms(r->ready_ns - t->spawn_ns)));
	json_object_object_add(j, "spawn_to_qmp_ms",
	                       json_object_new_double(ms(t->qmp_ns - t->spawn_ns)));
	json_object_object_add(
	    j, "spawn_to_console_ms",
	    t->console_ns ? json_object_new_double(ms(t->console_ns - t->spawn_ns)) : NULL);
	json_object_object_add(j, "spawn_to_link_ms",
	                       json_object_new_double(ms(t->link_ns - t->spawn_ns)));
	json_object_object_add(j, "guest_kernel_to_init_ms",
	                       json_object_new_double(ms((int64_t)t->kernel_to_init_ns)));
	json_object_object_add(j, "guest_init_to_link_ms",
	                       json_object_new_double(ms((int64_t)t->init_to_link_ns)));
	json_object_object_add(j, "clock_offset_ms",
	                       json_object_new_double(ms(r->prep.clock.offset_ns)));
	json_object_object_add(j, "clock_rtt_ms", json_object_new_double(ms(r->prep.clock.rtt_ns)));
	json_object_object_add(j, "entropy_avail", json_object_new_int((int)r->prep.entropy_avail));
	json_object_object_add(j, "share_fs_magic",
	                       json_object_new_int64((int64_t)r->prep.share_magic));
	json_object_object_add(j, "kept", json_object_new_boolean(o->keep));
	if (o->keep) {
		json_object_object_add(j, "vmm_pid", json_object_new_int(vm->pid));
		json_object_object_add(j, "vmm_rss_kib",
		                       json_object_new_int64((int64_t)r->mem.rss_kib));
		json_object_object_add(j, "vmm_pss_kib",
		                       json_object_new_int64((int64_t)r->mem.pss_kib));
		json_object_object_add(j, "vmm_uss_kib",
		                       json_object_new_int64((int64_t)r->mem.uss_kib));
	}
	if (!o->keep)
		json_object_object_add(j, "shutdown_ms",
		                       json_object_new_double(ms(r->shutdown_ns)));
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
	json_object_put(j);
}

static void print_text(const struct vm *vm, const struct boot_opts *o, const struct boot_report *r)
{
	const struct vm_times *t = &vm->t;

	printf("sandbox %s: %s, guest answered %.1f ms after spawn (accel %s: %s)\n", vm->id,
	       strcmp(vm->boot_mode, "template") ? "cold boot" : "restored from a template",
	       ms(t->link_ns - t->spawn_ns), accel_name(vm->accel), vm->accel_why);
	if (vm->template_key[0])
		printf("  template %s%s%s\n", vm->template_key, vm->boot_note[0] ? ": " : "",
		       vm->boot_note);
	else if (vm->boot_note[0])
		printf("  %s\n", vm->boot_note);
	printf("  spawn -> QMP ready          %8.1f ms\n", ms(t->qmp_ns - t->spawn_ns));
	if (t->load_ns)
		printf("  spawn -> state loading      %8.1f ms\n", ms(t->load_ns - t->spawn_ns));
	if (t->console_ns)
		printf("  spawn -> init's first line  %8.1f ms\n", ms(t->console_ns - t->spawn_ns));
	printf("  spawn -> link ready         %8.1f ms  (Check over %s)\n",
	       ms(t->link_ns - t->spawn_ns), vm->link_kind);
	printf("  spawn -> ready (unique)     %8.1f ms  (entropy, clock, hostname %s, share)\n",
	       ms(r->ready_ns - t->spawn_ns), vm->hostname);
	if (!t->load_ns) {
		printf("  guest: kernel -> init       %8.1f ms\n",
		       ms((int64_t)t->kernel_to_init_ns));
		printf("  guest: init -> link         %8.1f ms\n", ms((int64_t)t->init_to_link_ns));
	}
	printf("  clock synced: offset %.3f ms, round trip %.3f ms; entropy_avail %u\n",
	       ms(r->prep.clock.offset_ns), ms(r->prep.clock.rtt_ns), r->prep.entropy_avail);
	printf("  share %s mounted in the guest on /run/kuasar/shared (fs magic 0x%llx)\n",
	       vm->paths.shared, (unsigned long long)r->prep.share_magic);
	if (o->keep) {
		printf("kept running: kuasar-ctl ping %s | kuasar-ctl shutdown %s\n", vm->id,
		       vm->id);
		printf("  console log: %s\n", vm->paths.console_log);
		printf("  VMM %d memory: RSS %.1f MiB, PSS %.1f MiB, private (USS) %.1f MiB\n",
		       vm->pid, r->mem.rss_kib / 1024.0, r->mem.pss_kib / 1024.0,
		       r->mem.uss_kib / 1024.0);
	} else {
		printf("shut down cleanly in %.1f ms\n", ms(r->shutdown_ns));
	}
}

static int print_console_only(const struct vm *vm, int json)
{
	double qmp = ms(vm->t.qmp_ns - vm->t.spawn_ns), con = ms(vm->t.console_ns - vm->t.spawn_ns);

	if (json)
		printf("{ \"id\": \"%s\", \"accel\": \"%s\", \"spawn_to_qmp_ms\": %.3f, "
		       "\"spawn_to_console_ms\": %.3f }\n",
		       vm->id, accel_name(vm->accel), qmp, con);
	else
		printf("sandbox %s: init's first console line %.1f ms after spawn (QMP %.1f ms); "
		       "VM killed\n",
		       vm->id, con, qmp);
	return 0;
}

static int cmd_boot(int argc, char **argv)
{
	struct boot_opts o = { .json = 0 };
	struct boot_report r = { .shutdown_ns = 0 };
	struct vm vm;
	kerr_t err;
	int64_t t0;

	if (parse_boot(argc, argv, &o) < 0)
		return boot_usage();
	if (check_inputs(&o.cfg, &err) < 0)
		return fail(&err);
	vm_init(&vm, o.id);
	vm.sigfd = ctl_watch_signals();
	if (o.cfg.until_console && o.keep)
		return fprintf(stderr, "kuasar-ctl: --until console cannot be kept\n"), 2;
	if (o.hostname[0])
		snprintf(vm.hostname, sizeof(vm.hostname), "%s", o.hostname);
	if (vm_launch(&vm, &o.cfg, ctl_template_use(), ctl_run_dir(), o.keep, &err) < 0)
		return fail(&err);
	if (vm.boot_note[0] && !strncmp(vm.boot_note, "cold boot: ", 11))
		fprintf(stderr, "kuasar-ctl: warning: template not used: %s\n", vm.boot_note + 11);
	if (o.cfg.until_console) {
		vm_destroy(&vm);
		return print_console_only(&vm, o.json);
	}
	if (vm_prepare_guest(&vm, &r.prep, &err) < 0) {
		vm_destroy(&vm);
		return fail(&err);
	}
	r.ready_ns = mono_ns();
	if (o.keep) {
		proc_mem(vm.pid, &r.mem, NULL);
		vm_release(&vm);
	} else {
		t0 = mono_ns();
		if (vm_shutdown(&vm, SHUTDOWN_TIMEOUT_MS, &err) < 0)
			return fail(&err);
		r.shutdown_ns = mono_ns() - t0;
	}
	if (o.json)
		print_json(&vm, &o, &r);
	else
		print_text(&vm, &o, &r);
	return 0;
}

static int one_id(int argc, char **argv, const char *usage)
{
	if (argc != 2) {
		fprintf(stderr, "usage: kuasar-ctl %s\n", usage);
		return -1;
	}
	return 0;
}

static int cmd_ping(int argc, char **argv)
{
	struct vm vm;
	kerr_t err;
	agent_check_t *c = NULL;
	struct clock_sync cs;
	int64_t deadline = mono_ns() + (int64_t)PING_TIMEOUT_MS * 1000000;

	if (one_id(argc, argv, "ping ID") < 0)
		return 2;
	if (vm_attach(&vm, ctl_run_dir(), argv[1], &err) < 0)
		return fail(&err);
	if (agent_check(&vm.link, &c, deadline, &err) < 0 ||
	    agent_measure_clock(&vm.link, &cs, deadline, &err) < 0) {
		agent_check_free(c);
		vm_release(&vm);
		return fail(&err);
	}
	printf("%s: kuasar-init %s up %.3f s over %s, hostname %s, cid %u, link resets %u, "
	       "clock offset %.3f ms\n",
	       vm.id, c->version, (double)c->uptime_ns / 1e9, c->link, c->hostname, c->cid,
	       c->link_resets, ms(cs.offset_ns));
	agent_check_free(c);
	vm_release(&vm);
	return 0;
}

/* A kept appliance clone on a network namespace: our filters and qdiscs leave it (its tap
 * went with the VMM). */
static void release_netns(const char *netns)
{
	kerr_t err;

	if (netns[0] && podnet_detach(netns, &err) < 0)
		fprintf(stderr, "kuasar-ctl: warning: %s\n", err.msg);
}

static int cmd_shutdown(int argc, char **argv)
{
	struct vm vm;
	kerr_t err;
	char netns[KPATH_SIZE] = "", path[KPATH_SIZE], *text = NULL;

	if (one_id(argc, argv, "shutdown ID") < 0)
		return 2;
	if (fmt_path(path, sizeof(path), "%s/%s/" CTL_NETNS_FILE, ctl_run_dir(), argv[1]) == 0 &&
	    read_file(path, &text, NULL, sizeof(netns) - 1, NULL) == 0)
		snprintf(netns, sizeof(netns), "%s", text);
	free(text);
	if (vm_attach(&vm, ctl_run_dir(), argv[1], &err) < 0) {
		/* A VM that died on its own still leaves files to clean up. */
		if (err.errnum != ESRCH)
			return fail(&err);
		vm_release(&vm);
		vm_remove_dir(&vm);
		release_netns(netns);
		printf("%s: was not running (%s); removed its files\n", argv[1], err.msg);
		return 0;
	}
	if (vm_shutdown(&vm, SHUTDOWN_TIMEOUT_MS, &err) < 0) {
		release_netns(netns);
		return fail(&err);
	}
	release_netns(netns);
	printf("%s: shut down\n", argv[1]);
	return 0;
}

/* One line of `list --long`: how the VM started and what its VMM costs in memory. */
static void list_long(const char *id, const char *state_path)
{
	json_object *o = json_object_from_file(state_path), *v;
	struct proc_mem m = { 0 };
	const char *boot = "cold", *key = "";
	pid_t pid = vm_find_vmm(ctl_run_dir(), id);

	if (o && json_object_object_get_ex(o, "boot", &v) && json_object_get_string(v)[0])
		boot = json_object_get_string(v);
	if (o && json_object_object_get_ex(o, "template", &v))
		key = json_object_get_string(v);
	if (!pid || proc_mem(pid, &m, NULL) < 0)
		printf("%-24s %-8s not running\n", id, boot);
	else
		printf("%-24s %-8s VMM %-7d USS %6.1f MiB  PSS %6.1f MiB  RSS %6.1f MiB  %s\n", id,
		       boot, pid, m.uss_kib / 1024.0, m.pss_kib / 1024.0, m.rss_kib / 1024.0, key);
	json_object_put(o);
}

static int cmd_list(int argc, char **argv)
{
	DIR *d;
	struct dirent *e;
	char path[PATH_MAX];
	struct stat st;
	int lng = argc == 2 && (!strcmp(argv[1], "-l") || !strcmp(argv[1], "--long"));

	if (argc > 2 || (argc == 2 && !lng)) {
		fprintf(stderr, "usage: kuasar-ctl list [-l|--long]\n");
		return 2;
	}
	d = opendir(ctl_run_dir());
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s/vm.json", ctl_run_dir(), e->d_name);
		if (e->d_name[0] == '.' || stat(path, &st) < 0)
			continue;
		if (lng)
			list_long(e->d_name, path);
		else
			printf("%s\n", e->d_name);
	}
	closedir(d);
	return 0;
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{ "boot", cmd_boot,
	  "boot a sandbox VM, print its timings, shut it down (--keep: leave it)" },
	{ "run", ctl_run,
	  "run a container from an OCI bundle in a new sandbox VM (--keep: leave it)" },
	{ "exec", ctl_exec, "run a command in a kept container" },
	{ "kill", ctl_kill, "signal a kept container (--all: every process in it)" },
	{ "ps", ctl_ps, "list a kept container's processes" },
	{ "state", ctl_state, "show a kept container's state" },
	{ "stats", ctl_stats, "show a kept container's cgroup figures" },
	{ "events", ctl_events, "print a kept sandbox's task events (--count N, --timeout MS)" },
	{ "pause", ctl_pause, "freeze a kept container" },
	{ "resume", ctl_resume, "thaw a paused container" },
	{ "update", ctl_update, "change a kept container's limits (--memory BYTES, --pids N)" },
	{ "bench", ctl_bench,
	  "bench startup: restore vs cold boot vs bare VMM; bench container BUNDLE: container "
	  "start" },
	{ "cri", ctl_cri, "a small CRI client for containerd (pods, containers, exec, pod bench)" },
	{ "template", ctl_template, "VM templates: build, list, rm, prune" },
	{ "appliance", ctl_appliance,
	  "OCI images made bootable: build an appliance's snapshot, run clones already serving" },
	{ "snapshot", ctl_snapshot,
	  "snapshot a kept VM while it runs on (list, rm: the snapshot store)" },
	{ "fork", ctl_fork, "start forks of a snapshot or a kept VM, each made unique" },
	{ "ping", cmd_ping, "check that a kept VM's kuasar-init answers" },
	{ "shutdown", cmd_shutdown, "power off a kept VM and remove its files" },
	{ "list", cmd_list, "list kept VMs (-l: how each started, its VMM's USS/PSS/RSS)" },
};

static int usage(void)
{
	fprintf(stderr, "usage: kuasar-ctl [--run-dir DIR] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(stderr, "\nenvironment: KUASAR_RUN_DIR (default /run/kuasar), KUASAR_GUEST_LOG "
	                "(kuasar-init's log level: error, warn, info, debug)\n");
	return 2;
}

int main(int argc, char **argv)
{
	kerr_t err;

	if (ctl_setup(&err) < 0)
		return ctl_fail(&err);
	if (argc >= 3 && !strcmp(argv[1], "--run-dir")) {
		ctl_set_run_dir(argv[2]);
		argc -= 2;
		argv += 2;
	}
	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "kuasar-ctl: unknown command '%s'\n", argv[1]);
	return usage();
}
