#include "proxy/bundle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "proxy/hostns.h"
#include "proxy/mounts.h"

#define SPEC_MAX (4u << 20)
/* The least memory limit a container may have: below about 512 KiB the guest's kernel
 * livelocks in reclaim instead of failing; Docker refuses under 6 MB, and so do we. */
#define CTR_MEMORY_MIN (6ll << 20)

/* containerd names the pod's namespaces by the sandbox process's (a path on the host). In
 * the VM: the pod's pid namespace is the one the guest keeps for it (joined by path), and
 * its network, IPC and UTS namespaces are the VM's own (the entry goes). A namespace
 * without a path is the container's own, and one left out is the VM's (the pod's node). */
static void adapt_namespaces(json_object *linux_)
{
	json_object *nss, *kept;

	if (!json_object_object_get_ex(linux_, "namespaces", &nss) ||
	    !json_object_is_type(nss, json_type_array))
		return;
	kept = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(nss); i++) {
		json_object *ns = json_object_array_get_idx(nss, i);
		const char *type = jget_str(ns, "type", NULL), *path = jget_str(ns, "path", NULL);

		if (!path || !path[0]) {
			json_object_array_add(kept, json_object_get(ns));
		} else if (type && !strcmp(type, "pid")) {
			json_object *pod = json_object_new_object();

			json_object_object_add(pod, "type", json_object_new_string("pid"));
			json_object_object_add(pod, "path",
			                       json_object_new_string(GUEST_POD_PIDNS));
			json_object_array_add(kept, pod);
		}
	}
	json_object_object_add(linux_, "namespaces", kept);
}

static void adapt_linux(json_object *spec, const char *id)
{
	json_object *linux_;
	const char *cg;
	char path[256];

	if (!json_object_object_get_ex(spec, "linux", &linux_) ||
	    !json_object_is_type(linux_, json_type_object))
		return;
	adapt_namespaces(linux_);
	/* The guest has no SELinux; systemd-style cgroup paths (slice:prefix:name) mean nothing
	 * there either: the container gets a plain path named after it. */
	json_object_object_del(linux_, "mountLabel");
	cg = jget_str(linux_, "cgroupsPath", NULL);
	if (cg && cg[0] != '/') {
		snprintf(path, sizeof(path), "/kuasar/%s", id);
		json_object_object_add(linux_, "cgroupsPath", json_object_new_string(path));
	}
}

static int has_mount_on(json_object *mounts, const char *dst)
{
	for (size_t i = 0; i < json_object_array_length(mounts); i++) {
		const char *d = jget_str(json_object_array_get_idx(mounts, i), "destination", "");

		if (!strcmp(d, dst))
			return 1;
	}
	return 0;
}

/* guest_dir's parent (the share in the guest) + "/.pod/" + name into out. */
static int pod_file(char *out, size_t n, const char *dir, const char *name)
{
	const char *slash = strrchr(dir, '/');
	int len = slash ? (int)(slash - dir) : 0;

	return fmt_path(out, n, "%.*s/%s/%s", len, dir, POD_FILES_DIR, name);
}

static void add_pod_files(json_object *spec, const char *guest_dir, const struct spec_stage *st)
{
	static const char *const names[] = { "hosts", "resolv.conf", "hostname" };
	json_object *mounts;

	if (!json_object_object_get_ex(spec, "mounts", &mounts) ||
	    !json_object_is_type(mounts, json_type_array)) {
		mounts = json_object_new_array();
		json_object_object_add(spec, "mounts", mounts);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char dst[64], gpath[PATH_MAX];
		json_object *m, *opts;

		snprintf(dst, sizeof(dst), "/etc/%s", names[i]);
		if (has_mount_on(mounts, dst) || !st->has_pod_file(st->ctx, names[i]))
			continue;
		if (st->pod_etc)
			snprintf(gpath, sizeof(gpath), "%s/%s", st->pod_etc, names[i]);
		else if (pod_file(gpath, sizeof(gpath), guest_dir, names[i]))
			continue;
		m = json_object_new_object();
		opts = json_object_new_array();
		json_object_array_add(opts, json_object_new_string("rbind"));
		json_object_array_add(opts, json_object_new_string("rprivate"));
		json_object_array_add(opts, json_object_new_string("rw"));
		json_object_object_add(m, "destination", json_object_new_string(dst));
		json_object_object_add(m, "type", json_object_new_string("bind"));
		json_object_object_add(m, "source", json_object_new_string(gpath));
		json_object_object_add(m, "options", opts);
		json_object_array_add(mounts, m);
	}
}

static int copy_or_write(int dirfd, const char *name, const char *text, const char *from,
                         kerr_t *err)
{
	_cleanup_free_ char *copy = NULL;
	size_t len = 0;

	if (!text) {
		if (read_file(from, &copy, &len, 1 << 20, NULL) < 0)
			return 0; /* the host has none: neither do the containers */
		text = copy;
	} else {
		len = strlen(text);
	}
	return write_file_at(dirfd, name, text, len, err);
}

int pod_files_write(const char *shared, const char *hostname, const char *resolv, kerr_t *err)
{
	_cleanup_close_ int share = -1, dir = -1;
	char host[HOSTNAME_MAX + 2];

	/* At Create the share is new, made here (the VM starts later): no guest yet. */
	if (mkdir_p(shared, 0755, err) < 0)
		return kerr_wrap(err, "pod files");
	share = open(shared, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (share < 0)
		return kerr_sys(err, "pod files: open %s", shared);
	/* The share is the guest's to write: .pod is made here, and a link or file in its place
	 * is refused rather than followed. */
	if (mkdirat(share, POD_FILES_DIR, 0755) < 0 && errno != EEXIST)
		return kerr_sys(err, "pod files: mkdir %s/%s", shared, POD_FILES_DIR);
	dir = open_beneath(share, POD_FILES_DIR, O_PATH | O_DIRECTORY, 0);
	if (dir < 0)
		return kerr_sys(err, "pod files: open %s/%s", shared, POD_FILES_DIR);
	if (hostname && hostname[0])
		snprintf(host, sizeof(host), "%s\n", hostname);
	else if (gethostname(host, sizeof(host) - 1) == 0) {
		host[sizeof(host) - 2] = 0;
		strcat(host, "\n");
	} else
		host[0] = 0;
	if (copy_or_write(dir, "hostname", host, NULL, err) < 0 ||
	    copy_or_write(dir, "hosts", NULL, "/etc/hosts", err) < 0 ||
	    copy_or_write(dir, "resolv.conf", resolv, "/etc/resolv.conf", err) < 0)
		return kerr_wrap(err, "pod files");
	return 0;
}

static json_object *obj_at(json_object *o, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object))
		return v;
	v = json_object_new_object();
	json_object_object_add(o, key, v);
	return v;
}

/* A memory limit set must be one a container can start in; none, or one past what the VM
 * can give (vm_mib less the guest's reserve), becomes that cap. */
static int check_memory(json_object *spec, unsigned vm_mib, kerr_t *err)
{
	json_object *linux_, *res, *mem, *limit;
	int64_t v = 0, cap = vm_mib > GUEST_RESERVE_MIB
	                         ? ((int64_t)(vm_mib - GUEST_RESERVE_MIB) << 20)
	                         : 0;

	if (json_object_object_get_ex(spec, "linux", &linux_) &&
	    json_object_object_get_ex(linux_, "resources", &res) &&
	    json_object_object_get_ex(res, "memory", &mem) &&
	    json_object_object_get_ex(mem, "limit", &limit))
		v = json_object_get_int64(limit);
	if (v > 0 && v < CTR_MEMORY_MIN)
		return kerr_set(
		    err, EINVAL,
		    "memory limit of %lld bytes is under the %lld MiB a container needs "
		    "to start",
		    (long long)v, CTR_MEMORY_MIN >> 20);
	if (cap && (v <= 0 || v > cap))
		json_object_object_add(obj_at(obj_at(obj_at(spec, "linux"), "resources"), "memory"),
		                       "limit", json_object_new_int64(cap));
	return 0;
}

int spec_rewrite(json_object *spec, const char *id, const char *guest_dir,
                 const struct spec_stage *st, kerr_t *err)
{
	json_object *root, *process;

	if (!json_object_is_type(spec, json_type_object))
		return kerr_set(err, EINVAL, "config.json is not a JSON object");
	if (check_memory(spec, st->vm_mib, err) < 0)
		return -1;
	root = json_object_new_object();
	json_object_object_add(root, "path", json_object_new_string("rootfs"));
	if (json_object_object_get_ex(spec, "root", &process) && process &&
	    json_object_is_type(process, json_type_object)) {
		json_object *ro;

		if (json_object_object_get_ex(process, "readonly", &ro))
			json_object_object_add(root, "readonly", json_object_get(ro));
	}
	json_object_object_add(spec, "root", root);
	if (mounts_rewrite(spec, guest_dir, st, err) < 0)
		return -1;
	add_pod_files(spec, guest_dir, st);
	/* Hooks name host binaries; AppArmor and SELinux labels name host policy. */
	json_object_object_del(spec, "hooks");
	if (json_object_object_get_ex(spec, "process", &process) &&
	    json_object_is_type(process, json_type_object)) {
		json_object_object_del(process, "apparmorProfile");
		json_object_object_del(process, "selinuxLabel");
	}
	adapt_linux(spec, id);
	return 0;
}

/* ---- the bundle in the share ----
 *
 * Every step below works from fds the proxy opened itself: the share's root (host-made; the
 * guest sees only what is inside it), the bundle directory made there, and the mount points
 * in it, each opened with open_beneath so that no link the guest planted is followed. Mounts
 * land on those fds, and the fd of each mount's root is kept until the bundle goes: the
 * unmount then reaches exactly that mount, wherever the guest has moved the directories
 * above it, and never a mount the guest pointed a path at (SECURITY.md). */

struct bundle {
	char id[ID_MAX + 1];
	int *mnts; /* the roots of the mounts made in it, to unmount by fd */
	size_t n_mnts, cap;
	struct bundle *next;
};

/* A bundle being prepared. */
struct stage {
	struct bundles *b;
	struct bundle *bd;
	int dir;    /* <share>/<id> */
	int mounts; /* <share>/<id>/mounts, made with the first bind */
	int made;   /* <share>/<id> was made here (and so is ours to remove) */
};

static int keep_mount(struct bundle *bd, int fd, kerr_t *err)
{
	if (bd->n_mnts == bd->cap) {
		size_t cap = bd->cap ? bd->cap * 2 : 4;
		int *m = realloc(bd->mnts, cap * sizeof(*m));

		if (!m) {
			umount_fd(fd);
			close(fd);
			return kerr_set(err, ENOMEM, "out of memory");
		}
		bd->mnts = m;
		bd->cap = cap;
	}
	bd->mnts[bd->n_mnts++] = fd;
	return 0;
}

/* A recursive bind of the host path src onto the fd target, as a detached tree moved into
 * place; MOUNT_ATTR_* attrs set on it first. The tree's fd is kept. */
static int bind_onto(struct bundle *bd, const char *src, int target, unsigned attrs, kerr_t *err)
{
	struct mount_attr ma = { .attr_set = attrs };
	_cleanup_close_ int tree = -1;

	/* The host's path as the host sees it now (proxy/hostns.h), moved into ours. */
	if (hostns_enter() < 0)
		return kerr_sys(err, "bind %s: enter the host's mount namespace", src);
	tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (tree < 0)
		kerr_sys(err, "bind %s", src);
	hostns_leave();
	if (tree < 0)
		return -1;
	if (attrs && mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof(ma)) < 0)
		return kerr_sys(err, "bind %s: set attributes", src);
	if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return kerr_sys(err, "bind %s", src);
	return keep_mount(bd, TAKE_FD(tree), err);
}

static int stage_mounts_dir(struct stage *st, kerr_t *err)
{
	if (st->mounts >= 0)
		return 0;
	/* Made now, so it cannot already be there: EEXIST means the guest put something in
	 * its place, which is refused, never used. */
	if (mkdirat(st->dir, "mounts", 0755) < 0)
		return kerr_sys(err, "mkdir %s/mounts", st->bd->id);
	st->mounts = open_beneath(st->dir, "mounts", O_PATH | O_DIRECTORY, 0);
	if (st->mounts < 0)
		return kerr_sys(err, "open %s/mounts", st->bd->id);
	return 0;
}

/* spec_rewrite's bind: mount n of the container, host path src, onto mounts/<n>. */
static int stage_bind(void *ctx, size_t n, const char *src, kerr_t *err)
{
	struct stage *st = ctx;
	_cleanup_close_ int target = -1;
	char name[24];
	struct stat sb;

	if (stat(src, &sb) < 0) /* a path containerd gave: the host's own */
		return kerr_sys(err, "bind mount source %s", src);
	if (stage_mounts_dir(st, err) < 0)
		return -1;
	snprintf(name, sizeof(name), "%zu", n);
	if (S_ISDIR(sb.st_mode)) {
		if (mkdirat(st->mounts, name, 0755) < 0)
			return kerr_sys(err, "mkdir mounts/%s", name);
		target = open_beneath(st->mounts, name, O_PATH | O_DIRECTORY, 0);
	} else {
		target = open_beneath(st->mounts, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
	}
	if (target < 0)
		return kerr_sys(err, "mount point mounts/%s", name);
	return bind_onto(st->bd, src, target, 0, err);
}

static int stage_has_pod_file(void *ctx, const char *name)
{
	struct stage *st = ctx;
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", POD_FILES_DIR, name);
	fd = open_beneath(st->b->share_fd, path, O_PATH, 0);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

struct mflag {
	const char *name;
	unsigned long set, clear;
};

static const struct mflag mflags[] = {
	{ "ro", MS_RDONLY, 0 },           { "rw", 0, MS_RDONLY },
	{ "nosuid", MS_NOSUID, 0 },       { "nodev", MS_NODEV, 0 },
	{ "noexec", MS_NOEXEC, 0 },       { "bind", MS_BIND, 0 },
	{ "rbind", MS_BIND | MS_REC, 0 }, { "relatime", MS_RELATIME, 0 },
	{ "noatime", MS_NOATIME, 0 },
};

/* containerd's mount options: flags become mount flags, the rest mount data. */
static int mount_options(const Containerd__Types__Mount *m, unsigned long *flags, char *data,
                         size_t size, kerr_t *err)
{
	size_t used = 0;

	*flags = 0;
	data[0] = '\0';
	for (size_t i = 0; i < m->n_options; i++) {
		const char *o = m->options[i];
		size_t k, len = strlen(o);

		for (k = 0; k < sizeof(mflags) / sizeof(mflags[0]); k++)
			if (!strcmp(o, mflags[k].name))
				break;
		if (k < sizeof(mflags) / sizeof(mflags[0])) {
			*flags = (*flags | mflags[k].set) & ~mflags[k].clear;
			continue;
		}
		if (used + len + 2 > size)
			return kerr_set(err, E2BIG, "rootfs mount options longer than %zu bytes",
			                size);
		used += (size_t)snprintf(data + used, size - used, "%s%s", used ? "," : "", o);
	}
	return 0;
}

/* A filesystem mount (an overlay) onto the fd target, through its /proc/self/fd name so no
 * path in the share is resolved; then the new mount's root is opened from the bundle (a
 * mount point the guest can neither rename nor replace) and kept. */
static int mount_fs_onto(struct stage *st, const Containerd__Types__Mount *m, int target,
                         unsigned long flags, const char *data, kerr_t *err)
{
	char at[32];
	int root;

	snprintf(at, sizeof(at), "/proc/self/fd/%d", target);
	if (mount(m->source, at, m->type, flags, data[0] ? data : NULL) < 0)
		return kerr_sys(err, "mount %s (%s) on %s/rootfs", m->source, m->type, st->bd->id);
	root = open_mount_root(st->dir, "rootfs");
	if (root < 0) /* left to the sandbox's teardown, which checks each mount's id */
		return kerr_sys(err, "%s/rootfs: the new mount is not where it was made",
		                st->bd->id);
	return keep_mount(st->bd, root, err);
}

/* The container's root: the request's one rootfs mount, or without one the bundle's own
 * root.path, on <share>/<id>/rootfs. */
static int stage_rootfs(struct stage *st, const char *host_bundle, json_object *spec,
                        Containerd__Types__Mount **rootfs, size_t n_rootfs, kerr_t *err)
{
	_cleanup_close_ int target = -1;
	unsigned long flags = MS_BIND;
	char data[4096] = "", src[PATH_MAX];
	const Containerd__Types__Mount *m = n_rootfs ? rootfs[0] : NULL;
	json_object *root;
	const char *p;

	if (n_rootfs > 1)
		return kerr_set(err, EINVAL, "%zu rootfs mounts: one is supported", n_rootfs);
	if (m && mount_options(m, &flags, data, sizeof(data), err) < 0)
		return -1;
	if (mkdirat(st->dir, "rootfs", 0755) < 0)
		return kerr_sys(err, "mkdir %s/rootfs", st->bd->id);
	target = open_beneath(st->dir, "rootfs", O_PATH | O_DIRECTORY, 0);
	if (target < 0)
		return kerr_sys(err, "open %s/rootfs", st->bd->id);
	if (m && m->type && m->type[0] && strcmp(m->type, "bind"))
		return mount_fs_onto(st, m, target, flags, data, err);
	if (m) {
		p = m->source;
	} else if (!json_object_object_get_ex(spec, "root", &root) ||
	           !(p = jget_str(root, "path", NULL))) {
		return kerr_set(err, EINVAL, "no rootfs mounts and no root.path in config.json");
	}
	if (fmt_path(src, sizeof(src), "%s%s%s", p[0] == '/' ? "" : host_bundle,
	             p[0] == '/' ? "" : "/", p) < 0)
		return kerr_sys(err, "rootfs %s", p);
	return bind_onto(st->bd, src, target, (flags & MS_RDONLY) ? MOUNT_ATTR_RDONLY : 0, err);
}

static int load_spec(const char *host_bundle, json_object **out, kerr_t *err)
{
	char path[PATH_MAX];
	_cleanup_free_ char *text = NULL;
	size_t len;
	json_tokener *tok;
	json_object *spec;

	if (fmt_path(path, sizeof(path), "%s/config.json", host_bundle) < 0)
		return kerr_sys(err, "bundle %s", host_bundle);
	if (read_file(path, &text, &len, SPEC_MAX, err) < 0)
		return -1;
	tok = json_tokener_new_ex(64);
	if (!tok)
		return kerr_set(err, ENOMEM, "out of memory");
	spec = json_tokener_parse_ex(tok, text, (int)len);
	if (!spec || json_tokener_get_error(tok) != json_tokener_success) {
		kerr_set(err, EINVAL, "%s: %s", path,
		         json_tokener_error_desc(json_tokener_get_error(tok)));
		json_tokener_free(tok);
		json_object_put(spec);
		return -1;
	}
	json_tokener_free(tok);
	*out = spec;
	return 0;
}

/* Tests only: KUASAR_TEST_BUNDLE_HOOK names a program run (and waited for) right after a
 * bundle directory is made, with its host path, so a test can play the guest at the moment
 * a race would need. Unset in production, where it costs one getenv. */
static void test_hook(const struct bundles *b, const char *id)
{
	const char *hook = getenv("KUASAR_TEST_BUNDLE_HOOK");
	char dir[KPATH_SIZE];
	pid_t pid;

	if (!hook || !hook[0] || fmt_path(dir, sizeof(dir), "%s/%s", b->shared, id) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		execl(hook, hook, dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static struct bundle *bundle_find(struct bundles *b, const char *id, struct bundle ***pp);

/* Detaches the bundle's mounts (newest first) and forgets it. */
static void bundle_forget(struct bundles *b, const char *id)
{
	struct bundle **pp, *bd = bundle_find(b, id, &pp);

	if (!bd)
		return;
	while (bd->n_mnts--) {
		int fd = bd->mnts[bd->n_mnts];

		if (umount_fd(fd) < 0 && errno != EINVAL)
			log_warn("bundle %s: unmount: %s", id, strerror(errno));
		close(fd);
	}
	*pp = bd->next;
	free(bd->mnts);
	free(bd);
}

static struct bundle *bundle_find(struct bundles *b, const char *id, struct bundle ***pp)
{
	for (struct bundle **p = &b->list; *p; p = &(*p)->next) {
		if (!strcmp((*p)->id, id)) {
			if (pp)
				*pp = p;
			return *p;
		}
	}
	return NULL;
}

/* Makes <share>/<id> (it must not exist) and everything in it; the bundle is listed from
 * the first mount on, so bundle_remove undoes a half-made one. */
static int stage_bundle(struct stage *st, const char *id, const char *host_bundle,
                        json_object *spec, Containerd__Types__Mount **rootfs, size_t n_rootfs,
                        const char *guest_root, kerr_t *err)
{
	const struct spec_stage hooks = { .bind = stage_bind,
		                          .has_pod_file = stage_has_pod_file,
		                          .ctx = st,
		                          .vm_mib = st->b->vm_mib,
		                          .submounts = mounts_host_below,
		                          .pod_etc = st->b->pod_etc };
	char gdir[PATH_MAX];
	json_object *root;
	const char *text;

	if (mkdirat(st->b->share_fd, id, 0755) < 0)
		return kerr_sys(err, "mkdir %s/%s", st->b->shared, id);
	st->made = 1;
	test_hook(st->b, id);
	st->dir = open_beneath(st->b->share_fd, id, O_PATH | O_DIRECTORY, 0);
	if (st->dir < 0)
		return kerr_sys(err, "open %s/%s", st->b->shared, id);
	if (fmt_path(gdir, sizeof(gdir), "%s/%s", GUEST_SHARED, id) < 0)
		return kerr_sys(err, "bundle of `%s`", id);
	if ((!guest_root && stage_rootfs(st, host_bundle, spec, rootfs, n_rootfs, err) < 0) ||
	    spec_rewrite(spec, id, gdir, &hooks, err) < 0)
		return -1;
	if (guest_root && json_object_object_get_ex(spec, "root", &root))
		json_object_object_add(root, "path", json_object_new_string(guest_root));
	text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN);
	return write_file_at(st->dir, "config.json", text, strlen(text), err);
}

int bundle_prepare(struct bundles *b, const char *id, const char *host_bundle,
                   Containerd__Types__Mount **rootfs, size_t n_rootfs, const char *guest_root,
                   char *guest_bundle, size_t n, kerr_t *err)
{
	struct stage st = { .b = b, .dir = -1, .mounts = -1 };
	json_object *spec = NULL;
	int rc;

	if (id_valid(id, err) < 0)
		return -1;
	if (!host_bundle || host_bundle[0] != '/')
		return kerr_set(err, EINVAL, "bundle `%s` is not an absolute path",
		                host_bundle ? host_bundle : "");
	if (bundle_find(b, id, NULL))
		return kerr_set(err, EEXIST, "container %s has a bundle already", id);
	if (load_spec(host_bundle, &spec, err) < 0)
		return -1;
	st.bd = calloc(1, sizeof(*st.bd));
	if (!st.bd) {
		json_object_put(spec);
		return kerr_set(err, ENOMEM, "out of memory");
	}
	snprintf(st.bd->id, sizeof(st.bd->id), "%s", id);
	st.bd->next = b->list;
	b->list = st.bd;
	rc = stage_bundle(&st, id, host_bundle, spec, rootfs, n_rootfs, guest_root, err);
	json_object_put(spec);
	if (st.dir >= 0)
		close(st.dir);
	if (st.mounts >= 0)
		close(st.mounts);
	if (rc == 0)
		return fmt_path(guest_bundle, n, "%s/%s", GUEST_SHARED, id) < 0
		           ? kerr_sys(err, "bundle of `%s`", id)
		           : 0;
	if (st.made)
		bundle_remove(b, id);
	else
		bundle_forget(b, id); /* somebody else's directory: not ours to remove */
	return -1;
}

int bundle_remove(struct bundles *b, const char *id)
{
	if (id_valid(id, NULL) < 0)
		return -1;
	bundle_forget(b, id);
	/* Whatever is at <share>/<id> now goes, without following a link or entering a mount;
	 * if the guest moved our directory away, it stays in the share, emptied of mounts. */
	return rm_tree_at(b->share_fd, id);
}

int bundles_open(struct bundles *b, const char *shared, kerr_t *err)
{
	memset(b, 0, sizeof(*b));
	if (fmt_path(b->shared, sizeof(b->shared), "%s", shared) < 0)
		return kerr_sys(err, "share %s", shared);
	b->share_fd = open(shared, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (b->share_fd < 0)
		return kerr_sys(err, "open the share %s", shared);
	return 0;
}

void bundles_close(struct bundles *b)
{
	while (b->list)
		bundle_remove(b, b->list->id);
	if (b->share_fd >= 0)
		close(b->share_fd);
	b->share_fd = -1;
}
