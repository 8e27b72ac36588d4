/* kuasar-ctl run: one container in a fresh sandbox VM.
 *
 * The bundle's root filesystem is bind-mounted into the VM's share next to a config.json
 * rewritten for the guest (root.path "rootfs", args from the command line); stdio travels
 * as containerd-style streams on the guest link (with --keep, output goes to files in the
 * share), and the exit code is the container's. */
#include "ctl/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "base/util.h"
#include "rpc/stdio_stream.h"
#include "rpc/task_client.h"
#include "vm/launch.h"
#include "vm/template.h"
#include "vm/vm.h"

static int run_usage(void)
{
	fprintf(stderr, "usage: kuasar-ctl run [-i] [--keep] [--memory MiB] [--vcpus N] [--id ID]\n"
	                "                      [--kernel K] [--initrd I] [--accel A] [--template]\n"
	                "                      BUNDLE [-- ARGS...]\n");
	return 2;
}

static int parse_run(int argc, char **argv, struct ctl_run_opts *o)
{
	static const struct option opts[] = {
		{ "memory", required_argument, 0, 'm' }, { "vcpus", required_argument, 0, 'c' },
		{ "id", required_argument, 0, 'n' },     { "kernel", required_argument, 0, 'k' },
		{ "initrd", required_argument, 0, 'r' }, { "accel", required_argument, 0, 'a' },
		{ "interactive", no_argument, 0, 'i' },  { "keep", no_argument, 0, 'K' },
		{ "template", no_argument, 0, 'T' },     { 0, 0, 0, 0 },
	};
	int c;

	ctl_config_defaults(&o->cfg);
	ctl_random_id(o->id, sizeof(o->id));
	while ((c = getopt_long(argc, argv, "+it", opts, NULL)) != -1) {
		int handled = ctl_vm_option(c, optarg, &o->cfg);

		if (handled < 0)
			return -1;
		if (handled)
			continue;
		switch (c) {
		case 'i': o->interactive = 1; break;
		case 't': o->terminal = 1; break;
		case 'K': o->keep = 1; break;
		case 'r': o->cfg.initrd = optarg; break;
		case 'n': snprintf(o->id, sizeof(o->id), "%s", optarg); break;
		default: return -1;
		}
	}
	if (optind >= argc)
		return -1;
	o->bundle = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	o->args = argv + optind;
	o->n_args = argc - optind;
	return 0;
}

/* Reads the bundle's config.json; rootfs gets the host path of its root. The guest copy
 * points at "rootfs" and takes the command line's args. */
static json_object *guest_spec(const struct ctl_run_opts *o, char *rootfs, size_t n, kerr_t *err)
{
	char path[PATH_MAX];
	json_object *spec, *root, *proc, *v, *args;

	snprintf(path, sizeof(path), "%s/config.json", o->bundle);
	spec = json_object_from_file(path);
	if (!spec || !json_object_object_get_ex(spec, "root", &root) ||
	    !json_object_object_get_ex(root, "path", &v) ||
	    !json_object_object_get_ex(spec, "process", &proc)) {
		json_object_put(spec);
		kerr_set(err, EINVAL, "%s: not an OCI config with root.path and process", path);
		return NULL;
	}
	if (json_object_get_string(v)[0] == '/')
		snprintf(rootfs, n, "%s", json_object_get_string(v));
	else
		snprintf(rootfs, n, "%s/%s", o->bundle, json_object_get_string(v));
	json_object_object_add(root, "path", json_object_new_string("rootfs"));
	if (o->n_args) {
		args = json_object_new_array();
		for (int i = 0; i < o->n_args; i++)
			json_object_array_add(args, json_object_new_string(o->args[i]));
		json_object_object_add(proc, "args", args);
	}
	return spec;
}

/* Lays out <share>/ctr: rootfs (bind mount), config.json, stdio files. */
int ctl_stage(struct vm *vm, const struct ctl_run_opts *o, kerr_t *err)
{
	char dir[PATH_MAX], rootfs[PATH_MAX], p[PATH_MAX + 32];
	json_object *spec = guest_spec(o, rootfs, sizeof(rootfs), err);
	const char *text;

	if (!spec)
		return -1;
	snprintf(dir, sizeof(dir), "%s/ctr", vm->paths.shared);
	snprintf(p, sizeof(p), "%s/rootfs", dir);
	if (mkdir_p(p, 0755, err) < 0 || mount(rootfs, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
		json_object_put(spec);
		return err->msg[0] && errno == 0 ? -1
		                                 : kerr_sys(err, "bind %s into the share", rootfs);
	}
	text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN);
	snprintf(p, sizeof(p), "%s/config.json", dir);
	if (write_file_atomic(p, text, strlen(text), err) < 0) {
		json_object_put(spec);
		return -1;
	}
	json_object_put(spec);
	return 0;
}

static void pump_tick(void *arg)
{
	hstreams_pump_input(arg);
}

/* stdout and stderr (and stdin with -i) travel as streams on the guest link, named after
 * the sandbox, as containerd's streaming IO does. */
static int open_streams(struct vm *vm, const struct ctl_run_opts *o, struct hstreams *hs,
                        struct task_io *io, char uri[3][256], kerr_t *err)
{
	static const char *const suffix[3] = { "stdin", "stdout", "stderr" };
	int64_t deadline = mono_ns() + RPC_TIMEOUT_NS;
	char name[160];

	/* With a terminal, stderr is the terminal too: no stream of its own. */
	for (int i = o->interactive ? 0 : 1; i < (o->terminal ? 2 : 3); i++) {
		snprintf(name, sizeof(name), "%s-%s", vm->id, suffix[i]);
		if (hstream_open(hs, name, i ? HSTREAM_OUT : HSTREAM_IN, i, deadline, err) < 0)
			return -1;
		hstream_uri(&hs->s[hs->n - 1], uri[i], sizeof(uri[i]));
	}
	io->stdin_uri = o->interactive ? uri[0] : "";
	io->stdout_uri = uri[1];
	io->stderr_uri = o->terminal ? "" : uri[2];
	io->terminal = o->terminal;
	return 0;
}

/* The terminal's size: ours if stdout is one, else $LINES/$COLUMNS, else 24x80. */
static void window_size(unsigned *w, unsigned *h)
{
	struct winsize ws;
	const char *l = getenv("LINES"), *c = getenv("COLUMNS");

	*w = 80;
	*h = 24;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
		*w = ws.ws_col;
		*h = ws.ws_row;
		return;
	}
	if (l && atoi(l) > 0)
		*h = (unsigned)atoi(l);
	if (c && atoi(c) > 0)
		*w = (unsigned)atoi(c);
}

/* Raw mode while our own terminal feeds the container's. */
static struct termios saved_tty;
static int tty_raw;

static void raw_tty(void)
{
	struct termios t;

	if (!isatty(0) || tcgetattr(0, &saved_tty) < 0)
		return;
	t = saved_tty;
	cfmakeraw(&t);
	tty_raw = tcsetattr(0, TCSANOW, &t) == 0;
}

static void restore_tty(void)
{
	if (tty_raw)
		tcsetattr(0, TCSANOW, &saved_tty);
	tty_raw = 0;
}

/* Runs the container with hooks on vm that point at hs; run_container removes them. */
static int run_hooked(struct vm *vm, const struct ctl_run_opts *o, struct hstreams *hs,
                      uint32_t *status, kerr_t *err)
{
	struct task_io io;
	char uri[3][256];
	uint32_t pid;
	int64_t deadline = mono_ns() + RPC_TIMEOUT_NS;

	if (o->keep) { /* detached: output stays in the share */
		io = (struct task_io){ "", "file://" GUEST_SHARE "/ctr/stdout",
			               "file://" GUEST_SHARE "/ctr/stderr", 0 };
	} else if (open_streams(vm, o, hs, &io, uri, err) < 0) {
		return -1;
	}
	if (task_create(&vm->link, vm->id, GUEST_SHARE "/ctr", &io, &pid, deadline, err) < 0)
		return -1;
	if (o->terminal && !o->keep) {
		unsigned w, h;

		window_size(&w, &h);
		if (task_resize(&vm->link, vm->id, "", w, h, deadline, err) < 0)
			return -1;
		if (o->interactive)
			raw_tty();
	}
	if (task_start(&vm->link, vm->id, "", &pid, deadline, err) < 0)
		return -1;
	if (o->keep)
		return 0;
	vm->tick = pump_tick;
	vm->tick_arg = hs;
	vm->tick_ns = 5000000;
	hstreams_pump_input(hs);
	/* No deadline: the container runs as long as it runs; ^C still stops everything. */
	if (task_wait(&vm->link, vm->id, "", status, 0, err) < 0)
		return -1;
	vm->tick = NULL;
	if (hstreams_drain(hs, mono_ns() + RPC_TIMEOUT_NS, err) < 0)
		return -1;
	restore_tty();
	hstreams_detach(hs);
	return task_delete(&vm->link, vm->id, "", NULL, mono_ns() + RPC_TIMEOUT_NS, err);
}

static int run_container(struct vm *vm, const struct ctl_run_opts *o, uint32_t *status, kerr_t *err)
{
	struct hstreams hs = { .c = &vm->link };
	int rc = run_hooked(vm, o, &hs, status, err);

	/* hs dies with this frame: on every path, nothing may call into it afterwards (the
	 * VM's shutdown still reads frames and ticks). */
	vm->tick = NULL;
	vm->tick_arg = NULL;
	vm->tick_ns = 0;
	hstreams_detach(&hs);
	restore_tty();
	return rc;
}

int ctl_run(int argc, char **argv)
{
	struct ctl_run_opts o = { .interactive = 0 };
	struct guest_prep prep;
	struct vm vm;
	kerr_t err;
	uint32_t status = 0;
	int rc = -1;

	if (parse_run(argc, argv, &o) < 0)
		return run_usage();
	vm_init(&vm, o.id);
	vm.sigfd = ctl_watch_signals();
	if (vm_launch(&vm, &o.cfg, ctl_template_use(), ctl_run_dir(), o.keep, &err) == 0 &&
	    vm_prepare_guest(&vm, &prep, &err) == 0 && ctl_stage(&vm, &o, &err) == 0)
		rc = run_container(&vm, &o, &status, &err);
	if (rc < 0) {
		char tail[1024];

		/* The guest's last words usually say why (a failed mount, a missing binary). */
		kerr_t serr;

		vm_console_tail(&vm, tail, sizeof(tail));
		if (tail[0] && err.errnum != EINTR && err.errnum != EREMOTEIO)
			fprintf(stderr, "kuasar-ctl: the guest console ends with:\n%s", tail);
		ctl_fail(&err);
		/* A refused request leaves the guest serving: it powers off cleanly. */
		if (vm.link.fd >= 0 && vm.exited == 0 && err.errnum == EREMOTEIO &&
		    vm_shutdown(&vm, 10000, &serr) < 0)
			fprintf(stderr, "kuasar-ctl: warning: %s\n", serr.msg);
		vm_destroy(&vm);
		return 1;
	}
	if (o.keep) {
		vm_release(&vm);
		printf("container %s running in its sandbox; output in %s/ctr/stdout and stderr\n"
		       "  kuasar-ctl exec|kill|ps|stats|state|pause|resume %s ...; kuasar-ctl "
		       "shutdown %s\n",
		       vm.id, vm.paths.shared, vm.id, vm.id);
		return 0;
	}
	if (vm_shutdown(&vm, 10000, &err) < 0)
		fprintf(stderr, "kuasar-ctl: warning: %s\n", err.msg);
	return (int)(status > 255 ? 255 : status);
}
