/* The snapshot store (vmsnap.h): where a snapshot's files are, its meta.json read back and
 * checked, a snapshot opened for forks under its shared lock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "vm/vmsnap.h"

int snap_paths(const char *dir, const char *mem_dir, const char *name, struct template *t,
               kerr_t *err)
{
	size_t n = strlen(name);

	if (id_valid(name, err) < 0)
		return kerr_wrap(err, "snapshot name");
	/* <name>.lock sits beside <name>/: no name may be another's lock. */
	if (n >= 5 && !strcmp(name + n - 5, ".lock"))
		return kerr_set(err, EINVAL, "snapshot name `%s`: a name may not end in .lock",
		                name);
	snprintf(t->key, sizeof(t->key), "%.32s", name);
	if (fmt_path(t->dir, sizeof(t->dir), "%s/%s", dir, name) < 0 ||
	    fmt_path(t->meta, sizeof(t->meta), "%s/meta.json", t->dir) < 0 ||
	    fmt_path(t->state, sizeof(t->state), "%s/state", t->dir) < 0 ||
	    fmt_path(t->lock, sizeof(t->lock), "%s/%s.lock", dir, name) < 0 ||
	    fmt_path(t->mem, sizeof(t->mem), "%s/%s.mem", mem_dir, name) < 0)
		return kerr_set(err, ENAMETOOLONG, "snapshot `%s`: path too long", name);
	return 0;
}

/* The files the store says, never the ones meta.json names: the memory file, and each
 * disk as <dir>/disk-<target>.img, which must be there. */
static int store_files(const struct template *t, struct vm_shape *sh, kerr_t *err)
{
	struct stat st;

	snprintf(sh->mem_path, sizeof(sh->mem_path), "%s", t->mem);
	sh->cfg.mem_path = sh->mem_path;
	if (stat(t->mem, &st) < 0 ||
	    (unsigned long long)st.st_size != (unsigned long long)sh->cfg.memory_mib << 20)
		return kerr_set(err, EBADMSG, "%s is missing or not %u MiB", t->mem,
		                sh->cfg.memory_mib);
	if (stat(t->state, &st) < 0)
		return kerr_sys(err, "%s", t->state);
	for (unsigned i = 0; i < sh->cfg.n_disks; i++) {
		struct vm_disk *d = &sh->disks[i];

		if (fmt_path(d->path, sizeof(d->path), "%s/disk-%u.img", t->dir, d->target) < 0)
			return kerr_set(err, ENAMETOOLONG, "%s: path too long", t->dir);
		if (lstat(d->path, &st) < 0 || !S_ISREG(st.st_mode))
			return kerr_set(err, EBADMSG, "%s is missing or not a file", d->path);
	}
	return 0;
}

int snap_read_meta(const struct template *t, struct vm_shape *sh, json_object **meta, kerr_t *err)
{
	char *s = NULL;
	json_object *o;

	if (read_file(t->meta, &s, NULL, 1 << 16, err) < 0)
		return -1;
	o = json_tokener_parse(s);
	free(s);
	if (!o || vm_shape_read(o, sh, err) < 0) {
		json_object_put(o);
		return kerr_set(err, EBADMSG, "%s is malformed", t->meta);
	}
	if (store_files(t, sh, err) < 0) {
		json_object_put(o);
		return -1;
	}
	if (meta)
		*meta = o;
	else
		json_object_put(o);
	return 0;
}

int snap_open(const char *dir, const char *mem_dir, const char *name, struct vm_shape *sh,
              struct template *t, kerr_t *err)
{
	struct stat st;
	int lock;

	if (snap_paths(dir, mem_dir, name, t, err) < 0)
		return -1;
	if (stat(t->dir, &st) < 0)
		return kerr_set(err, ENOENT, "no snapshot `%s` in %s", name, dir);
	lock = tpl_lock(t, 0, mono_ns() + 10000000000LL, err);
	if (lock < 0)
		return -1;
	if (snap_read_meta(t, sh, NULL, err) < 0) {
		close(lock);
		return kerr_wrap(err, "snapshot `%s`", name);
	}
	return lock;
}

void snap_drop_disks(const struct template *t)
{
	DIR *d = opendir(t->dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (!strncmp(e->d_name, "disk-", 5) && n > 9 && !strcmp(e->d_name + n - 4, ".img"))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	if (d)
		closedir(d);
}
