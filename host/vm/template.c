#include "vm/template.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/json.h"
#include "base/sha256.h"
#include "base/util.h"
#include "vm/vm.h"

#define KEY_SCHEME "kuasar-template-1"
/* A build that failed is not retried for this long (unless its inputs change the key). */
#define FAILED_RETRY_SECS 300

int tpl_store_init(struct tpl_store *s, const char *dir, const char *mem_dir, kerr_t *err)
{
	dir = dir && *dir ? dir : TPL_DIR_DEFAULT;
	mem_dir = mem_dir && *mem_dir ? mem_dir : TPL_MEM_DIR_DEFAULT;
	s->scratch_taps = NULL;
	s->cgroup[0] = '\0';
	if (fmt_path(s->dir, sizeof(s->dir), "%s", dir) < 0 ||
	    fmt_path(s->mem_dir, sizeof(s->mem_dir), "%s", mem_dir) < 0)
		return kerr_sys(err, "template store %s (memory in %s)", dir, mem_dir);
	return 0;
}

int tpl_paths(const struct tpl_store *s, const char *key, struct template *t, kerr_t *err)
{
	if (fmt_path(t->key, sizeof(t->key), "%s", key) < 0 ||
	    fmt_path(t->dir, sizeof(t->dir), "%s/%s", s->dir, key) < 0 ||
	    fmt_path(t->meta, sizeof(t->meta), "%s/meta.json", t->dir) < 0 ||
	    fmt_path(t->state, sizeof(t->state), "%s/state", t->dir) < 0 ||
	    fmt_path(t->lock, sizeof(t->lock), "%s/%s.lock", s->dir, key) < 0 ||
	    fmt_path(t->mem, sizeof(t->mem), "%s/%s.mem", s->mem_dir, key) < 0)
		return kerr_sys(err, "template `%.40s`", key);
	return 0;
}

/* ---- digests ---- */

static int sha256_file(const char *path, char out[SHA256_HEX_SIZE], kerr_t *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct sha256 ctx;
	uint8_t d[32], *buf;
	ssize_t r = 0;

	if (fd < 0)
		return kerr_sys(err, "open %s", path);
	buf = malloc(1 << 20);
	if (!buf)
		abort();
	sha256_init(&ctx);
	while ((r = read(fd, buf, 1 << 20)) > 0 || (r < 0 && errno == EINTR))
		if (r > 0)
			sha256_update(&ctx, buf, (size_t)r);
	free(buf);
	if (r < 0)
		return kerr_sys(err, "read %s", path);
	sha256_final(&ctx, d);
	sha256_to_hex(d, out);
	return 0;
}

/* Contents are hashed once per file version: the digest is remembered under the file's
 * identity (path, device, inode, size, mtime, ctime; ctime cannot be set back), so a
 * restore does not re-read a 20 MB kernel. */
static int file_digest(const struct tpl_store *s, const char *path, char out[SHA256_HEX_SIZE],
                       kerr_t *err)
{
	char id[PATH_MAX + 160], name[SHA256_HEX_SIZE], memo[TPL_PATH_SIZE], *got = NULL;
	struct stat st;

	if (stat(path, &st) < 0)
		return kerr_sys(err, "%s", path);
	/* The file's identity: a path longer than PATH_MAX could not have been opened. */
	snprintf(id, sizeof(id), "%s|%lu|%lu|%lld|%lld.%09ld|%lld.%09ld", path,
	         (unsigned long)st.st_dev, (unsigned long)st.st_ino, (long long)st.st_size,
	         (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
	         st.st_ctim.tv_nsec);
	sha256_hex(id, strlen(id), name);
	if (fmt_path(memo, sizeof(memo), "%s/.digests/%.32s", s->dir, name) < 0)
		return sha256_file(path, out, err); /* not remembered, still right */
	if (read_file(memo, &got, NULL, 128, NULL) == 0 && strlen(got) == 64) {
		memcpy(out, got, 65);
		free(got);
		return 0;
	}
	free(got);
	if (sha256_file(path, out, err) < 0)
		return -1;
	fmt_path(id, sizeof(id), "%s/.digests", s->dir); /* shorter than memo */
	if (mkdir_p(id, 0700, NULL) == 0)
		write_file_atomic(memo, out, 64, NULL);
	return 0;
}

/* The VMM binary as exec would find it. */
static int find_program(const char *name, char *out, size_t n)
{
	const char *path = getenv("PATH");
	char *dup, *dir, *pos = NULL;
	int rc = -1;

	if (strchr(name, '/')) {
		snprintf(out, n, "%s", name);
		return access(out, X_OK);
	}
	dup = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(dup, ":", &pos); dir && rc < 0; dir = strtok_r(NULL, ":", &pos)) {
		snprintf(out, n, "%s/%s", *dir ? dir : ".", name);
		if (access(out, X_OK) == 0)
			rc = 0;
	}
	free(dup);
	return rc;
}

static int add_digest(const struct tpl_store *s, FILE *f, const char *what, const char *path,
                      kerr_t *err)
{
	char d[SHA256_HEX_SIZE] = "-";

	if (path && *path && file_digest(s, path, d, err) < 0)
		return kerr_wrap(err, "template key: %s", what);
	fprintf(f, "%s %s\n", what, d);
	return 0;
}

int tpl_key(const struct tpl_store *s, const struct vm_config *cfg, enum accel accel,
            char key[TPL_KEY_LEN + 1], kerr_t *err)
{
	struct vm_config c = *cfg;
	struct vm_paths p;
	char qemu[512], why[256], d[SHA256_HEX_SIZE], **argv, *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc = -1;

	if (find_program(cfg->qemu, qemu, sizeof(qemu)) < 0)
		return kerr_set(err, ENOENT, "template key: VMM `%s` not found", cfg->qemu);
	/* The command line a template of this shape gets, with its per-VM names fixed. */
	if (link_resolve(cfg->link, &c.link, why, sizeof(why)) < 0)
		return kerr_set(err, ENODEV, "template key: %s", why);
	c.guest_cid = 3;
	c.mem_path = "MEM";
	c.mem_shared = 1;
	c.restore = 0;
	if (vm_paths_init(&p, "/run", "T", err) < 0)
		return -1;
	f = open_memstream(&text, &len);
	if (!f)
		abort();
	fprintf(f, "%s\n", KEY_SCHEME);
	if (add_digest(s, f, "kernel", cfg->kernel, err) == 0 &&
	    add_digest(s, f, "initrd", cfg->initrd, err) == 0 &&
	    add_digest(s, f, "image", cfg->image, err) == 0 &&
	    add_digest(s, f, "app", cfg->app_disk, err) == 0 &&
	    add_digest(s, f, "vmm", qemu, err) == 0) {
		argv = qemu_argv(&c, &p, "T", accel);
		for (char **a = argv; *a; a++)
			fprintf(f, "%s\n", *a);
		argv_free(argv);
		rc = 0;
	}
	fclose(f);
	if (rc == 0) {
		sha256_hex(text, len, d);
		snprintf(key, TPL_KEY_LEN + 1, "%.*s", TPL_KEY_LEN, d);
	}
	free(text);
	return rc;
}

/* ---- meta.json ---- */

static int read_meta(const struct template *t, struct tpl_info *in, kerr_t *err)
{
	char *s = NULL;
	json_object *o;
	json_object *v;

	memset(in, 0, sizeof(*in));
	if (read_file(t->meta, &s, NULL, 1 << 16, err) < 0) {
		if (err->errnum == ENOENT)
			return kerr_set(err, ENOENT, "no template %s in %s", t->key, t->dir);
		return kerr_wrap(err, "template %s", t->key);
	}
	o = json_tokener_parse(s);
	free(s);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return kerr_set(err, EBADMSG, "template %s: %s is not valid JSON", t->key, t->meta);
	}
	snprintf(in->key, sizeof(in->key), "%s", jget_str(o, "key", ""));
	snprintf(in->created, sizeof(in->created), "%s", jget_str(o, "created", ""));
	snprintf(in->qemu_version, sizeof(in->qemu_version), "%s", jget_str(o, "qemu_version", ""));
	snprintf(in->kernel, sizeof(in->kernel), "%s", jget_str(o, "kernel", ""));
	snprintf(in->initrd, sizeof(in->initrd), "%s", jget_str(o, "initrd", ""));
	snprintf(in->accel, sizeof(in->accel), "%s", jget_str(o, "accel", ""));
	snprintf(in->state_sha256, sizeof(in->state_sha256), "%s", jget_str(o, "state_sha256", ""));
	snprintf(in->mem, sizeof(in->mem), "%s", jget_str(o, "memory_file", ""));
	in->memory_mib = (unsigned)jget_int(o, "memory_mib", -1);
	in->vcpus = (unsigned)jget_int(o, "vcpus", -1);
	in->state_bytes = jget_int(o, "state_bytes", -1);
	in->build_ms = json_object_object_get_ex(o, "build_ms", &v) ? json_object_get_double(v) : 0;
	in->app_ready_ms =
	    json_object_object_get_ex(o, "app_ready_ms", &v) ? json_object_get_double(v) : 0;
	json_object_put(o);
	return 0;
}

static int write_meta(const struct template *t, const struct tpl_info *in, kerr_t *err)
{
	json_object *o = json_object_new_object();
	const char *s;
	int rc;

	json_object_object_add(o, "key", json_object_new_string(in->key));
	json_object_object_add(o, "created", json_object_new_string(in->created));
	json_object_object_add(o, "qemu_version", json_object_new_string(in->qemu_version));
	json_object_object_add(o, "kernel", json_object_new_string(in->kernel));
	json_object_object_add(o, "initrd", json_object_new_string(in->initrd));
	json_object_object_add(o, "accel", json_object_new_string(in->accel));
	json_object_object_add(o, "memory_mib", json_object_new_int64(in->memory_mib));
	json_object_object_add(o, "vcpus", json_object_new_int64(in->vcpus));
	json_object_object_add(o, "memory_file", json_object_new_string(in->mem));
	json_object_object_add(o, "state_bytes", json_object_new_int64(in->state_bytes));
	json_object_object_add(o, "state_sha256", json_object_new_string(in->state_sha256));
	json_object_object_add(o, "build_ms", json_object_new_double(in->build_ms));
	if (in->app_ready_ms > 0)
		json_object_object_add(o, "app_ready_ms", json_object_new_double(in->app_ready_ms));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	rc = write_file_atomic(t->meta, s, strlen(s), err);
	json_object_put(o);
	return rc;
}

int tpl_verify(const struct template *t, struct tpl_info *in, kerr_t *err)
{
	struct stat st;
	char d[SHA256_HEX_SIZE];

	if (read_meta(t, in, err) < 0)
		return -1;
	if (strcmp(in->key, t->key))
		return kerr_set(err, EBADMSG, "template %s: meta.json names key `%s`", t->key,
		                in->key);
	if (stat(t->state, &st) < 0)
		return kerr_set(err, EBADMSG, "template %s: device state %s: %s", t->key, t->state,
		                strerror(errno));
	if ((long long)st.st_size != in->state_bytes)
		return kerr_set(err, EBADMSG,
		                "template %s: device state %s is %lld bytes, %lld when saved "
		                "(truncated or replaced)",
		                t->key, t->state, (long long)st.st_size, in->state_bytes);
	if (sha256_file(t->state, d, err) < 0)
		return kerr_wrap(err, "template %s", t->key);
	if (strcmp(d, in->state_sha256))
		return kerr_set(err, EBADMSG,
		                "template %s: device state %s does not match its SHA-256 "
		                "(corrupted)",
		                t->key, t->state);
	if (stat(t->mem, &st) < 0)
		return kerr_set(err, EBADMSG,
		                "template %s: memory file %s: %s (a tmpfs does not survive a "
		                "reboot)",
		                t->key, t->mem, strerror(errno));
	if ((unsigned long long)st.st_size != (unsigned long long)in->memory_mib << 20)
		return kerr_set(err, EBADMSG,
		                "template %s: memory file %s is %lld bytes, not %u MiB", t->key,
		                t->mem, (long long)st.st_size, in->memory_mib);
	in->mem_used_kib = (unsigned long long)st.st_blocks / 2;
	if (stat(t->dir, &st) == 0)
		in->last_used = (long long)st.st_mtim.tv_sec;
	return 0;
}

void tpl_touch(const struct template *t)
{
	utimensat(AT_FDCWD, t->dir, NULL, 0);
}

/* ---- locking ---- */

int tpl_lock(const struct template *t, int exclusive, int64_t deadline_ns, kerr_t *err)
{
	char store[TPL_PATH_SIZE];
	int fd = -1;

	/* The lock lives next to the template's directory, in the store. */
	snprintf(store, sizeof(store), "%.*s", (int)(strrchr(t->lock, '/') - t->lock), t->lock);
	if (mkdir_p(store, 0700, err) < 0)
		return -1;
	for (;;) {
		struct stat a, b;

		if (fd < 0)
			fd = open(t->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return kerr_sys(err, "open %s", t->lock);
		if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) {
			/* Locked the file the path still names (not one removed meanwhile)? */
			if (fstat(fd, &a) == 0 && stat(t->lock, &b) == 0 && a.st_ino == b.st_ino)
				return fd;
			close(fd);
			fd = -1;
			continue;
		}
		if (errno != EWOULDBLOCK) {
			close(fd);
			return kerr_sys(err, "lock %s", t->lock);
		}
		if (mono_ns() > deadline_ns) {
			close(fd);
			return kerr_set(
			    err, ETIMEDOUT,
			    "template %s is locked (being built or removed) for too long", t->key);
		}
		usleep(10000);
	}
}

/* ---- build ---- */

static void qemu_version(const char *qemu, char *out, size_t n)
{
	char cmd[600], line[256] = "";
	FILE *f;

	snprintf(out, n, "unknown");
	snprintf(cmd, sizeof(cmd), "'%s' --version 2>/dev/null", qemu);
	if (strchr(qemu, '\'') || !(f = popen(cmd, "re")))
		return;
	if (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(out, n, "%s", line);
	}
	pclose(f);
}

static void now_iso(char *out, size_t n)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Saves a booted template VM: device state, then its files under their final names. The
 * caller writes meta.json last: it marks the template complete. */
static int save(struct vm *vm, const struct template *t, const char *mem_tmp, struct tpl_info *in,
                kerr_t *err)
{
	char state_tmp[TPL_PATH_SIZE];
	struct stat st;

	if (fmt_path(state_tmp, sizeof(state_tmp), "%s.tmp", t->state) < 0)
		return kerr_sys(err, "%s.tmp", t->state);
	if (vm_save_template(vm, state_tmp, err) < 0)
		return -1;
	if (stat(state_tmp, &st) < 0)
		return kerr_sys(err, "%s", state_tmp);
	if (sha256_file(state_tmp, in->state_sha256, err) < 0)
		return -1;
	in->state_bytes = st.st_size;
	if (rename(mem_tmp, t->mem) < 0)
		return kerr_sys(err, "rename %s", mem_tmp);
	if (rename(state_tmp, t->state) < 0)
		return kerr_sys(err, "rename %s", state_tmp);
	return 0;
}

/* A template VM's NICs: the same devices as its clones', on taps that go nowhere. */
static int scratch_nics(const struct tpl_store *s, struct vm_config *c, struct vm_nic *nics,
                        kerr_t *err)
{
	int fds[VM_MAX_NICS];

	if (!c->n_nics)
		return 0;
	if (c->n_nics > VM_MAX_NICS)
		return kerr_set(err, E2BIG, "a template with %u NICs (at most %d)", c->n_nics,
		                VM_MAX_NICS);
	if (!s->scratch_taps)
		return kerr_set(err, ENOTSUP, "a template with NICs needs taps to build it on");
	if (s->scratch_taps(c->n_nics, fds, err) < 0)
		return kerr_wrap(err, "the template's NICs");
	for (unsigned i = 0; i < c->n_nics; i++) {
		memset(&nics[i], 0, sizeof(nics[i]));
		nics[i].fd = fds[i];
	}
	c->nics = nics;
	return 0;
}

int tpl_mem_room(const char *mem_dir, unsigned mib, kerr_t *err)
{
	struct statvfs v;
	unsigned long long avail;

	if (mkdir_p(mem_dir, 0700, err) < 0)
		return -1;
	if (statvfs(mem_dir, &v) < 0)
		return 0; /* cannot tell: the boot will */
	avail = (unsigned long long)v.f_bavail * v.f_frsize >> 20;
	if (avail < mib)
		return kerr_set(err, ENOSPC,
		                "memory directory %s has %llu MiB free; the VM's RAM needs "
		                "%u MiB",
		                mem_dir, avail, mib);
	return 0;
}

int tpl_build(const struct tpl_store *s, const struct vm_config *cfg, enum accel accel,
              struct template *t, struct tpl_info *in, kerr_t *err)
{
	struct vm_config c = *cfg;
	struct vm_nic nics[VM_MAX_NICS];
	struct vm vm;
	char mem_tmp[TPL_PATH_SIZE];
	int64_t t0 = mono_ns();
	int rc;

	if (tpl_mem_room(s->mem_dir, cfg->memory_mib, err) < 0)
		return kerr_wrap(err, "template memory directory");
	tpl_remove_files(t, NULL);
	if (mkdir_p(t->dir, 0700, err) < 0)
		return -1;
	if (fmt_path(mem_tmp, sizeof(mem_tmp), "%s.tmp", t->mem) < 0)
		return kerr_sys(err, "%s.tmp", t->mem);
	unlink(mem_tmp);
	c.accel = accel;
	c.mem_path = mem_tmp;
	c.mem_shared = 1;
	c.restore = 0;
	c.cgroup = s->cgroup;
	memset(in, 0, sizeof(*in));
	snprintf(in->key, sizeof(in->key), "%s", t->key);
	now_iso(in->created, sizeof(in->created));
	qemu_version(cfg->qemu, in->qemu_version, sizeof(in->qemu_version));
	snprintf(in->kernel, sizeof(in->kernel), "%s", cfg->kernel);
	snprintf(in->initrd, sizeof(in->initrd), "%s", cfg->initrd ? cfg->initrd : "");
	snprintf(in->accel, sizeof(in->accel), "%s", accel_name(accel));
	snprintf(in->mem, sizeof(in->mem), "%s", t->mem);
	in->memory_mib = cfg->memory_mib;
	in->vcpus = cfg->vcpus;
	/* Booted with its share unmounted (9p blocks migration while mounted) and nothing
	 * run in it: clones are made unique after restore. Its VM directory is <dir>/build,
	 * inside the template, so a builder killed midway leaves nothing among the
	 * sandboxes (and its VMM dies with it: no keep). */
	vm_init(&vm, "build");
	rc = scratch_nics(s, &c, nics, err);
	if (rc == 0)
		rc = vm_start(&vm, &c, t->dir, 0, err);
	/* An appliance is saved with its app running and ready: clones restore serving. */
	if (rc == 0 && c.app_disk && c.app_disk[0] &&
	    (rc = vm_wait_app(&vm, c.app_timeout_ms, &in->app_ready_ms, err)) < 0)
		vm_destroy(&vm);
	if (rc == 0) {
		rc = save(&vm, t, mem_tmp, in, err);
		vm_destroy(&vm);
	}
	for (unsigned i = 0; i < c.n_nics && c.nics == nics; i++)
		close(nics[i].fd);
	in->build_ms = (double)(mono_ns() - t0) / 1e6;
	if (rc == 0)
		rc = write_meta(t, in, err);
	if (rc < 0) {
		tpl_remove_files(t, NULL); /* with the .tmp memory file */
		return kerr_wrap(err, "build template %s", t->key);
	}
	return 0;
}

int tpl_remove_files(const struct template *t, kerr_t *err)
{
	char tmp[TPL_PATH_SIZE];
	int rc = 0;

	/* tpl_paths kept room for these names. */
	if (fmt_path(tmp, sizeof(tmp), "%s.tmp", t->state) == 0)
		unlink(tmp);
	if (fmt_path(tmp, sizeof(tmp), "%s/build", t->dir) == 0) {
		umount_below(tmp);
		rm_tree(tmp);
	}
	if (fmt_path(tmp, sizeof(tmp), "%s.tmp", t->mem) == 0)
		unlink(tmp);
	/* meta.json first: a half-removed template is never taken for a complete one. */
	if (unlink(t->meta) < 0 && errno != ENOENT)
		rc = kerr_sys(err, "remove %s", t->meta);
	if (unlink(t->state) < 0 && errno != ENOENT)
		rc = kerr_sys(err, "remove %s", t->state);
	if (unlink(t->mem) < 0 && errno != ENOENT)
		rc = kerr_sys(err, "remove %s", t->mem);
	if (rmdir(t->dir) < 0 && errno != ENOENT)
		rc = kerr_sys(err, "remove %s", t->dir);
	return rc;
}

/* ---- users and listing ---- */

static int maps_file(pid_t pid, const char *path, ino_t ino)
{
	char p[64], *maps = NULL, *line, *pos = NULL;
	size_t len = 0;
	int found = 0;

	snprintf(p, sizeof(p), "/proc/%d/maps", pid);
	if (read_file(p, &maps, &len, 64 << 20, NULL) < 0)
		return 0;
	for (line = strtok_r(maps, "\n", &pos); line && !found; line = strtok_r(NULL, "\n", &pos)) {
		unsigned long long inode = 0;
		int off = 0;

		/* address perms offset dev inode path */
		if (sscanf(line, "%*s %*s %*s %*s %llu %n", &inode, &off) == 1 && off &&
		    inode == (unsigned long long)ino && !strncmp(line + off, path, strlen(path)))
			found = 1;
	}
	free(maps);
	return found;
}

int tpl_users(const struct template *t, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	struct stat st;
	int n = 0;

	if (!d || stat(t->mem, &st) < 0) {
		if (d)
			closedir(d);
		return 0;
	}
	while ((e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name);

		if (pid <= 0 || pid == getpid() || !maps_file(pid, t->mem, st.st_ino))
			continue;
		if (n < max)
			pids[n] = pid;
		n++;
	}
	closedir(d);
	return n;
}

static int is_key(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return 0;
	return i == TPL_KEY_LEN;
}

int tpl_list(const struct tpl_store *s,
             void (*fn)(const struct template *t, const struct tpl_info *info, const char *problem,
                        void *arg),
             void *arg)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d))) {
		struct template t;
		struct tpl_info in;
		kerr_t err;

		if (!is_key(e->d_name))
			continue;
		if (tpl_paths(s, e->d_name, &t, &err) == 0)
			fn(&t, &in, tpl_verify(&t, &in, &err) < 0 ? err.msg : NULL, arg);
	}
	closedir(d);
	return 0;
}

/* ---- acquire ---- */

static void failed_path(const struct template *t, char *out, size_t n)
{
	snprintf(out, n, "%.*s.failed", (int)(strlen(t->lock) - 5), t->lock);
}

/* A build that failed recently fails again without booting, with its reason. */
static int recent_failure(const struct template *t, kerr_t *err)
{
	char path[300], *why = NULL;
	struct stat st;

	failed_path(t, path, sizeof(path));
	if (stat(path, &st) < 0 || time(NULL) - st.st_mtime > FAILED_RETRY_SECS)
		return 0;
	if (read_file(path, &why, NULL, 4096, NULL) < 0)
		return 0;
	kerr_set(err, EAGAIN, "building template %s failed %lld s ago (not retried for %d s): %s",
	         t->key, (long long)(time(NULL) - st.st_mtime), FAILED_RETRY_SECS, why);
	free(why);
	return -1;
}

static int build_locked(const struct tpl_store *s, const struct vm_config *cfg, enum accel accel,
                        struct template *t, struct tpl_info *in, kerr_t *err)
{
	char path[TPL_PATH_SIZE];

	if (recent_failure(t, err) < 0)
		return -1;
	failed_path(t, path, sizeof(path));
	if (tpl_build(s, cfg, accel, t, in, err) < 0) {
		write_file_atomic(path, err->msg, strlen(err->msg), NULL);
		return -1;
	}
	unlink(path);
	return 0;
}

int tpl_acquire(const struct tpl_store *s, const struct vm_config *cfg, enum accel accel, int build,
                struct template *t, struct tpl_info *in, int *built, kerr_t *err)
{
	int64_t deadline = mono_ns() + ((int64_t)cfg->boot_timeout_ms + 30000) * 1000000;
	char key[TPL_KEY_LEN + 1];
	kerr_t why;
	int fd, rc;

	*built = 0;
	if (tpl_key(s, cfg, accel, key, err) < 0)
		return -1;
	if (tpl_paths(s, key, t, err) < 0)
		return -1;
	fd = tpl_lock(t, 0, deadline, err);
	if (fd < 0)
		return -1;
	rc = tpl_verify(t, in, &why);
	if (rc == 0)
		return fd;
	close(fd);
	if (why.errnum != ENOENT && why.errnum != EBADMSG)
		return kerr_set(err, why.errnum, "%s", why.msg);
	if (!build && why.errnum == ENOENT)
		return kerr_set(err, ENOENT, "%s", why.msg);
	fd = tpl_lock(t, 1, deadline, err);
	if (fd < 0)
		return -1;
	/* Someone else may have built (or removed) it while we waited. A broken one is
	 * removed but not rebuilt now: this start falls back, the next one builds. */
	rc = tpl_verify(t, in, err);
	if (rc < 0 && err->errnum == EBADMSG) {
		kerr_t rm;

		if (tpl_remove_files(t, &rm) == 0)
			kerr_wrap(err, "removed it; the next start builds it again");
	} else if (rc < 0 && err->errnum == ENOENT && build) {
		rc = build_locked(s, cfg, accel, t, in, err);
		*built = rc == 0;
	}
	if (rc < 0) {
		close(fd);
		return -1;
	}
	flock(fd, LOCK_SH); /* clones may start: only removal waits for us */
	return fd;
}

/* ---- starting a VM from its template ---- */
