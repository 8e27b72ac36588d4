#include "proxy/rootdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"

#define QMP_TIMEOUT_MS 10000
#define UNPLUG_WAIT_NS (5 * 1000000000LL)
#define UNPLUG_POLL_MS 10
#define REAP_TICK_MS 10

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
/* An absolute path without "..", and without ',' that would end the overlay option it goes
 * into and start another. */
static int path_ok(const char *p)
{
	size_t len = strlen(p);

	return p[0] == '/' && !strstr(p, "/../") && !(len >= 3 && !strcmp(p + len - 3, "/..")) &&
	       !strchr(p, ',');
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

/* lowerdir's layers, each checked, into a new array. */
static int split_lowers(const char *lower, char ***out, size_t *k, kerr_t *err)
{
	_cleanup_free_ char *copy = strdup(lower);
	char *save = NULL, *tok;

	if (!copy)
		return kerr_set(err, ENOMEM, "out of memory");
	for (tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		char **grown;

		if (!path_ok(tok)) {
			kerr_set(err, EINVAL, "lowerdir `%s`: not an absolute path without `..`",
			         tok);
			break;
		}
		grown = realloc(*out, (*k + 1) * sizeof(**out));
		if (!grown || !(grown[*k] = strdup(tok))) {
			if (grown)
				*out = grown;
			kerr_set(err, ENOMEM, "out of memory");
			break;
		}
		*out = grown;
		(*k)++;
	}
	if (!tok)
		return 0;
	rootdisk_free_lowers(*out, *k);
	*out = NULL;
	*k = 0;
	return -1;
}

int rootdisk_lowers(Containerd__Types__Mount **m, size_t n_m, char ***lowers, size_t *n, char *why,
                    size_t why_len, kerr_t *err)
{
	const char *lower, *upper;
	char **out = NULL;
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
	if (strlen(lower) > ROOTIMG_OPTS_MAX - 64) {
		fmt_msg(why, why_len, "lowerdir of %zu bytes: too many layers for one overlay",
		        strlen(lower));
		return 0;
	}
	if (upper && (!path_ok(upper) || !dir_empty(upper))) {
		fmt_msg(why, why_len, "its upper layer %s already holds files", upper);
		return 0;
	}
	if (split_lowers(lower, &out, &k, err) < 0)
		return -1;
	if (!k)
		return kerr_set(err, EINVAL, "overlay rootfs mount with an empty lowerdir");
	*lowers = out;
	*n = k;
	return 1;
}

/* ---- disks on the VM's SCSI bus ---- */

static void finish(struct rootdisks *rd, struct rootdisk *d);
static void on_timer(struct loop_timer *t);
static void rearm(struct rootdisks *rd);

void rootdisks_init(struct rootdisks *rd, struct loop *loop, struct qmp *qmp, const char *cache,
                    const char *builder_cgroup)
{
	memset(rd, 0, sizeof(*rd));
	rd->loop = loop;
	rd->timer.fn = on_timer;
	rd->qmp = qmp;
	rd->qmp_timeout_ms = QMP_TIMEOUT_MS;
	fmt_msg(rd->cache, sizeof(rd->cache), "%s", cache);
	fmt_msg(rd->builder_cgroup, sizeof(rd->builder_cgroup), "%s",
	        builder_cgroup ? builder_cgroup : "");
}

void rootdisks_keep_targets(struct rootdisks *rd, const struct vm_disk *disks, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (disks[i].target < ROOTDISK_MAX_TARGETS)
			rd->used[disks[i].target / 8] |=
			    (unsigned char)(1u << (disks[i].target % 8));
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

/* A builder for d's image, with the layers kept for a rebuild. */
static int start_build(struct rootdisks *rd, struct rootdisk *d, char *const *lowers, size_t n,
                       kerr_t *err)
{
	if (!d->layers) {
		d->layers = calloc(n ? n : 1, sizeof(*d->layers));
		for (size_t i = 0; d->layers && i < n; i++)
			if (!(d->layers[i] = strdup(lowers[i])))
				return kerr_set(err, ENOMEM, "out of memory");
		if (!d->layers)
			return kerr_set(err, ENOMEM, "out of memory");
	}
	d->build_pid = rootimg_build_child(rd->cache, lowers, n, &d->img, rd->builder_cgroup,
	                                   &d->build_pidfd, &d->build_errfd, err);
	return d->build_pid > 0 ? 0 : -1;
}

int rootdisk_reserve(struct rootdisks *rd, const char *id, char *const *lowers, size_t n,
                     struct rootdisk **out, kerr_t *err)
{
	struct rootdisk *d;
	int t, rc;

	if (rootdisk_find(rd, id))
		return kerr_set(err, EEXIST, "container %s has a root disk already", id);
	d = calloc(1, sizeof(*d));
	if (!d)
		return kerr_set(err, ENOMEM, "out of memory");
	d->build_pidfd = d->build_errfd = -1;
	t = target_take(rd);
	if (t < 0) {
		free(d);
		return kerr_set(err, ENOSPC, "all %d SCSI targets hold root disks",
		                ROOTDISK_MAX_TARGETS);
	}
	d->target = (unsigned)t;
	d->n_layers = n;
	d->seq = ++rd->seq;
	fmt_msg(d->id, sizeof(d->id), "%s", id);
	/* Names are never reused: a node QEMU failed to free cannot block a later disk. */
	fmt_msg(d->node, sizeof(d->node), "rootfs%u.%u", d->target, d->seq);
	d->next = rd->list;
	rd->list = d;
	rc = rootimg_init(rd->cache, lowers, n, &d->img, err) < 0
	         ? -1
	         : rootimg_hold(rd->cache, &d->img, err);
	if (rc == 0)
		rc = start_build(rd, d, lowers, n, err);
	if (rc < 0) {
		finish(rd, d);
		return -1;
	}
	*out = d;
	return 0;
}

/* The builder is done (its pidfd readable) or cancelled (killed with its tools first); a
 * killed one not yet gone is reaped from the timer. */
static void build_reap(struct rootdisks *rd, struct rootdisk *d, int kill_it)
{
	if (d->build_pid <= 0)
		return;
	if (kill_it)
		rootimg_build_kill(d->build_pid);
	if (waitpid(d->build_pid, NULL, WNOHANG) == 0) {
		if (rd->n_reap < ROOTDISK_MAX_TARGETS) {
			rd->reap[rd->n_reap++] = d->build_pid;
			rearm(rd);
		} else {
			waitpid(d->build_pid, NULL, 0); /* killed: brief */
		}
	}
	d->build_pid = 0;
	close(d->build_pidfd);
	close(d->build_errfd);
	d->build_pidfd = d->build_errfd = -1;
}

int rootdisk_built(struct rootdisks *rd, struct rootdisk *d, kerr_t *err)
{
	char msg[sizeof(err->msg)];
	ssize_t len = read(d->build_errfd, msg, sizeof(msg) - 1);
	int rc;

	build_reap(rd, d, 0);
	if (len > 0) {
		msg[len] = 0;
		return kerr_set(err, EIO, "%s", msg);
	}
	rc = rootimg_hold(rd->cache, &d->img, err);
	if (rc == 0 && !d->rebuilt && d->layers) {
		/* Its last user let go of it between its build and our hold: once more. */
		d->rebuilt = 1;
		return start_build(rd, d, d->layers, d->n_layers, err) < 0 ? -1 : 1;
	}
	if (rc == 0)
		return kerr_set(err, EIO, "rootfs image %s: its build ended without it",
		                d->img.path);
	d->img.built = 1;
	d->img.build_ms = (double)(mono_ns() - d->img.t0_ns) / 1e6;
	return rc < 0 ? -1 : 0;
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

static struct rootdisk *find_seq(struct rootdisks *rd, unsigned seq)
{
	for (struct rootdisk *d = rd->list; d; d = d->next)
		if (d->seq == seq)
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
	build_reap(rd, d, 1);
	rootimg_put(rd->cache, &d->img);
	for (size_t i = 0; d->layers && i < d->n_layers; i++)
		free(d->layers[i]);
	free(d->layers);
	target_free(rd, d->target);
	free(d);
}

/* ---- plugging and unplugging, by QMP from the loop ---- */

typedef void (*step_fn)(struct rootdisks *rd, struct rootdisk *d, struct qmp_reply *r);

/* An answer comes back to the disk by its number: a disk freed meanwhile is not found. */
struct ticket {
	struct rootdisks *rd;
	unsigned seq;
	step_fn next;
};

static void on_answer(void *arg, struct qmp_reply *r)
{
	struct ticket t = *(struct ticket *)arg;
	struct rootdisk *d = find_seq(t.rd, t.seq);

	free(arg);
	if (!d)
		return;
	d->busy = 0;
	t.next(t.rd, d, r);
}

static int send_for(struct rootdisks *rd, struct rootdisk *d, const char *cmd, json_object *args,
                    step_fn next, kerr_t *err)
{
	struct ticket *t = malloc(sizeof(*t));

	if (!t) {
		json_object_put(args);
		return kerr_set(err, ENOMEM, "out of memory");
	}
	*t = (struct ticket){ .rd = rd, .seq = d->seq, .next = next };
	if (qmp_send(rd->qmp, cmd, args, rd->qmp_timeout_ms, on_answer, t, err) < 0) {
		free(t);
		return -1;
	}
	d->busy = 1;
	return 0;
}

static json_object *node_arg(const char *key, const char *name)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, key, json_object_new_string(name));
	return a;
}

static void rearm(struct rootdisks *rd)
{
	int64_t due = rd->n_reap ? mono_ns() + REAP_TICK_MS * 1000000LL : 0;

	for (struct rootdisk *d = rd->list; d; d = d->next)
		if (d->due_ns && (!due || d->due_ns < due))
			due = d->due_ns;
	if (due)
		loop_timer_arm(rd->loop, &rd->timer, ms_until(due));
	else
		loop_timer_cancel(rd->loop, &rd->timer);
}

/* The disk cannot be taken out cleanly: it goes anyway. Said only when it matters, not when
 * the VM is on its way out. */
static void give_up(struct rootdisks *rd, struct rootdisk *d, const kerr_t *err)
{
	if (rd->closing || err->errnum == ECONNRESET || err->errnum == ECANCELED)
		log_debug("root disk of %s (SCSI target %u): %s", d->id, d->target, err->msg);
	else
		log_warn("root disk of %s (SCSI target %u): %s", d->id, d->target, err->msg);
	finish(rd, d);
}

static void node_gone(struct rootdisks *rd, struct rootdisk *d, struct qmp_reply *r)
{
	if (r->ok) {
		log_debug("root disk of %s unplugged from SCSI target %u in %.1f ms", d->id,
		          d->target, (double)(mono_ns() - d->unplug_ns) / 1e6);
		finish(rd, d);
		return;
	}
	/* A node is freed a grace period after its device (QEMU's RCU): GenericError ("in
	 * use") is asked again for a while; any other class is final. */
	if (!strcmp(r->class, "GenericError") && !rd->closing &&
	    mono_ns() - d->unplug_ns < UNPLUG_WAIT_NS) {
		d->due_ns = mono_ns() + UNPLUG_POLL_MS * 1000000LL;
		rearm(rd);
		return;
	}
	give_up(rd, d, &r->err);
}

static void node_del(struct rootdisks *rd, struct rootdisk *d)
{
	kerr_t err;

	d->due_ns = 0;
	d->awaiting_event = 0;
	if (send_for(rd, d, "blockdev-del", node_arg("node-name", d->node), node_gone, &err) < 0)
		give_up(rd, d, &err);
}

static void device_gone(struct rootdisks *rd, struct rootdisk *d, struct qmp_reply *r)
{
	if (!r->ok && strcmp(r->class, "DeviceNotFound")) {
		give_up(rd, d, &r->err);
		return;
	}
	d->plugged = 0;
	if (!r->ok || d->deleted || rd->closing) {
		if (rd->closing)
			finish(rd, d);
		else
			node_del(rd, d);
		return;
	}
	/* QEMU says DEVICE_DELETED once the device is finalized. */
	d->awaiting_event = 1;
	d->due_ns = d->unplug_ns + UNPLUG_WAIT_NS;
	rearm(rd);
}

void rootdisk_detach(struct rootdisks *rd, struct rootdisk *d, int vm_running)
{
	kerr_t err;

	d->releasing = 1;
	if (d->busy || d->unplugging)
		return; /* the answer awaited goes on with the release */
	if (!vm_running || rd->closing || (!d->plugged && !d->node_added)) {
		finish(rd, d);
		return;
	}
	d->unplugging = 1;
	d->unplug_ns = mono_ns();
	if (!d->plugged) {
		node_del(rd, d);
		return;
	}
	if (send_for(rd, d, "device_del", node_arg("id", d->node), device_gone, &err) < 0)
		give_up(rd, d, &err);
}

void rootdisks_qmp_event(struct rootdisks *rd, const char *event, json_object *data)
{
	json_object *v;

	if (strcmp(event, "DEVICE_DELETED") || !json_object_object_get_ex(data, "device", &v))
		return;
	for (struct rootdisk *d = rd->list; d; d = d->next) {
		if (strcmp(d->node, json_object_get_string(v)))
			continue;
		d->deleted = 1;
		if (d->awaiting_event && !d->busy)
			node_del(rd, d);
		return;
	}
}

/* The plug ended (err NULL: the disk is on the bus): its Create is told, unless the disk
 * was let go meanwhile, when its release goes on. */
static void plugged(struct rootdisks *rd, struct rootdisk *d, const kerr_t *err)
{
	if (d->releasing)
		rootdisk_detach(rd, d, 1);
	else if (rd->on_plugged)
		rd->on_plugged(rd->arg, d, err);
}

static void device_added(struct rootdisks *rd, struct rootdisk *d, struct qmp_reply *r)
{
	if (r->ok)
		d->plugged = 1;
	else
		kerr_wrap(&r->err, "SCSI target %u", d->target);
	plugged(rd, d, r->ok ? NULL : &r->err);
}

static void node_added(struct rootdisks *rd, struct rootdisk *d, struct qmp_reply *r)
{
	json_object *a;
	kerr_t err;

	if (!r->ok) {
		plugged(rd, d, &r->err);
		return;
	}
	d->node_added = 1;
	if (d->releasing) {
		rootdisk_detach(rd, d, 1);
		return;
	}
	a = json_object_new_object();
	json_object_object_add(a, "driver", json_object_new_string("scsi-hd"));
	json_object_object_add(a, "id", json_object_new_string(d->node));
	json_object_object_add(a, "drive", json_object_new_string(d->node));
	json_object_object_add(a, "bus", json_object_new_string("scsi.0"));
	json_object_object_add(a, "scsi-id", json_object_new_int((int)d->target));
	json_object_object_add(a, "lun", json_object_new_int(0));
	if (send_for(rd, d, "device_add", a, device_added, &err) < 0)
		plugged(rd, d, &err);
}

int rootdisk_plug(struct rootdisks *rd, struct rootdisk *d, kerr_t *err)
{
	json_object *a = json_object_new_object(), *file = json_object_new_object();

	json_object_object_add(file, "driver", json_object_new_string("file"));
	json_object_object_add(file, "filename", json_object_new_string(d->img.path));
	json_object_object_add(a, "driver", json_object_new_string("raw"));
	json_object_object_add(a, "node-name", json_object_new_string(d->node));
	json_object_object_add(a, "read-only", json_object_new_boolean(1));
	json_object_object_add(a, "file", file);
	return send_for(rd, d, "blockdev-add", a, node_added, err);
}

/* Killed builders reaped; unplugs past their wait given up, or asked again. */
static void on_timer(struct loop_timer *t)
{
	struct rootdisks *rd = container_of(t, struct rootdisks, timer);
	struct rootdisk *d, *next;
	int64_t now = mono_ns();
	kerr_t err;

	for (unsigned i = 0; i < rd->n_reap;) {
		if (waitpid(rd->reap[i], NULL, WNOHANG) != 0)
			rd->reap[i] = rd->reap[--rd->n_reap];
		else
			i++;
	}
	for (d = rd->list; d; d = next) {
		next = d->next;
		if (!d->due_ns || d->due_ns > now)
			continue;
		d->due_ns = 0;
		if (!d->awaiting_event) {
			node_del(rd, d);
			continue;
		}
		kerr_set(&err, ETIMEDOUT, "QEMU did not delete its device in %lld ms",
		         UNPLUG_WAIT_NS / 1000000);
		give_up(rd, d, &err);
	}
	rearm(rd);
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

void rootdisks_closing(struct rootdisks *rd)
{
	struct rootdisk *d, *next;

	rd->closing = 1;
	for (d = rd->list; d; d = next) {
		next = d->next;
		if (d->releasing && !d->busy)
			finish(rd, d);
	}
}

void rootdisks_release(struct rootdisks *rd)
{
	if (rd->loop)
		loop_timer_cancel(rd->loop, &rd->timer);
	while (rd->list)
		finish(rd, rd->list);
}
