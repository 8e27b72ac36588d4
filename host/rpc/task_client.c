#include "rpc/task_client.h"

#include <string.h>

#include <errno.h>

#include "cgroups_v2.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "task.pb-c.h"

/* One Task call with its answer decoded as d into *out (freed with free_answer). */
static int call(struct ttrpc_client *c, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *d, void *out, int64_t deadline_ns, kerr_t *err)
{
	return ttrpc_call(c, TASK_SERVICE, method, req, d, (ProtobufCMessage **)out, deadline_ns,
	                  err);
}

static void free_answer(void *r)
{
	protobuf_c_message_free_unpacked(r, NULL);
}

int task_create(struct ttrpc_client *c, const char *id, const char *bundle,
                const struct task_io *io, uint32_t *pid, int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__CreateTaskRequest req =
	    CONTAINERD__TASK__V3__CREATE_TASK_REQUEST__INIT;
	Containerd__Task__V3__CreateTaskResponse *r = NULL;

	req.id = (char *)id;
	req.bundle = (char *)bundle;
	req.stdin = (char *)io->stdin_uri;
	req.stdout = (char *)io->stdout_uri;
	req.stderr = (char *)io->stderr_uri;
	req.terminal = io->terminal;
	if (call(c, "Create", &req.base, &containerd__task__v3__create_task_response__descriptor,
	         &r, deadline_ns, err) < 0)
		return -1;
	*pid = r->pid;
	free_answer(r);
	return 0;
}

static int empty_call(struct ttrpc_client *c, const char *method, const ProtobufCMessage *req,
                      int64_t deadline_ns, kerr_t *err)
{
	Google__Protobuf__Empty *r = NULL;

	if (call(c, method, req, &google__protobuf__empty__descriptor, &r, deadline_ns, err) < 0)
		return -1;
	free_answer(r);
	return 0;
}

int task_exec(struct ttrpc_client *c, const char *id, const char *exec_id, const char *process_json,
              const struct task_io *io, int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__ExecProcessRequest req =
	    CONTAINERD__TASK__V3__EXEC_PROCESS_REQUEST__INIT;
	Google__Protobuf__Any spec = GOOGLE__PROTOBUF__ANY__INIT;

	spec.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process";
	spec.value.data = (uint8_t *)process_json;
	spec.value.len = strlen(process_json);
	req.id = (char *)id;
	req.exec_id = (char *)exec_id;
	req.stdin = (char *)io->stdin_uri;
	req.stdout = (char *)io->stdout_uri;
	req.stderr = (char *)io->stderr_uri;
	req.terminal = io->terminal;
	req.spec = &spec;
	return empty_call(c, "Exec", &req.base, deadline_ns, err);
}

int task_start(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t *pid,
               int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__StartRequest req = CONTAINERD__TASK__V3__START_REQUEST__INIT;
	Containerd__Task__V3__StartResponse *r = NULL;

	req.id = (char *)id;
	req.exec_id = (char *)exec_id;
	if (call(c, "Start", &req.base, &containerd__task__v3__start_response__descriptor, &r,
	         deadline_ns, err) < 0)
		return -1;
	if (pid)
		*pid = r->pid;
	free_answer(r);
	return 0;
}

int task_wait(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t *exit_status,
              int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__WaitRequest req = CONTAINERD__TASK__V3__WAIT_REQUEST__INIT;
	Containerd__Task__V3__WaitResponse *r = NULL;

	req.id = (char *)id;
	req.exec_id = (char *)exec_id;
	if (call(c, "Wait", &req.base, &containerd__task__v3__wait_response__descriptor, &r,
	         deadline_ns, err) < 0)
		return -1;
	*exit_status = r->exit_status;
	free_answer(r);
	return 0;
}

int task_kill(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t sig, int all,
              int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__KillRequest req = CONTAINERD__TASK__V3__KILL_REQUEST__INIT;

	req.id = (char *)id;
	req.exec_id = (char *)exec_id;
	req.signal = sig;
	req.all = all;
	return empty_call(c, "Kill", &req.base, deadline_ns, err);
}

int task_delete(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t *exit_status,
                int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__DeleteRequest req = CONTAINERD__TASK__V3__DELETE_REQUEST__INIT;
	Containerd__Task__V3__DeleteResponse *r = NULL;

	req.id = (char *)id;
	req.exec_id = (char *)exec_id;
	if (call(c, "Delete", &req.base, &containerd__task__v3__delete_response__descriptor, &r,
	         deadline_ns, err) < 0)
		return -1;
	if (exit_status)
		*exit_status = r->exit_status;
	free_answer(r);
	return 0;
}

int task_pause(struct ttrpc_client *c, const char *id, int pause, int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__PauseRequest p = CONTAINERD__TASK__V3__PAUSE_REQUEST__INIT;
	Containerd__Task__V3__ResumeRequest r = CONTAINERD__TASK__V3__RESUME_REQUEST__INIT;

	p.id = r.id = (char *)id;
	return pause ? empty_call(c, "Pause", &p.base, deadline_ns, err)
	             : empty_call(c, "Resume", &r.base, deadline_ns, err);
}

int task_state(struct ttrpc_client *c, const char *id, const char *exec_id, struct task_state *out,
               int64_t deadline_ns, kerr_t *err)
{
	static const char *const names[] = { "unknown", "created", "running",
		                             "stopped", "paused",  "pausing" };
	Containerd__Task__V3__StateRequest req = CONTAINERD__TASK__V3__STATE_REQUEST__INIT;
	Containerd__Task__V3__StateResponse *r = NULL;

	req.id = (char *)id;
	req.exec_id = (char *)exec_id;
	if (call(c, "State", &req.base, &containerd__task__v3__state_response__descriptor, &r,
	         deadline_ns, err) < 0)
		return -1;
	out->pid = r->pid;
	out->exit_status = r->exit_status;
	out->status = (unsigned)r->status < 6 ? names[r->status] : "unknown";
	free_answer(r);
	return 0;
}

int task_pids(struct ttrpc_client *c, const char *id, uint32_t *pids, size_t max, size_t *n,
              int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__PidsRequest req = CONTAINERD__TASK__V3__PIDS_REQUEST__INIT;
	Containerd__Task__V3__PidsResponse *r = NULL;

	req.id = (char *)id;
	if (call(c, "Pids", &req.base, &containerd__task__v3__pids_response__descriptor, &r,
	         deadline_ns, err) < 0)
		return -1;
	*n = 0;
	for (size_t i = 0; i < r->n_processes && *n < max; i++)
		pids[(*n)++] = r->processes[i]->pid;
	free_answer(r);
	return 0;
}

int task_stats(struct ttrpc_client *c, const char *id, struct task_stats *out, int64_t deadline_ns,
               kerr_t *err)
{
	Containerd__Task__V3__StatsRequest req = CONTAINERD__TASK__V3__STATS_REQUEST__INIT;
	Containerd__Task__V3__StatsResponse *r = NULL;
	Io__Containerd__Cgroups__V2__Metrics *m;

	req.id = (char *)id;
	if (call(c, "Stats", &req.base, &containerd__task__v3__stats_response__descriptor, &r,
	         deadline_ns, err) < 0)
		return -1;
	m = r->stats && !strcmp(r->stats->type_url, "io.containerd.cgroups.v2.Metrics")
	        ? io__containerd__cgroups__v2__metrics__unpack(NULL, r->stats->value.len,
	                                                       r->stats->value.data)
	        : NULL;
	free_answer(r);
	if (!m)
		return kerr_set(err, EPROTO, "Stats: no cgroup v2 metrics in the reply");
	memset(out, 0, sizeof(*out));
	if (m->pids)
		out->pids = m->pids->current, out->pids_limit = m->pids->limit;
	if (m->cpu)
		out->cpu_usec = m->cpu->usage_usec;
	if (m->memory) {
		out->memory = m->memory->usage, out->memory_limit = m->memory->usage_limit;
		out->rss = m->memory->anon, out->inactive_file = m->memory->inactive_file;
	}
	if (m->memory_events)
		out->oom_kills = m->memory_events->oom_kill;
	io__containerd__cgroups__v2__metrics__free_unpacked(m, NULL);
	return 0;
}

int task_resize(struct ttrpc_client *c, const char *id, const char *exec_id, uint32_t width,
                uint32_t height, int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__ResizePtyRequest req = CONTAINERD__TASK__V3__RESIZE_PTY_REQUEST__INIT;

	req.id = (char *)id;
	req.exec_id = (char *)exec_id;
	req.width = width;
	req.height = height;
	return empty_call(c, "ResizePty", &req.base, deadline_ns, err);
}

int task_update(struct ttrpc_client *c, const char *id, const char *resources_json,
                int64_t deadline_ns, kerr_t *err)
{
	Containerd__Task__V3__UpdateTaskRequest req =
	    CONTAINERD__TASK__V3__UPDATE_TASK_REQUEST__INIT;
	Google__Protobuf__Any res = GOOGLE__PROTOBUF__ANY__INIT;

	res.type_url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
	res.value.data = (uint8_t *)resources_json;
	res.value.len = strlen(resources_json);
	req.id = (char *)id;
	req.resources = &res;
	return empty_call(c, "Update", &req.base, deadline_ns, err);
}
