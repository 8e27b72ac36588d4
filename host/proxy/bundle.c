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
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"

#define SPEC_MAX (4u << 20)
#define MAX_MOUNTS 256

static int has_option(json_object *m, const char *opt)
{
	json_object *opts;

	if (!json_object_object_get_ex(m, "options", &opts) ||
	    !json_object_is_type(opts, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(opts); i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(opts, i));

		if (s && !strcmp(s, opt))
			return 1;
	}
	return 0;
}

static int is_bind(json_object *m)
{
	const char *type = jget_str(m, "type", NULL);

	return (type && !strcmp(type, "bind")) || has_option(m, "bind") || has_option(m, "rbind");
}

/* /dev/shm from the host would be a directory the guest cannot share memory through: the
 * pod's shm lives in the guest as a tmpfs. */
static void shm_as_tmpfs(json_object *m)
{
	json_object *opts = json_object_new_array();

	json_object_object_add(m, "type", json_object_new_string("tmpfs"));
	json_object_object_add(m, "source", json_object_new_string("shm"));
	json_object_array_add(opts, json_object_new_string("nosuid"));
	json_object_array_add(opts, json_object_new_string("noexec"));
	json_object_array_add(opts, json_object_new_string("nodev"));
	json_object_array_add(opts, json_object_new_string("mode=1777"));
	json_object_array_add(opts, json_object_new_string("size=65536k"));
	json_object_object_add(m, "options", opts);
}

/* Creates the mount point for src below dir/mounts: a directory or an empty file. */
static int make_mount_point(const char *src, const char *dst, kerr_t *err)
{
	struct stat st;
	int fd;

	if (stat(src, &st) < 0)
		return kerr_sys(err, "bind mount source %s", src);
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", dst);
		return 0;
	}
	fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return kerr_sys(err, "create %s", dst);
	close(fd);
	return 0;
}

static int rewrite_mounts(json_object *spec, const char *host_dir, const char *guest_dir,
                          bundle_bind_fn bind, kerr_t *err)
{
	json_object *mounts;
	char mdir[PATH_MAX];
	size_t n;

	if (!json_object_object_get_ex(spec, "mounts", &mounts))
		return 0;
	if (!json_object_is_type(mounts, json_type_array))
		return kerr_set(err, EINVAL, "config.json: mounts is not an array");
	n = json_object_array_length(mounts);
	if (n > MAX_MOUNTS)
		return kerr_set(err, E2BIG, "config.json: %zu mounts, more than %d", n, MAX_MOUNTS);
	snprintf(mdir, sizeof(mdir), "%s/mounts", host_dir);
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		const char *dst = jget_str(m, "destination", NULL),
		           *src = jget_str(m, "source", NULL);
		char hpath[PATH_MAX], gpath[PATH_MAX];

		if (!dst)
			return kerr_set(err, EINVAL, "config.json: mount %zu has no destination",
			                i);
		if (!strcmp(dst, "/dev/shm")) {
			shm_as_tmpfs(m);
			continue;
		}
		if (!is_bind(m))
			continue;
		if (!src || src[0] != '/')
			return kerr_set(err, EINVAL,
			                "config.json: bind mount on %s has no absolute source",
			                dst);
		if (mkdir(mdir, 0755) < 0 && errno != EEXIST)
			return kerr_sys(err, "mkdir %s", mdir);
		if (fmt_path(hpath, sizeof(hpath), "%s/%zu", mdir, i) < 0 ||
		    fmt_path(gpath, sizeof(gpath), "%s/mounts/%zu", guest_dir, i) < 0)
			return kerr_sys(err, "mount on %s: path under %s", dst, mdir);
		if (make_mount_point(src, hpath, err) < 0 || bind(src, hpath, err) < 0)
			return kerr_wrap(err, "mount on %s", dst);
		json_object_object_add(m, "source", json_object_new_string(gpath));
	}
	return 0;
}

/* Namespaces given by path are the host's (the pod's netns, the sandbox process's pid, ipc
 * and uts): meaningless in the VM. The VM is the pod's network, so a container joins the
 * VM's network namespace; every other one becomes a new namespace of the container's own,
 * never the VM's (which holds kuasar-init). Pod-wide sharing of pid and ipc between
 * containers is therefore not provided. */
static void adapt_namespaces(json_object *linux_, int *new_uts)
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
		} else if (type && strcmp(type, "network")) {
			json_object *fresh = json_object_new_object();

			if (!strcmp(type, "uts"))
				*new_uts = 1;
			json_object_object_add(fresh, "type", json_object_new_string(type));
			json_object_array_add(kept, fresh);
		}
	}
	json_object_object_add(linux_, "namespaces", kept);
}

static void adapt_linux(json_object *spec, const char *id, const char *hostname)
{
	json_object *linux_;
	const char *cg, *h;
	char path[256];
	int new_uts = 0;

	if (!json_object_object_get_ex(spec, "linux", &linux_) ||
	    !json_object_is_type(linux_, json_type_object))
		return;
	adapt_namespaces(linux_, &new_uts);
	/* A container that was to join the pod's UTS namespace gets the pod's hostname in its
	 * own instead. */
	h = jget_str(spec, "hostname", NULL);
	if (new_uts && (!h || !h[0]) && hostname && hostname[0])
		json_object_object_add(spec, "hostname", json_object_new_string(hostname));
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

/* dir's parent (the share) + "/.pod/" + name into out. */
static int pod_file(char *out, size_t n, const char *dir, const char *name)
{
	const char *slash = strrchr(dir, '/');
	int len = slash ? (int)(slash - dir) : 0;

	return fmt_path(out, n, "%.*s/%s/%s", len, dir, POD_FILES_DIR, name);
}

static void add_pod_files(json_object *spec, const char *host_dir, const char *guest_dir)
{
	static const char *const names[] = { "hosts", "resolv.conf", "hostname" };
	json_object *mounts;

	if (!json_object_object_get_ex(spec, "mounts", &mounts) ||
	    !json_object_is_type(mounts, json_type_array)) {
		mounts = json_object_new_array();
		json_object_object_add(spec, "mounts", mounts);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char dst[64], hpath[PATH_MAX], gpath[PATH_MAX];
		json_object *m, *opts;

		snprintf(dst, sizeof(dst), "/etc/%s", names[i]);
		if (has_mount_on(mounts, dst) ||
		    pod_file(hpath, sizeof(hpath), host_dir, names[i]) || access(hpath, F_OK) < 0 ||
		    pod_file(gpath, sizeof(gpath), guest_dir, names[i]))
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

static int copy_or_write(const char *dir, const char *name, const char *text, const char *from,
                         kerr_t *err)
{
	char path[PATH_MAX], *copy = NULL;
	size_t len = 0;
	int rc;

	if (fmt_path(path, sizeof(path), "%s/%s", dir, name) < 0)
		return kerr_sys(err, "%s/%s", dir, name);
	if (!text) {
		if (read_file(from, &copy, &len, 1 << 20, NULL) < 0)
			return 0; /* the host has none: neither do the containers */
		text = copy;
	} else {
		len = strlen(text);
	}
	rc = write_file_atomic(path, text, len, err);
	free(copy);
	return rc;
}

int pod_files_write(const char *shared, const char *hostname, const char *resolv, kerr_t *err)
{
	char dir[PATH_MAX], host[HOSTNAME_MAX + 2];

	if (fmt_path(dir, sizeof(dir), "%s/%s", shared, POD_FILES_DIR) < 0)
		return kerr_sys(err, "pod files in %s", shared);
	if (mkdir_p(dir, 0755, err) < 0)
		return -1;
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

int spec_rewrite(json_object *spec, const char *id, const char *host_dir, const char *guest_dir,
                 const char *hostname, bundle_bind_fn bind, kerr_t *err)
{
	json_object *root, *process;

	if (!json_object_is_type(spec, json_type_object))
		return kerr_set(err, EINVAL, "config.json is not a JSON object");
	root = json_object_new_object();
	json_object_object_add(root, "path", json_object_new_string("rootfs"));
	if (json_object_object_get_ex(spec, "root", &process) && process &&
	    json_object_is_type(process, json_type_object)) {
		json_object *ro;

		if (json_object_object_get_ex(process, "readonly", &ro))
			json_object_object_add(root, "readonly", json_object_get(ro));
	}
	json_object_object_add(spec, "root", root);
	if (rewrite_mounts(spec, host_dir, guest_dir, bind, err) < 0)
		return -1;
	add_pod_files(spec, host_dir, guest_dir);
	/* Hooks name host binaries; AppArmor and SELinux labels name host policy. */
	json_object_object_del(spec, "hooks");
	if (json_object_object_get_ex(spec, "process", &process) &&
	    json_object_is_type(process, json_type_object)) {
		json_object_object_del(process, "apparmorProfile");
		json_object_object_del(process, "selinuxLabel");
	}
	adapt_linux(spec, id, hostname);
	return 0;
}

/* ---- mounting ---- */

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
static int mount_one(const Containerd__Types__Mount *m, const char *target, kerr_t *err)
{
	unsigned long flags = 0;
	char data[4096] = "";
	size_t used = 0;
	const char *type = m->type && m->type[0] ? m->type : "bind";

	for (size_t i = 0; i < m->n_options; i++) {
		const char *o = m->options[i];
		size_t k, len = strlen(o);

		for (k = 0; k < sizeof(mflags) / sizeof(mflags[0]); k++)
			if (!strcmp(o, mflags[k].name))
				break;
		if (k < sizeof(mflags) / sizeof(mflags[0])) {
			flags = (flags | mflags[k].set) & ~mflags[k].clear;
			continue;
		}
		if (used + len + 2 > sizeof(data))
			return kerr_set(err, E2BIG, "rootfs mount options longer than %zu bytes",
			                sizeof(data));
		used +=
		    (size_t)snprintf(data + used, sizeof(data) - used, "%s%s", used ? "," : "", o);
	}
	if (!strcmp(type, "bind"))
		flags |= MS_BIND;
	if (mount(m->source, target, type, flags & ~((flags & MS_BIND) ? MS_RDONLY : 0),
	          used ? data : NULL) < 0)
		return kerr_sys(err, "mount %s (%s) on %s", m->source, type, target);
	/* A read-only bind needs a remount: the first call ignores MS_RDONLY. */
	if ((flags & MS_BIND) && (flags & MS_RDONLY) &&
	    mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
		umount2(target, MNT_DETACH);
		return kerr_sys(err, "remount %s read-only", target);
	}
	return 0;
}

static int bind_host(const char *src, const char *dst, kerr_t *err)
{
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return kerr_sys(err, "bind %s", src);
	return 0;
}

static int load_spec(const char *host_bundle, json_object **out, kerr_t *err)
{
	char path[PATH_MAX];
	_cleanup_free_ char *text = NULL;
	size_t len;
	json_tokener *tok;
	json_object *spec;

	snprintf(path, sizeof(path), "%s/config.json", host_bundle);
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

/* Without rootfs mounts, the bundle's own root.path is the root filesystem. */
static int mount_rootfs(const char *host_bundle, json_object *spec,
                        Containerd__Types__Mount **rootfs, size_t n_rootfs, const char *target,
                        kerr_t *err)
{
	json_object *root;
	const char *p;
	char src[PATH_MAX];

	if (n_rootfs > 1)
		return kerr_set(err, EINVAL, "%zu rootfs mounts: one is supported", n_rootfs);
	if (n_rootfs == 1)
		return mount_one(rootfs[0], target, err);
	if (!json_object_object_get_ex(spec, "root", &root) || !(p = jget_str(root, "path", NULL)))
		return kerr_set(err, EINVAL, "no rootfs mounts and no root.path in config.json");
	if (p[0] == '/')
		snprintf(src, sizeof(src), "%s", p);
	else
		snprintf(src, sizeof(src), "%s/%s", host_bundle, p);
	return bind_host(src, target, err);
}

int bundle_prepare(const char *shared, const char *id, const char *host_bundle,
                   Containerd__Types__Mount **rootfs, size_t n_rootfs, const char *guest_root,
                   const char *hostname, char *guest_bundle, size_t n, kerr_t *err)
{
	char dir[PATH_MAX], target[PATH_MAX], gdir[PATH_MAX], cfg[PATH_MAX];
	json_object *spec = NULL, *root;
	const char *text;

	if (id_valid(id, err) < 0)
		return -1;
	if (!host_bundle || host_bundle[0] != '/')
		return kerr_set(err, EINVAL, "bundle `%s` is not an absolute path",
		                host_bundle ? host_bundle : "");
	if (fmt_path(dir, sizeof(dir), "%s/%s", shared, id) < 0 ||
	    fmt_path(target, sizeof(target), "%s/rootfs", dir) < 0 ||
	    fmt_path(gdir, sizeof(gdir), "%s/%s", GUEST_SHARED, id) < 0 ||
	    fmt_path(cfg, sizeof(cfg), "%s/config.json", dir) < 0)
		return kerr_sys(err, "bundle of `%s` in %s", id, shared);
	if (load_spec(host_bundle, &spec, err) < 0)
		return -1;
	if (mkdir(dir, 0755) < 0) {
		kerr_sys(err, "mkdir %s", dir);
		if (errno == EEXIST)
			err->errnum = EEXIST;
		json_object_put(spec);
		return -1;
	}
	if (!guest_root && mkdir(target, 0755) < 0) {
		kerr_sys(err, "mkdir %s", target);
		goto fail;
	}
	if ((!guest_root && mount_rootfs(host_bundle, spec, rootfs, n_rootfs, target, err) < 0) ||
	    spec_rewrite(spec, id, dir, gdir, hostname, bind_host, err) < 0)
		goto fail;
	if (guest_root && json_object_object_get_ex(spec, "root", &root))
		json_object_object_add(root, "path", json_object_new_string(guest_root));
	text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN);
	if (write_file_atomic(cfg, text, strlen(text), err) < 0)
		goto fail;
	json_object_put(spec);
	snprintf(guest_bundle, n, "%s", gdir);
	return 0;
fail:
	json_object_put(spec);
	bundle_remove(shared, id);
	return -1;
}

static void umount_dir_entries(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (fmt_path(path, sizeof(path), "%s/%s", dir, de->d_name) == 0)
			umount2(path, MNT_DETACH);
	}
	closedir(d);
}

int bundle_remove(const char *shared, const char *id)
{
	char dir[PATH_MAX], path[PATH_MAX];

	if (fmt_path(dir, sizeof(dir), "%s/%s", shared, id) < 0)
		return -1;
	if (fmt_path(path, sizeof(path), "%s/rootfs", dir) == 0)
		umount2(path, MNT_DETACH);
	if (fmt_path(path, sizeof(path), "%s/mounts", dir) == 0)
		umount_dir_entries(path);
	return rm_tree(dir);
}
