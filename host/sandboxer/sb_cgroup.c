#include "sandboxer/sb_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/syscalls.h"
#include "base/util.h"

#define ROOT "/sys/fs/cgroup"

static int is_v2(void)
{
	return access(ROOT "/cgroup.controllers", F_OK) == 0;
}

/* v2: one directory; v1: one per hierarchy used. */
static const char *const v1_controllers[] = { "cpuacct", "memory", "pids", "cpu" };
#define N_V1 (sizeof(v1_controllers) / sizeof(v1_controllers[0]))

static void dir_of(char *buf, size_t n, const char *ctrl, const char *parent, const char *id)
{
	if (ctrl)
		snprintf(buf, n, ROOT "/%s/%s%s%s", ctrl, parent, id ? "/" : "", id ? id : "");
	else
		snprintf(buf, n, ROOT "/%s%s%s", parent, id ? "/" : "", id ? id : "");
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = write_all(fd, s, strlen(s));
	close(fd);
	return rc;
}

static int read_u64(const char *path, const char *key, uint64_t *out)
{
	char *text = NULL, *p;
	int rc = -1;

	if (read_file(path, &text, NULL, 1 << 16, NULL) < 0)
		return -1;
	if (!key) {
		if (!strncmp(text, "max", 3))
			*out = 0;
		else
			*out = strtoull(text, NULL, 10);
		rc = 0;
	} else {
		size_t k = strlen(key);

		for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
			if (!strncmp(p, key, k) && p[k] == ' ') {
				*out = strtoull(p + k + 1, NULL, 10);
				rc = 0;
				break;
			}
		}
	}
	free(text);
	return rc;
}

static int slice_path(const char *name, char *out, size_t n)
{
	size_t len = strlen(name) - strlen(".slice"), off = 0;

	out[0] = 0;
	/* Every dash ends the name of an ancestor slice: a-b-c.slice is in a-b.slice in a.slice. */
	for (size_t i = 0; i <= len; i++) {
		if (i < len && name[i] != '-')
			continue;
		if (i == 0 || name[i - 1] == '-')
			return -1;
		off += (size_t)snprintf(out + off, off < n ? n - off : 0, "%s%.*s.slice",
		                        off ? "/" : "", (int)i, name);
		if (off >= n)
			return -1;
	}
	return 0;
}

int sb_cgroup_parent_path(const char *pod_parent, char *out, size_t n, kerr_t *err)
{
	size_t len = strlen(pod_parent);
	const char *p;

	if (!strchr(pod_parent, '/') && len > 6 && !strcmp(pod_parent + len - 6, ".slice")) {
		if (slice_path(pod_parent, out, n) < 0)
			return kerr_set(err, EINVAL, "cgroup parent `%s`: not a slice name",
			                pod_parent);
		return 0;
	}
	while (*pod_parent == '/')
		pod_parent++;
	if (!*pod_parent || strlen(pod_parent) >= n || strstr(pod_parent, "//"))
		return kerr_set(err, EINVAL, "cgroup parent `%s`: not a cgroup path", pod_parent);
	for (p = pod_parent; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
		if (!strncmp(p, "..", 2) && (p[2] == '/' || !p[2]))
			return kerr_set(err, EINVAL, "cgroup parent `%s`: `..` in it", pod_parent);
	snprintf(out, n, "%s", pod_parent);
	len = strlen(out);
	while (len && out[len - 1] == '/')
		out[--len] = 0;
	return 0;
}

/* mkdir of each level of rel below base; with v2, each level's children get the controllers
 * (refused where the host delegates none). */
static int mkdir_levels(const char *base, const char *rel, int v2, kerr_t *err)
{
	char dir[PATH_MAX], ctl[PATH_MAX + 32];
	size_t off = (size_t)snprintf(dir, sizeof(dir), "%s", base);

	for (const char *p = rel; *p;) {
		const char *slash = strchr(p, '/');
		size_t k = slash ? (size_t)(slash - p) : strlen(p);

		if (v2) {
			snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", dir);
			write_str(ctl, "+cpu +memory +pids");
		}
		off += (size_t)snprintf(dir + off, sizeof(dir) - off, "/%.*s", (int)k, p);
		if (off >= sizeof(dir))
			return kerr_set(err, ENAMETOOLONG, "cgroup %s/%s", base, rel);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", dir);
		p += k;
		while (*p == '/')
			p++;
	}
	return 0;
}

int sb_cgroup_create(const char *parent, const char *id, kerr_t *err)
{
	char rel[PATH_MAX], base[64];

	snprintf(rel, sizeof(rel), "%s/%s", parent, id);
	if (is_v2())
		return mkdir_levels(ROOT, rel, 1, err);
	for (size_t i = 0; i < N_V1; i++) {
		snprintf(base, sizeof(base), ROOT "/%s", v1_controllers[i]);
		if (mkdir_levels(base, rel, 0, err) < 0)
			return -1;
	}
	return 0;
}

int sb_cgroup_set_cpu(const char *parent, const char *id, int64_t quota, int64_t period,
                      kerr_t *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], v[64];

	if (is_v2()) {
		dir_of(dir, sizeof(dir), NULL, parent, id);
		snprintf(path, sizeof(path), "%s/cpu.max", dir);
		if (quota > 0)
			snprintf(v, sizeof(v), "%lld %lld", (long long)quota, (long long)period);
		else
			snprintf(v, sizeof(v), "max %lld", (long long)period);
		return write_str(path, v) < 0 ? kerr_sys(err, "%s", path) : 0;
	}
	dir_of(dir, sizeof(dir), "cpu", parent, id);
	snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
	snprintf(v, sizeof(v), "%lld", (long long)period);
	if (write_str(path, v) < 0)
		return kerr_sys(err, "%s", path);
	snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
	snprintf(v, sizeof(v), "%lld", quota > 0 ? (long long)quota : -1LL);
	return write_str(path, v) < 0 ? kerr_sys(err, "%s", path) : 0;
}

int sb_cgroup_move(const char *parent, const char *id, pid_t pid)
{
	char path[PATH_MAX], v[24];
	int rc = 0;

	snprintf(v, sizeof(v), "%d", (int)pid);
	if (is_v2()) {
		dir_of(path, sizeof(path), NULL, parent, id);
		strncat(path, "/cgroup.procs", sizeof(path) - strlen(path) - 1);
		return write_str(path, v);
	}
	for (size_t i = 0; i < N_V1; i++) {
		dir_of(path, sizeof(path), v1_controllers[i], parent, id);
		strncat(path, "/cgroup.procs", sizeof(path) - strlen(path) - 1);
		if (write_str(path, v) < 0)
			rc = -1;
	}
	return rc;
}

int sb_cgroup_enter(const char *parent, const char *id)
{
	return sb_cgroup_move(parent, id, 0);
}

int sb_cgroup_set_weight(const char *parent, const char *id, unsigned weight, kerr_t *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], v[32];

	if (is_v2()) {
		dir_of(dir, sizeof(dir), NULL, parent, id);
		snprintf(path, sizeof(path), "%s/cpu.weight", dir);
		snprintf(v, sizeof(v), "%u", weight);
	} else {
		dir_of(dir, sizeof(dir), "cpu", parent, id);
		snprintf(path, sizeof(path), "%s/cpu.shares", dir);
		snprintf(v, sizeof(v), "%u", weight * 1024 / 100 > 2 ? weight * 1024 / 100 : 2);
	}
	return write_str(path, v) < 0 ? kerr_sys(err, "%s", path) : 0;
}

int sb_cgroup_stats(const char *parent, const char *id, struct cg_stats *st, kerr_t *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];

	memset(st, 0, sizeof(*st));
	if (is_v2()) {
		dir_of(dir, sizeof(dir), NULL, parent, id);
		snprintf(path, sizeof(path), "%s/cpu.stat", dir);
		if (read_u64(path, "usage_usec", &st->cpu_usec) < 0)
			return kerr_sys(err, "read %s", path);
		snprintf(path, sizeof(path), "%s/memory.current", dir);
		read_u64(path, NULL, &st->memory_bytes);
		snprintf(path, sizeof(path), "%s/memory.max", dir);
		read_u64(path, NULL, &st->memory_limit);
		snprintf(path, sizeof(path), "%s/pids.current", dir);
		read_u64(path, NULL, &st->pids);
		return 0;
	}
	dir_of(dir, sizeof(dir), "cpuacct", parent, id);
	snprintf(path, sizeof(path), "%s/cpuacct.usage", dir);
	if (read_u64(path, NULL, &st->cpu_usec) < 0)
		return kerr_sys(err, "read %s", path);
	st->cpu_usec /= 1000; /* ns */
	dir_of(dir, sizeof(dir), "memory", parent, id);
	snprintf(path, sizeof(path), "%s/memory.usage_in_bytes", dir);
	read_u64(path, NULL, &st->memory_bytes);
	snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", dir);
	read_u64(path, NULL, &st->memory_limit);
	if (st->memory_limit >= (1ULL << 62))
		st->memory_limit = 0; /* v1's "unlimited" */
	dir_of(dir, sizeof(dir), "pids", parent, id);
	snprintf(path, sizeof(path), "%s/pids.current", dir);
	read_u64(path, NULL, &st->pids);
	return 0;
}

int sb_cgroup_remove(const char *parent, const char *id)
{
	char dir[PATH_MAX];
	int rc = 0;

	if (is_v2()) {
		dir_of(dir, sizeof(dir), NULL, parent, id);
		return rmdir(dir) < 0 && errno != ENOENT ? -1 : 0;
	}
	for (size_t i = 0; i < N_V1; i++) {
		dir_of(dir, sizeof(dir), v1_controllers[i], parent, id);
		if (rmdir(dir) < 0 && errno != ENOENT)
			rc = -1;
	}
	return rc;
}

/* The pids in the sandbox's cgroup (one hierarchy holds them all). */
static int read_procs(const char *parent, const char *id, pid_t *pids, int max)
{
	char path[PATH_MAX], *text = NULL, *p, *end;
	int n = 0;

	if (is_v2())
		dir_of(path, sizeof(path), NULL, parent, id);
	else
		dir_of(path, sizeof(path), "memory", parent, id);
	strncat(path, "/cgroup.procs", sizeof(path) - strlen(path) - 1);
	if (read_file(path, &text, NULL, 1 << 20, NULL) < 0)
		return 0;
	for (p = text; *p && n < max; p = end) {
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		if (v > 0)
			pids[n++] = (pid_t)v;
		while (*end == '\n')
			end++;
	}
	free(text);
	return n;
}

struct cg_drain_pid {
	struct loop_watch w;
	struct cg_drain *d;
	struct cg_drain_pid *next;
};

static void drain_scan(struct cg_drain *d);

static void pid_gone(struct loop_watch *w, uint32_t events)
{
	struct cg_drain_pid *p = container_of(w, struct cg_drain_pid, w);
	struct cg_drain *d = p->d;
	siginfo_t si;

	/* Our orphan (we are the subreaper) is reaped here; anyone else's is not ours to. */
	waitid(P_PIDFD, (id_t)w->fd, &si, WEXITED | WNOHANG);
	loop_close(d->loop, w);
	if (--d->live == 0)
		drain_scan(d);
}

/* Watches fd (a pidfd, owned from now on) until its process is gone. */
static void drain_watch(struct cg_drain *d, int fd)
{
	struct cg_drain_pid *p = calloc(1, sizeof(*p));
	kerr_t err;

	if (!p) {
		close(fd);
		return;
	}
	*p = (struct cg_drain_pid){ .w = { .fd = fd, .fn = pid_gone }, .d = d, .next = d->pids };
	if (loop_add(d->loop, &p->w, EPOLLIN, &err) < 0) {
		close(fd);
		free(p);
		return;
	}
	d->pids = p;
	d->live++;
}

/* Whether pid (its pidfd open, so it cannot be reused now) is in the sandbox's cgroup. */
static int pid_in(pid_t pid, const char *id)
{
	_cleanup_free_ char *text = NULL;
	char path[64], want[ID_MAX + 3];

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	snprintf(want, sizeof(want), "/%s\n", id);
	return read_file(path, &text, NULL, 8192, NULL) == 0 && strstr(text, want);
}

/* Kills and watches what the cgroup holds; done when nothing is left. */
static void drain_scan(struct cg_drain *d)
{
	pid_t pids[256];
	int n = d->parent[0] ? read_procs(d->parent, d->id, pids, 256) : 0;

	log_debug("cgroup of %s: %d processes left", d->id, n);

	for (int i = 0; i < n; i++) {
		int fd = sys_pidfd_open(pids[i]);

		if (fd < 0)
			continue; /* gone already */
		if (!pid_in(pids[i], d->id)) {
			close(fd);
			continue;
		}
		sys_pidfd_send_signal(fd, SIGKILL);
		drain_watch(d, fd);
	}
	if (d->live == 0) {
		cg_drain_cancel(d);
		d->done(d, 1);
	}
}

static void drain_timeout(struct loop_timer *t)
{
	struct cg_drain *d = container_of(t, struct cg_drain, timer);

	cg_drain_cancel(d);
	d->done(d, 0);
}

void cg_drain_start(struct cg_drain *d, struct loop *loop, const char *parent, const char *id,
                    int pidfd, int timeout_ms, void (*done)(struct cg_drain *d, int emptied))
{
	cg_drain_cancel(d);
	d->loop = loop;
	d->done = done;
	d->active = 1;
	snprintf(d->parent, sizeof(d->parent), "%s", parent);
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->timer.fn = drain_timeout;
	loop_timer_arm(loop, &d->timer, timeout_ms);
	if (pidfd >= 0) {
		int fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);

		if (fd >= 0)
			drain_watch(d, fd);
	}
	if (d->live == 0)
		drain_scan(d);
}

void cg_drain_cancel(struct cg_drain *d)
{
	struct cg_drain_pid *p;

	if (!d->active)
		return;
	while ((p = d->pids)) {
		d->pids = p->next;
		if (p->w.fd >= 0) {
			loop_del(d->loop, &p->w);
			close(p->w.fd);
		}
		free(p);
	}
	d->live = 0;
	d->active = 0;
	loop_timer_cancel(d->loop, &d->timer);
}

void sb_cgroup_self(char *out, size_t n)
{
	_cleanup_free_ char *text = NULL;
	const char *key = is_v2() ? "0::" : ":memory:", *dir = is_v2() ? "" : "/memory";
	char *line, *save = NULL;

	out[0] = '\0';
	if (read_file("/proc/self/cgroup", &text, NULL, 8192, NULL) < 0)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *at = strstr(line, key);

		if (at && (at == line || is_v2() == 0) && at[strlen(key)] == '/') {
			if (fmt_path(out, n, ROOT "%s%s", dir, at + strlen(key)) < 0)
				out[0] = '\0';
			return;
		}
	}
}
