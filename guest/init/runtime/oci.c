#include "runtime/oci.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "core/fmt.h"
#include "core/json.h"
#include "core/sys.h"
#include "runtime/podns.h"

struct ctx {
	struct oci_spec *spec; /* string pool owner; NULL when nothing is copied */
	const struct json *j;
	char *err;
	size_t errlen;
	void *out;
};

static int bad(struct ctx *c, const char *field, const char *why)
{
	kfmt(c->err, c->errlen, "config.json: %s: %s", field, why);
	return -1;
}

/* Copies a string token into the pool. */
static int str(struct ctx *c, int t, const char *field, const char **out)
{
	struct oci_spec *s = c->spec;
	int n;

	if (json_type(c->j, t) != J_STRING || !s)
		return bad(c, field, "must be a string");
	n = json_str(c->j, t, s->pool + s->pool_used, sizeof(s->pool) - s->pool_used);
	if (n < 0)
		return bad(c, field, "too long, or holds a NUL");
	*out = s->pool + s->pool_used;
	s->pool_used += (size_t)n + 1;
	return 0;
}

/* An optional string member: absent leaves *out alone. */
static int opt_str(struct ctx *c, int obj, const char *key, const char *field, const char **out)
{
	int t = json_get(c->j, obj, key);

	return t < 0 || json_type(c->j, t) == J_NULL ? 0 : str(c, t, field, out);
}

static int opt_bool(struct ctx *c, int obj, const char *key, const char *field, int *out)
{
	int t = json_get(c->j, obj, key);

	if (t < 0 || json_type(c->j, t) == J_NULL)
		return 0;
	return json_bool(c->j, t, out) < 0 ? bad(c, field, "must be true or false") : 0;
}

static int opt_int(struct ctx *c, int obj, const char *key, const char *field, int64_t *out)
{
	int t = json_get(c->j, obj, key);

	if (t < 0 || json_type(c->j, t) == J_NULL)
		return 0;
	return json_int(c->j, t, out) < 0 ? bad(c, field, "must be an integer") : 0;
}

static int opt_uint(struct ctx *c, int obj, const char *key, const char *field, uint64_t *out)
{
	int t = json_get(c->j, obj, key);

	if (t < 0 || json_type(c->j, t) == J_NULL)
		return 0;
	return json_uint(c->j, t, out) < 0 ? bad(c, field, "must be a non-negative integer") : 0;
}

/* An optional array of strings into a bounded table. */
static int str_array(struct ctx *c, int obj, const char *key, const char *field, const char **out,
                     unsigned max, unsigned *n)
{
	int arr = json_get(c->j, obj, key);

	*n = 0;
	if (arr < 0 || json_type(c->j, arr) == J_NULL)
		return 0;
	if (json_type(c->j, arr) != J_ARRAY)
		return bad(c, field, "must be an array");
	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		if (*n >= max)
			return bad(c, field, "too many entries");
		if (str(c, e, field, &out[(*n)++]) < 0)
			return -1;
	}
	return 0;
}

/* --- process ------------------------------------------------------------------------ */

static const char cap_names[] = /* capability numbers are the positions */
    "CHOWN\0DAC_OVERRIDE\0DAC_READ_SEARCH\0FOWNER\0FSETID\0KILL\0SETGID\0SETUID\0SETPCAP\0"
    "LINUX_IMMUTABLE\0NET_BIND_SERVICE\0NET_BROADCAST\0NET_ADMIN\0NET_RAW\0IPC_LOCK\0IPC_OWNER\0"
    "SYS_MODULE\0SYS_RAWIO\0SYS_CHROOT\0SYS_PTRACE\0SYS_PACCT\0SYS_ADMIN\0SYS_BOOT\0SYS_NICE\0"
    "SYS_RESOURCE\0SYS_TIME\0SYS_TTY_CONFIG\0MKNOD\0LEASE\0AUDIT_WRITE\0AUDIT_CONTROL\0SETFCAP\0"
    "MAC_OVERRIDE\0MAC_ADMIN\0SYSLOG\0WAKE_ALARM\0BLOCK_SUSPEND\0AUDIT_READ\0PERFMON\0BPF\0"
    "CHECKPOINT_RESTORE\0";

int oci_cap_number(const char *name)
{
	const char *s = cap_names;

	if (strncmp(name, "CAP_", 4))
		return -1;
	for (int i = 0; *s; i++, s += strlen(s) + 1)
		if (!strcmp(name + 4, s))
			return i;
	return -1;
}

static int cap_set(struct ctx *c, int caps, const char *key, uint64_t *mask)
{
	int arr = json_get(c->j, caps, key);
	char name[40];

	*mask = 0;
	if (arr < 0 || json_type(c->j, arr) == J_NULL)
		return 0;
	if (json_type(c->j, arr) != J_ARRAY)
		return bad(c, "process.capabilities", "sets must be arrays");
	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		int n = json_str(c->j, e, name, sizeof(name)) < 0 ? -1 : oci_cap_number(name);

		/* Capabilities this kernel does not know are skipped, as runc does. */
		if (n >= 0)
			*mask |= 1ULL << n;
		else if (json_type(c->j, e) != J_STRING)
			return bad(c, "process.capabilities", "entries must be strings");
	}
	return 0;
}

static int parse_caps(struct ctx *c, int proc)
{
	static const char *const sets[] = { "bounding", "effective", "permitted", "inheritable",
		                            "ambient" };
	int caps = json_get(c->j, proc, "capabilities");

	if (caps < 0 || json_type(c->j, caps) == J_NULL)
		return 0;
	if (json_type(c->j, caps) != J_OBJECT)
		return bad(c, "process.capabilities", "must be an object");
	c->spec->process.has_caps = 1;
	for (int i = 0; i < 5; i++)
		if (cap_set(c, caps, sets[i], &c->spec->process.caps[i]) < 0)
			return -1;
	return 0;
}

static const char *const rlimit_names[] = {
	[RLIMIT_CPU] = "CPU",           [RLIMIT_FSIZE] = "FSIZE",
	[RLIMIT_DATA] = "DATA",         [RLIMIT_STACK] = "STACK",
	[RLIMIT_CORE] = "CORE",         [RLIMIT_RSS] = "RSS",
	[RLIMIT_NPROC] = "NPROC",       [RLIMIT_NOFILE] = "NOFILE",
	[RLIMIT_MEMLOCK] = "MEMLOCK",   [RLIMIT_AS] = "AS",
	[RLIMIT_LOCKS] = "LOCKS",       [RLIMIT_SIGPENDING] = "SIGPENDING",
	[RLIMIT_MSGQUEUE] = "MSGQUEUE", [RLIMIT_NICE] = "NICE",
	[RLIMIT_RTPRIO] = "RTPRIO",     [RLIMIT_RTTIME] = "RTTIME",
};

static int rlimit_number(const struct json *j, int t)
{
	char name[32];

	if (json_str(j, t, name, sizeof(name)) < 0 || strncmp(name, "RLIMIT_", 7))
		return -1;
	for (int i = 0; i < (int)(sizeof(rlimit_names) / sizeof(rlimit_names[0])); i++)
		if (rlimit_names[i] && !strcmp(name + 7, rlimit_names[i]))
			return i;
	return -1;
}

static int parse_rlimits(struct ctx *c, int proc)
{
	struct oci_process *p = &c->spec->process;
	int arr = json_get(c->j, proc, "rlimits");

	if (arr < 0 || json_type(c->j, arr) == J_NULL)
		return 0;
	if (json_type(c->j, arr) != J_ARRAY)
		return bad(c, "process.rlimits", "must be an array");
	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		struct oci_rlimit *r = &p->rlimits[p->n_rlimits];

		if (p->n_rlimits >= OCI_MAX_RLIMITS)
			return bad(c, "process.rlimits", "too many entries");
		r->resource = rlimit_number(c->j, json_get(c->j, e, "type"));
		if (r->resource < 0)
			return bad(c, "process.rlimits.type", "unknown resource");
		if (json_uint(c->j, json_get(c->j, e, "soft"), &r->soft) < 0 ||
		    json_uint(c->j, json_get(c->j, e, "hard"), &r->hard) < 0)
			return bad(c, "process.rlimits",
			           "soft and hard must be non-negative integers");
		p->n_rlimits++;
	}
	return 0;
}

static int parse_user(struct ctx *c, int proc)
{
	struct oci_process *p = &c->spec->process;
	int user = json_get(c->j, proc, "user"), arr;
	uint64_t v;

	if (user < 0)
		return 0;
	if (json_type(c->j, user) != J_OBJECT)
		return bad(c, "process.user", "must be an object");
	if (opt_uint(c, user, "uid", "process.user.uid", &v) < 0 || v > UINT32_MAX - 1)
		return bad(c, "process.user.uid", "out of range");
	p->uid = (uint32_t)v;
	v = 0;
	if (opt_uint(c, user, "gid", "process.user.gid", &v) < 0 || v > UINT32_MAX - 1)
		return bad(c, "process.user.gid", "out of range");
	p->gid = (uint32_t)v;
	arr = json_get(c->j, user, "additionalGids");
	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		if (p->n_gids >= OCI_MAX_GIDS)
			return bad(c, "process.user.additionalGids", "too many entries");
		if (json_uint(c->j, e, &v) < 0 || v > UINT32_MAX - 1)
			return bad(c, "process.user.additionalGids", "entries must be gids");
		p->gids[p->n_gids++] = (uint32_t)v;
	}
	return 0;
}

static int parse_process_obj(struct ctx *c, int proc)
{
	struct oci_process *p = &c->spec->process;
	int64_t adj = 0;

	if (json_type(c->j, proc) != J_OBJECT)
		return bad(c, "process", "missing or not an object");
	if (str_array(c, proc, "args", "process.args", p->args, OCI_MAX_ARGS, &p->n_args) < 0 ||
	    str_array(c, proc, "env", "process.env", p->env, OCI_MAX_ENV, &p->n_env) < 0)
		return -1;
	if (p->n_args == 0)
		return bad(c, "process.args", "must name a program");
	p->args[p->n_args] = NULL;
	p->env[p->n_env] = NULL;
	p->cwd = "/";
	if (opt_str(c, proc, "cwd", "process.cwd", &p->cwd) < 0 || p->cwd[0] != '/')
		return bad(c, "process.cwd", "must be an absolute path");
	if (opt_bool(c, proc, "terminal", "process.terminal", &p->terminal) < 0 ||
	    opt_bool(c, proc, "noNewPrivileges", "process.noNewPrivileges", &p->no_new_privs) < 0)
		return -1;
	if (json_get(c->j, proc, "oomScoreAdj") >= 0) {
		if (opt_int(c, proc, "oomScoreAdj", "process.oomScoreAdj", &adj) < 0 ||
		    adj < -1000 || adj > 1000)
			return bad(c, "process.oomScoreAdj", "must be -1000 to 1000");
		p->has_oom_score_adj = 1;
		p->oom_score_adj = (int)adj;
	}
	return parse_user(c, proc) < 0 || parse_caps(c, proc) < 0 || parse_rlimits(c, proc) < 0 ? -1
	                                                                                        : 0;
}

/* --- mounts ------------------------------------------------------------------------- */

struct mount_opt {
	const char *name;
	int clear;
	unsigned long flag;
};

static const struct mount_opt mount_opts[] = {
	{ "ro", 0, MS_RDONLY },
	{ "rw", 1, MS_RDONLY },
	{ "nosuid", 0, MS_NOSUID },
	{ "suid", 1, MS_NOSUID },
	{ "nodev", 0, MS_NODEV },
	{ "dev", 1, MS_NODEV },
	{ "noexec", 0, MS_NOEXEC },
	{ "exec", 1, MS_NOEXEC },
	{ "sync", 0, MS_SYNCHRONOUS },
	{ "async", 1, MS_SYNCHRONOUS },
	{ "dirsync", 0, MS_DIRSYNC },
	{ "remount", 0, MS_REMOUNT },
	{ "mand", 0, MS_MANDLOCK },
	{ "nomand", 1, MS_MANDLOCK },
	{ "atime", 1, MS_NOATIME },
	{ "noatime", 0, MS_NOATIME },
	{ "diratime", 1, MS_NODIRATIME },
	{ "nodiratime", 0, MS_NODIRATIME },
	{ "relatime", 0, MS_RELATIME },
	{ "norelatime", 1, MS_RELATIME },
	{ "strictatime", 0, MS_STRICTATIME },
	{ "bind", 0, MS_BIND },
	{ "rbind", 0, MS_BIND | MS_REC },
};

static const struct mount_opt propagation_opts[] = {
	{ "private", 0, MS_PRIVATE },       { "rprivate", 0, MS_PRIVATE | MS_REC },
	{ "shared", 0, MS_SHARED },         { "rshared", 0, MS_SHARED | MS_REC },
	{ "slave", 0, MS_SLAVE },           { "rslave", 0, MS_SLAVE | MS_REC },
	{ "unbindable", 0, MS_UNBINDABLE }, { "runbindable", 0, MS_UNBINDABLE | MS_REC },
};

/* Recursive attributes (runtime-spec 1.1), set on the mount and everything below it: on a
 * share, one 9p tree, "ro" already covers what the host has mounted inside it. */
static const struct mount_opt recursive_opts[] = {
	{ "rro", 0, MOUNT_ATTR_RDONLY },     { "rrw", 1, MOUNT_ATTR_RDONLY },
	{ "rnosuid", 0, MOUNT_ATTR_NOSUID }, { "rsuid", 1, MOUNT_ATTR_NOSUID },
	{ "rnodev", 0, MOUNT_ATTR_NODEV },   { "rdev", 1, MOUNT_ATTR_NODEV },
	{ "rnoexec", 0, MOUNT_ATTR_NOEXEC }, { "rexec", 1, MOUNT_ATTR_NOEXEC },
};

static const struct mount_opt *find_opt(const struct mount_opt *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

/* Splits options into flags, propagation and a data string kept in the pool. */
static int mount_options(struct ctx *c, int arr, struct oci_mount *m)
{
	struct oci_spec *s = c->spec;
	char *data = s->pool + s->pool_used, opt[256];
	size_t len = 0, room = sizeof(s->pool) - s->pool_used;
	const struct mount_opt *o;

	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		if (json_str(c->j, e, opt, sizeof(opt)) < 0)
			return bad(c, "mounts.options", "entries must be short strings");
		if ((o = find_opt(mount_opts, sizeof(mount_opts) / sizeof(*mount_opts), opt))) {
			m->flags = o->clear ? m->flags & ~o->flag : m->flags | o->flag;
			m->bind |= (o->flag & MS_BIND) != 0;
		} else if ((o = find_opt(propagation_opts,
		                         sizeof(propagation_opts) / sizeof(*propagation_opts),
		                         opt))) {
			m->propagation = o->flag;
		} else if ((o = find_opt(recursive_opts,
		                         sizeof(recursive_opts) / sizeof(*recursive_opts), opt))) {
			m->rattr_set = o->clear ? m->rattr_set & ~o->flag : m->rattr_set | o->flag;
			m->rattr_clr = o->clear ? m->rattr_clr | o->flag : m->rattr_clr & ~o->flag;
		} else {
			size_t n = strlen(opt);

			if (len + n + 2 > room)
				return bad(c, "mounts.options", "too long");
			if (len)
				data[len++] = ',';
			memcpy(data + len, opt, n);
			len += n;
		}
	}
	if (room < 1)
		return bad(c, "mounts.options", "too long");
	data[len] = '\0';
	m->data = data;
	s->pool_used += len + 1;
	return 0;
}

static int parse_mounts(struct ctx *c)
{
	struct oci_spec *s = c->spec;
	int arr = json_get(c->j, 0, "mounts");

	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		struct oci_mount *m = &s->mounts[s->n_mounts];

		if (s->n_mounts >= OCI_MAX_MOUNTS)
			return bad(c, "mounts", "too many entries");
		memset(m, 0, sizeof(*m));
		m->type = "none";
		m->source = "none";
		if (json_type(c->j, e) != J_OBJECT ||
		    str(c, json_get(c->j, e, "destination"), "mounts.destination", &m->dest) < 0)
			return bad(c, "mounts", "entries need a destination");
		if (m->dest[0] != '/')
			return bad(c, "mounts.destination", "must be an absolute path");
		if (opt_str(c, e, "type", "mounts.type", &m->type) < 0 ||
		    opt_str(c, e, "source", "mounts.source", &m->source) < 0 ||
		    mount_options(c, json_get(c->j, e, "options"), m) < 0)
			return -1;
		if (!strcmp(m->type, "bind") || !strcmp(m->type, "rbind"))
			m->bind = 1;
		if (m->bind && !strcmp(m->source, PODNS_SHM_PATH))
			s->pod_shm = 1;
		s->n_mounts++;
	}
	return 0;
}

/* --- linux ---------------------------------------------------------------------------- */

static int parse_namespaces(struct ctx *c, int linux_)
{
	static const struct {
		const char *name;
		int flag;
	} kinds[] = {
		{ "pid", CLONE_NEWPID },
		{ "mount", CLONE_NEWNS },
		{ "uts", CLONE_NEWUTS },
		{ "ipc", CLONE_NEWIPC },
		{ "cgroup", CLONE_NEWCGROUP },
		{ "network", 0 }, /* the VM is the pod's network namespace */
		{ "user", CLONE_NEWUSER },
		{ "time", 0 },
	};
	int arr = json_get(c->j, linux_, "namespaces");

	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		int t = json_get(c->j, e, "type"), path = json_get(c->j, e, "path"), found = 0;

		/* The one namespace a container joins rather than makes: the pod's pids. */
		if (path > 0) {
			if (!json_str_eq(c->j, t, "pid") ||
			    !json_str_eq(c->j, path, PODNS_PID_PATH))
				return bad(c, "linux.namespaces.path",
				           "only the pod's pid namespace (" PODNS_PID_PATH
				           ") can be joined");
			c->spec->pod_pid = 1;
			continue;
		}
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			if (json_str_eq(c->j, t, kinds[i].name)) {
				c->spec->namespaces |= kinds[i].flag;
				found = 1;
			}
		if (!found)
			return bad(c, "linux.namespaces.type", "unknown namespace");
	}
	if (c->spec->namespaces & CLONE_NEWUSER)
		return bad(c, "linux.namespaces", "user namespaces are not supported yet");
	return 0;
}

static int parse_sysctl(struct ctx *c, int linux_)
{
	struct oci_spec *s = c->spec;
	int obj = json_get(c->j, linux_, "sysctl");

	for (int k = json_first(c->j, obj); k > 0; k = json_next(c->j, obj, k)) {
		if (s->n_sysctl >= OCI_MAX_SYSCTL)
			return bad(c, "linux.sysctl", "too many entries");
		if (str(c, k, "linux.sysctl", &s->sysctl_keys[s->n_sysctl]) < 0 ||
		    str(c, k + 1, "linux.sysctl", &s->sysctl_values[s->n_sysctl]) < 0)
			return -1;
		if (str_find(s->sysctl_keys[s->n_sysctl], ".."))
			return bad(c, "linux.sysctl", "key must not contain '..'");
		s->n_sysctl++;
	}
	return 0;
}

static int parse_resources_obj(struct ctx *c, int res, struct oci_resources *r)
{
	int mem = json_get(c->j, res, "memory"), cpu = json_get(c->j, res, "cpu");
	int pids = json_get(c->j, res, "pids");

	r->memory_limit = r->cpu_quota = r->pids_limit = -1;
	r->cpu_shares = r->cpu_period = 0;
	if (res < 0)
		return 0;
	return opt_int(c, mem, "limit", "linux.resources.memory.limit", &r->memory_limit) < 0 ||
	               opt_uint(c, cpu, "shares", "linux.resources.cpu.shares", &r->cpu_shares) <
	                   0 ||
	               opt_int(c, cpu, "quota", "linux.resources.cpu.quota", &r->cpu_quota) < 0 ||
	               opt_uint(c, cpu, "period", "linux.resources.cpu.period", &r->cpu_period) <
	                   0 ||
	               opt_int(c, pids, "limit", "linux.resources.pids.limit", &r->pids_limit) < 0
	           ? -1
	           : 0;
}

/* --- seccomp -------------------------------------------------------------------------- */

static int seccomp_action(struct ctx *c, int obj, uint32_t *out)
{
	static const struct {
		const char *name;
		uint32_t ret;
	} actions[] = {
		{ "SCMP_ACT_KILL", SECCOMP_RET_KILL_THREAD },
		{ "SCMP_ACT_KILL_THREAD", SECCOMP_RET_KILL_THREAD },
		{ "SCMP_ACT_KILL_PROCESS", SECCOMP_RET_KILL_PROCESS },
		{ "SCMP_ACT_TRAP", SECCOMP_RET_TRAP },
		{ "SCMP_ACT_ERRNO", SECCOMP_RET_ERRNO },
		{ "SCMP_ACT_TRACE", SECCOMP_RET_TRACE },
		{ "SCMP_ACT_LOG", SECCOMP_RET_LOG },
		{ "SCMP_ACT_ALLOW", SECCOMP_RET_ALLOW },
	};
	int t = json_get(c->j, obj, "action");
	uint64_t eno = EPERM;

	if (t < 0)
		t = json_get(c->j, obj, "defaultAction");
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (!json_str_eq(c->j, t, actions[i].name))
			continue;
		*out = actions[i].ret;
		if (actions[i].ret == SECCOMP_RET_ERRNO || actions[i].ret == SECCOMP_RET_TRACE) {
			if (opt_uint(c, obj, "errnoRet", "linux.seccomp.errnoRet", &eno) < 0 ||
			    opt_uint(c, obj, "defaultErrnoRet", "linux.seccomp.defaultErrnoRet",
			             &eno) < 0 ||
			    eno > SECCOMP_RET_DATA)
				return bad(c, "linux.seccomp.errnoRet", "out of range");
			*out |= (uint32_t)eno;
		}
		return 0;
	}
	return bad(c, "linux.seccomp.action", "unknown action");
}

static int seccomp_args(struct ctx *c, int arr, struct oci_syscall_rule *r)
{
	static const char *const ops[] = { "SCMP_CMP_NE",       "SCMP_CMP_LT", "SCMP_CMP_LE",
		                           "SCMP_CMP_EQ",       "SCMP_CMP_GE", "SCMP_CMP_GT",
		                           "SCMP_CMP_MASKED_EQ" };

	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		struct oci_arg_cmp *a = &r->args[r->n_args];
		uint64_t index = 0;
		int op = json_get(c->j, e, "op");

		if (r->n_args >= 6)
			return bad(c, "linux.seccomp.syscalls.args", "at most 6");
		a->op = 0;
		for (int i = 0; i < 7; i++)
			if (json_str_eq(c->j, op, ops[i]))
				a->op = i + 1;
		a->value_two = 0;
		if (!a->op || opt_uint(c, e, "index", "args.index", &index) < 0 || index > 5 ||
		    json_uint(c->j, json_get(c->j, e, "value"), &a->value) < 0 ||
		    opt_uint(c, e, "valueTwo", "args.valueTwo", &a->value_two) < 0)
			return bad(c, "linux.seccomp.syscalls.args",
			           "need index 0-5, op and value");
		a->index = (unsigned)index;
		r->n_args++;
	}
	return 0;
}

static int seccomp_arches(struct ctx *c, int sec)
{
	struct oci_seccomp *sc = &c->spec->seccomp;
	int arr = json_get(c->j, sec, "architectures");

	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		uint32_t a;

		if (json_str_eq(c->j, e, "SCMP_ARCH_X86_64"))
			a = AUDIT_ARCH_X86_64;
		else if (json_str_eq(c->j, e, "SCMP_ARCH_X86"))
			a = AUDIT_ARCH_I386;
		else if (json_str_eq(c->j, e, "SCMP_ARCH_X32"))
			continue; /* x32 shares x86_64's audit arch, told apart by nr bit 30 */
		else
			continue; /* other architectures never run here */
		if (sc->n_arches < OCI_MAX_ARCHES)
			sc->arches[sc->n_arches++] = a;
	}
	return 0;
}

static int parse_seccomp(struct ctx *c, int linux_)
{
	struct oci_seccomp *sc = &c->spec->seccomp;
	int sec = json_get(c->j, linux_, "seccomp"), arr;

	if (sec < 0 || json_type(c->j, sec) == J_NULL)
		return 0;
	sc->present = 1;
	if (seccomp_action(c, sec, &sc->default_action) < 0 || seccomp_arches(c, sec) < 0)
		return -1;
	arr = json_get(c->j, sec, "syscalls");
	for (int e = json_first(c->j, arr); e > 0; e = json_next(c->j, arr, e)) {
		struct oci_syscall_rule *r = &sc->rules[sc->n_rules];
		unsigned n;

		if (sc->n_rules >= OCI_MAX_RULES)
			return bad(c, "linux.seccomp.syscalls", "too many rules");
		memset(r, 0, sizeof(*r));
		r->first_name = sc->n_names;
		if (str_array(c, e, "names", "linux.seccomp.syscalls.names",
		              sc->names + sc->n_names, OCI_MAX_RULE_NAMES - sc->n_names, &n) < 0 ||
		    seccomp_action(c, e, &r->action) < 0 ||
		    seccomp_args(c, json_get(c->j, e, "args"), r) < 0)
			return -1;
		r->n_names = n;
		sc->n_names += n;
		sc->n_rules++;
	}
	return 0;
}

static int parse_linux(struct ctx *c)
{
	struct oci_spec *s = c->spec;
	int lx = json_get(c->j, 0, "linux");

	if (lx >= 0 && json_type(c->j, lx) != J_OBJECT)
		return bad(c, "linux", "must be an object");
	return parse_namespaces(c, lx) < 0 || parse_sysctl(c, lx) < 0 ||
	               str_array(c, lx, "maskedPaths", "linux.maskedPaths", s->masked,
	                         OCI_MAX_PATHS, &s->n_masked) < 0 ||
	               str_array(c, lx, "readonlyPaths", "linux.readonlyPaths", s->readonly,
	                         OCI_MAX_PATHS, &s->n_readonly) < 0 ||
	               parse_resources_obj(c, json_get(c->j, lx, "resources"), &s->resources) < 0 ||
	               parse_seccomp(c, lx) < 0
	           ? -1
	           : 0;
}

/* --- entry points --------------------------------------------------------------------- */

static struct jtok *tokens_for(size_t len, unsigned *n)
{
	/* A token needs at least two bytes of text ("1,"), so this never runs short. */
	*n = (unsigned)(len / 2 + 16);
	return malloc(*n * sizeof(struct jtok));
}

typedef int (*parse_fn)(struct ctx *c);

static int with_json(struct oci_spec *spec, void *out, const char *text, size_t len, char *err,
                     size_t errlen, parse_fn fn)
{
	struct json j;
	struct ctx c = { spec, &j, err, errlen, out };
	unsigned n;
	struct jtok *toks;
	int rc;

	if (len > OCI_MAX_BYTES)
		return bad(&c, "document", "larger than 1 MiB");
	toks = tokens_for(len, &n);
	if (!toks)
		return bad(&c, "document", "out of memory");
	rc = json_parse(&j, text, len, toks, n) < 0 ? bad(&c, "malformed JSON", j.error) : fn(&c);
	free(toks);
	return rc;
}

static int parse_spec(struct ctx *c)
{
	struct oci_spec *s = c->spec;
	int root = json_get(c->j, 0, "root");

	if (json_type(c->j, 0) != J_OBJECT)
		return bad(c, "document", "must be an object");
	if (str(c, json_get(c->j, root, "path"), "root.path", &s->root) < 0 ||
	    opt_bool(c, root, "readonly", "root.readonly", &s->root_readonly) < 0 ||
	    opt_str(c, 0, "hostname", "hostname", &s->hostname) < 0)
		return -1;
	return parse_process_obj(c, json_get(c->j, 0, "process")) < 0 || parse_mounts(c) < 0 ||
	               parse_linux(c) < 0
	           ? -1
	           : 0;
}

static int parse_process_doc(struct ctx *c)
{
	return parse_process_obj(c, 0);
}

int oci_parse(struct oci_spec *spec, const char *text, size_t len, char *err, size_t errlen)
{
	memset(spec, 0, sizeof(*spec));
	spec->resources.memory_limit = spec->resources.cpu_quota = spec->resources.pids_limit = -1;
	return with_json(spec, NULL, text, len, err, errlen, parse_spec);
}

int oci_parse_process(struct oci_spec *spec, const char *text, size_t len, char *err, size_t errlen)
{
	memset(&spec->process, 0, sizeof(spec->process));
	return with_json(spec, NULL, text, len, err, errlen, parse_process_doc);
}

static int parse_resources_doc(struct ctx *c)
{
	if (json_type(c->j, 0) != J_OBJECT)
		return bad(c, "resources", "must be an object");
	return parse_resources_obj(c, 0, c->out);
}

int oci_parse_resources(struct oci_resources *r, const char *text, size_t len, char *err,
                        size_t errlen)
{
	return with_json(NULL, r, text, len, err, errlen, parse_resources_doc);
}
