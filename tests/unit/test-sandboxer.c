/* The sandboxer's pure parts: config.toml parsing, the host-to-guest spec rewrite, and root
 * disks (containerd's mounts read, the image cache). */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proxy/bundle.h"
#include "proxy/config.h"
#include "proxy/mounts.h"
#include "proxy/proxy_result.h"
#include "proxy/rootdisk.h"
#include "sandboxer/sb_cgroup.h"
#include "sandboxer/sb_resize.h"
#include "tap.h"

static int parse(const char *text, struct sb_config *c, kerr_t *err)
{
	config_defaults(c);
	return config_parse(c, text, "t.toml", err);
}

static void test_config(void)
{
	struct sb_config c;
	kerr_t err;

	ok(parse("", &c, &err) == 0, "an empty file is all defaults");
	is_int(c.memory_mib, 256, "default memory");
	is_str(c.listen, "/run/kuasar-sandboxer.sock", "default listen path");
	ok(parse("# Kuasar's keys\n[sandbox]\nlog_level = \"debug\"\n\n[hypervisor]\n"
	         "path = \"/usr/bin/qemu-system-x86_64\" # trailing comment\nvcpus = 2\n"
	         "memory_in_mb = 512\nkernel_params = \"quiet \\\"x\\\"\"\ndebug = true\n"
	         "accel = \"tcg\"\n[sandboxer]\nrun_dir = \"/tmp/r\"\n",
	         &c, &err) == 0,
	   "Kuasar's keys and ours parse");
	is_str(c.log_level, "debug", "log_level");
	is_str(c.qemu, "/usr/bin/qemu-system-x86_64", "string with a trailing comment");
	is_int(c.vcpus, 2, "vcpus");
	is_int(c.memory_mib, 512, "memory_in_mb");
	is_str(c.kernel_params, "quiet \"x\"", "escaped quotes");
	is_int(c.debug, 1, "debug = true");
	is_int(c.accel, ACCEL_TCG, "accel");
	is_str(c.run_dir, "/tmp/r", "run_dir");

	ok(parse("", &c, &err) == 0 && c.template == 1, "templates are on by default");
	is_str(c.template_dir, "/var/lib/kuasar/templates", "default template_dir");
	is_str(c.template_memory_dir, "/dev/shm/kuasar", "default template_memory_dir");
	ok(parse("[hypervisor]\ntemplate = false\n[sandboxer]\ntemplate_dir = \"/t\"\n"
	         "template_memory_dir = \"/dev/hugepages/k\"\n",
	         &c, &err) == 0 &&
	       c.template == 0,
	   "template = false");
	is_str(c.template_memory_dir, "/dev/hugepages/k", "template_memory_dir");
	ok(parse("", &c, &err) == 0 && c.rootfs_block == 0, "rootfs is 9p by default");
	ok(parse("[sandboxer]\nrootfs = \"block\"\nrootfs_cache_dir = \"/c\"\n", &c, &err) == 0 &&
	       c.rootfs_block == 1 && !strcmp(c.rootfs_cache_dir, "/c"),
	   "rootfs = block, rootfs_cache_dir");
	ok(parse("", &c, &err) == 0 && c.pool == 0 && c.pool_idle_secs == 600,
	   "no pool by default; shapes idle for 600 s lose their members");
	ok(parse("[sandboxer]\npool = 4\npool_idle_secs = 0\n", &c, &err) == 0 && c.pool == 4 &&
	       c.pool_idle_secs == 0,
	   "pool = 4, pool_idle_secs = 0");
}

/* Bad input names its file, line and key. */
static void test_config_errors(void)
{
	struct sb_config c;
	kerr_t err;

	ok(parse("[hypervisor]\ntemplate = 1\n", &c, &err) < 0 && strstr(err.msg, "true or false"),
	   "template must be a boolean: %s", err.msg);
	ok(parse("[hypervisor]\nvcpus = 2\nturbo = true\n", &c, &err) < 0 &&
	       strstr(err.msg, "t.toml:3: unknown key `turbo` in [hypervisor]"),
	   "an unknown key names its line: %s", err.msg);
	ok(parse("[hypervisor]\nmemory_in_mb = \"lots\"\n", &c, &err) < 0 &&
	       strstr(err.msg,
	              "t.toml:2: hypervisor.memory_in_mb: expected a non-negative integer"),
	   "a string for a number: %s", err.msg);
	ok(parse("[hypervisor]\nvcpus = 0\n", &c, &err) < 0 && strstr(err.msg, "out of range"),
	   "vcpus 0 is out of range: %s", err.msg);
	ok(parse("[hypervisor]\nvcpus = 99999999999999999999\n", &c, &err) < 0,
	   "an overflowing integer is refused: %s", err.msg);
	ok(parse("[cloud]\n", &c, &err) < 0 && strstr(err.msg, "unknown table [cloud]"),
	   "an unknown table: %s", err.msg);
	ok(parse("vcpus = 2\n", &c, &err) < 0 && strstr(err.msg, "outside any table"),
	   "a key before any table: %s", err.msg);
	ok(parse("[hypervisor]\npath = \"unterminated\n", &c, &err) < 0 &&
	       strstr(err.msg, "unterminated string"),
	   "an unterminated string: %s", err.msg);
	ok(parse("[hypervisor]\ndebug = yes\n", &c, &err) < 0 && strstr(err.msg, "true or false"),
	   "a bad boolean: %s", err.msg);
	ok(parse("[sandbox]\nlog_level = \"loud\"\n", &c, &err) < 0, "a bad log level: %s",
	   err.msg);
	ok(parse("[hypervisor]\naccel = \"hvf\"\n", &c, &err) < 0, "a bad accel: %s", err.msg);
	ok(parse("[hypervisor\n", &c, &err) < 0, "a malformed table header: %s", err.msg);
	ok(parse("[sandboxer]\nrootfs = \"nfs\"\n", &c, &err) < 0 && strstr(err.msg, "9p or block"),
	   "a bad rootfs: %s", err.msg);
	ok(parse("[sandboxer]\npool = 65\n", &c, &err) < 0 && strstr(err.msg, "out of range"),
	   "a pool of 65 is out of range: %s", err.msg);
}

/* ---- root disks: containerd's mounts read, the image cache ---- */

static Containerd__Types__Mount *mnt(const char *type, const char *src, char **opts, size_t n)
{
	static Containerd__Types__Mount m;

	containerd__types__mount__init(&m);
	m.type = (char *)type;
	m.source = (char *)src;
	m.options = opts;
	m.n_options = n;
	return &m;
}

static void test_rootdisk_lowers(const char *dir)
{
	char why[300], **lowers, up[300], low[600], upper_opt[320], file[400];
	char *opts[3] = { low, upper_opt, "index=off" };
	Containerd__Types__Mount *m;
	size_t n;
	kerr_t err;

	snprintf(up, sizeof(up), "%s/upper", dir);
	mkdir(up, 0755);
	snprintf(upper_opt, sizeof(upper_opt), "upperdir=%s", up);
	snprintf(low, sizeof(low), "lowerdir=%s/l2:%s/l1", dir, dir);
	m = mnt("overlay", "overlay", opts, 3);
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) == 1 && n == 2,
	   "an overlay of two layers with an empty upper becomes a disk");
	if (n == 2) {
		snprintf(file, sizeof(file), "%s/l2", dir);
		is_str(lowers[0], file, "the top layer first, as lowerdir has it");
	}
	rootdisk_free_lowers(lowers, n);
	snprintf(file, sizeof(file), "%s/upper/x", dir);
	close(open(file, O_CREAT | O_WRONLY, 0644));
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) == 0 &&
	       strstr(why, "already holds files"),
	   "an upper layer with files stays on the share: %s", why);
	unlink(file);
	m = mnt("bind", "/x", NULL, 0);
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) == 0 && strstr(why, "bind"),
	   "a bind mount stays on the share: %s", why);
	ok(rootdisk_lowers(NULL, 0, &lowers, &n, why, sizeof(why), &err) == 0,
	   "no rootfs mounts stay on the share: %s", why);
	snprintf(low, sizeof(low), "lowerdir=%s/l1:relative/l0", dir);
	m = mnt("overlay", "overlay", opts, 2);
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) < 0 &&
	       err.errnum == EINVAL && strstr(err.msg, "relative/l0"),
	   "a relative layer is refused: %s", err.msg);
	snprintf(low, sizeof(low), "lowerdir=%s/../../etc", dir);
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) < 0,
	   "a layer with .. is refused: %s", err.msg);
	snprintf(low, sizeof(low), "lowerdir=");
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) < 0,
	   "an empty lowerdir is refused: %s", err.msg);
	snprintf(low, sizeof(low), "lowerdir=::");
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) < 0,
	   "a lowerdir of separators only is refused: %s", err.msg);
	m = mnt("overlay", "overlay", opts + 1, 1);
	ok(rootdisk_lowers(&m, 1, &lowers, &n, why, sizeof(why), &err) < 0 &&
	       strstr(err.msg, "without lowerdir"),
	   "an overlay without lowerdir is refused: %s", err.msg);
}

/* Files in the cache whose names end with suffix (hidden ones not counted). */
static int count_files(const char *cache, const char *suffix)
{
	char cmd[400];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '%s$'", cache, suffix);
	p = popen(cmd, "r");
	if (p && fscanf(p, "%d", &n) != 1)
		n = -1;
	if (p)
		pclose(p);
	return n;
}
#define count_images(cache) count_files(cache, "erofs")
#define count_locks(cache) count_files(cache, "lock")

/* Running, not dead or a zombie waiting for its (sub)reaper. */
static int alive(pid_t pid)
{
	char path[64], *st = NULL, *p;
	int yes;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, &st, NULL, 4096, NULL) < 0)
		return 0;
	p = strrchr(st, ')');
	yes = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	free(st);
	return yes;
}

/* A descendant of pid running comm (the build's mkfs, below its shell). */
static pid_t find_child_named(pid_t pid, const char *comm)
{
	char path[64], *text = NULL, *p, *end;
	pid_t found = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	if (read_file(path, &text, NULL, 4096, NULL) < 0)
		return 0;
	for (p = text; !found && *p; p = end) {
		long c = strtol(p, &end, 10);
		char *name = NULL;

		if (end == p)
			break;
		snprintf(path, sizeof(path), "/proc/%ld/comm", c);
		if (read_file(path, &name, NULL, 64, NULL) == 0 &&
		    !strncmp(name, comm, strlen(comm)))
			found = (pid_t)c;
		else
			found = find_child_named((pid_t)c, comm);
		free(name);
	}
	free(text);
	return found;
}

/* A build in a child, as the proxy runs it: the image is there when it exits. */
static void rootimg_build_in_child(const char *cache, char **lowers)
{
	struct rootimg a;
	kerr_t err;
	int pidfd = -1, errfd = -1, st = -1;
	char msg[64];
	pid_t pid;

	rootimg_init(cache, lowers, 2, &a, &err);
	pid = rootimg_build_child(cache, lowers, 2, &a, NULL, &pidfd, &errfd, &err);
	ok(pid > 0 && waitpid(pid, &st, 0) == pid && st == 0 && read(errfd, msg, 64) == 0,
	   "a build child exits 0 with nothing to say");
	ok(rootimg_hold(cache, &a, &err) == 1, "and its image is there to take");
	rootimg_put(cache, &a);
	is_int(count_images(cache), 0, "let go, it goes");
	ok(access(cache, F_OK) == 0 && count_locks(cache) == 0, "no build lock is left");
	close(pidfd);
	close(errfd);
}

/* Two builders of one image at once: one builds, the other waits and finds it. */
static void rootimg_two_builders(const char *cache, char **lowers)
{
	struct rootimg a;
	kerr_t err;
	int fd[4], st[2] = { -1, -1 };
	pid_t pid[2];

	rootimg_init(cache, lowers, 2, &a, &err);
	pid[0] = rootimg_build_child(cache, lowers, 2, &a, NULL, &fd[0], &fd[1], &err);
	pid[1] = rootimg_build_child(cache, lowers, 2, &a, NULL, &fd[2], &fd[3], &err);
	waitpid(pid[0], &st[0], 0);
	waitpid(pid[1], &st[1], 0);
	ok(st[0] == 0 && st[1] == 0 && count_images(cache) == 1 && count_locks(cache) == 0,
	   "two builders at once: both succeed, one image, no lock left");
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	ok(rootimg_hold(cache, &a, &err) == 1, "taken");
	rootimg_put(cache, &a);
}

/* A builder killed mid-build (a cancelled Create) takes its mkfs.erofs with it, and its
 * error pipe is closed at once: mkfs never held it. A stand-in mkfs that sleeps. */
static void rootimg_killed_build(const char *dir, const char *cache, char **lowers)
{
	struct rootimg a;
	kerr_t err;
	char bin[300], fake[400], *old = getenv("PATH"), path2[1024];
	int pidfd = -1, errfd = -1;
	ssize_t len = -1;
	pid_t pid, mk = 0;
	char msg[64];

	snprintf(bin, sizeof(bin), "%s/fakebin", dir);
	mkdir(bin, 0755);
	snprintf(fake, sizeof(fake), "%s/mkfs.erofs", bin);
	write_file_atomic(fake, "#!/bin/sh\nexec sleep 30\n", 24, NULL);
	chmod(fake, 0755);
	snprintf(path2, sizeof(path2), "%s:%s", bin, old ? old : "/usr/bin:/bin");
	old = old ? strdup(old) : NULL;
	setenv("PATH", path2, 1);
	rootimg_init(cache, lowers, 2, &a, &err);
	pid = rootimg_build_child(cache, lowers, 2, &a, NULL, &pidfd, &errfd, &err);
	for (int i = 0; i < 500 && mk <= 0; i++, usleep(10000))
		mk = find_child_named(pid, "sleep");
	rootimg_build_kill(pid);
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 100 && len < 0; i++, usleep(10000))
		len = read(errfd, msg, sizeof(msg));
	ok(mk > 0 && len == 0, "a killed build's pipe reads end-of-file at once");
	for (int i = 0; i < 100 && mk > 0 && alive(mk); i++)
		usleep(10000);
	ok(mk > 0 && !alive(mk), "and its mkfs.erofs (pid %d) is gone with it", mk);
	setenv("PATH", old ? old : "/usr/bin:/bin", 1);
	free(old);
	close(pidfd);
	close(errfd);
	unlink(fake);
	rmdir(bin);
	rootimg_sweep(cache);
}

/* A build that fails says why through its pipe. */
static void rootimg_failed_build(const char *dir, const char *cache)
{
	char path[700];
	struct rootimg a;
	kerr_t err;
	char *bad[1] = { path }, msg[300] = "";
	int pidfd, errfd, st = 0;
	ssize_t len;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/empty-file", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(a.key, sizeof(a.key), "notalayer");
	snprintf(a.path, sizeof(a.path), "%s/notalayer.erofs", cache);
	pid = rootimg_build_child(cache, bad, 1, &a, NULL, &pidfd, &errfd, &err);
	waitpid(pid, &st, 0);
	len = read(errfd, msg, sizeof(msg) - 1);
	msg[len > 0 ? len : 0] = 0;
	ok(st != 0 && strstr(msg, "layers' overlay"), "a failed build exits non-zero and says: %s",
	   msg);
	ok(count_locks(cache) == 0 && count_images(cache) == 0, "and leaves nothing");
	close(pidfd);
	close(errfd);
}

/* A cache directory somebody else could write, or a link, is refused; so is a missing
 * layer. */
static void rootimg_refused(const char *dir, const char *cache, char **lowers)
{
	char open_[400], link_[400], path[700], *bad[1] = { path };
	struct rootimg a;
	kerr_t err;

	snprintf(open_, sizeof(open_), "%s/open-cache", dir);
	mkdir(open_, 0777);
	chmod(open_, 0777);
	ok(rootimg_get(open_, lowers, 2, &a, &err) < 0 && strstr(err.msg, "mode 777"),
	   "a world-writable cache is refused: %s", err.msg);
	snprintf(link_, sizeof(link_), "%s/link-cache", dir);
	symlink(cache, link_);
	ok(rootimg_get(link_, lowers, 2, &a, &err) < 0 && strstr(err.msg, "not a directory"),
	   "a cache that is a link is refused: %s", err.msg);
	unlink(link_);
	rmdir(open_);
	snprintf(path, sizeof(path), "%s/missing", dir);
	ok(rootimg_get(cache, bad, 1, &a, &err) < 0 && strstr(err.msg, "missing"),
	   "a missing layer is an error: %s", err.msg);
}

/* A real image from two layers with a whiteout: needs root (the overlay mount) and
 * mkfs.erofs. */
static void test_rootimg(const char *dir)
{
	char cache[300], l1[300], l2[300], path[700], *lowers[2] = { l2, l1 };
	struct rootimg a, b, c;
	kerr_t err;

	if (geteuid() != 0 || system("command -v mkfs.erofs >/dev/null") != 0) {
		skip("rootfs images need root and mkfs.erofs");
		return;
	}
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	snprintf(l1, sizeof(l1), "%s/layer1", dir);
	snprintf(l2, sizeof(l2), "%s/layer2", dir);
	mkdir(l1, 0755);
	mkdir(l2, 0755);
	snprintf(path, sizeof(path), "%s/gone", l1);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(path, sizeof(path), "%s/kept", l1);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(path, sizeof(path), "%s/gone", l2);
	ok(mknod(path, S_IFCHR | 0, 0) == 0, "a whiteout in the upper layer");
	ok(rootimg_get(cache, lowers, 2, &a, &err) == 0 && a.built == 1, "built: %s",
	   a.fd < 0 ? err.msg : a.path);
	ok(rootimg_get(cache, lowers, 2, &b, &err) == 0 && b.built == 0 && !strcmp(a.path, b.path),
	   "the same layers take the cached image");
	ok(rootimg_get(cache, lowers + 1, 1, &c, &err) == 0 && c.built == 1 &&
	       strcmp(a.path, c.path),
	   "other layers get an image of their own");
	/* The merged view went in: the whiteout hid the lower file, and is not in it itself. */
	snprintf(path, sizeof(path), "dump.erofs --ls --path=/ %s 2>&1 | grep -qw kept", a.path);
	ok(system(path) == 0, "the lower layer's file is in the image");
	snprintf(path, sizeof(path), "dump.erofs --ls --path=/ %s 2>&1 | grep -qw gone", a.path);
	ok(system(path) != 0, "the whited-out file is not");
	rootimg_put(cache, &a);
	ok(access(b.path, F_OK) == 0, "an image still held stays");
	rootimg_put(cache, &b);
	ok(access(c.path, F_OK) == 0 && count_images(cache) == 1, "the last user out removes it");
	/* A user that died without letting go: its image is swept at the next look, once it is
	 * not new (a builder's user has yet to take a new one). */
	close(c.fd);
	rootimg_sweep(cache);
	is_int(count_images(cache), 1, "a new image nobody holds yet is kept");
	{
		struct timeval old[2] = { { time(NULL) - 120, 0 }, { time(NULL) - 120, 0 } };

		utimes(c.path, old);
	}
	rootimg_sweep(cache);
	is_int(count_images(cache), 0, "an older image nobody holds is swept");
	rootimg_build_in_child(cache, lowers);
	rootimg_two_builders(cache, lowers);
	rootimg_killed_build(dir, cache, lowers);
	rootimg_failed_build(dir, cache);
	rootimg_refused(dir, cache, lowers);
}

static int binds;
static char last_src[256];

static int fake_bind(void *ctx, size_t n, const char *src, kerr_t *err)
{
	binds++;
	snprintf(last_src, sizeof(last_src), "%s", src);
	return 0;
}

/* ctx: the share (a path; the proxy's own staging works from fds, tested in test-proxy). */
static int fake_has_pod_file(void *ctx, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/.pod/%s", (const char *)ctx, name);
	return access(p, F_OK) == 0;
}

static unsigned vm_mib; /* the VM's memory the rewrite caps containers below (0: none) */

/* The host's mounts below a volume: "sub" and "sub/deeper" under /vol. */
static int fake_submounts(const char *src, int (*each)(void *, const char *), void *arg,
                          kerr_t *err)
{
	(void)err;
	if (strcmp(src, "/vol"))
		return 0;
	return each(arg, "sub") || each(arg, "sub/deeper") ? -1 : 0;
}

static const char *rewrite_pod_etc; /* spec_stage.pod_etc of the next rewrite */

static int rewrite(json_object *spec, const char *id, const char *share, const char *gdir,
                   kerr_t *err)
{
	const struct spec_stage st = { .bind = fake_bind,
		                       .has_pod_file = fake_has_pod_file,
		                       .ctx = (void *)share,
		                       .vm_mib = vm_mib,
		                       .submounts = fake_submounts,
		                       .pod_etc = rewrite_pod_etc };

	return spec_rewrite(spec, id, gdir, &st, err);
}

static long long limit_of(json_object *spec)
{
	json_object *l = json_object_object_get(spec, "linux"), *r, *m, *v;

	r = json_object_object_get(l, "resources");
	m = json_object_object_get(r, "memory");
	v = json_object_object_get(m, "limit");
	return v ? (long long)json_object_get_int64(v) : 0;
}

static const char *jpath(json_object *o, const char *a, const char *b)
{
	json_object *v;

	if (!json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return json_object_get_string(v);
}

/* A spec with one volume mount of /vol on /v with the options given (a JSON list). */
static json_object *volume_spec(const char *opts)
{
	char text[512];

	snprintf(text, sizeof(text),
	         "{\"mounts\":[{\"destination\":\"/v\",\"type\":\"bind\",\"source\":"
	         "\"/vol\",\"options\":[%s]}]}",
	         opts);
	return json_tokener_parse(text);
}

/* The field key of a container's tmpfs /dev/shm, rewritten, its ipc namespace entry
 * {"type":"ipc"PATH}. */
static const char *shm_rewritten(const char *share, const char *path, const char *key)
{
	static char out[1100];
	char text[512];
	json_object *spec;
	kerr_t err;

	snprintf(text, sizeof(text),
	         "{\"mounts\":[{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":"
	         "\"shm\"}],\"linux\":{\"namespaces\":[{\"type\":\"ipc\"%s}]}}",
	         path);
	spec = json_tokener_parse(text);
	snprintf(out, sizeof(out), "%s",
	         rewrite(spec, "c", share, "/g", &err) < 0
	             ? err.msg
	             : jpath(json_object_array_get_idx(json_object_object_get(spec, "mounts"), 0),
	                     key, NULL));
	json_object_put(spec);
	return out;
}

static void test_spec_mounts(const char *share)
{
	json_object *spec, *mounts;
	kerr_t err;

	spec = volume_spec("\"rbind\",\"ro\"");
	ok(rewrite(spec, "c", share, "/g", &err) == 0, "a read-only volume with host mounts below");
	mounts = json_object_object_get(spec, "mounts");
	is_int(json_object_array_length(mounts), 3, "each host mount below gets a bind of its own");
	is_str(jpath(json_object_array_get_idx(mounts, 1), "destination", NULL), "/v/sub",
	       "on its place in the volume");
	is_str(jpath(json_object_array_get_idx(mounts, 2), "source", NULL),
	       "/g/mounts/0/sub/deeper", "from its place in the staged volume");
	is_str(json_object_to_json_string(
	           json_object_object_get(json_object_array_get_idx(mounts, 1), "options")),
	       "[ \"rbind\", \"rprivate\", \"rw\" ]", "writable: read-only is not recursive");
	json_object_put(spec);
	spec = volume_spec("\"rbind\",\"ro\",\"rro\"");
	ok(rewrite(spec, "c", share, "/g", &err) == 0 &&
	       json_object_array_length(json_object_object_get(spec, "mounts")) == 1,
	   "a recursive read-only one (rro) covers them: no binds below");
	json_object_put(spec);
	spec = volume_spec("\"rbind\",\"rw\"");
	ok(rewrite(spec, "c", share, "/g", &err) == 0 &&
	       json_object_array_length(json_object_object_get(spec, "mounts")) == 1,
	   "a writable one needs none");
	json_object_put(spec);
	spec = volume_spec("\"rbind\",\"rshared\"");
	ok(rewrite(spec, "c", share, "/g", &err) < 0 && strstr(err.msg, "bidirectional"),
	   "bidirectional propagation is refused: %s", err.msg);
	json_object_put(spec);
	is_str(shm_rewritten(share, ",\"path\":\"/proc/9/ns/ipc\"", "source"), GUEST_POD_SHM,
	       "a tmpfs /dev/shm in the pod's IPC becomes the pod's");
	is_str(shm_rewritten(share, "", "type"), "tmpfs",
	       "with an IPC namespace of its own, it stays its own");
}

/* A spec of n tmpfs mounts. */
static json_object *many_mounts(unsigned n)
{
	json_object *spec = json_object_new_object(), *mounts = json_object_new_array();

	for (unsigned i = 0; i < n; i++) {
		json_object *m = json_object_new_object();
		char dst[32];

		snprintf(dst, sizeof(dst), "/m%u", i);
		json_object_object_add(m, "destination", json_object_new_string(dst));
		json_object_object_add(m, "type", json_object_new_string("tmpfs"));
		json_object_array_add(mounts, m);
	}
	json_object_object_add(spec, "mounts", mounts);
	return spec;
}

static void test_mount_count(const char *share)
{
	json_object *spec = many_mounts(GUEST_MAX_MOUNTS - POD_FILE_MOUNTS);
	kerr_t err;

	ok(rewrite(spec, "c", share, "/g", &err) == 0,
	   "as many mounts as the guest takes, less "
	   "room for the pod's files: %s",
	   "accepted");
	json_object_put(spec);
	spec = many_mounts(GUEST_MAX_MOUNTS - POD_FILE_MOUNTS + 1);
	ok(rewrite(spec, "c", share, "/g", &err) < 0 && strstr(err.msg, "more than"),
	   "one more is refused up front: %s", err.msg);
	json_object_put(spec);
}

static int count_below(void *arg, const char *rel)
{
	if (!strcmp(rel, "proc") || !strcmp(rel, "sys"))
		(*(int *)arg)++;
	return 0;
}

static void test_host_below(void)
{
	kerr_t err;
	int found = 0;

	ok(mounts_host_below("/", count_below, &found, &err) == 0 && found == 2,
	   "the host's mounts below / include proc and sys, once each");
	found = 0;
	ok(mounts_host_below("/proc", count_below, &found, &err) == 0 && found == 0,
	   "not the volume itself");
	ok(mounts_host_below("/nonexistent-kuasar", count_below, &found, &err) < 0,
	   "a missing source is an error: %s", err.msg);
}

static void test_spec(const char *tmp, const char *share)
{
	/* What CRI sends for a pod container, trimmed to the parts the rewrite touches. */
	char text[2048];
	json_object *spec, *mounts, *m, *nss;
	kerr_t err;

	snprintf(
	    text, sizeof(text),
	    "{\"ociVersion\":\"1.1.0\",\"root\":{\"path\":\"/var/lib/x/rootfs\",\"readonly\":true},"
	    "\"process\":{\"args\":[\"sh\"],\"apparmorProfile\":\"cri-containerd.apparmor.d\","
	    "\"selinuxLabel\":\"x\"},\"hooks\":{\"prestart\":[{\"path\":\"/usr/bin/hook\"}]},"
	    "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
	    "{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"%s\","
	    "\"options\":[\"rbind\",\"rprivate\",\"rw\"]},"
	    "{\"destination\":\"/dev/shm\",\"type\":\"bind\",\"source\":\"/run/containerd/shm\","
	    "\"options\":[\"rbind\"]}],"
	    "\"linux\":{\"cgroupsPath\":\"kubepods-besteffort.slice:cri-containerd:abc\","
	    "\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/var/run/netns/"
	    "cni-1\"},"
	    "{\"type\":\"ipc\",\"path\":\"/proc/42/ns/ipc\"},{\"type\":\"uts\",\"path\":\"/proc/42/"
	    "ns/uts\"},"
	    "{\"type\":\"mount\"}]}}",
	    tmp);
	spec = json_tokener_parse(text);
	ok(spec != NULL, "test spec parses");
	binds = 0;
	ok(rewrite(spec, "ctr1", share, "/run/kuasar/shared/ctr1", &err) == 0,
	   "a CRI-shaped spec is rewritten");
	is_str(jpath(spec, "root", "path"), "rootfs", "root.path is the bundle's rootfs");
	ok(json_object_get_boolean(
	       json_object_object_get(json_object_object_get(spec, "root"), "readonly")),
	   "root.readonly is kept");
	ok(!json_object_object_get(spec, "hooks"), "host hooks are dropped");
	ok(!jpath(spec, "process", "apparmorProfile") && !jpath(spec, "process", "selinuxLabel"),
	   "host LSM labels are dropped");
	is_int(binds, 1, "one host bind source is staged");
	is_str(last_src, tmp, "the bind source handed over is the host path");
	mounts = json_object_object_get(spec, "mounts");
	m = json_object_array_get_idx(mounts, 1);
	is_str(jpath(m, "source", NULL), "/run/kuasar/shared/ctr1/mounts/1",
	       "its source becomes the guest path");
	m = json_object_array_get_idx(mounts, 2);
	is_str(jpath(m, "source", NULL), GUEST_POD_SHM, "/dev/shm becomes the pod's, in the guest");
	is_str(jpath(m, "type", NULL), "bind", "bound there");
	is_str(jpath(json_object_array_get_idx(mounts, 0), "source", NULL), "proc",
	       "kernel filesystems are untouched");
	nss = json_object_object_get(json_object_object_get(spec, "linux"), "namespaces");
	is_int(json_object_array_length(nss), 2,
	       "the pod's network, IPC and UTS namespaces (host paths) are the VM's: dropped");
	is_str(jpath(json_object_array_get_idx(nss, 0), "type", NULL), "pid",
	       "a pid namespace of the container's own is kept");
	ok(!jpath(json_object_array_get_idx(nss, 0), "path", NULL), "without a path");
	is_str(jpath(json_object_array_get_idx(nss, 1), "type", NULL), "mount", "so is the mount");
	is_str(jpath(spec, "linux", "cgroupsPath"), "/kuasar/ctr1",
	       "a systemd-style cgroup path becomes a plain one");
	json_object_put(spec);
}

/* The pod's pid namespace, and specs the rewrite refuses. */
static void test_spec_edges(const char *share)
{
	json_object *spec, *nss;
	kerr_t err;

	spec = json_tokener_parse("{\"linux\":{\"namespaces\":[{\"type\":\"pid\",\"path\":"
	                          "\"/proc/42/ns/pid\"}]}}");
	ok(rewrite(spec, "c", share, "/g", &err) == 0, "a spec sharing the pod's pids");
	nss = json_object_object_get(json_object_object_get(spec, "linux"), "namespaces");
	is_str(jpath(json_object_array_get_idx(nss, 0), "path", NULL), GUEST_POD_PIDNS,
	       "the pod's pid namespace is the one the guest keeps for it");
	json_object_put(spec);

	spec = json_tokener_parse("{\"mounts\":[{\"destination\":\"/x\",\"type\":\"bind\","
	                          "\"source\":\"relative\"}]}");
	ok(rewrite(spec, "c", "/h", "/g", &err) < 0 && strstr(err.msg, "no absolute source"),
	   "a relative bind source is refused: %s", err.msg);
	json_object_put(spec);
	spec = json_tokener_parse("[1,2]");
	ok(rewrite(spec, "c", "/h", "/g", &err) < 0, "a spec that is not an object");
	json_object_put(spec);
}

/* Containers' memory limits against the VM's size. */
static void test_spec_memory(const char *share)
{
	json_object *spec;
	kerr_t err;

	spec = json_tokener_parse("{\"linux\":{\"resources\":{\"memory\":{\"limit\":524288}}}}");
	ok(rewrite(spec, "c", share, "/g", &err) < 0 && strstr(err.msg, "under the 6 MiB"),
	   "a memory limit a container cannot start in is refused: %s", err.msg);
	json_object_put(spec);
	spec = json_tokener_parse("{\"linux\":{\"resources\":{\"memory\":{\"limit\":-1}}}}");
	ok(rewrite(spec, "c", share, "/g", &err) == 0 && limit_of(spec) == -1,
	   "no limit (-1) is fine, and stays without a VM size");
	json_object_put(spec);
	/* In a VM of 128 MiB: a container may have at most 128 - GUEST_RESERVE_MIB. */
	vm_mib = 128;
	spec = json_tokener_parse("{\"process\":{}}");
	ok(rewrite(spec, "c", share, "/g", &err) == 0 &&
	       limit_of(spec) == (128ll - GUEST_RESERVE_MIB) << 20,
	   "a container without a limit gets the VM's cap (%lld)", limit_of(spec));
	json_object_put(spec);
	spec = json_tokener_parse("{\"linux\":{\"resources\":{\"memory\":{\"limit\":"
	                          "1073741824}}}}");
	ok(rewrite(spec, "c", share, "/g", &err) == 0 &&
	       limit_of(spec) == (128ll - GUEST_RESERVE_MIB) << 20,
	   "a limit past the VM's memory is capped below it");
	json_object_put(spec);
	spec = json_tokener_parse("{\"linux\":{\"resources\":{\"memory\":{\"limit\":"
	                          "52428800}}}}");
	ok(rewrite(spec, "c", share, "/g", &err) == 0 && limit_of(spec) == 52428800,
	   "a limit within it is kept");
	json_object_put(spec);
	vm_mib = 0;
}

/* The daemon<->proxy start result: what one end writes the other reads back, whatever the
 * message, and a line that is not a result is refused. */
static void test_proxy_result(void)
{
	struct proxy_result w = { .ok = 1,
		                  .vmm_pid = 4242,
		                  .accel = "tcg",
		                  .boot_ms = 57,
		                  .boot_mode = "template",
		                  .template_key = "0123456789abcdef0123456789abcdef" };
	struct proxy_result r;
	char buf[PROXY_RESULT_MAX];
	size_t n = proxy_result_format(&w, buf, sizeof(buf));

	ok(proxy_result_parse(buf, n, &r) == 0 && r.ok && r.vmm_pid == 4242 && r.boot_ms == 57 &&
	       !strcmp(r.accel, "tcg") && !strcmp(r.boot_mode, "template") &&
	       !strcmp(r.template_key, w.template_key),
	   "an OK result reads back field by field");
	w.template_key[0] = 0;
	strcpy(w.boot_mode, "cold");
	n = proxy_result_format(&w, buf, sizeof(buf));
	ok(proxy_result_parse(buf, n, &r) == 0 && r.ok && !r.template_key[0] &&
	       !strcmp(r.boot_mode, "cold"),
	   "a cold boot has no template key");

	memset(&w, 0, sizeof(w));
	w.errnum = ENOENT;
	memset(w.message, 'm', sizeof(w.message) - 1);
	n = proxy_result_format(&w, buf, sizeof(buf));
	ok(n < PROXY_RESULT_MAX && buf[n - 1] == '\n',
	   "the longest error still fits one line (%zu)", n);
	ok(proxy_result_parse(buf, n, &r) == 0 && !r.ok && r.errnum == ENOENT &&
	       strlen(r.message) > 100 && r.message[0] == 'm',
	   "an error reads back with its errno and message");
	strcpy(w.message, "boot failed: no kernel");
	n = proxy_result_format(&w, buf, sizeof(buf));
	ok(proxy_result_parse(buf, n, &r) == 0 && !strcmp(r.message, "boot failed: no kernel"),
	   "the message is exact when it fits");

	memset(&w, 0, sizeof(w));
	w.ok = 1;
	w.vmm_pid = 7;
	strcpy(w.accel, "tcg");
	strcpy(w.boot_mode, "cold");
	strcpy(w.net, "eth0 02:00:00:00:00:01 mtu 1500 10.0.0.2/24 via tap0_kuasar (virtio-net)");
	n = proxy_result_format(&w, buf, sizeof(buf));
	ok(proxy_result_parse(buf, n, &r) == 0 && !strcmp(r.net, w.net),
	   "the network description (spaces and all) reads back");
	ok(proxy_result_parse("OK 5 tcg 1 cold -\n", 18, &r) == 0 && !r.net[0],
	   "a line without one (an older proxy) still reads");
	ok(proxy_result_parse("", 0, &r) < 0, "an empty read is no result");
	ok(proxy_result_parse("OK 12 tcg", 9, &r) < 0, "a cut OK line is refused");
	ok(proxy_result_parse("OK -5 tcg 1 cold -\n", 19, &r) < 0, "a negative pid is refused");
	ok(proxy_result_parse("OK 5 tcg 1 cold 0123456789abcdef0123456789abcdef0\n", 50, &r) < 0,
	   "an over-long template key is refused");
	ok(proxy_result_parse("E x oops\n", 9, &r) < 0, "an error without a number is refused");
	ok(proxy_result_parse("HELLO\n", 6, &r) < 0, "anything else is refused");
}

/* The pod's /etc files: written once per sandbox, mounted into containers without their own. */
static void test_pod_files(const char *dir)
{
	char path[400];
	json_object *spec, *mounts;
	const char *hosts_src = NULL, *resolv_src = NULL;
	int n_hosts = 0, n_resolv = 0, n_hostname = 0;
	char *text = NULL;
	kerr_t err;

	ok(pod_files_write(dir, "web", "search a.test\nnameserver 10.0.0.53\n", &err) == 0,
	   "pod files written");
	snprintf(path, sizeof(path), "%s/.pod/resolv.conf", dir);
	ok(read_file(path, &text, NULL, 4096, NULL) == 0 && strstr(text, "nameserver 10.0.0.53"),
	   "resolv.conf has the pod's DNS config");
	free(text);
	text = NULL;
	snprintf(path, sizeof(path), "%s/.pod/hostname", dir);
	ok(read_file(path, &text, NULL, 4096, NULL) == 0 && !strcmp(text, "web\n"),
	   "hostname is the pod's");
	free(text);
	spec = json_tokener_parse("{\"mounts\":[{\"destination\":\"/etc/hosts\",\"type\":"
	                          "\"tmpfs\",\"source\":\"tmpfs\"}]}");
	ok(rewrite(spec, "ctr2", dir, "/run/kuasar/shared/ctr2", &err) == 0,
	   "spec with its own /etc/hosts rewritten");
	mounts = json_object_object_get(spec, "mounts");
	for (size_t i = 0; i < json_object_array_length(mounts); i++) {
		json_object *m = json_object_array_get_idx(mounts, i);
		const char *d = jpath(m, "destination", NULL);

		if (!strcmp(d, "/etc/hosts")) {
			n_hosts++;
			hosts_src = jpath(m, "source", NULL);
		} else if (!strcmp(d, "/etc/resolv.conf")) {
			n_resolv++;
			resolv_src = jpath(m, "source", NULL);
		} else if (!strcmp(d, "/etc/hostname"))
			n_hostname++;
	}
	ok(n_hosts == 1 && hosts_src && !strcmp(hosts_src, "tmpfs"),
	   "the container's own /etc/hosts is kept, not doubled");
	ok(n_resolv == 1 && resolv_src &&
	       !strcmp(resolv_src, "/run/kuasar/shared/.pod/resolv.conf"),
	   "resolv.conf comes from the pod files, as a guest path");
	is_int(n_hostname, 1, "so does /etc/hostname");
	json_object_put(spec);
	/* The guest keeps them (SetHostname wrote them): bound from its tmpfs, not the share. */
	spec = json_tokener_parse("{}");
	rewrite_pod_etc = GUEST_POD_ETC;
	ok(rewrite(spec, "ctr3", dir, "/run/kuasar/shared/ctr3", &err) == 0, "rewritten");
	rewrite_pod_etc = NULL;
	mounts = json_object_object_get(spec, "mounts");
	n_resolv = 0;
	for (size_t i = 0; i < json_object_array_length(mounts); i++) {
		const char *src = jpath(json_object_array_get_idx(mounts, i), "source", NULL);

		n_resolv += src && !strncmp(src, "/run/kuasar/pod/etc/", 20);
	}
	is_int(n_resolv, 3, "hosts, resolv.conf and hostname come from the guest's own copies");
	json_object_put(spec);
}

static void test_cgroup_parent(void)
{
	char out[256];
	kerr_t err;

	ok(sb_cgroup_parent_path("/kubepods/burstable/pod1", out, sizeof(out), &err) == 0 &&
	       !strcmp(out, "kubepods/burstable/pod1"),
	   "cgroupfs parent: below the root (%s)", out);
	ok(sb_cgroup_parent_path("kubepods-besteffort-pod12.slice", out, sizeof(out), &err) == 0 &&
	       !strcmp(out,
	               "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"),
	   "systemd slice: its ancestors spelled out (%s)", out);
	ok(sb_cgroup_parent_path("/kubepods/../../etc", out, sizeof(out), &err) < 0,
	   "`..` is refused: %s", err.msg);
	ok(sb_cgroup_parent_path("a--b.slice", out, sizeof(out), &err) < 0,
	   "a slice name with an empty part is refused");
	ok(sb_cgroup_parent_path("/", out, sizeof(out), &err) < 0, "the root itself is refused");
}

static void test_pod_resize(void)
{
	struct pod_resize r;
	struct sb_config cfg;
	unsigned mib = 0;
	kerr_t err;
	const char *kubelet = "{\"Overhead\":{\"memory_limit_in_bytes\":67108864},\"Resources\":"
	                      "{\"cpu_period\":100000,\"cpu_quota\":50000,\"cpu_shares\":512,"
	                      "\"memory_limit_in_bytes\":402653184,\"oom_score_adj\":-997}}";
	const char *nulls = "{\"Overhead\":null,\"Resources\":null}";
	const char *bad[] = { "", "[]", "{\"Resources\":[1]}", "{\"Resources\":{}} x", "{\"R\":" };

	ok(pod_resize_parse((const uint8_t *)kubelet, strlen(kubelet), &r, &err) == 0 &&
	       r.cpu_quota == 50000 && r.cpu_period == 100000 && r.memory == 402653184 &&
	       r.ovh_memory == 67108864 && r.ovh_cpu_quota == 0,
	   "containerd's updated-resources JSON: quota, period, memory and the overhead's");
	ok(pod_resize_parse((const uint8_t *)nulls, strlen(nulls), &r, &err) == 0 &&
	       r.memory == 0 && r.cpu_quota == 0,
	   "null resources: no limits");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(pod_resize_parse((const uint8_t *)bad[i], strlen(bad[i]), &r, &err) < 0,
		   "`%s` is refused: %s", bad[i], err.msg);
	config_defaults(&cfg);
	ok(pod_vm_mib(&cfg, 384LL << 20, &mib, &err) == 0 && mib == 384 - cfg.overhead_mib,
	   "a 384 MiB pod limit makes a %u MiB VM", mib);
	ok(pod_vm_mib(&cfg, 100LL << 20, &mib, &err) < 0, "too small a limit: %s", err.msg);
}

int main(void)
{
	char dir[] = "/tmp/kuasar-unit-XXXXXX", file[300], share[300];
	FILE *f;

	test_config();
	test_config_errors();
	test_proxy_result();
	if (!mkdtemp(dir))
		return 1;
	snprintf(file, sizeof(file), "%s/hosts", dir);
	f = fopen(file, "w");
	fputs("127.0.0.1 localhost\n", f);
	fclose(f);
	snprintf(share, sizeof(share), "%s/ctr1", dir);
	mkdir(share, 0755);
	test_spec(file, share);
	test_spec_edges(share);
	test_spec_memory(share);
	test_spec_mounts(share);
	test_mount_count(share);
	test_host_below();
	test_pod_files(dir);
	test_cgroup_parent();
	test_pod_resize();
	test_rootdisk_lowers(dir);
	test_rootimg(dir);
	remove(file);
	snprintf(file, sizeof(file), "rm -rf %s", dir);
	if (system(file) != 0)
		return 1;
	return done_testing();
}
