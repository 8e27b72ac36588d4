#include "proxy/taskproxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "proxy/rootdisk.h"
#include "task.pb-c.h"
#include "ttrpc.pb-c.h"

/* stdio must be streams served on this socket (io_type = "streaming"): the guest cannot
 * open the host's FIFOs or log files. */
static int check_stdio(const char *const uri[3], char *why, size_t n)
{
	static const char *const names[3] = { "stdin", "stdout", "stderr" };

	for (int i = 0; i < 3; i++) {
		if (uri[i] && uri[i][0] && !strstr(uri[i], "streaming_id=")) {
			snprintf(why, n,
			         "%s `%s` is not a streaming URI: configure the runtime with "
			         "io_type = \"streaming\"",
			         names[i], uri[i]);
			return -1;
		}
	}
	return 0;
}

/* With rootfs = "block": the container's layers as a disk on the VM, when they can be one
 * (*target set, groot the guest's path for it); -1 with the client answered on error. */
static int root_disk(struct tp_conn *c, uint32_t sid,
                     const Containerd__Task__V3__CreateTaskRequest *cr, int *target, char *groot,
                     size_t n)
{
	struct rootdisk *d = NULL;
	char why[300], **lowers;
	size_t nl;
	kerr_t err;
	int rc;

	if (id_valid(cr->id, &err) < 0) {
		tp_client_error(c, sid, RPC_INVALID_ARGUMENT, "Create: %s", err.msg);
		return -1;
	}
	rc = rootdisk_lowers(cr->rootfs, cr->n_rootfs, &lowers, &nl, why, sizeof(why), &err);
	if (rc == 0) {
		log_info("Create %s: root filesystem over the share: %s", cr->id, why);
		return 0;
	}
	if (rc > 0)
		rc = rootdisk_reserve(c->tp->disks, cr->id, lowers, nl, &d, &err);
	rootdisk_free_lowers(lowers, nl);
	if (rc < 0) {
		tp_client_error(c, sid,
		                err.errnum == EEXIST   ? RPC_ALREADY_EXISTS
		                : err.errnum == EINVAL ? RPC_INVALID_ARGUMENT
		                                       : RPC_FAILED_PRECONDITION,
		                "Create %s: root disk: %s", cr->id, err.msg);
		return -1;
	}
	if (d->build_pid <= 0)
		log_info("Create %s: root disk on SCSI target %u, %s (cached)", cr->id, d->target,
		         d->img.path);
	else
		log_info("Create %s: root disk on SCSI target %u: building %s from %zu layers",
		         cr->id, d->target, d->img.path, nl);
	*target = (int)d->target;
	snprintf(groot, n, GUEST_ROOT_DISK, d->target);
	return 0;
}

/* Task.Create: prepare the bundle in the share and point the request at it. Returns the
 * new payload (malloc'd) or NULL with the client already answered. */
static uint8_t *rewrite_create(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req,
                               size_t *out_len, char *created, size_t created_len, int *target)
{
	Containerd__Task__V3__CreateTaskRequest *cr;
	char gbundle[512], why[600], groot[64];
	uint8_t *out = NULL;
	char *old_bundle;
	size_t n_rootfs;
	Containerd__Types__Mount **rootfs;
	kerr_t err;

	cr = containerd__task__v3__create_task_request__unpack(NULL, req->payload.len,
	                                                       req->payload.data);
	if (!cr) {
		tp_client_error(c, sid, RPC_INVALID_ARGUMENT,
		                "Create: malformed CreateTaskRequest");
		return NULL;
	}
	if (check_stdio((const char *const[]){ cr->stdin, cr->stdout, cr->stderr }, why,
	                sizeof(why)) < 0) {
		tp_client_error(c, sid, RPC_INVALID_ARGUMENT, "Create %s: %s", cr->id, why);
		goto out;
	}
	if (c->tp->disks && root_disk(c, sid, cr, target, groot, sizeof(groot)) < 0)
		goto out;
	if (bundle_prepare(&c->tp->bundles, cr->id, cr->bundle, cr->rootfs, cr->n_rootfs,
	                   *target >= 0 ? groot : NULL, gbundle, sizeof(gbundle), &err) < 0) {
		tp_client_error(c, sid,
		                err.errnum == EEXIST   ? RPC_ALREADY_EXISTS
		                : err.errnum == EINVAL ? RPC_INVALID_ARGUMENT
		                                       : RPC_FAILED_PRECONDITION,
		                "Create %s: %s", cr->id, err.msg);
		if (*target >= 0)
			tp_disk_release(c->tp, cr->id);
		goto out;
	}
	old_bundle = cr->bundle;
	rootfs = cr->rootfs;
	n_rootfs = cr->n_rootfs;
	cr->bundle = gbundle;
	cr->rootfs = NULL;
	cr->n_rootfs = 0;
	*out_len = containerd__task__v3__create_task_request__get_packed_size(cr);
	out = malloc(*out_len ? *out_len : 1);
	if (out) {
		containerd__task__v3__create_task_request__pack(cr, out);
		snprintf(created, created_len, "%s", cr->id);
	} else
		tp_client_error(c, sid, RPC_RESOURCE_EXHAUSTED, "Create: out of memory");
	cr->bundle = old_bundle;
	cr->rootfs = rootfs;
	cr->n_rootfs = n_rootfs;
	if (!out) {
		bundle_remove(&c->tp->bundles, cr->id);
		tp_disk_release(c->tp, cr->id);
	}
out:
	containerd__task__v3__create_task_request__free_unpacked(cr, NULL);
	return out;
}

static int check_exec(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req)
{
	Containerd__Task__V3__ExecProcessRequest *er;
	char why[600];
	int rc = 0;

	er = containerd__task__v3__exec_process_request__unpack(NULL, req->payload.len,
	                                                        req->payload.data);
	if (!er) {
		tp_client_error(c, sid, RPC_INVALID_ARGUMENT, "Exec: malformed ExecProcessRequest");
		return -1;
	}
	if (check_stdio((const char *const[]){ er->stdin, er->stdout, er->stderr }, why,
	                sizeof(why)) < 0) {
		tp_client_error(c, sid, RPC_INVALID_ARGUMENT, "Exec %s/%s: %s", er->id, er->exec_id,
		                why);
		rc = -1;
	}
	containerd__task__v3__exec_process_request__free_unpacked(er, NULL);
	return rc;
}

static void delete_target(const Ttrpc__Request *req, char *id, size_t n)
{
	Containerd__Task__V3__DeleteRequest *dr;

	dr =
	    containerd__task__v3__delete_request__unpack(NULL, req->payload.len, req->payload.data);
	if (!dr)
		return;
	if ((!dr->exec_id || !dr->exec_id[0]) && dr->id && dr->id[0] && id_valid(dr->id, NULL) == 0)
		snprintf(id, n, "%s", dr->id);
	containerd__task__v3__delete_request__free_unpacked(dr, NULL);
}

/* -1 with the client answered when the request is refused. */
int tp_intercept(struct tp_conn *c, uint32_t sid, const Ttrpc__Request *req, struct intercept *in)
{
	in->target = -1;
	if (!tp_is_task_service(req->service))
		return 0;
	if (!strcmp(req->method, "Create")) {
		in->payload = rewrite_create(c, sid, req, &in->len, in->created,
		                             sizeof(in->created), &in->target);
		return in->payload ? 0 : -1;
	}
	if (!strcmp(req->method, "Exec"))
		return check_exec(c, sid, req);
	if (!strcmp(req->method, "Delete"))
		delete_target(req, in->cleanup, sizeof(in->cleanup));
	return 0;
}

/* The rewritten Create, keeping the client's metadata and timeout: forwarded, or held until
 * its root disk is mounted. -1 when it never reached the guest (the client answered). */
int tp_forward_rewritten(struct tp_conn *c, struct tp_stream *s, const Ttrpc__Request *req,
                         uint8_t flags, const struct intercept *in)
{
	Ttrpc__Request copy = *req;
	uint8_t *buf;
	size_t n;
	int rc;

	copy.payload.data = in->payload;
	copy.payload.len = in->len;
	n = ttrpc__request__get_packed_size(&copy);
	buf = malloc(n ? n : 1);
	if (!buf) {
		tp_client_error(c, s->sid, RPC_RESOURCE_EXHAUSTED, "out of memory");
		tp_stream_end(c, s);
		return -1;
	}
	ttrpc__request__pack(&copy, buf);
	if (in->target >= 0) {
		tp_disk_hold(c, s, flags, buf, (uint32_t)n, (unsigned)in->target);
		return 0;
	}
	rc = tp_forward(c, s, TTRPC_REQUEST, flags, buf, (uint32_t)n);
	free(buf);
	return rc;
}
