/* kuasar-ctl commands on a container kept running by `run --keep` (its id is the
 * sandbox's): exec, kill, ps, stats, state, pause, resume. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "rpc/task_client.h"
#include "vm/vm.h"

/* An exec's output files in the share, copied to our stdout and stderr while it runs. */
struct tail {
	int fd[2];
	int out[2];
};

static void tail_once(struct tail *t)
{
	char buf[65536];

	for (int i = 0; i < 2; i++) {
		ssize_t n;

		while (t->fd[i] >= 0 && (n = read(t->fd[i], buf, sizeof(buf))) > 0)
			(void)!write_all(t->out[i], buf, (size_t)n);
	}
}

static void tail_tick(void *arg)
{
	tail_once(arg);
}

static int attach(struct vm *vm, const char *id, kerr_t *err)
{
	if (vm_attach(vm, ctl_run_dir(), id, err) < 0)
		return -1;
	vm->sigfd = ctl_watch_signals();
	return 0;
}

static int done(struct vm *vm, int rc, const kerr_t *err)
{
	vm_release(vm);
	return rc < 0 ? ctl_fail(err) : 0;
}

static int one_arg(int argc, char **argv, const char *usage)
{
	if (argc == 2)
		return 0;
	fprintf(stderr, "usage: kuasar-ctl %s\n", usage);
	return -1;
}

/* The exec's process: the args, a PATH, and the container's root user. */
static char *process_json(int argc, char **argv)
{
	json_object *p = json_object_new_object(), *args = json_object_new_array();
	json_object *env = json_object_new_array(), *user = json_object_new_object();
	char *s;

	for (int i = 0; i < argc; i++)
		json_object_array_add(args, json_object_new_string(argv[i]));
	json_object_array_add(
	    env, json_object_new_string(
	             "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
	json_object_object_add(user, "uid", json_object_new_int(0));
	json_object_object_add(user, "gid", json_object_new_int(0));
	json_object_object_add(p, "args", args);
	json_object_object_add(p, "env", env);
	json_object_object_add(p, "cwd", json_object_new_string("/"));
	json_object_object_add(p, "user", user);
	s = strdup(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
	json_object_put(p);
	return s;
}

static int open_outputs(struct vm *vm, const char *exec_id, struct tail *t, kerr_t *err)
{
	char p[PATH_MAX];

	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/ctr/%s.%s", vm->paths.shared, exec_id,
		         i ? "err" : "out");
		t->fd[i] = open(p, O_RDONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (t->fd[i] < 0)
			return kerr_sys(err, "create %s", p);
	}
	return 0;
}

static void remove_outputs(struct vm *vm, const char *exec_id, struct tail *t)
{
	char p[PATH_MAX];

	for (int i = 0; i < 2; i++) {
		if (t->fd[i] >= 0)
			close(t->fd[i]);
		snprintf(p, sizeof(p), "%s/ctr/%s.%s", vm->paths.shared, exec_id,
		         i ? "err" : "out");
		unlink(p);
	}
}

static int exec_in(struct vm *vm, const char *exec_id, char *spec, struct tail *t, uint32_t *status,
                   kerr_t *err)
{
	char out[128], errf[128];
	struct task_io io = { "", out, errf, 0 };
	int64_t deadline = mono_ns() + RPC_TIMEOUT_NS;
	int rc;

	snprintf(out, sizeof(out), "file://" GUEST_SHARE "/ctr/%s.out", exec_id);
	snprintf(errf, sizeof(errf), "file://" GUEST_SHARE "/ctr/%s.err", exec_id);
	if (open_outputs(vm, exec_id, t, err) < 0 ||
	    task_exec(&vm->link, vm->id, exec_id, spec, &io, deadline, err) < 0)
		return -1;
	rc = task_start(&vm->link, vm->id, exec_id, NULL, deadline, err);
	if (rc == 0) {
		vm->tick = tail_tick;
		vm->tick_arg = t;
		rc = task_wait(&vm->link, vm->id, exec_id, status, 0, err);
		vm->tick = NULL; /* t is the caller's: the hook goes on every path */
		vm->tick_arg = NULL;
	}
	if (rc < 0) {
		kerr_t e;

		task_kill(&vm->link, vm->id, exec_id, SIGKILL, 0, deadline, &e);
		task_delete(&vm->link, vm->id, exec_id, NULL, mono_ns() + RPC_TIMEOUT_NS, &e);
		return -1;
	}
	tail_once(t);
	return task_delete(&vm->link, vm->id, exec_id, NULL, mono_ns() + RPC_TIMEOUT_NS, err);
}

int ctl_exec(int argc, char **argv)
{
	struct tail t = { { -1, -1 }, { 1, 2 } };
	char exec_id[32], *spec;
	struct vm vm;
	kerr_t err;
	uint32_t status = 0;
	int rc, first = 2;

	if (argc > 2 && !strcmp(argv[2], "--"))
		first = 3;
	if (argc <= first) {
		fprintf(stderr, "usage: kuasar-ctl exec ID [--] COMMAND [ARGS...]\n");
		return 2;
	}
	if (attach(&vm, argv[1], &err) < 0)
		return ctl_fail(&err);
	snprintf(exec_id, sizeof(exec_id), "exec-%d", getpid());
	spec = process_json(argc - first, argv + first);
	rc = exec_in(&vm, exec_id, spec, &t, &status, &err);
	free(spec);
	remove_outputs(&vm, exec_id, &t);
	if (rc < 0)
		return done(&vm, rc, &err);
	vm_release(&vm);
	return (int)(status > 255 ? 255 : status);
}

int ctl_kill(int argc, char **argv)
{
	struct vm vm;
	kerr_t err;
	int all = argc > 2 && !strcmp(argv[2], "--all");
	int sig = SIGTERM;

	if (argc < 2 || argc > 3 + all) {
		fprintf(stderr, "usage: kuasar-ctl kill ID [--all] [SIGNAL-NUMBER]\n");
		return 2;
	}
	if (argc == 3 + all && ((sig = atoi(argv[2 + all])) <= 0 || sig > 64)) {
		fprintf(stderr, "kuasar-ctl: kill: signal must be a number from 1 to 64\n");
		return 2;
	}
	if (attach(&vm, argv[1], &err) < 0)
		return ctl_fail(&err);
	return done(
	    &vm,
	    task_kill(&vm.link, vm.id, "", (uint32_t)sig, all, mono_ns() + RPC_TIMEOUT_NS, &err),
	    &err);
}

int ctl_ps(int argc, char **argv)
{
	uint32_t pids[1024];
	size_t n = 0;
	struct vm vm;
	kerr_t err;
	int rc;

	if (one_arg(argc, argv, "ps ID") < 0)
		return 2;
	if (attach(&vm, argv[1], &err) < 0)
		return ctl_fail(&err);
	rc = task_pids(&vm.link, vm.id, pids, 1024, &n, mono_ns() + RPC_TIMEOUT_NS, &err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		printf("%u\n", pids[i]);
	return done(&vm, rc, &err);
}

int ctl_stats(int argc, char **argv)
{
	struct task_stats st;
	struct vm vm;
	kerr_t err;
	int rc;

	if (one_arg(argc, argv, "stats ID") < 0)
		return 2;
	if (attach(&vm, argv[1], &err) < 0)
		return ctl_fail(&err);
	rc = task_stats(&vm.link, vm.id, &st, mono_ns() + RPC_TIMEOUT_NS, &err);
	if (rc == 0)
		printf("pids %llu (limit %llu)\ncpu_usec %llu\nmemory %llu (limit %llu)\nrss %llu\n"
		       "inactive_file %llu\noom_kills %llu\n",
		       (unsigned long long)st.pids, (unsigned long long)st.pids_limit,
		       (unsigned long long)st.cpu_usec, (unsigned long long)st.memory,
		       (unsigned long long)st.memory_limit, (unsigned long long)st.rss,
		       (unsigned long long)st.inactive_file, (unsigned long long)st.oom_kills);
	return done(&vm, rc, &err);
}

int ctl_state(int argc, char **argv)
{
	struct task_state st;
	struct vm vm;
	kerr_t err;
	int rc;

	if (one_arg(argc, argv, "state ID") < 0)
		return 2;
	if (attach(&vm, argv[1], &err) < 0)
		return ctl_fail(&err);
	rc = task_state(&vm.link, vm.id, "", &st, mono_ns() + RPC_TIMEOUT_NS, &err);
	if (rc == 0)
		printf("%s pid %u exit %u\n", st.status, st.pid, st.exit_status);
	return done(&vm, rc, &err);
}

static int pause_cmd(int argc, char **argv, int pause)
{
	struct vm vm;
	kerr_t err;

	if (one_arg(argc, argv, pause ? "pause ID" : "resume ID") < 0)
		return 2;
	if (attach(&vm, argv[1], &err) < 0)
		return ctl_fail(&err);
	return done(&vm, task_pause(&vm.link, vm.id, pause, mono_ns() + RPC_TIMEOUT_NS, &err),
	            &err);
}

int ctl_pause(int argc, char **argv)
{
	return pause_cmd(argc, argv, 1);
}

int ctl_resume(int argc, char **argv)
{
	return pause_cmd(argc, argv, 0);
}

/* kuasar-ctl update ID [--memory BYTES] [--pids N]: new cgroup limits, as Task.Update. */
int ctl_update(int argc, char **argv)
{
	json_object *res = json_object_new_object(), *o;
	struct vm vm;
	kerr_t err;
	int rc, set = 0;

	for (int i = 2; i + 1 < argc; i += 2) {
		long long v = atoll(argv[i + 1]);
		const char *what = !strcmp(argv[i], "--memory") ? "memory"
		                   : !strcmp(argv[i], "--pids") ? "pids"
		                                                : NULL;

		if (!what || v <= 0) {
			set = -1;
			break;
		}
		o = json_object_new_object();
		json_object_object_add(o, "limit", json_object_new_int64(v));
		json_object_object_add(res, what, o);
		set++;
	}
	if (argc < 4 || argc % 2 || set <= 0) {
		json_object_put(res);
		fprintf(stderr, "usage: kuasar-ctl update ID [--memory BYTES] [--pids N]\n");
		return 2;
	}
	if (attach(&vm, argv[1], &err) < 0) {
		json_object_put(res);
		return ctl_fail(&err);
	}
	rc = task_update(&vm.link, vm.id,
	                 json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN),
	                 mono_ns() + RPC_TIMEOUT_NS, &err);
	json_object_put(res);
	return done(&vm, rc, &err);
}
