#include "sandboxer/pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/log.h"
#include "base/syscalls.h"
#include "proxy/pooled.h"
#include "proxy/proxy_result.h"
#include "sandboxer/sandbox.h"
#include "vm/vm.h"

#define POOL_FIRST_MS 1000    /* after the daemon starts */
#define POOL_QUIET_MS 1000    /* after a sandbox start, before the next member */
#define POOL_CHECK_MS 10000   /* idle members looked at */
#define POOL_BACKOFF_MS 30000 /* after a member failed */
#define POOL_WEIGHT 1         /* members' cpu.weight until a pod takes them */
#define POOL_STOP_WAIT_MS 2000

enum member_state { M_FILLING, M_READY, M_GOING };

struct pool_member {
	struct pool *pool;
	char name[ID_MAX + 1];
	struct pool_shape shape;
	enum member_state state;
	pid_t proxy, vmm;
	struct loop_watch ctl_w;   /* fd 3 of its proxy */
	struct loop_watch proxy_w; /* its pidfd */
	int64_t spawn_ns, ready_ns;
	struct cg_drain drain; /* its end */
	struct pool_member *next;
};

static const struct sb_config *cfg_of(const struct pool *pool)
{
	return &pool->sbx->cfg;
}

static int pool_dir(const struct pool *pool, char *out, size_t n)
{
	return fmt_path(out, n, "%s/" POOL_DIR, cfg_of(pool)->run_dir);
}

static int same_shape(const struct pool_shape *a, const struct pool_shape *b)
{
	return a->vcpus == b->vcpus && a->memory_mib == b->memory_mib && a->block == b->block;
}

/* ---- what a member costs ---- */

/* Its VMM's unique set size (private pages: what killing it gives back), in KiB; 0 when it
 * cannot be read. */
static unsigned long long uss_kib(pid_t vmm)
{
	struct proc_mem pm;

	return vmm > 0 && proc_mem(vmm, &pm, NULL) == 0 ? pm.uss_kib : 0;
}

/* ---- removing a member ---- */

static void member_unlink(struct pool_member *m)
{
	for (struct pool_member **pp = &m->pool->members; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
}

/* Kills a member's proxy (when pid is that, by its command line) and its VMM (found by its
 * state, as a restart finds it). */
static void remains_kill(struct pool *pool, const char *name, pid_t proxy)
{
	char dir[KPATH_SIZE];
	pid_t vmm;

	if (proxy > 0 && sandbox_proxy_is(proxy, name))
		kill(proxy, SIGKILL);
	if (pool_dir(pool, dir, sizeof(dir)) == 0 && (vmm = vm_find_vmm(dir, name)) > 0)
		kill(vmm, SIGKILL);
}

static void cgroups_retry(struct pool *pool);

/* The daemon starts or exits: up to 2 s, nothing else waiting, for busy cgroups to go. */
static void cgroups_settle(struct pool *pool)
{
	for (int i = 0; i < 40; i++) {
		unsigned busy = 0;

		cgroups_retry(pool);
		for (unsigned k = 0; k < POOL_BUSY_CGROUPS; k++)
			busy += pool->busy_cg[k][0] != 0;
		if (!busy)
			return;
		usleep(50000);
	}
	for (unsigned k = 0; k < POOL_BUSY_CGROUPS; k++)
		if (pool->busy_cg[k][0])
			log_warn("pool: cgroup %s/%s is still busy", cfg_of(pool)->cgroup_parent,
			         pool->busy_cg[k]);
}

/* Cgroups still busy a moment after their processes ended (a dying VMM still tearing down
 * its memory, a zombie not yet reaped): removed again at each tick, and at the end. */
static void cgroups_retry(struct pool *pool)
{
	const char *cg = cfg_of(pool)->cgroup_parent;

	for (unsigned i = 0; i < POOL_BUSY_CGROUPS; i++)
		if (pool->busy_cg[i][0] && sb_cgroup_remove(cg, pool->busy_cg[i]) == 0)
			pool->busy_cg[i][0] = 0;
}

static void cgroup_remove(struct pool *pool, const char *name)
{
	const char *cg = cfg_of(pool)->cgroup_parent;
	unsigned i;

	if (!cg[0] || sb_cgroup_remove(cg, name) == 0)
		return;
	for (i = 0; i < POOL_BUSY_CGROUPS && pool->busy_cg[i][0]; i++)
		;
	if (i < POOL_BUSY_CGROUPS) {
		snprintf(pool->busy_cg[i], sizeof(pool->busy_cg[i]), "%s", name);
		loop_timer_arm(&pool->sbx->loop, &pool->timer, POOL_QUIET_MS);
	} else {
		log_warn("pool: cgroup %s/%s: %s", cg, name, strerror(errno));
	}
}

/* Its directory and cgroup, once its processes are gone. */
static void remains_clear(struct pool *pool, const char *name)
{
	char path[KPATH_SIZE];

	if (fmt_path(path, sizeof(path), "%s/" POOL_DIR "/%s", cfg_of(pool)->run_dir, name) == 0 &&
	    rm_tree(path) < 0 && errno != ENOENT)
		log_warn("pool: remove %s: %s", path, strerror(errno));
	cgroup_remove(pool, name);
}

void pool_clear(struct pool *pool, const char *name)
{
	if (name[0])
		remains_clear(pool, name);
}

static void member_free(struct pool_member *m)
{
	cg_drain_cancel(&m->drain);
	loop_close(&m->pool->sbx->loop, &m->ctl_w);
	loop_close(&m->pool->sbx->loop, &m->proxy_w);
	member_unlink(m);
	free(m);
}

static void drained(struct cg_drain *d, int emptied)
{
	struct pool_member *m = container_of(d, struct pool_member, drain);
	struct pool *pool = m->pool;

	if (!emptied)
		log_warn("pool: %s: its processes outlived the wait", m->name);
	remains_clear(pool, m->name);
	member_free(m);
	loop_timer_arm(&pool->sbx->loop, &pool->timer, POOL_QUIET_MS);
}

/* A member that will serve no pod: its processes killed and waited for (the proxy, our
 * child, reaped), then its directory and cgroup removed. */
static void member_drop(struct pool_member *m, const char *why)
{
	struct pool *pool = m->pool;
	int pidfd = m->proxy_w.fd;

	log_info("pool: %s goes (%s)", m->name, why);
	m->state = M_GOING;
	loop_close(&pool->sbx->loop, &m->ctl_w);
	if (pidfd >= 0)
		loop_del(&pool->sbx->loop, &m->proxy_w);
	m->proxy_w.fd = -1;
	remains_kill(pool, m->name, m->proxy);
	/* done may run (and free m) before this returns */
	cg_drain_start(&m->drain, &pool->sbx->loop, cfg_of(pool)->cgroup_parent, m->name, pidfd,
	               POOL_STOP_WAIT_MS * 5, drained);
	if (pidfd >= 0)
		close(pidfd);
}

static void proxy_exited(struct loop_watch *w, uint32_t events)
{
	struct pool_member *m = container_of(w, struct pool_member, proxy_w);

	if (m->state == M_FILLING)
		m->pool->backoff_until = mono_ns() + POOL_BACKOFF_MS * 1000000LL;
	member_drop(m, "its proxy exited");
}

/* "N ready, N filling; served N starts, missed N; USS N KiB per ready VM" */
static void pool_describe(const struct pool *pool, char *buf, size_t n)
{
	unsigned ready = 0, filling = 0;
	unsigned long long uss = 0;

	for (const struct pool_member *m = pool->members; m; m = m->next) {
		if (m->state == M_READY) {
			ready++;
			uss += uss_kib(m->vmm);
		} else if (m->state == M_FILLING)
			filling++;
	}
	snprintf(buf, n,
	         "%u ready, %u filling; served %u starts, missed %u; USS %llu KiB per ready VM",
	         ready, filling, pool->served, pool->missed, ready ? uss / ready : 0);
}

/* Its first result: restored and waiting, or why not. */
static void member_result(struct loop_watch *w, uint32_t events)
{
	struct pool_member *m = container_of(w, struct pool_member, ctl_w);
	char buf[PROXY_RESULT_MAX], now[256];
	ssize_t n = read(w->fd, buf, sizeof(buf));
	struct proxy_result r;

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0 || proxy_result_parse(buf, (size_t)n, &r) < 0 || !r.ok ||
	    strcmp(r.boot_mode, "pooled")) {
		log_warn("pool: %s failed: %s", m->name,
		         n > 0 && proxy_result_parse(buf, (size_t)n, &r) == 0 ? r.message
		                                                              : "no result");
		m->pool->backoff_until = mono_ns() + POOL_BACKOFF_MS * 1000000LL;
		member_drop(m, "failed");
		return;
	}
	m->state = M_READY;
	m->vmm = r.vmm_pid;
	m->ready_ns = mono_ns();
	pool_describe(m->pool, now, sizeof(now));
	log_info("pool: %s ready in %.0f ms (%u vCPU, %u MiB%s; VMM %d, USS %llu KiB); pool: %s",
	         m->name, (m->ready_ns - m->spawn_ns) / 1e6, m->shape.vcpus, m->shape.memory_mib,
	         m->shape.block ? ", block" : "", m->vmm, uss_kib(m->vmm), now);
	loop_timer_arm(&m->pool->sbx->loop, &m->pool->timer, POOL_QUIET_MS);
}

/* ---- making a member ---- */

/* In the child: the pooled proxy, in the member's cgroup. */
static void exec_member(const struct pool *pool, const struct pool_member *m, int fd)
{
	const struct sandboxer *sbx = pool->sbx;
	const struct sb_config *c = &sbx->cfg;
	char vcpus[16], mem[16];
	sigset_t none;

	snprintf(vcpus, sizeof(vcpus), "%u", m->shape.vcpus);
	snprintf(mem, sizeof(mem), "%u", m->shape.memory_mib);
	if (dup2(fd, 3) < 0)
		_exit(127);
	if (c->cgroup_parent[0])
		sb_cgroup_enter(c->cgroup_parent, m->name);
	sys_close_from(4);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execl("/proc/self/exe", "kuasar-sandboxer", "proxy", "--pool", "--id", m->name, "--config",
	      sbx->config_path, "--run-dir", c->run_dir, "--containerd-ttrpc", c->containerd_ttrpc,
	      "--vcpus", vcpus, "--memory", mem, "--log-level", c->debug ? "debug" : c->log_level,
	      "--rootfs", m->shape.block ? "block" : "9p", "--builder-cgroup", sbx->own_cgroup,
	      (char *)NULL);
	_exit(127);
}

/* Its directory and cgroup, made before its proxy runs. */
static int member_home(struct pool *pool, struct pool_member *m)
{
	const char *cg = cfg_of(pool)->cgroup_parent;
	char dir[KPATH_SIZE], path[KPATH_SIZE];
	uint32_t r = 0;
	kerr_t err;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)mono_ns();
	snprintf(m->name, sizeof(m->name), POOL_PREFIX "%u-%08x", pool->seq++, r);
	if (pool_dir(pool, dir, sizeof(dir)) < 0 || mkdir_p(dir, 0700, &err) < 0 ||
	    fmt_path(path, sizeof(path), "%s/%s", dir, m->name) < 0 || mkdir(path, 0700) < 0) {
		log_warn("pool: no directory for a member in %s: %s", dir, strerror(errno));
		return -1;
	}
	if (cg[0] && (sb_cgroup_create(cg, m->name, &err) < 0 ||
	              sb_cgroup_set_weight(cg, m->name, POOL_WEIGHT, &err) < 0))
		log_warn("pool: %s: %s (it fills at the default CPU weight)", m->name, err.msg);
	return 0;
}

static int member_watch(struct pool *pool, struct pool_member *m, int fd)
{
	kerr_t err;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	m->ctl_w.fd = fd;
	m->ctl_w.fn = member_result;
	m->proxy_w.fd = sys_pidfd_open(m->proxy);
	m->proxy_w.fn = proxy_exited;
	if (m->proxy_w.fd < 0 || loop_add(&pool->sbx->loop, &m->ctl_w, EPOLLIN, &err) < 0 ||
	    loop_add(&pool->sbx->loop, &m->proxy_w, EPOLLIN, &err) < 0)
		return -1;
	return 0;
}

/* Its proxy's pid, for a daemon that restarts to find. */
static void member_pid_file(struct pool *pool, const struct pool_member *m)
{
	char path[KPATH_SIZE], text[24];
	kerr_t err;
	int n = snprintf(text, sizeof(text), "%d\n", (int)m->proxy);

	if (fmt_path(path, sizeof(path), "%s/" POOL_DIR "/%s/proxy.pid", cfg_of(pool)->run_dir,
	             m->name) < 0 ||
	    write_file_atomic(path, text, (size_t)n, &err) < 0)
		log_warn("pool: %s: no proxy.pid", m->name);
}

static void member_spawn(struct pool *pool, const struct pool_shape *shape)
{
	struct pool_member *m = calloc(1, sizeof(*m));
	int sp[2];

	if (!m)
		return;
	m->pool = pool;
	m->shape = *shape;
	m->ctl_w.fd = m->proxy_w.fd = -1;
	m->spawn_ns = mono_ns();
	if (member_home(pool, m) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp)) {
		pool->backoff_until = mono_ns() + POOL_BACKOFF_MS * 1000000LL;
		free(m);
		return;
	}
	m->proxy = fork();
	if (m->proxy == 0)
		exec_member(pool, m, sp[1]);
	close(sp[1]);
	m->next = pool->members;
	pool->members = m;
	if (m->proxy < 0 || member_watch(pool, m, sp[0]) < 0) {
		if (m->ctl_w.fd < 0)
			close(sp[0]);
		log_warn("pool: cannot start %s: %s", m->name, strerror(errno));
		pool->backoff_until = mono_ns() + POOL_BACKOFF_MS * 1000000LL;
		member_drop(m, "not started");
		return;
	}
	member_pid_file(pool, m);
	log_debug("pool: filling %s (proxy %d)", m->name, m->proxy);
}

/* ---- keeping it full ---- */

static unsigned count(const struct pool *pool, const struct pool_shape *s, int filling_only)
{
	unsigned n = 0;

	for (const struct pool_member *m = pool->members; m; m = m->next)
		if (m->state != M_GOING && (!s || same_shape(&m->shape, s)) &&
		    (!filling_only || m->state == M_FILLING))
			n++;
	return n;
}

static int starting(const struct sandboxer *sbx)
{
	for (const struct sandbox *sb = sbx->sandboxes; sb; sb = sb->next)
		if (sb->state == SB_STARTING)
			return 1;
	return 0;
}

/* Shapes no pod asked for in pool_idle_secs lose their members and their slot. */
static void retire(struct pool *pool, int64_t now)
{
	int64_t idle = (int64_t)cfg_of(pool)->pool_idle_secs * 1000000000LL;

	for (unsigned i = 0; idle && i < POOL_SHAPES; i++) {
		if (!pool->used_ns[i] || now - pool->used_ns[i] < idle)
			continue;
		pool->used_ns[i] = 0;
		for (struct pool_member *m = pool->members, *next; m; m = next) {
			next = m->next;
			if (same_shape(&m->shape, &pool->shapes[i]))
				member_drop(m, "its shape was not asked for");
		}
	}
}

static void tick(struct loop_timer *t)
{
	struct pool *pool = container_of(t, struct pool, timer);
	int64_t now = mono_ns();

	cgroups_retry(pool);
	retire(pool, now);
	if (starting(pool->sbx) || count(pool, NULL, 1)) {
		loop_timer_arm(&pool->sbx->loop, t,
		               starting(pool->sbx) ? POOL_QUIET_MS : POOL_CHECK_MS);
		return;
	}
	if (now < pool->backoff_until) {
		loop_timer_arm(&pool->sbx->loop, t, (pool->backoff_until - now) / 1000000 + 1);
		return;
	}
	for (unsigned i = 0; i < POOL_SHAPES; i++)
		if (pool->used_ns[i] && count(pool, &pool->shapes[i], 0) < cfg_of(pool)->pool) {
			member_spawn(pool, &pool->shapes[i]); /* one at a time */
			break;
		}
	loop_timer_arm(&pool->sbx->loop, t, POOL_CHECK_MS);
}

void pool_kick(struct pool *pool)
{
	if (cfg_of(pool)->pool)
		loop_timer_arm(&pool->sbx->loop, &pool->timer, POOL_QUIET_MS);
}

/* The shape counts as asked for now; a new one takes a free slot or the oldest one's. */
static void shape_used(struct pool *pool, const struct pool_shape *s)
{
	unsigned k = 1;

	for (unsigned i = 0; i < POOL_SHAPES; i++)
		if (pool->used_ns[i] && same_shape(&pool->shapes[i], s)) {
			pool->used_ns[i] = mono_ns();
			return;
		}
	for (unsigned i = 1; i < POOL_SHAPES; i++)
		if (pool->used_ns[i] < pool->used_ns[k])
			k = i;
	if (pool->used_ns[k])
		for (struct pool_member *m = pool->members, *next; m; m = next) {
			next = m->next;
			if (same_shape(&m->shape, &pool->shapes[k]))
				member_drop(m, "its shape makes room for a newer one");
		}
	pool->shapes[k] = *s;
	pool->used_ns[k] = mono_ns();
}

/* ---- taking one ---- */

static struct pool_member *find_ready(struct pool *pool, const struct pool_shape *s)
{
	char dir[KPATH_SIZE];

	if (pool_dir(pool, dir, sizeof(dir)) < 0)
		return NULL;
	for (struct pool_member *m = pool->members, *next; m; m = next) {
		next = m->next;
		if (m->state != M_READY || !same_shape(&m->shape, s))
			continue;
		/* Never one whose VMM is gone (its proxy's exit may not have been seen yet). */
		if (vm_find_vmm(dir, m->name) == m->vmm)
			return m;
		member_drop(m, "its VMM is gone");
	}
	return NULL;
}

/* The member's processes into the pod's cgroup, out of its own (which goes). */
static void move_cgroup(struct pool *pool, const struct pool_member *m, const char *cg_parent,
                        const char *cg_id)
{
	if (!cg_parent || !cg_parent[0])
		return;
	if (sb_cgroup_move(cg_parent, cg_id, m->proxy) < 0 ||
	    sb_cgroup_move(cg_parent, cg_id, m->vmm) < 0)
		log_warn("pool: %s: cannot move it into the cgroup %s/%s: %s", m->name, cg_parent,
		         cg_id, strerror(errno));
	if (cfg_of(pool)->cgroup_parent[0])
		sb_cgroup_remove(cfg_of(pool)->cgroup_parent, m->name);
}

int pool_take(struct pool *pool, const struct pool_shape *shape, const char *take_msg,
              const char *cg_parent, const char *cg_id, struct pool_handout *out)
{
	struct pool_member *m;

	if (!cfg_of(pool)->pool)
		return -1;
	shape_used(pool, shape);
	m = find_ready(pool, shape);
	if (!m) {
		pool->missed++;
		loop_timer_arm(&pool->sbx->loop, &pool->timer, POOL_QUIET_MS);
		return -1;
	}
	move_cgroup(pool, m, cg_parent, cg_id);
	if (write(m->ctl_w.fd, take_msg, strlen(take_msg)) != (ssize_t)strlen(take_msg)) {
		member_drop(m, "it did not take the message");
		return -1;
	}
	memcpy(out->name, m->name, sizeof(out->name));
	out->proxy = m->proxy;
	out->vmm = m->vmm;
	out->ctl_fd = m->ctl_w.fd;
	loop_del(&pool->sbx->loop, &m->ctl_w);
	m->ctl_w.fd = -1;
	member_free(m);
	pool->served++;
	return 0;
}

/* ---- start and stop ---- */

/* SIGKILL to pid, if it is still the process named (its pidfd holds it), and a bounded
 * wait for its end. */
static void kill_wait(pid_t pid, int (*is)(pid_t, const char *), const char *name)
{
	struct pollfd p = { .fd = pid > 0 ? sys_pidfd_open(pid) : -1, .events = POLLIN };

	if (p.fd < 0)
		return;
	if (is(pid, name)) {
		sys_pidfd_send_signal(p.fd, SIGKILL);
		poll(&p, 1, POOL_STOP_WAIT_MS);
		waitpid(pid, NULL, WNOHANG);
	}
	close(p.fd);
}

static int vmm_is(pid_t pid, const char *dir_name)
{
	const char *slash = strrchr(dir_name, '/');
	char dir[KPATH_SIZE];

	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - dir_name), dir_name);
	return vm_find_vmm(dir, slash + 1) == pid;
}

/* A member's end, there and then (the daemon starts or stops): its proxy and VMM killed and
 * waited for, then its directory and cgroup removed. */
static void remove_now(struct pool *pool, const char *name, pid_t proxy)
{
	char dir[KPATH_SIZE], vm_name[KPATH_SIZE];

	if (pool_dir(pool, dir, sizeof(dir)) < 0 ||
	    fmt_path(vm_name, sizeof(vm_name), "%s/%s", dir, name) < 0)
		return;
	kill_wait(proxy, sandbox_proxy_is, name);
	kill_wait(vm_find_vmm(dir, name), vmm_is, vm_name);
	remains_clear(pool, name);
}

/* What an earlier daemon pooled: each member's proxy (its pid in proxy.pid) and VMM. */
static void discard_old(struct pool *pool)
{
	char dir[KPATH_SIZE];
	struct dirent *de;
	DIR *d;

	if (pool_dir(pool, dir, sizeof(dir)) < 0 || !(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		char path[KPATH_SIZE], *text = NULL;
		pid_t proxy = 0;

		if (de->d_name[0] == '.' || id_valid(de->d_name, NULL) < 0)
			continue;
		if (fmt_path(path, sizeof(path), "%s/%s/proxy.pid", dir, de->d_name) == 0 &&
		    read_file(path, &text, NULL, 64, NULL) == 0)
			proxy = (pid_t)atoi(text);
		free(text);
		log_info("pool: discarding %s, pooled before a restart", de->d_name);
		remove_now(pool, de->d_name, proxy);
	}
	closedir(d);
	cgroups_settle(pool);
}

void pool_init(struct pool *pool, struct sandboxer *sbx)
{
	char dir[KPATH_SIZE];

	memset(pool, 0, sizeof(*pool));
	pool->sbx = sbx;
	pool->timer.fn = tick;
	discard_old(pool);
	pool->shapes[0].vcpus = sbx->cfg.vcpus;
	pool->shapes[0].memory_mib = sbx->cfg.memory_mib;
	pool->shapes[0].block = sbx->cfg.rootfs_block;
	if (!sbx->cfg.pool) {
		if (pool_dir(pool, dir, sizeof(dir)) == 0)
			rm_tree(dir); /* with what is left: the accel probe's cache */
		return;
	}
	pool->used_ns[0] = mono_ns();
	loop_timer_arm(&sbx->loop, &pool->timer, POOL_FIRST_MS);
	log_info("pool: keeping %u VMs per shape (default %u vCPU, %u MiB)", sbx->cfg.pool,
	         sbx->cfg.vcpus, sbx->cfg.memory_mib);
}

void pool_stop(struct pool *pool)
{
	char dir[KPATH_SIZE];

	loop_timer_cancel(&pool->sbx->loop, &pool->timer);
	while (pool->members) {
		struct pool_member *m = pool->members;

		if (m->state != M_GOING)
			remove_now(pool, m->name, m->proxy);
		else
			remains_clear(pool, m->name);
		member_free(m);
	}
	cgroups_settle(pool);
	if (pool_dir(pool, dir, sizeof(dir)) == 0)
		rm_tree(dir); /* with what is left: the accel probe's cache */
}
