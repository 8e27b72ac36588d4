#include "sandboxer/sb_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

#define ROOT "/sys/fs/cgroup"

static int is_v2(void)
{
	return access(ROOT "/cgroup.controllers", F_OK) == 0;
}

/* v2: one directory; v1: one per hierarchy used. */
static const char *const v1_controllers[] = { "cpuacct", "memory", "pids" };
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

int sb_cgroup_create(const char *parent, const char *id, kerr_t *err)
{
	char dir[PATH_MAX];

	if (is_v2()) {
		dir_of(dir, sizeof(dir), NULL, parent, NULL);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", dir);
		/* Controllers for the children; refused where the host delegates none. */
		snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/cgroup.subtree_control");
		write_str(dir, "+cpu +memory +pids");
		dir_of(dir, sizeof(dir), NULL, parent, id);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", dir);
		return 0;
	}
	for (size_t i = 0; i < N_V1; i++) {
		dir_of(dir, sizeof(dir), v1_controllers[i], parent, NULL);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", dir);
		dir_of(dir, sizeof(dir), v1_controllers[i], parent, id);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", dir);
	}
	return 0;
}

int sb_cgroup_enter(const char *parent, const char *id)
{
	char path[PATH_MAX];
	int rc = 0;

	if (is_v2()) {
		dir_of(path, sizeof(path), NULL, parent, id);
		strncat(path, "/cgroup.procs", sizeof(path) - strlen(path) - 1);
		return write_str(path, "0");
	}
	for (size_t i = 0; i < N_V1; i++) {
		dir_of(path, sizeof(path), v1_controllers[i], parent, id);
		strncat(path, "/cgroup.procs", sizeof(path) - strlen(path) - 1);
		if (write_str(path, "0") < 0)
			rc = -1;
	}
	return rc;
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

int sb_cgroup_kill_all(const char *parent, const char *id, int timeout_ms)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
	pid_t pids[256];
	int n;

	while ((n = read_procs(parent, id, pids, 256)) > 0) {
		for (int i = 0; i < n; i++) {
			kill(pids[i], SIGKILL);
			/* Orphans of the sandbox are ours (we are their subreaper): reap them. */
			waitpid(pids[i], NULL, WNOHANG);
		}
		if (mono_ns() > deadline)
			return -1;
		usleep(5000);
	}
	return 0;
}
