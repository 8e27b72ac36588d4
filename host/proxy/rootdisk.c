#include "proxy/rootdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/sha256.h"

#define IMG_SUFFIX ".erofs"
#define BUILD_PREFIX ".build-"
#define LOCK_NAME ".lock"
/* Overlay takes its options in one page; containerd's lowerdir fits about 50 layers. */
#define OVL_OPTS_MAX 4000
#define QMP_TIMEOUT_NS (10 * 1000000000LL)
#define UNPLUG_WAIT_NS (5 * 1000000000LL)
#define UNPLUG_POLL_MS 10

/* ---- the image cache ---- */

/* The cache's lock: held while an image is looked up, built, swept or let go, so that a
 * shared lock on an image is only ever taken on a file still in the cache. */
static int cache_lock(const char *cache, kerr_t *err)
{
	char path[KPATH_SIZE];
	int fd;

	if (mkdir_p(cache, 0700, err) < 0 ||
	    fmt_path(path, sizeof(path), "%s/" LOCK_NAME, cache) < 0)
		return err ? kerr_wrap(err, "rootfs cache %s", cache) : -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		if (err)
			kerr_sys(err, "lock %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Layers are snapshot directories; a committed one never changes, so its path and identity
 * name its content. */
static int image_key(char *const *lowers, size_t n, char *key, size_t key_len, kerr_t *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	char d[SHA256_HEX_SIZE];
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return kerr_sys(err, "rootfs image key");
	fprintf(f, "kuasar rootfs image 1\n");
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		int bad = stat(lowers[i], &st) < 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;

		if (bad) {
			fclose(f);
			errno = bad;
			return kerr_sys(err, "layer %s", lowers[i]);
		}
		fprintf(f, "%s %llu %llu %lld.%09ld\n", lowers[i], (unsigned long long)st.st_dev,
		        (unsigned long long)st.st_ino, (long long)st.st_ctim.tv_sec,
		        st.st_ctim.tv_nsec);
	}
	fclose(f);
	sha256_hex(text, len, d);
	fmt_msg(key, key_len, "%.32s", d);
	return 0;
}

/* mkfs.erofs IMAGE SOURCE, its complaint (first line) in err on failure. */
static int run_mkfs(const char *dir, const char *image, const char *src, kerr_t *err)
{
	char logp[KPATH_SIZE], line[256] = "";
	int status, fd;
	pid_t pid;
	FILE *f;

	if (fmt_path(logp, sizeof(logp), "%s/mkfs.log", dir) < 0)
		return kerr_sys(err, "mkfs log in %s", dir);
	pid = fork();
	if (pid < 0)
		return kerr_sys(err, "fork for mkfs.erofs");
	if (pid == 0) {
		fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("mkfs.erofs", "mkfs.erofs", "--quiet", image, src, (char *)NULL);
		dprintf(2, "exec mkfs.erofs: %s (make deps installs erofs-utils)\n",
		        strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	f = fopen(logp, "re");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
		line[strcspn(line, "\n")] = 0;
	}
	return kerr_set(err, EIO, "mkfs.erofs failed (status %d)%s%s", status, line[0] ? ": " : "",
	                line);
}

/* The merged view of the layers: a read-only overlay (two lowers at least, so one layer
 * gets an empty second), whose whiteouts the image must not carry as files. */
static int mount_layers(const char *dir, char *const *lowers, size_t n, const char *merged,
                        kerr_t *err)
{
	char opts[OVL_OPTS_MAX + KPATH_SIZE], empty[KPATH_SIZE];
	size_t used = (size_t)snprintf(opts, sizeof(opts), "lowerdir=");

	if (fmt_path(empty, sizeof(empty), "%s/empty", dir) < 0 || mkdir(empty, 0755) < 0)
		return kerr_sys(err, "empty layer in %s", dir);
	for (size_t i = 0; i < n + (n == 1); i++) {
		const char *l = i < n ? lowers[i] : empty;

		if (used + strlen(l) + 2 > OVL_OPTS_MAX)
			return kerr_set(err, E2BIG, "%zu layers: overlay options over %d bytes", n,
			                OVL_OPTS_MAX);
		used += (size_t)snprintf(opts + used, sizeof(opts) - used, "%s%s", i ? ":" : "", l);
	}
	if (mount("overlay", merged, "overlay", MS_RDONLY, opts) < 0)
		return kerr_sys(err, "mount the layers' overlay on %s", merged);
	return 0;
}

static int build_image(const char *cache, char *const *lowers, size_t n, const char *path,
                       kerr_t *err)
{
	char dir[KPATH_SIZE], merged[KPATH_SIZE], tmp[KPATH_SIZE];
	int rc = -1;

	if (fmt_path(dir, sizeof(dir), "%s/" BUILD_PREFIX "XXXXXX", cache) < 0 || !mkdtemp(dir))
		return kerr_sys(err, "build directory in %s", cache);
	if (fmt_path(merged, sizeof(merged), "%s/merged", dir) < 0 ||
	    fmt_path(tmp, sizeof(tmp), "%s/image" IMG_SUFFIX, dir) < 0 || mkdir(merged, 0755) < 0) {
		kerr_sys(err, "build directory %s", dir);
		goto out;
	}
	if (mount_layers(dir, lowers, n, merged, err) < 0)
		goto out;
	rc = run_mkfs(dir, tmp, merged, err);
	umount2(merged, MNT_DETACH);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = kerr_sys(err, "rename %s to %s", tmp, path);
out:
	umount_below(dir);
	rm_tree(dir);
	return rc;
}

/* Under the cache lock: a free image goes (nobody holds it shared), and so does what a
 * build that died left. */
static void sweep_locked(const char *cache)
{
	char path[KPATH_SIZE];
	struct dirent *de;
	DIR *d = opendir(cache);
	size_t sl = strlen(IMG_SUFFIX);

	while (d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (fmt_path(path, sizeof(path), "%s/%s", cache, de->d_name) < 0)
			continue;
		if (!strncmp(de->d_name, BUILD_PREFIX, strlen(BUILD_PREFIX))) {
			umount_below(path);
			rm_tree(path);
		} else if (de->d_name[0] != '.' && len > sl &&
		           !strcmp(de->d_name + len - sl, IMG_SUFFIX)) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);

			if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
				log_info("rootfs cache: %s is no longer used, removed", de->d_name);
				unlink(path);
			}
			if (fd >= 0)
				close(fd);
		}
	}
	if (d)
		closedir(d);
}

int rootimg_get(const char *cache, char *const *lowers, size_t n, struct rootimg *img, kerr_t *err)
{
	char key[40];
	int lock, fd;
	int64_t t0 = mono_ns();

	img->fd = -1;
	img->built = 0;
	img->build_ms = 0;
	if (image_key(lowers, n, key, sizeof(key), err) < 0)
		return -1;
	if (fmt_path(img->path, sizeof(img->path), "%s/%s" IMG_SUFFIX, cache, key) < 0)
		return kerr_sys(err, "rootfs image in %s", cache);
	lock = cache_lock(cache, err);
	if (lock < 0)
		return -1;
	sweep_locked(cache);
	fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (build_image(cache, lowers, n, img->path, err) < 0) {
			close(lock);
			return kerr_wrap(err, "rootfs image of %zu layers", n);
		}
		img->built = 1;
		img->build_ms = (double)(mono_ns() - t0) / 1e6;
		fd = open(img->path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0 || flock(fd, LOCK_SH) < 0) {
		kerr_sys(err, "open %s", img->path);
		if (fd >= 0)
			close(fd);
		close(lock);
		return -1;
	}
	close(lock);
	img->fd = fd;
	return 0;
}

void rootimg_put(const char *cache, struct rootimg *img)
{
	int lock, fd;

	if (img->fd < 0)
		return;
	lock = cache_lock(cache, NULL);
	close(img->fd);
	img->fd = -1;
	fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
		unlink(img->path);
	if (fd >= 0)
		close(fd);
	if (lock >= 0)
		close(lock);
}

void rootimg_sweep(const char *cache)
{
	int lock = cache_lock(cache, NULL);

	if (lock < 0)
		return;
	sweep_locked(cache);
	close(lock);
}

/* ---- containerd's mounts ---- */

static const char *mount_option(const Containerd__Types__Mount *m, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < m->n_options; i++)
		if (m->options[i] && !strncmp(m->options[i], name, len) &&
		    m->options[i][len] == '=')
			return m->options[i] + len + 1;
	return NULL;
}

/* Absolute, and no `..` component. */
static int path_ok(const char *p)
{
	size_t len = strlen(p);

	return p[0] == '/' && !strstr(p, "/../") && !(len >= 3 && !strcmp(p + len - 3, "/.."));
}

static int dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int empty = 1;

	if (!d)
		return 0;
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

void rootdisk_free_lowers(char **lowers, size_t n)
{
	for (size_t i = 0; lowers && i < n; i++)
		free(lowers[i]);
	free(lowers);
}

int rootdisk_lowers(Containerd__Types__Mount **m, size_t n_m, char ***lowers, size_t *n, char *why,
                    size_t why_len, kerr_t *err)
{
	const char *lower, *upper;
	char *copy, *save = NULL, *tok, **out = NULL;
	size_t k = 0;

	*lowers = NULL;
	*n = 0;
	if (n_m != 1 || !m[0]->type || strcmp(m[0]->type, "overlay")) {
		fmt_msg(why, why_len, "%zu rootfs mounts%s%s, not an overlay of image layers", n_m,
		        n_m == 1 ? " of type " : "", n_m == 1 && m[0]->type ? m[0]->type : "");
		return 0;
	}
	lower = mount_option(m[0], "lowerdir");
	upper = mount_option(m[0], "upperdir");
	if (!lower || !lower[0])
		return kerr_set(err, EINVAL, "overlay rootfs mount without lowerdir");
	if (strlen(lower) > OVL_OPTS_MAX - 64) {
		fmt_msg(why, why_len, "lowerdir of %zu bytes: too many layers for one overlay",
		        strlen(lower));
		return 0;
	}
	if (upper && (!path_ok(upper) || !dir_empty(upper))) {
		fmt_msg(why, why_len, "its upper layer %s already holds files", upper);
		return 0;
	}
	copy = strdup(lower);
	if (!copy)
		return kerr_set(err, ENOMEM, "out of memory");
	for (tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		char **grown;

		if (!path_ok(tok)) {
			kerr_set(err, EINVAL, "lowerdir `%s`: not an absolute path without `..`",
			         tok);
			goto fail;
		}
		grown = realloc(out, (k + 1) * sizeof(*out));
		if (!grown) {
			kerr_set(err, ENOMEM, "out of memory");
			goto fail;
		}
		out = grown;
		out[k] = strdup(tok);
		if (!out[k]) {
			kerr_set(err, ENOMEM, "out of memory");
			goto fail;
		}
		k++;
	}
	free(copy);
	if (!k)
		return kerr_set(err, EINVAL, "overlay rootfs mount with an empty lowerdir");
	*lowers = out;
	*n = k;
	return 1;
fail:
	free(copy);
	rootdisk_free_lowers(out, k);
	return -1;
}

/* ---- disks on the VM's SCSI bus ---- */

static void unplug_tick(struct loop_timer *t);

void rootdisks_init(struct rootdisks *rd, struct loop *loop, struct qmp *qmp, const char *cache)
{
	memset(rd, 0, sizeof(*rd));
	rd->loop = loop;
	rd->timer.fn = unplug_tick;
	rd->qmp = qmp;
	fmt_msg(rd->cache, sizeof(rd->cache), "%s", cache);
}

static int target_take(struct rootdisks *rd)
{
	for (unsigned t = 0; t < ROOTDISK_MAX_TARGETS; t++) {
		if (!(rd->used[t / 8] & (1u << (t % 8)))) {
			rd->used[t / 8] |= (unsigned char)(1u << (t % 8));
			return (int)t;
		}
	}
	return -1;
}

static void target_free(struct rootdisks *rd, unsigned t)
{
	rd->used[t / 8] &= (unsigned char)~(1u << (t % 8));
}

static int qmp_node(struct rootdisks *rd, const char *cmd, const char *key, const char *name,
                    kerr_t *err)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, key, json_object_new_string(name));
	return qmp_call(rd->qmp, cmd, a, NULL, mono_ns() + QMP_TIMEOUT_NS, err);
}

static int plug(struct rootdisks *rd, struct rootdisk *d, kerr_t *err)
{
	json_object *a = json_object_new_object(), *file = json_object_new_object();

	json_object_object_add(file, "driver", json_object_new_string("file"));
	json_object_object_add(file, "filename", json_object_new_string(d->img.path));
	json_object_object_add(a, "driver", json_object_new_string("raw"));
	json_object_object_add(a, "node-name", json_object_new_string(d->node));
	json_object_object_add(a, "read-only", json_object_new_boolean(1));
	json_object_object_add(a, "file", file);
	if (qmp_call(rd->qmp, "blockdev-add", a, NULL, mono_ns() + QMP_TIMEOUT_NS, err) < 0)
		return kerr_wrap(err, "QMP blockdev-add %s", d->img.path);
	a = json_object_new_object();
	json_object_object_add(a, "driver", json_object_new_string("scsi-hd"));
	json_object_object_add(a, "id", json_object_new_string(d->node));
	json_object_object_add(a, "drive", json_object_new_string(d->node));
	json_object_object_add(a, "bus", json_object_new_string("scsi.0"));
	json_object_object_add(a, "scsi-id", json_object_new_int((int)d->target));
	json_object_object_add(a, "lun", json_object_new_int(0));
	if (qmp_call(rd->qmp, "device_add", a, NULL, mono_ns() + QMP_TIMEOUT_NS, err) < 0) {
		kerr_wrap(err, "QMP device_add scsi-hd (target %u)", d->target);
		qmp_node(rd, "blockdev-del", "node-name", d->node, NULL);
		return -1;
	}
	return 0;
}

int rootdisk_attach(struct rootdisks *rd, const char *id, char *const *lowers, size_t n,
                    struct rootdisk **out, kerr_t *err)
{
	struct rootdisk *d;
	int t;

	if (rootdisk_find(rd, id))
		return kerr_set(err, EEXIST, "container %s has a root disk already", id);
	d = calloc(1, sizeof(*d));
	if (!d)
		return kerr_set(err, ENOMEM, "out of memory");
	d->img.fd = -1;
	t = target_take(rd);
	if (t < 0) {
		free(d);
		return kerr_set(err, ENOSPC, "all %d SCSI targets hold root disks",
		                ROOTDISK_MAX_TARGETS);
	}
	d->target = (unsigned)t;
	fmt_msg(d->id, sizeof(d->id), "%s", id);
	/* Names are never reused: a node QEMU failed to free cannot block a later disk. */
	fmt_msg(d->node, sizeof(d->node), "rootfs%u.%u", d->target, ++rd->seq);
	if (rootimg_get(rd->cache, lowers, n, &d->img, err) < 0 || plug(rd, d, err) < 0) {
		rootimg_put(rd->cache, &d->img);
		target_free(rd, d->target);
		free(d);
		return -1;
	}
	d->next = rd->list;
	rd->list = d;
	*out = d;
	return 0;
}

struct rootdisk *rootdisk_find(struct rootdisks *rd, const char *id)
{
	for (struct rootdisk *d = rd->list; d; d = d->next)
		if (!d->releasing && !strcmp(d->id, id))
			return d;
	return NULL;
}

struct rootdisk *rootdisk_find_target(struct rootdisks *rd, unsigned target)
{
	for (struct rootdisk *d = rd->list; d; d = d->next)
		if (d->target == target)
			return d;
	return NULL;
}

/* The disk is out of the VM: its image and target go. */
static void finish(struct rootdisks *rd, struct rootdisk *d)
{
	for (struct rootdisk **pp = &rd->list; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	rootimg_put(rd->cache, &d->img);
	target_free(rd, d->target);
	free(d);
}

/* An unplugged device lets go of its node only when QEMU frees it, after an RCU grace
 * period on its main loop (about 50 ms under TCG here): the node is deleted from the loop,
 * asked again until it is no longer in use. */
static void unplug_tick(struct loop_timer *t)
{
	struct rootdisks *rd = container_of(t, struct rootdisks, timer);
	struct rootdisk *d, *next;
	int pending = 0;
	kerr_t err;

	for (d = rd->list; d; d = next) {
		next = d->next;
		if (!d->unplugging)
			continue;
		if (qmp_node(rd, "blockdev-del", "node-name", d->node, &err) == 0) {
			log_debug("root disk of %s unplugged from SCSI target %u in %.1f ms", d->id,
			          d->target, (double)(mono_ns() - d->unplug_ns) / 1e6);
		} else if (strstr(err.msg, "in use") && mono_ns() - d->unplug_ns < UNPLUG_WAIT_NS) {
			pending = 1;
			continue;
		} else {
			log_warn("root disk of %s (SCSI target %u): %s", d->id, d->target, err.msg);
		}
		finish(rd, d);
	}
	if (pending)
		loop_timer_arm(rd->loop, &rd->timer, UNPLUG_POLL_MS);
}

void rootdisk_detach(struct rootdisks *rd, struct rootdisk *d, int vm_running)
{
	kerr_t err;

	d->releasing = 1;
	if (!vm_running)
		return finish(rd, d);
	if (qmp_node(rd, "device_del", "id", d->node, &err) < 0) {
		log_warn("root disk of %s (SCSI target %u): %s", d->id, d->target, err.msg);
		return finish(rd, d);
	}
	d->unplugging = 1;
	d->unplug_ns = mono_ns();
	loop_timer_arm(rd->loop, &rd->timer, UNPLUG_POLL_MS);
}

void rootdisks_unplug_released(struct rootdisks *rd)
{
	struct rootdisk *d, *next;

	for (d = rd->list; d; d = next) {
		next = d->next;
		if (d->releasing && !d->unplugging)
			rootdisk_detach(rd, d, 1);
	}
}

void rootdisks_release(struct rootdisks *rd)
{
	if (rd->loop)
		loop_timer_cancel(rd->loop, &rd->timer);
	while (rd->list)
		finish(rd, rd->list);
}
