/* kuasar-ctl bench container BUNDLE [-n RUNS]: container start inside a running sandbox.
 *
 * One VM, then interleaved rounds of (a) Create+Start of a new container from the bundle
 * to the first byte it writes, and (b) the baseline, Exec+Start of the same command in an
 * already running container to its first byte: the difference is what building a
 * container (namespaces, mounts, pivot_root, cgroup) costs. Prints min/median and ratios. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "rpc/task_client.h"
#include "vm/vm.h"

struct first_byte {
	const char *path;
	int64_t at;
};

static void watch_file(void *arg)
{
	struct first_byte *f = arg;
	struct stat st;

	if (!f->at && stat(f->path, &st) == 0 && st.st_size > 0)
		f->at = mono_ns();
}

/* Waits for the process to exit, noting when its stdout file got its first byte. */
static int timed_wait(struct vm *vm, const char *id, const char *exec_id, struct first_byte *f,
                      kerr_t *err)
{
	uint32_t status;
	int rc;

	vm->tick = watch_file;
	vm->tick_arg = f;
	vm->tick_ns = 1000000; /* look for the first byte every millisecond */
	rc = task_wait(&vm->link, id, exec_id, &status, mono_ns() + RPC_TIMEOUT_NS, err);
	/* f is the caller's: the hook goes on every path. */
	vm->tick = NULL;
	vm->tick_arg = NULL;
	vm->tick_ns = 0;
	if (rc < 0)
		return -1;
	watch_file(f);
	return f->at ? 0 : kerr_set(err, EIO, "the process wrote nothing to %s", f->path);
}

static int one_container(struct vm *vm, int i, int64_t *ns, kerr_t *err)
{
	char id[64], out[PATH_MAX], uri[128];
	struct task_io io = { "", uri, "", 0 };
	struct first_byte f = { out, 0 };
	uint32_t pid;
	int64_t t0;

	snprintf(id, sizeof(id), "bench-%d", i);
	snprintf(out, sizeof(out), "%s/ctr/%s.out", vm->paths.shared, id);
	snprintf(uri, sizeof(uri), "file://" GUEST_SHARE "/ctr/%s.out", id);
	unlink(out);
	t0 = mono_ns();
	if (task_create(&vm->link, id, GUEST_SHARE "/ctr", &io, &pid, t0 + RPC_TIMEOUT_NS, err) <
	        0 ||
	    task_start(&vm->link, id, "", NULL, t0 + RPC_TIMEOUT_NS, err) < 0 ||
	    timed_wait(vm, id, "", &f, err) < 0)
		return -1;
	*ns = f.at - t0;
	unlink(out);
	return task_delete(&vm->link, id, "", NULL, mono_ns() + RPC_TIMEOUT_NS, err);
}

static int one_exec(struct vm *vm, const char *holder, const char *spec, int i, int64_t *ns,
                    kerr_t *err)
{
	char exec_id[64], out[PATH_MAX], uri[128];
	struct task_io io = { "", uri, "", 0 };
	struct first_byte f = { out, 0 };
	int64_t t0;

	snprintf(exec_id, sizeof(exec_id), "x%d", i);
	snprintf(out, sizeof(out), "%s/ctr/%s.out", vm->paths.shared, exec_id);
	snprintf(uri, sizeof(uri), "file://" GUEST_SHARE "/ctr/%s.out", exec_id);
	unlink(out);
	t0 = mono_ns();
	if (task_exec(&vm->link, holder, exec_id, spec, &io, t0 + RPC_TIMEOUT_NS, err) < 0 ||
	    task_start(&vm->link, holder, exec_id, NULL, t0 + RPC_TIMEOUT_NS, err) < 0 ||
	    timed_wait(vm, holder, exec_id, &f, err) < 0)
		return -1;
	*ns = f.at - t0;
	unlink(out);
	return task_delete(&vm->link, holder, exec_id, NULL, mono_ns() + RPC_TIMEOUT_NS, err);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(int64_t *ctr, int64_t *exe, int n)
{
	qsort(ctr, (size_t)n, sizeof(*ctr), cmp64);
	qsort(exe, (size_t)n, sizeof(*exe), cmp64);
	printf("container start in a running sandbox, to the first output byte (%d interleaved "
	       "runs)\n",
	       n);
	printf("  %-44s %9s %10s\n", "", "min ms", "median ms");
	printf("  %-44s %9.2f %10.2f\n", "Create+Start of a new container", ctr[0] / 1e6,
	       ctr[n / 2] / 1e6);
	printf("  %-44s %9.2f %10.2f\n", "baseline: Exec+Start in a running container",
	       exe[0] / 1e6, exe[n / 2] / 1e6);
	printf("  %-44s %8.2fx %9.2fx\n", "ratio container / exec", (double)ctr[0] / (double)exe[0],
	       (double)ctr[n / 2] / (double)exe[n / 2]);
}

/* The holder container runs `sleep` so execs have somewhere to go. */
static int start_holder(struct vm *vm, kerr_t *err)
{
	struct task_io io = { "", "", "", 0 };
	char path[PATH_MAX];
	json_object *spec, *proc, *args;
	uint32_t pid;
	int rc;

	snprintf(path, sizeof(path), "%s/ctr/config.json", vm->paths.shared);
	spec = json_object_from_file(path);
	if (!spec || !json_object_object_get_ex(spec, "process", &proc))
		return kerr_set(err, EINVAL, "%s unreadable", path);
	args = json_object_new_array();
	json_object_array_add(args, json_object_new_string("sleep"));
	json_object_array_add(args, json_object_new_string("100000"));
	json_object_object_add(proc, "args", args);
	snprintf(path, sizeof(path), "%s/holder", vm->paths.shared);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/holder/config.json", vm->paths.shared);
	rc = json_object_to_file(path, spec);
	json_object_put(spec);
	snprintf(path, sizeof(path), "%s/holder/rootfs", vm->paths.shared);
	if (rc < 0 || symlink("../ctr/rootfs", path) < 0)
		return kerr_sys(err, "write the holder bundle");
	return task_create(&vm->link, "holder", GUEST_SHARE "/holder", &io, &pid,
	                   mono_ns() + RPC_TIMEOUT_NS, err) < 0 ||
	               task_start(&vm->link, "holder", "", NULL, mono_ns() + RPC_TIMEOUT_NS, err) <
	                   0
	           ? -1
	           : 0;
}

static char *exec_spec(struct vm *vm, kerr_t *err)
{
	char path[PATH_MAX];
	json_object *spec, *proc;
	char *s;

	snprintf(path, sizeof(path), "%s/ctr/config.json", vm->paths.shared);
	spec = json_object_from_file(path);
	if (!spec || !json_object_object_get_ex(spec, "process", &proc)) {
		kerr_set(err, EINVAL, "%s unreadable", path);
		return NULL;
	}
	json_object_object_del(proc, "capabilities");
	s = strdup(json_object_to_json_string_ext(proc, JSON_C_TO_STRING_PLAIN));
	json_object_put(spec);
	return s;
}

int ctl_bench(int argc, char **argv)
{
	struct ctl_run_opts o = { .interactive = 0 };
	struct guest_prep prep;
	int64_t ctr[100], exe[100];
	unsigned runs = 15;
	char *spec = NULL;
	struct vm vm;
	kerr_t err;
	int rc = -1;

	if (argc >= 2 && !strcmp(argv[1], "startup"))
		return ctl_bench_startup(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "tcp"))
		return ctl_bench_tcp(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "appliance"))
		return ctl_bench_appliance(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "fork"))
		return ctl_bench_fork(argc - 1, argv + 1);
	if (argc < 3 || strcmp(argv[1], "container") ||
	    (argc == 5 && (strcmp(argv[3], "-n") || ctl_parse_uint(argv[4], 3, 100, &runs) < 0)) ||
	    (argc != 3 && argc != 5)) {
		fprintf(
		    stderr,
		    "usage: kuasar-ctl bench startup [-n RUNS] [-k SANDBOXES] ...\n"
		    "       kuasar-ctl bench tcp [-n REQUESTS] [--bulk MIB] NAME ADDR NAME "
		    "ADDR\n"
		    "       kuasar-ctl bench appliance DIR --network NETNS [-n RUNS] [-k N] ...\n"
		    "       kuasar-ctl bench fork DIR --network PARENT_NS,NS1,...,NSN [-n RUNS] "
		    "...\n"
		    "       kuasar-ctl bench container BUNDLE [-n RUNS]\n"
		    "  the bundle's process should print something and exit\n");
		return 2;
	}
	ctl_config_defaults(&o.cfg);
	ctl_random_id(o.id, sizeof(o.id));
	o.bundle = argv[2];
	vm_init(&vm, o.id);
	vm.sigfd = ctl_watch_signals();
	if (vm_start(&vm, &o.cfg, ctl_run_dir(), 0, &err) == 0 &&
	    vm_prepare_guest(&vm, &prep, &err) == 0 && ctl_stage(&vm, &o, &err) == 0 &&
	    start_holder(&vm, &err) == 0 && (spec = exec_spec(&vm, &err))) {
		rc = 0;
		for (unsigned i = 0; rc == 0 && i < runs; i++) {
			fprintf(stderr, "\rbench: run %u/%u", i + 1, runs);
			rc = one_container(&vm, (int)i, &ctr[i], &err);
			if (rc == 0)
				rc = one_exec(&vm, "holder", spec, (int)i, &exe[i], &err);
		}
		fprintf(stderr, "\r");
	}
	free(spec);
	if (rc < 0) {
		vm_destroy(&vm);
		return ctl_fail(&err);
	}
	report(ctr, exe, (int)runs);
	vm_shutdown(&vm, 10000, &err);
	return 0;
}
