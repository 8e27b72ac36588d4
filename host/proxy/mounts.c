#include "proxy/mounts.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"
#include "proxy/hostns.h"

/* At most this many mounts in a spec, after the rewrite: the guest's limit, less room for
 * the pod's /etc files, which are added after. */
#define MAX_MOUNTS (GUEST_MAX_MOUNTS - POD_FILE_MOUNTS)
/* Host mounts below one read-only volume given their own bind. */
#define MAX_BELOW 32
#define MOUNTINFO_MAX (16u << 20)

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

/* A bind entry of guest path src onto dst, with the options given (NULL-ended). */
static json_object *bind_entry(const char *dst, const char *src, const char *const *opts)
{
	json_object *m = json_object_new_object(), *o = json_object_new_array();

	for (; *opts; opts++)
		json_object_array_add(o, json_object_new_string(*opts));
	json_object_object_add(m, "destination", json_object_new_string(dst));
	json_object_object_add(m, "type", json_object_new_string("bind"));
	json_object_object_add(m, "source", json_object_new_string(src));
	json_object_object_add(m, "options", o);
	return m;
}

/* /dev/shm of a container in the pod's IPC (CRI's pod or node mode): the pod's, in the
 * VM. containerd binds the sandbox's shm when it made one, and gives a remote sandbox's
 * containers a tmpfs each otherwise. */
static void shm_from_pod(json_object *m)
{
	static const char *const opts[] = { "rbind", "rprivate", "nosuid", "nodev", "noexec" };
	json_object *o = json_object_new_array();

	for (size_t i = 0; i < sizeof(opts) / sizeof(*opts); i++)
		json_object_array_add(o, json_object_new_string(opts[i]));
	json_object_object_add(m, "type", json_object_new_string("bind"));
	json_object_object_add(m, "source", json_object_new_string(GUEST_POD_SHM));
	json_object_object_add(m, "options", o);
}

struct below {
	json_object *out;
	const char *dst, *gpath;
	kerr_t *err;
	unsigned n;
};

/* A host mount at rel below a read-only volume: writable as the host has it. */
static int add_below(void *arg, const char *rel)
{
	static const char *const opts[] = { "rbind", "rprivate", "rw", NULL };
	struct below *b = arg;
	char dst[PATH_MAX], src[PATH_MAX];

	if (++b->n > MAX_BELOW)
		return kerr_set(b->err, E2BIG, "more than %d host mounts below it", MAX_BELOW);
	if (json_object_array_length(b->out) >= MAX_MOUNTS)
		return kerr_set(b->err, E2BIG, "with the host mounts below it, more than %d mounts",
		                MAX_MOUNTS);
	if (fmt_path(dst, sizeof(dst), "%s/%s", b->dst, rel) < 0 ||
	    fmt_path(src, sizeof(src), "%s/%s", b->gpath, rel) < 0)
		return kerr_set(b->err, ENAMETOOLONG, "the path of %s below it is too long", rel);
	json_object_array_add(b->out, bind_entry(dst, src, opts));
	return 0;
}

/* A bind of host path src: staged as mount n, its source the guest's; the host's mounts
 * below a non-recursive read-only one get their own. */
static int rewrite_bind(json_object *m, size_t n, const char *src, const char *guest_dir,
                        const struct spec_stage *st, json_object *out, kerr_t *err)
{
	const char *dst = jget_str(m, "destination", "");
	char gpath[PATH_MAX];

	if (!src || src[0] != '/')
		return kerr_set(err, EINVAL, "config.json: bind mount on %s has no absolute source",
		                dst);
	if (has_option(m, "rshared") || has_option(m, "shared"))
		return kerr_set(err, EINVAL,
		                "mount on %s: bidirectional propagation cannot cross the VM: what "
		                "the pod mounts there would never reach the host (use "
		                "HostToContainer)",
		                dst);
	if (fmt_path(gpath, sizeof(gpath), "%s/mounts/%zu", guest_dir, n) < 0)
		return kerr_sys(err, "mount on %s: guest path", dst);
	if (st->bind(st->ctx, n, src, err) < 0)
		return kerr_wrap(err, "mount on %s", dst);
	if (st->submounts && has_option(m, "ro") && !has_option(m, "rro")) {
		struct below b = { out, dst, gpath, err, 0 };

		if (st->submounts(src, add_below, &b, err) < 0)
			return kerr_wrap(err, "mount on %s", dst);
	}
	/* Last: src is m's own string, which this frees. */
	json_object_object_add(m, "source", json_object_new_string(gpath));
	return 0;
}

/* An IPC namespace of the container's own (no path): then /dev/shm is its own too. CRI's
 * containers name the pod's (or the node's) by path, which in the VM is the VM's. */
static int has_own_ipc(json_object *spec)
{
	json_object *linux_, *nss;

	if (!json_object_object_get_ex(spec, "linux", &linux_) ||
	    !json_object_object_get_ex(linux_, "namespaces", &nss) ||
	    !json_object_is_type(nss, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(nss); i++) {
		json_object *ns = json_object_array_get_idx(nss, i);
		const char *type = jget_str(ns, "type", ""), *path = jget_str(ns, "path", "");

		if (!strcmp(type, "ipc") && !path[0])
			return 1;
	}
	return 0;
}

int mounts_rewrite(json_object *spec, const char *guest_dir, const struct spec_stage *st,
                   kerr_t *err)
{
	json_object *mounts, *out;
	int own_ipc = has_own_ipc(spec);
	size_t n;

	if (!json_object_object_get_ex(spec, "mounts", &mounts))
		return 0;
	if (!json_object_is_type(mounts, json_type_array))
		return kerr_set(err, EINVAL, "config.json: mounts is not an array");
	n = json_object_array_length(mounts);
	if (n > MAX_MOUNTS)
		return kerr_set(err, E2BIG, "config.json: %zu mounts, more than %d", n, MAX_MOUNTS);
	out = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		const char *dst = jget_str(m, "destination", NULL);

		json_object_array_add(out, json_object_get(m));
		if (!dst) {
			json_object_put(out);
			return kerr_set(err, EINVAL, "config.json: mount %zu has no destination",
			                i);
		}
		if (!strcmp(dst, "/dev/shm")) {
			if (!own_ipc)
				shm_from_pod(m);
		} else if (is_bind(m) && rewrite_bind(m, i, jget_str(m, "source", NULL), guest_dir,
		                                      st, out, err) < 0) {
			json_object_put(out);
			return -1;
		}
	}
	json_object_object_add(spec, "mounts", out);
	return 0;
}

/* --- the host's mounts below a path ------------------------------------------------- */

/* Undoes mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* The mount point (fifth field) of one mountinfo line, unescaped in place; NULL if none. */
static char *mount_point(char *line)
{
	char *f = line, *end;

	for (int i = 0; i < 4 && f; i++)
		if ((f = strchr(f, ' ')))
			f++;
	if (!f || !(end = strchr(f, ' ')))
		return NULL;
	*end = '\0';
	unescape(f);
	return f;
}

static int was_seen(const char *const *seen, size_t n, const char *rel)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(seen[i], rel))
			return 1;
	return 0;
}

int mounts_host_below(const char *src, int (*each)(void *arg, const char *rel), void *arg,
                      kerr_t *err)
{
	_cleanup_free_ char *text = NULL;
	char real[PATH_MAX], *line, *next;
	_cleanup_free_ const char **seen = NULL;
	size_t len, rlen, n_seen = 0;
	int rc;

	/* The host's mounts, as the host sees them (proxy/hostns.h). */
	if (hostns_enter() < 0)
		return kerr_sys(err, "enter the host's mount namespace");
	rc = !realpath(src, real)
	         ? kerr_sys(err, "resolve %s", src)
	         : read_file("/proc/self/mountinfo", &text, &len, MOUNTINFO_MAX, err);
	hostns_leave();
	if (rc < 0)
		return -1;
	rlen = strcmp(real, "/") ? strlen(real) : 0;
	for (line = text; line && *line; line = next) {
		char *mp, *rel;

		if ((next = strchr(line, '\n')))
			*next++ = '\0';
		mp = mount_point(line);
		if (!mp || strncmp(mp, real, rlen) || mp[rlen] != '/' || !mp[rlen + 1])
			continue;
		rel = mp + rlen + 1;
		if (was_seen(seen, n_seen, rel)) /* mounts stacked on one point: the point once */
			continue;
		if (!(n_seen & 31)) {
			const char **more = realloc(seen, (n_seen + 32) * sizeof(*seen));

			if (!more)
				return kerr_set(err, ENOMEM, "out of memory");
			seen = more;
		}
		seen[n_seen++] = rel;
		if (each(arg, rel))
			return -1;
	}
	return 0;
}
