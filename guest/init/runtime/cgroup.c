#include "runtime/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fmt.h"

static int write_at(const char *dir, const char *file, const char *value)
{
	char path[256];
	int fd, rc;

	kfmt(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = write(fd, value, strlen(value)) < 0 ? -1 : 0;
	close(fd);
	return rc;
}

static int read_at(const char *dir, const char *file, char *buf, size_t n)
{
	char path[256];
	int fd;
	ssize_t r;

	kfmt(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	return (int)r;
}

/* Controllers must be enabled top down before a child cgroup can use them. */
static int enable_controllers(void)
{
	static int done;
	const char *ctl = "+memory +pids +cpu +cpuset +io";

	if (done)
		return 0;
	if (write_at("/sys/fs/cgroup", "cgroup.subtree_control", ctl) < 0)
		return -1;
	if (mkdir(CGROUP_ROOT, 0755) < 0 && errno != EEXIST)
		return -1;
	if (write_at(CGROUP_ROOT, "cgroup.subtree_control", ctl) < 0)
		return -1;
	done = 1;
	return 0;
}

int cgroup_apply(const char *path, const struct oci_resources *r, const char **what)
{
	char v[64];

	if (r->memory_limit >= 0) {
		kfmt(v, sizeof(v), "%lld", (long long)r->memory_limit);
		*what = "memory.max";
		if (write_at(path, "memory.max", v) < 0)
			return -1;
		/* A limit means the container itself is killed, not spared by swap. */
		write_at(path, "memory.swap.max", "0");
	}
	if (r->pids_limit > 0) {
		kfmt(v, sizeof(v), "%lld", (long long)r->pids_limit);
		*what = "pids.max";
		if (write_at(path, "pids.max", v) < 0)
			return -1;
	}
	if (r->cpu_quota > 0 || r->cpu_period) {
		uint64_t period = r->cpu_period ? r->cpu_period : 100000;

		if (r->cpu_quota > 0)
			kfmt(v, sizeof(v), "%lld %llu", (long long)r->cpu_quota,
			     (unsigned long long)period);
		else
			kfmt(v, sizeof(v), "max %llu", (unsigned long long)period);
		*what = "cpu.max";
		if (write_at(path, "cpu.max", v) < 0)
			return -1;
	}
	if (r->cpu_shares) {
		/* cgroup v1 shares [2, 262144] onto v2 weight [1, 10000], as runc maps them. */
		uint64_t s = r->cpu_shares < 2        ? 2
		             : r->cpu_shares > 262144 ? 262144
		                                      : r->cpu_shares;

		kfmt(v, sizeof(v), "%llu", (unsigned long long)(1 + ((s - 2) * 9999) / 262142));
		*what = "cpu.weight";
		if (write_at(path, "cpu.weight", v) < 0)
			return -1;
	}
	return 0;
}

int cgroup_pod_limits(int64_t cpu_quota, uint64_t cpu_period, uint64_t memory_max,
                      const char **what)
{
	char v[64];

	*what = "cgroup.subtree_control";
	if (enable_controllers() < 0)
		return -1;
	if (!cpu_period)
		cpu_period = 100000;
	if (cpu_quota > 0)
		kfmt(v, sizeof(v), "%lld %llu", (long long)cpu_quota,
		     (unsigned long long)cpu_period);
	else
		kfmt(v, sizeof(v), "max %llu", (unsigned long long)cpu_period);
	*what = "cpu.max";
	if (write_at(CGROUP_ROOT, "cpu.max", v) < 0)
		return -1;
	if (memory_max)
		kfmt(v, sizeof(v), "%llu", (unsigned long long)memory_max);
	else
		kfmt(v, sizeof(v), "max");
	*what = "memory.max";
	return write_at(CGROUP_ROOT, "memory.max", v);
}

int cgroup_create(const char *id, const struct oci_resources *r, char *path, size_t n,
                  const char **what)
{
	*what = "cgroup.subtree_control";
	if (enable_controllers() < 0)
		return -1;
	kfmt(path, n, "%s/%s", CGROUP_ROOT, id);
	*what = "mkdir";
	if (mkdir(path, 0755) < 0)
		return -1;
	if (cgroup_apply(path, r, what) < 0) {
		int saved = errno;

		rmdir(path);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Waits (bounded) for cgroup.events to report the frozen state asked for. */
int cgroup_freeze(const char *path, int frozen)
{
	char buf[256], want[16];

	if (write_at(path, "cgroup.freeze", frozen ? "1" : "0") < 0)
		return -1;
	kfmt(want, sizeof(want), "frozen %d", frozen);
	for (int i = 0; i < 200; i++) {
		if (read_at(path, "cgroup.events", buf, sizeof(buf)) > 0 && str_find(buf, want))
			return 0;
		poll(NULL, 0, 5);
	}
	errno = ETIMEDOUT;
	return -1;
}

int cgroup_pids(const char *path, void (*fn)(pid_t pid, void *arg), void *arg)
{
	char buf[8192];
	int n = 0;

	if (read_at(path, "cgroup.procs", buf, sizeof(buf)) < 0)
		return -1;
	for (const char *p = buf; *p;) {
		const char *end;
		uint64_t pid = parse_u64(p, &end);

		if (end == p)
			break;
		if (fn)
			fn((pid_t)pid, arg);
		n++;
		p = end + (*end == '\n');
	}
	return n;
}

static void kill_one(pid_t pid, void *arg)
{
	(void)arg;
	kill(pid, SIGKILL);
}

void cgroup_kill(const char *path)
{
	/* cgroup.kill (5.14+) takes new forks too; the pids, older kernels. */
	if (write_at(path, "cgroup.kill", "1") < 0)
		cgroup_pids(path, kill_one, NULL);
}

int cgroup_remove(const char *path)
{
	/* cgroup.kill (5.14+) takes new forks too; the loop covers older kernels. */
	write_at(path, "cgroup.kill", "1");
	for (int i = 0; i < 100; i++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		cgroup_pids(path, kill_one, NULL);
		poll(NULL, 0, 5);
	}
	return -1;
}

static uint64_t field(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ')
			return parse_u64(p + n + 1, NULL);
	return 0;
}

static uint64_t value(const char *path, const char *file)
{
	char buf[64];

	if (read_at(path, file, buf, sizeof(buf)) <= 0 || !strncmp(buf, "max", 3))
		return 0;
	return parse_u64(buf, NULL);
}

/* What of memory.stat reaches containerd (kubelet's rss is anon, its working set the usage
 * less inactive_file), in cgroup_stats.mem's order. */
static const char *const mem_fields[] = {
	"anon",        "file",        "kernel_stack",  "slab",        "sock",
	"shmem",       "file_mapped", "inactive_anon", "active_anon", "inactive_file",
	"active_file", "unevictable", "pgfault",       "pgmajfault",
};

int cgroup_stats(const char *path, struct cgroup_stats *st)
{
	char buf[4096];

	memset(st, 0, sizeof(*st));
	st->memory_current = value(path, "memory.current");
	st->memory_max = value(path, "memory.max");
	st->memory_swap_current = value(path, "memory.swap.current");
	st->pids_current = value(path, "pids.current");
	st->pids_max = value(path, "pids.max");
	if (read_at(path, "memory.events", buf, sizeof(buf)) > 0) {
		st->oom_kills = field(buf, "oom_kill");
		st->oom_events = field(buf, "oom");
	}
	if (read_at(path, "memory.stat", buf, sizeof(buf)) > 0)
		for (size_t i = 0; i < sizeof(mem_fields) / sizeof(*mem_fields); i++)
			st->mem[i] = field(buf, mem_fields[i]);
	if (read_at(path, "cpu.stat", buf, sizeof(buf)) < 0)
		return -1;
	st->cpu_usage_usec = field(buf, "usage_usec");
	st->cpu_user_usec = field(buf, "user_usec");
	st->cpu_system_usec = field(buf, "system_usec");
	st->cpu_nr_periods = field(buf, "nr_periods");
	st->cpu_nr_throttled = field(buf, "nr_throttled");
	st->cpu_throttled_usec = field(buf, "throttled_usec");
	return 0;
}
