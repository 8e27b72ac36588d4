/* kuasar-ctl snapshot and fork: a running VM snapshotted while it runs on, and forks that
 * carry on from that moment, each made unique (ctl_snap.h has the store's layout).
 *
 *   kuasar-ctl snapshot ID [-o NAME]
 *   kuasar-ctl snapshot list
 *   kuasar-ctl snapshot rm NAME
 *   kuasar-ctl fork ID|NAME [--count N] [--network NETNS,...] [--id BASE] [--keep]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "ctl/ctl.h"
#include "ctl/ctl_snap.h"
#include "host/proxy.pb-c.h"
#include "net/podnet.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"

/* A pod's snapshot: the proxy's own bound (150 s) and the guest's steps around it. */
#define POD_SNAP_NS (180 * 1000000000LL)

struct snap_store {
	char dir[KPATH_SIZE / 2];
	char mem_dir[KPATH_SIZE / 2];
};

static int store_init(struct snap_store *s, kerr_t *err)
{
	const char *dir = getenv("KUASAR_SNAPSHOT_DIR"), *mem = getenv("KUASAR_TEMPLATE_MEM_DIR");

	if (fmt_path(s->dir, sizeof(s->dir), "%s", dir && *dir ? dir : SNAP_DIR_DEFAULT) < 0 ||
	    fmt_path(s->mem_dir, sizeof(s->mem_dir), "%s/snapshots",
	             mem && *mem ? mem : TPL_MEM_DIR_DEFAULT) < 0)
		return kerr_set(err, ENAMETOOLONG, "snapshot store: path too long");
	return 0;
}

static int store_paths(const struct snap_store *s, const char *name, struct template *t,
                       kerr_t *err)
{
	return snap_paths(s->dir, s->mem_dir, name, t, err);
}

int ctl_snapshot_open(const char *name, struct vm_shape *sh, struct template *t, kerr_t *err)
{
	struct snap_store s;

	if (store_init(&s, err) < 0)
		return -1;
	return snap_open(s.dir, s.mem_dir, name, sh, t, err);
}

static void now_iso(char *buf, size_t n)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int write_meta(const struct template *t, const char *source, const struct vm_shape *sh,
                      const struct vm_snap_times *tm, kerr_t *err)
{
	json_object *o = json_object_new_object();
	struct vm_config c = sh->cfg;
	char created[32];
	const char *s;
	int rc;

	c.mem_path = t->mem;
	now_iso(created, sizeof(created));
	json_object_object_add(o, "source", json_object_new_string(source));
	json_object_object_add(o, "created", json_object_new_string(created));
	vm_shape_write(o, &c);
	json_object_object_add(o, "pause_ms", json_object_new_double(tm->pause_ms));
	json_object_object_add(o, "migrate_ms", json_object_new_double(tm->migrate_ms));
	json_object_object_add(o, "save_ms", json_object_new_double(tm->save_ms));
	json_object_object_add(o, "total_ms", json_object_new_double(tm->total_ms));
	json_object_object_add(o, "state_bytes", json_object_new_int64(tm->state_bytes));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	rc = write_file_atomic(t->meta, s, strlen(s), err);
	json_object_put(o);
	return rc;
}

/* 1 when id is a pod of kuasar-sandboxer (its directory has the daemon's sandbox.json):
 * its proxy holds the VMM's QMP and the guest link, so the proxy takes the snapshot. */
static int is_pod(const char *id, kerr_t *err)
{
	char path[KPATH_SIZE];

	if (id_valid(id, err) < 0)
		return -1;
	return fmt_path(path, sizeof(path), "%s/%s/sandbox.json", ctl_run_dir(), id) == 0 &&
	       access(path, F_OK) == 0;
}

/* The pod's proxy snapshots its VM (kuasar.proxy.v1.Proxy/Snapshot on its task socket);
 * the shape it answers is checked as any meta.json is. */
static int pod_snapshot(const char *id, const struct template *t, struct vm_shape *sh,
                        struct vm_snap_times *tm, kerr_t *err)
{
	Kuasar__Proxy__V1__SnapshotRequest req = KUASAR__PROXY__V1__SNAPSHOT_REQUEST__INIT;
	Kuasar__Proxy__V1__SnapshotResponse *r = NULL;
	struct ttrpc_client c;
	char sock[KPATH_SIZE];
	json_object *o;
	int fd, rc;

	if (fmt_path(sock, sizeof(sock), "%s/%s/task.sock", ctl_run_dir(), id) < 0)
		return kerr_set(err, ENAMETOOLONG, "task socket path too long");
	if ((fd = unix_connect(sock, err)) < 0)
		return kerr_wrap(err, "pod `%s`: its task proxy", id);
	ttrpc_client_init(&c, fd);
	req.mem_path = (char *)t->mem;
	req.state_path = (char *)t->state;
	req.disk_dir = (char *)t->dir;
	rc = ttrpc_call(&c, "kuasar.proxy.v1.Proxy", "Snapshot", &req.base,
	                &kuasar__proxy__v1__snapshot_response__descriptor, (ProtobufCMessage **)&r,
	                mono_ns() + POD_SNAP_NS, err);
	ttrpc_client_close(&c);
	if (rc < 0)
		return kerr_wrap(err, "snapshot of pod `%s`", id);
	*tm = (struct vm_snap_times){ .pause_ms = r->pause_ms,
		                      .migrate_ms = r->migrate_ms,
		                      .save_ms = r->save_ms,
		                      .total_ms = r->total_ms,
		                      .state_bytes = r->state_bytes };
	o = json_tokener_parse(r->shape_json);
	rc = o ? vm_shape_read(o, sh, err) : kerr_set(err, EBADMSG, "not JSON");
	json_object_put(o);
	kuasar__proxy__v1__snapshot_response__free_unpacked(r, NULL);
	return rc < 0 ? kerr_wrap(err, "pod `%s`'s snapshot shape", id) : 0;
}

/* The pod's VM's size, from its vm.json, before anything is taken. */
static int pod_memory(const char *id, unsigned *mib, kerr_t *err)
{
	struct vm vm;
	struct vm_shape sh;

	vm_init(&vm, id);
	if (vm_paths_init(&vm.paths, ctl_run_dir(), id, err) < 0 || vm_shape_of(&vm, &sh, err) < 0)
		return -1;
	*mib = sh.cfg.memory_mib;
	return 0;
}

/* A snapshot's files, its lock and (once empty) the memory directory go: nothing is left
 * of it. */
static int drop_files(const struct snap_store *s, const struct template *t, kerr_t *err)
{
	int rc;

	snap_drop_disks(t);
	rc = tpl_remove_files(t, err);

	unlink(t->lock);
	rmdir(s->mem_dir);
	return rc;
}

/* A kept VM's disks (a fork of a pod's snapshot has its parent's) become this snapshot's
 * own, so that removing the parent's snapshot leaves them. */
static int keep_disks(const struct template *t, struct vm_shape *sh, kerr_t *err)
{
	int fd, rc;

	if (!sh->cfg.n_disks)
		return 0;
	fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kerr_sys(err, "open %s", t->dir);
	rc = vm_shape_keep_disks(sh, fd, t->dir, err);
	close(fd);
	return rc;
}

/* The VM's clock stood still while it was stopped: set again if it is now behind by more
 * than a round trip tells (and 1 ms). The snapshot stands either way. */
static void resync_clock(struct vm *vm)
{
	struct clock_sync cs;
	kerr_t e;

	if (agent_check_clock(&vm->link, 1000000, &cs, mono_ns() + 5000000000LL, &e) < 0)
		fprintf(stderr, "kuasar-ctl: warning: %s: clock after the snapshot: %s\n", vm->id,
		        e.msg);
}

/* A VM kept by kuasar-ctl: snapshotted from here, its QMP ours. */
static int kept_snapshot(const char *id, const struct snap_store *s, const struct template *t,
                         struct vm_shape *sh, struct vm_snap_times *tm, kerr_t *err)
{
	struct vm_snap_env env = { .run_dir = ctl_run_dir(), .scratch_taps = podnet_scratch_taps };
	struct vm vm;
	int rc = vm_attach(&vm, ctl_run_dir(), id, err);

	if (rc == 0)
		rc = vm_shape_of(&vm, sh, err);
	if (rc == 0)
		rc = tpl_mem_room(s->mem_dir, sh->cfg.memory_mib, err);
	if (rc == 0)
		rc = vm_snapshot(&vm, sh, &env, t->mem, t->state, tm, err);
	if (rc == 0)
		resync_clock(&vm);
	vm_release(&vm);
	return rc;
}

static int pod_take(const char *id, const struct snap_store *s, const struct template *t,
                    struct vm_shape *sh, struct vm_snap_times *tm, kerr_t *err)
{
	unsigned mib;

	if (pod_memory(id, &mib, err) < 0 || tpl_mem_room(s->mem_dir, mib, err) < 0)
		return -1;
	return pod_snapshot(id, t, sh, tm, err);
}

int ctl_snapshot_take(const char *id, const char *name, struct vm_snap_times *tm, kerr_t *err)
{
	struct snap_store s;
	struct template t;
	struct vm_shape sh;
	int lock, rc, pod = is_pod(id, err);

	if (pod < 0 || store_init(&s, err) < 0 || store_paths(&s, name, &t, err) < 0 ||
	    mkdir_p(s.dir, 0700, err) < 0 || mkdir_p(s.mem_dir, 0700, err) < 0)
		return -1;
	lock = tpl_lock(&t, 1, mono_ns() + 10000000000LL, err);
	if (lock < 0)
		return -1;
	if (mkdir(t.dir, 0700) < 0) {
		rc = errno == EEXIST ? kerr_set(err, EEXIST, "snapshot `%s` exists", name)
		                     : kerr_sys(err, "create %s", t.dir);
		close(lock);
		return rc;
	}
	rc = pod ? pod_take(id, &s, &t, &sh, tm, err) : kept_snapshot(id, &s, &t, &sh, tm, err);
	if (rc == 0 && !pod)
		rc = keep_disks(&t, &sh, err);
	if (rc == 0)
		rc = write_meta(&t, id, &sh, tm, err);
	if (rc < 0)
		drop_files(&s, &t, NULL); /* a failed take leaves nothing */
	close(lock);
	return rc;
}

int ctl_snapshot_remove(const char *name, int in_use_too, kerr_t *err)
{
	struct snap_store s;
	struct template t;
	struct stat st;
	pid_t pids[8];
	int lock, n, rc;

	if (store_init(&s, err) < 0 || store_paths(&s, name, &t, err) < 0)
		return -1;
	if (stat(t.dir, &st) < 0)
		return kerr_set(err, ENOENT, "no snapshot `%s` in %s", name, s.dir);
	lock = tpl_lock(&t, 1, mono_ns() + 10000000000LL, err);
	if (lock < 0)
		return -1;
	n = in_use_too ? 0 : tpl_users(&t, pids, 8);
	if (n > 0) {
		close(lock);
		return kerr_set(err, EBUSY,
		                "snapshot `%s` is in use: %d fork%s map%s its memory (pid %d%s); "
		                "stop them first",
		                name, n, n == 1 ? "" : "s", n == 1 ? "s" : "", pids[0],
		                n > 1 ? ", ..." : "");
	}
	rc = drop_files(&s, &t, err);
	close(lock);
	return rc;
}

/* ---- commands ---- */

static int snap_usage(void)
{
	fprintf(stderr,
	        "usage: kuasar-ctl snapshot ID [-o NAME]   snapshot a kept VM while it runs on\n"
	        "       kuasar-ctl snapshot list\n"
	        "       kuasar-ctl snapshot rm NAME        (refused while forks map it)\n"
	        "  store: KUASAR_SNAPSHOT_DIR (default %s), memory in\n"
	        "  KUASAR_TEMPLATE_MEM_DIR/snapshots (default %s/snapshots)\n",
	        SNAP_DIR_DEFAULT, TPL_MEM_DIR_DEFAULT);
	return 2;
}

static void list_one(const struct snap_store *s, const char *name)
{
	struct template t;
	struct vm_shape sh;
	json_object *m = NULL;
	pid_t pids[1];
	kerr_t e;

	if (store_paths(s, name, &t, &e) < 0)
		return;
	if (snap_read_meta(&t, &sh, &m, &e) < 0) {
		printf("%-28s (broken: %s)\n", name, e.msg);
		return;
	}
	printf("%-28s %-24s %-20s %5u MiB  pause %6.1f ms  %d fork(s)\n", name,
	       jget_str(m, "source", "?"), jget_str(m, "created", "?"), sh.cfg.memory_mib,
	       json_object_get_double(json_object_object_get(m, "pause_ms")),
	       tpl_users(&t, pids, 1));
	json_object_put(m);
}

static int snap_list(void)
{
	struct snap_store s;
	struct dirent *e;
	DIR *d;
	kerr_t err;

	if (store_init(&s, &err) < 0)
		return ctl_fail(&err);
	d = opendir(s.dir);
	printf("%-28s %-24s %-20s %9s\n", "NAME", "SOURCE", "CREATED", "MEMORY");
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && e->d_type == DT_DIR)
			list_one(&s, e->d_name);
	if (d)
		closedir(d);
	return 0;
}

static int snap_take_cmd(int argc, char **argv)
{
	const char *id = argv[1], *name = NULL;
	char def[ID_MAX + 1];
	struct vm_snap_times tm;
	kerr_t err;

	if (argc == 4 && (!strcmp(argv[2], "-o") || !strcmp(argv[2], "--output")))
		name = argv[3];
	else if (argc != 2)
		return snap_usage();
	if (!name) {
		snprintf(def, sizeof(def), "%.*s-%lld", ID_MAX - 12, id, (long long)time(NULL));
		name = def;
	}
	if (ctl_snapshot_take(id, name, &tm, &err) < 0)
		return ctl_fail(&err);
	printf("%s\n", name);
	fflush(stdout);
	fprintf(stderr,
	        "kuasar-ctl: snapshot %s of %s: paused %.1f ms (RAM copied in %.0f ms; then "
	        "loaded and its device state saved in %.0f ms, %.0f ms in all); state %lld "
	        "bytes\n",
	        name, id, tm.pause_ms, tm.migrate_ms, tm.save_ms, tm.total_ms, tm.state_bytes);
	return 0;
}

int ctl_snapshot(int argc, char **argv)
{
	kerr_t err;

	if (argc == 2 && !strcmp(argv[1], "list"))
		return snap_list();
	if (argc == 3 && !strcmp(argv[1], "rm")) {
		if (ctl_snapshot_remove(argv[2], 0, &err) < 0)
			return ctl_fail(&err);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-' || !strcmp(argv[1], "list") || !strcmp(argv[1], "rm"))
		return snap_usage();
	return snap_take_cmd(argc, argv);
}

static int fork_usage(void)
{
	fprintf(stderr,
	        "usage: kuasar-ctl fork ID|NAME [--count N] [--network NETNS,...] [--id BASE] "
	        "[--keep]\n"
	        "  starts N forks of the snapshot NAME, or of the kept VM ID (snapshotted for\n"
	        "  them while it runs on; that snapshot goes when its forks do). Each carries on\n"
	        "  from the snapshot's moment, made unique (entropy, hostname = its id, clock,\n"
	        "  CID, and with --network the addresses and routes of its namespace). Prints\n"
	        "  their output until SIGINT/SIGTERM stops them; --keep: prints their ids and\n"
	        "  leaves them running (kuasar-ctl shutdown ID)\n");
	return 2;
}

struct fork_opts {
	const char *src, *id;
	char *netns_list;
	unsigned count;
	int keep;
};

static int parse_fork(int argc, char **argv, struct fork_opts *o)
{
	static const struct option opts[] = {
		{ "network", required_argument, 0, 'N' },
		{ "count", required_argument, 0, 'n' },
		{ "id", required_argument, 0, 'i' },
		{ "keep", no_argument, 0, 'K' },
		{ 0, 0, 0, 0 },
	};
	int c;

	o->count = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'N')
			o->netns_list = optarg;
		else if (c == 'i')
			o->id = optarg;
		else if (c == 'K')
			o->keep = 1;
		else if (c != 'n' || ctl_parse_uint(optarg, 1, MAX_CLONES, &o->count) < 0)
			return -1;
	}
	if (optind + 1 != argc)
		return -1;
	o->src = argv[optind];
	return 0;
}

/* The snapshot o->src names, or one taken now of the kept VM o->src (its name in tmp). */
static int fork_source(const struct fork_opts *o, struct vm_shape *sh, struct template *t,
                       char tmp[ID_MAX + 1], kerr_t *err)
{
	struct vm_snap_times tm;
	unsigned r = (unsigned)mono_ns();
	int lock = ctl_snapshot_open(o->src, sh, t, err);

	tmp[0] = '\0';
	if (lock >= 0 || err->errnum != ENOENT)
		return lock;
	snprintf(tmp, ID_MAX + 1, "%.*s-fork-%06x", ID_MAX - 12, o->src, r & 0xffffff);
	if (ctl_snapshot_take(o->src, tmp, &tm, err) < 0) {
		tmp[0] = '\0';
		return -1;
	}
	fprintf(stderr, "kuasar-ctl: %s snapshotted: paused %.1f ms, %.0f ms in all\n", o->src,
	        tm.pause_ms, tm.total_ms);
	return ctl_snapshot_open(tmp, sh, t, err);
}

int ctl_fork_start(const struct vm_shape *sh, const struct template *t, struct clone *cl,
                   unsigned n, const char *base, int sigfd, int keep, int quiet, unsigned *started,
                   kerr_t *err)
{
	static struct appliance a;

	memset(&a, 0, sizeof(a));
	a.cfg = sh->cfg;
	if (cl[0].netns && !sh->cfg.n_nics)
		return kerr_set(err, EINVAL, "--network: the snapshot's VM has no NIC");
	for (*started = 0; *started < n; (*started)++) {
		struct clone *c = &cl[*started];
		char id[ID_MAX + 16];

		if (n == 1)
			snprintf(id, sizeof(id), "%s", base);
		else
			snprintf(id, sizeof(id), "%.*s-%u", ID_MAX - 4, base, *started % 1000);
		c->fork_state = t->state;
		if (ctl_clone_start(&a, c, id, 0, sigfd, keep, err) < 0)
			return -1;
		if (quiet)
			continue;
		fprintf(stderr,
		        "kuasar-ctl: %s: forked in %.1f ms (restored %.1f, unique %.1f, network "
		        "%.1f), hostname %s%s%s\n",
		        id, (double)(c->t_net - c->t0) / 1e6, (double)(c->t_launched - c->t0) / 1e6,
		        (double)(c->t_unique - c->t_launched) / 1e6,
		        (double)(c->t_net - c->t_unique) / 1e6, c->vm.hostname,
		        c->netns ? ", network " : "", c->netns ? c->netns : "");
	}
	return 0;
}

int ctl_fork(int argc, char **argv)
{
	static struct clone cl[MAX_CLONES];
	struct fork_opts o = { 0 };
	struct vm_shape sh;
	struct template t;
	char base[ID_MAX + 1], tmp[ID_MAX + 1];
	unsigned started = 0;
	kerr_t err;
	int sigfd, lock, rc;

	if (parse_fork(argc, argv, &o) < 0)
		return fork_usage();
	if (ctl_assign_netns(cl, o.count, o.netns_list, &err) < 0)
		return ctl_fail(&err);
	if (o.id)
		snprintf(base, sizeof(base), "%.*s", ID_MAX - 4, o.id);
	else
		ctl_random_id(base, sizeof(base));
	sigfd = ctl_watch_signals();
	lock = fork_source(&o, &sh, &t, tmp, &err);
	if (lock < 0) {
		if (tmp[0])
			ctl_snapshot_remove(tmp, 1, NULL);
		return ctl_fail(&err);
	}
	rc = ctl_fork_start(&sh, &t, cl, o.count, base, sigfd, o.keep, 0, &started, &err);
	close(lock);
	if (tmp[0])
		ctl_snapshot_remove(tmp, 1, NULL); /* its forks keep their pages */
	if (rc < 0)
		rc = ctl_fail(&err);
	return ctl_clones_finish(cl, started, rc, o.keep, sigfd);
}
