/* Snapshots of running VMs (vmsnap.h): a migration into a short-lived VMM whose RAM
 * is the snapshot's memory file, which then saves the device state alone. */
#include "vm/vmsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "vm/vm_priv.h"

#define SNAP_TIMEOUT_NS 120000000000LL
#define STREAM_EXTRA_MIB 16 /* the device state beside the RAM in the stream */

/* ---- shapes ---- */

static int copy_str(char *dst, size_t n, json_object *o, const char *key, int need, kerr_t *err)
{
	const char *v = jget_str(o, key, "");

	if (need && !v[0])
		return kerr_set(err, EINVAL, "no `%s` recorded", key);
	if (strlen(v) >= n || (v[0] && v[0] != '/' && strcmp(key, "qemu")))
		return kerr_set(err, EINVAL, "`%s` is not a usable path", key);
	snprintf(dst, n, "%s", v);
	return 0;
}

static int node_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= sizeof(((struct vm_disk *)0)->node) ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

int vm_shape_add_disk(struct vm_shape *sh, const char *node, unsigned target, const char *path,
                      kerr_t *err)
{
	struct vm_disk *d;

	if (sh->cfg.n_disks >= VM_MAX_DISKS)
		return kerr_set(err, E2BIG, "more than %d root disks", VM_MAX_DISKS);
	if (!node_ok(node) || target > 255 || path[0] != '/' || strchr(path, ',') ||
	    strlen(path) >= KPATH_SIZE)
		return kerr_set(err, EINVAL, "disk `%.32s` (target %u, `%.64s`) is not usable",
		                node, target, path);
	for (unsigned i = 0; i < sh->cfg.n_disks; i++)
		if (sh->disks[i].target == target || !strcmp(sh->disks[i].node, node))
			return kerr_set(err, EINVAL, "disk `%s` or target %u recorded twice", node,
			                target);
	d = &sh->disks[sh->cfg.n_disks++];
	snprintf(d->node, sizeof(d->node), "%s", node);
	d->target = target;
	snprintf(d->path, sizeof(d->path), "%s", path);
	sh->cfg.disks = sh->disks;
	return 0;
}

static int read_disks(json_object *o, struct vm_shape *sh, kerr_t *err)
{
	json_object *a;
	size_t n;

	if (!json_object_object_get_ex(o, "disks", &a))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return kerr_set(err, EINVAL, "`disks` is not an array");
	n = json_object_array_length(a);
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(a, i);
		int64_t t = jget_int(d, "target", -1);

		if (t < 0 || vm_shape_add_disk(sh, jget_str(d, "node", ""), (unsigned)t,
		                               jget_str(d, "path", ""), err) < 0)
			return kerr_wrap(err, "disk %zu", i);
	}
	if (n && !sh->cfg.disk_bus)
		return kerr_set(err, EINVAL, "disks recorded without a disk bus");
	return 0;
}

int vm_shape_read(json_object *o, struct vm_shape *sh, kerr_t *err)
{
	struct vm_config *c = &sh->cfg;
	int64_t mem = jget_int(o, "memory_mib", 0), cpus = jget_int(o, "vcpus", 0),
	        nics = jget_int(o, "nics", -1);
	json_object *v;

	memset(sh, 0, sizeof(*sh));
	vm_config_defaults(c);
	if (copy_str(sh->qemu, sizeof(sh->qemu), o, "qemu", 1, err) < 0 ||
	    copy_str(sh->kernel, sizeof(sh->kernel), o, "kernel", 1, err) < 0 ||
	    copy_str(sh->initrd, sizeof(sh->initrd), o, "initrd", 0, err) < 0 ||
	    copy_str(sh->image, sizeof(sh->image), o, "image", 0, err) < 0 ||
	    copy_str(sh->app_disk, sizeof(sh->app_disk), o, "app_disk", 0, err) < 0 ||
	    copy_str(sh->mem_path, sizeof(sh->mem_path), o, "mem_path", 0, err) < 0)
		return -1;
	if (mem < 16 || mem > 1 << 20 || cpus < 1 || cpus > 256 || nics < 0 || nics > VM_MAX_NICS)
		return kerr_set(err, EINVAL, "memory, vCPUs or NICs out of range");
	if (accel_parse(jget_str(o, "accel", ""), &c->accel) < 0 || c->accel == ACCEL_AUTO ||
	    link_parse(jget_str(o, "link", ""), &c->link) < 0)
		return kerr_set(err, EINVAL, "no accelerator or link recorded");
	c->qemu = sh->qemu;
	c->kernel = sh->kernel;
	c->initrd = sh->initrd;
	c->image = sh->image;
	c->app_disk = sh->app_disk[0] ? sh->app_disk : NULL;
	c->mem_path = sh->mem_path[0] ? sh->mem_path : NULL;
	c->memory_mib = (unsigned)mem;
	c->vcpus = (unsigned)cpus;
	c->n_nics = (unsigned)nics;
	c->disk_bus = json_object_object_get_ex(o, "disk_bus", &v) && json_object_get_boolean(v);
	return read_disks(o, sh, err);
}

void vm_shape_write(json_object *o, const struct vm_config *cfg)
{
	json_object *disks;
	const char *str[][2] = {
		{ "qemu", cfg->qemu },         { "kernel", cfg->kernel },
		{ "initrd", cfg->initrd },     { "image", cfg->image },
		{ "app_disk", cfg->app_disk }, { "mem_path", cfg->mem_path },
	};

	for (size_t i = 0; i < sizeof(str) / sizeof(str[0]); i++)
		json_object_object_add(o, str[i][0],
		                       json_object_new_string(str[i][1] ? str[i][1] : ""));
	json_object_object_add(o, "memory_mib", json_object_new_int((int)cfg->memory_mib));
	json_object_object_add(o, "vcpus", json_object_new_int((int)cfg->vcpus));
	json_object_object_add(o, "nics", json_object_new_int((int)cfg->n_nics));
	json_object_object_add(o, "disk_bus", json_object_new_boolean(cfg->disk_bus));
	json_object_object_add(o, "accel", json_object_new_string(accel_name(cfg->accel)));
	json_object_object_add(o, "link", json_object_new_string(link_name(cfg->link)));
	if (!cfg->n_disks)
		return;
	disks = json_object_new_array();
	for (unsigned i = 0; i < cfg->n_disks; i++) {
		json_object *d = json_object_new_object();

		json_object_object_add(d, "node", json_object_new_string(cfg->disks[i].node));
		json_object_object_add(d, "target", json_object_new_int((int)cfg->disks[i].target));
		json_object_object_add(d, "path", json_object_new_string(cfg->disks[i].path));
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
}

/* A copy of src as dirfd/name (created, read-only); -1 with err set. */
static int copy_disk(const char *src, int dirfd, const char *name, kerr_t *err)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
	ssize_t n = 1;

	if (in < 0)
		return kerr_sys(err, "open %s", src);
	out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (out < 0)
		kerr_sys(err, "create %s", name);
	while (out >= 0 && n > 0)
		n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
	if (out >= 0 && n < 0)
		kerr_sys(err, "copy %s", src);
	else if (out >= 0)
		rc = 0;
	close(in);
	if (out >= 0)
		close(out);
	if (rc < 0 && out >= 0)
		unlinkat(dirfd, name, 0);
	return rc;
}

int vm_shape_keep_disks(struct vm_shape *sh, int dirfd, const char *dir, kerr_t *err)
{
	for (unsigned i = 0; i < sh->cfg.n_disks; i++) {
		struct vm_disk *d = &sh->disks[i];
		char name[32], path[KPATH_SIZE];

		snprintf(name, sizeof(name), "disk-%u.img", d->target);
		if (fmt_path(path, sizeof(path), "%s/%s", dir, name) < 0)
			return kerr_set(err, ENAMETOOLONG, "%s: path too long", dir);
		if (linkat(AT_FDCWD, d->path, dirfd, name, 0) < 0) {
			if (errno != EXDEV)
				return kerr_sys(err, "link %s into %s", d->path, dir);
			if (copy_disk(d->path, dirfd, name, err) < 0)
				return -1;
		}
		snprintf(d->path, sizeof(d->path), "%s", path);
	}
	return 0;
}

int vm_shape_of(const struct vm *vm, struct vm_shape *sh, kerr_t *err)
{
	char *s = NULL;
	json_object *o;
	int rc;

	if (read_file(vm->paths.state, &s, NULL, 1 << 16, err) < 0)
		return kerr_wrap(err, "sandbox `%s`", vm->id);
	o = json_tokener_parse(s);
	free(s);
	rc = o ? vm_shape_read(o, sh, err) : kerr_set(err, EINVAL, "not JSON");
	json_object_put(o);
	if (rc < 0)
		return kerr_wrap(err, "%s", vm->paths.state);
	if (!sh->cfg.mem_path)
		return kerr_set(
		    err, EOPNOTSUPP,
		    "sandbox `%s` was cold booted: its RAM is not in a memory file, so it "
		    "cannot be snapshotted; VMs restored from a template, an appliance or "
		    "a snapshot can be",
		    vm->id);
	return 0;
}

/* ---- the snapshot ---- */

/* Why QEMU would refuse to migrate the VM now (a mounted 9p share, a migration under way),
 * as EBUSY. An earlier migration that ended (completed, failed, cancelled) is no reason. */
static int check_blockers(struct vm *vm, int64_t deadline, kerr_t *err)
{
	static const char *const ended[] = { "", "none", "completed", "failed", "cancelled" };
	json_object *r = NULL, *why;
	const char *st;
	int rc = 0, done = 0;

	if (qmp_call(&vm->qmp, "query-migrate", NULL, &r, deadline, err) < 0)
		return -1;
	st = jget_str(r, "status", "");
	for (size_t i = 0; i < sizeof(ended) / sizeof(ended[0]); i++)
		done |= !strcmp(st, ended[i]);
	if (json_object_object_get_ex(r, "blocked-reasons", &why) &&
	    json_object_is_type(why, json_type_array) && json_object_array_length(why) > 0)
		rc = kerr_set(err, EBUSY, "the VMM will not migrate it: %s",
		              json_object_get_string(json_object_array_get_idx(why, 0)));
	else if (!done)
		rc = kerr_set(err, EBUSY, "a migration is already under way (%s)", st);
	json_object_put(r);
	return rc;
}

/* The short-lived VMM's id, beside the VM's in the run directory. */
static void holder_id(char *out, size_t n, const char *id)
{
	snprintf(out, n, "%.*s.snap", ID_MAX - 5, id);
}

/* The short-lived VMM: the VM's devices (its NICs on taps that go nowhere), its RAM in
 * mem_path (shared, filled before anything is copied), waiting paused for the state. */
static int holder_start(struct vm *h, const struct vm *src, const struct vm_shape *sh,
                        const struct vm_snap_env *env, const char *mem_path, int *link,
                        int64_t deadline, kerr_t *err)
{
	struct vm_config c = sh->cfg;
	struct vm_nic nics[VM_MAX_NICS];
	int fds[VM_MAX_NICS], rc;
	char id[ID_MAX + 1];

	holder_id(id, sizeof(id), src->id);
	vm_init(h, id);
	c.restore = c.hold = c.mem_shared = 1;
	c.mem_path = mem_path;
	c.guest_cid = 0;
	c.cgroup = NULL;
	c.vhost_net = 0;
	if (vm_setup(h, &c, env->run_dir, err) < 0)
		return err->errnum == EEXIST
		           ? kerr_set(err, EBUSY, "it is being snapshotted already")
		           : -1;
	if (c.n_nics && env->scratch_taps(c.n_nics, fds, err) < 0)
		return kerr_wrap(err, "taps for the snapshot's VMM");
	memset(nics, 0, sizeof(nics));
	for (unsigned i = 0; i < c.n_nics; i++)
		nics[i].fd = fds[i];
	c.nics = nics;
	rc = vm_spawn(h, &c, c.accel, 0, err);
	for (unsigned i = 0; i < c.n_nics; i++)
		close(fds[i]);
	if (rc < 0 || vm_open_qmp(h, deadline, err) < 0)
		return vm_step_failed(h, (int)(SNAP_TIMEOUT_NS / 1000000), err);
	/* The serial link connected, as the VM's is while it is snapshotted: the state saved
	 * says so, and a fork (connected before its load, as every clone) sees no change of
	 * host, which the guest would otherwise be told of while we already talk to it. */
	if (h->link_type == LINK_SERIAL) {
		*link = vm_connect_retry(h, h->paths.agent, deadline, err);
		if (*link < 0)
			return kerr_wrap(err, "the snapshot's VMM's guest link");
	}
	return 0;
}

/* No bandwidth cap: the copy is local. */
static int set_params(struct vm *vm, int64_t deadline, kerr_t *err)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "max-bandwidth", json_object_new_int64(1LL << 36));
	return qmp_call(&vm->qmp, "migrate-set-parameters", a, NULL, deadline, err);
}

/* Until the migration ends; then the VM runs again at once. */
static int follow(struct vm *vm, struct vm_snap_times *t, int64_t deadline, kerr_t *err)
{
	if (vm_migration_done(vm, deadline, err) < 0)
		return -1;
	t->migrate_ms = (double)(mono_ns() - t->stop_ns) / 1e6;
	if (qmp_call(&vm->qmp, "cont", NULL, NULL, deadline, err) < 0)
		return kerr_wrap(err, "resume after the snapshot");
	t->pause_ms = (double)(mono_ns() - t->stop_ns) / 1e6;
	return 0;
}

/* The holder has all of the state once it leaves "inmigrate" (paused: -S); a load that
 * fails makes it exit, which the wait notices. */
static int holder_loaded(struct vm *h, int64_t deadline, kerr_t *err)
{
	for (;;) {
		json_object *r = NULL;
		char st[32];

		if (qmp_call(&h->qmp, "query-status", NULL, &r, deadline, err) < 0)
			return vm_step_failed(h, (int)(SNAP_TIMEOUT_NS / 1000000), err);
		snprintf(st, sizeof(st), "%s", jget_str(r, "status", ""));
		json_object_put(r);
		if (!strcmp(st, "paused"))
			return 0;
		if (strcmp(st, "inmigrate"))
			return kerr_set(err, EPROTO,
			                "the snapshot's VMM is `%s` after the migration", st);
		if (vm_wait_for(h, -1, 0, mono_ns() + 2000000, err) < 0 && err->errnum != ETIMEDOUT)
			return -1;
		if (mono_ns() > deadline)
			return kerr_set(err, ETIMEDOUT, "the snapshot's VMM did not load in time");
	}
}

/* The migration stream goes to a file in memory next to the snapshot's memory (gone when
 * closed), not straight into the holder: the VM is stopped only while it writes (a pass
 * over its RAM at memory speed), and the holder reads it once the VM runs again. Straight
 * into the holder, the two VMMs took turns on the socket and the pause was 3 to 4 times as
 * long. A live (pre-copy) migration would pause the VM for a few ms only: straight into the
 * holder, under TCG on QEMU 7.2 and a busy host, 2 forks in 40 had pages of the wrong
 * moment (a guest's slab lists corrupt); into this file it gave 65 healthy forks of 65, not
 * yet enough to trust. The copy is made stopped. */
static int stream_open(const char *mem_path, unsigned mib, kerr_t *err)
{
	char dir[KPATH_SIZE];
	const char *slash = strrchr(mem_path, '/');
	int fd;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - mem_path) : 1,
	         slash ? mem_path : ".");
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return kerr_sys(err, "a stream file in %s", dir);
	/* Its pages taken now, by us: charged to our cgroup (a pod's proxy leaves the pod's
	 * first), not to the VMM that writes them, and no room runs out in the pause. */
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, ((off_t)mib + STREAM_EXTRA_MIB) << 20) < 0 &&
	    errno != EOPNOTSUPP) {
		kerr_sys(err, "room for the stream in %s", dir);
		close(fd);
		return -1;
	}
	return fd;
}

/* The VM stopped, its state written to stream, the VM running again. */
static int save_stream(struct vm *vm, int stream, struct vm_snap_times *t, int64_t deadline,
                       kerr_t *err)
{
	if (vm_set_ignore_shared(vm, 0, deadline, err) < 0 || set_params(vm, deadline, err) < 0 ||
	    vm_pass_fd(vm, stream, "mig", deadline, err) < 0)
		return -1;
	t->stop_ns = mono_ns();
	if (qmp_call(&vm->qmp, "stop", NULL, NULL, deadline, err) < 0 ||
	    vm_migrate_cmd(vm, "migrate", "fd:mig", deadline, err) < 0)
		return -1;
	return follow(vm, t, deadline, err);
}

/* The holder reads the stream from its start (a description of its own). */
static int load_stream(struct vm *h, int stream, int64_t deadline, kerr_t *err)
{
	char path[64];
	_cleanup_close_ int fd = -1;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", stream);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kerr_sys(err, "reopen the migration stream");
	if (vm_set_ignore_shared(h, 0, deadline, err) < 0 ||
	    vm_pass_fd(h, fd, "mig", deadline, err) < 0 ||
	    vm_migrate_cmd(h, "migrate-incoming", "fd:mig", deadline, err) < 0)
		return -1;
	return holder_loaded(h, deadline, err);
}

/* Maps every page of the VM's RAM into its VMM while it still runs (reading it through
 * /proc/PID/mem faults them in), so that the copy made stopped does not pay those faults:
 * a clone maps its memory file lazily. Best effort: the copy is right either way. */
static void prefault_ram(const struct vm *vm, const char *mem_path)
{
	char path[64], line[KPATH_SIZE + 128];
	unsigned long lo, hi;
	FILE *maps;
	int mem;

	snprintf(path, sizeof(path), "/proc/%d/maps", vm->pid);
	maps = fopen(path, "re");
	snprintf(path, sizeof(path), "/proc/%d/mem", vm->pid);
	mem = maps ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	while (mem >= 0 && fgets(line, sizeof(line), maps)) {
		char *file = strchr(line, '/');
		static char buf[1 << 20];

		if (!file || strncmp(file, mem_path, strlen(mem_path)) ||
		    sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		for (unsigned long a = lo; a < hi; a += sizeof(buf))
			if (pread(mem, buf, sizeof(buf), (off_t)a) <= 0)
				break;
	}
	if (mem >= 0)
		close(mem);
	if (maps)
		fclose(maps);
}

/* After a failure: the VM runs again if it ran before (a migration that failed resumes
 * it by itself; one that completed leaves it stopped). */
static void resume(struct vm *vm, int was_running)
{
	json_object *r = NULL;
	int64_t deadline = mono_ns() + 5000000000LL;
	kerr_t e;

	qmp_call(&vm->qmp, "migrate_cancel", NULL, NULL, deadline, &e);
	if (!was_running || qmp_call(&vm->qmp, "query-status", NULL, &r, deadline, &e) < 0)
		return;
	if (!json_object_get_boolean(json_object_object_get(r, "running")))
		qmp_call(&vm->qmp, "cont", NULL, NULL, deadline, &e);
	json_object_put(r);
}

static int is_running(struct vm *vm, int64_t deadline, kerr_t *err)
{
	json_object *r = NULL;
	int on;

	if (qmp_call(&vm->qmp, "query-status", NULL, &r, deadline, err) < 0)
		return -1;
	on = json_object_get_boolean(json_object_object_get(r, "running"));
	json_object_put(r);
	return on;
}

void vm_snapshot_cleanup(const char *run_dir, const char *id)
{
	char hid[ID_MAX + 1];
	struct vm h;
	pid_t pid;

	holder_id(hid, sizeof(hid), id);
	pid = vm_find_vmm(run_dir, hid);
	if (pid > 0)
		kill(pid, SIGKILL); /* an orphan: whoever reaps orphans reaps it */
	vm_init(&h, hid);
	if (vm_paths_init(&h.paths, run_dir, hid, NULL) == 0 && access(h.paths.dir, F_OK) == 0)
		vm_remove_dir(&h);
}

int vm_snapshot(struct vm *vm, const struct vm_shape *sh, const struct vm_snap_env *env,
                const char *mem_path, const char *state_path, struct vm_snap_times *t, kerr_t *err)
{
	int64_t t0 = mono_ns(), deadline = t0 + SNAP_TIMEOUT_NS, t1;
	struct vm h;
	struct stat st;
	int running, link = -1, stream = -1, rc;

	memset(t, 0, sizeof(*t));
	vm_init(&h, "");
	/* QEMU serves one QMP client: a VM whose starter still holds it (kuasar-ctl without
	 * --keep, a sandboxer's proxy) never greets a second. */
	if (vm->qmp.fd < 0 && vm_open_qmp(vm, t0 + 5000000000LL, err) < 0)
		return kerr_wrap(err, "snapshot `%s`: its QMP socket%s", vm->id,
		                 err->errnum == ETIMEDOUT
		                     ? " is held by another client (a VM kept with --keep can be "
		                       "snapshotted)"
		                     : "");
	running = is_running(vm, deadline, err);
	if (running < 0 || check_blockers(vm, deadline, err) < 0)
		return kerr_wrap(err, "snapshot `%s`", vm->id);
	rc = holder_start(&h, vm, sh, env, mem_path, &link, deadline, err);
	if (rc == 0)
		prefault_ram(vm, sh->mem_path);
	if (rc == 0 && (stream = stream_open(mem_path, sh->cfg.memory_mib, err)) < 0)
		rc = -1;
	if (rc == 0)
		rc = save_stream(vm, stream, t, deadline, err);
	if (rc < 0)
		resume(vm, running);
	t1 = mono_ns();
	if (rc == 0 && (rc = load_stream(&h, stream, deadline, err)) == 0)
		rc = vm_save_template(&h, state_path, err);
	if (stream >= 0)
		close(stream);
	t->save_ms = (double)(mono_ns() - t1) / 1e6;
	if (link >= 0)
		close(link);
	vm_destroy(&h);
	if (rc < 0) {
		unlink(mem_path);
		unlink(state_path);
		return kerr_wrap(err, "snapshot `%s`", vm->id);
	}
	t->state_bytes = stat(state_path, &st) == 0 ? (long long)st.st_size : 0;
	t->total_ms = (double)(mono_ns() - t0) / 1e6;
	return 0;
}
