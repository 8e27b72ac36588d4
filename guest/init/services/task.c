/* containerd's Task API (containerd.task.v3.Task, and the same handlers as
 * containerd.task.v2.Task): protobuf glue around container.c. */
#include <pb_decode.h>
#include <pb_encode.h>
#include <signal.h>
#include <string.h>

#include "cgroups_v2.pb.h"
#include "core/fmt.h"
#include "core/klog.h"
#include "core/sys.h"
#include "google/protobuf/empty.pb.h"
#include "runtime/container.h"
#include "task.pb.h"
#include "wire/rpc.h"

#define CGROUPS_V2_METRICS "io.containerd.cgroups.v2.Metrics"

#define ERRLEN 256

static void set_time(google_protobuf_Timestamp *t, bool *has, uint64_t ns)
{
	*has = ns != 0;
	t->seconds = (int64_t)(ns / 1000000000u);
	t->nanos = (int32_t)(ns % 1000000000u);
}

static void empty_reply(struct rpc_ctx *ctx)
{
	google_protobuf_Empty e = { 0 };

	rpc_reply(ctx, google_protobuf_Empty_fields, &e);
}

/* Decodes the request or answers INVALID_ARGUMENT; also refuses an empty id. */
#define DECODE(ctx, type, req)                                                                     \
	type req = { 0 };                                                                          \
	if (rpc_decode(ctx, type##_fields, &req) < 0)                                              \
		return;                                                                            \
	if (!req.id[0]) {                                                                          \
		rpc_error(ctx, RPC_INVALID_ARGUMENT, "id must not be empty");                      \
		return;                                                                            \
	}

#define CHECK(ctx, call)                                                                           \
	do {                                                                                       \
		char err_[ERRLEN];                                                                 \
		int code_ = (call);                                                                \
		if (code_) {                                                                       \
			rpc_error(ctx, code_, "%s", err_);                                         \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define ERRBUF err_, sizeof(err_)

static void created(const struct rpc_pending *reply, pid_t pid, const char *err)
{
	containerd_task_v3_CreateTaskResponse r = { 0 };

	if (err) {
		rpc_pending_error(reply, RPC_FAILED_PRECONDITION, "%s", err);
		return;
	}
	r.pid = (uint32_t)pid;
	rpc_pending_reply(reply, containerd_task_v3_CreateTaskResponse_fields, &r);
}

static void waited(const struct rpc_pending *reply, const struct ctr_exit *e)
{
	containerd_task_v3_WaitResponse r = { 0 };

	r.exit_status = e->exit_status;
	set_time(&r.exited_at, &r.has_exited_at, e->exited_ns);
	rpc_pending_reply(reply, containerd_task_v3_WaitResponse_fields, &r);
}

static void t_create(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_CreateTaskRequest, req);
	struct ctr_stdio io = { { req.stdin, req.stdout, req.stderr }, req.terminal };
	struct ctr_created done = { .fn = created };

	rpc_defer(ctx, &done.reply);
	CHECK(ctx, ctr_create(req.id, req.bundle, &io, &done, ERRBUF));
}

static void t_start(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_StartRequest, req);
	containerd_task_v3_StartResponse r = { 0 };
	pid_t pid = 0;

	CHECK(ctx, ctr_start(req.id, req.exec_id, &pid, ERRBUF));
	r.pid = (uint32_t)pid;
	rpc_reply(ctx, containerd_task_v3_StartResponse_fields, &r);
}

static void t_state(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_StateRequest, req);
	containerd_task_v3_StateResponse r = { 0 };
	struct ctr_state st;

	CHECK(ctx, ctr_state(req.id, req.exec_id, &st, ERRBUF));
	memcpy(r.id, req.id, sizeof(r.id));
	memcpy(r.exec_id, req.exec_id, sizeof(r.exec_id));
	kfmt(r.bundle, sizeof(r.bundle), "%s", st.bundle);
	r.pid = (uint32_t)st.pid;
	r.status = (containerd_types_Status)st.status;
	kfmt(r.stdin, sizeof(r.stdin), "%s", st.uri[0]);
	kfmt(r.stdout, sizeof(r.stdout), "%s", st.uri[1]);
	kfmt(r.stderr, sizeof(r.stderr), "%s", st.uri[2]);
	r.terminal = st.terminal;
	r.exit_status = st.exit_status;
	set_time(&r.exited_at, &r.has_exited_at, st.exited_ns);
	rpc_reply(ctx, containerd_task_v3_StateResponse_fields, &r);
}

static void t_kill(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_KillRequest, req);

	CHECK(ctx, ctr_kill(req.id, req.exec_id, (int)req.signal, req.all, ERRBUF));
	empty_reply(ctx);
}

static void t_delete(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_DeleteRequest, req);
	containerd_task_v3_DeleteResponse r = { 0 };
	struct ctr_exit e;

	CHECK(ctx, ctr_delete(req.id, req.exec_id, &e, ERRBUF));
	r.pid = (uint32_t)e.pid;
	r.exit_status = e.exit_status;
	set_time(&r.exited_at, &r.has_exited_at, e.exited_ns);
	rpc_reply(ctx, containerd_task_v3_DeleteResponse_fields, &r);
}

static void t_wait(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_WaitRequest, req);
	struct ctr_waited waiter = { .fn = waited };
	struct ctr_exit e;
	int done = 0;

	rpc_defer(ctx, &waiter.reply);
	CHECK(ctx, ctr_wait(req.id, req.exec_id, &waiter, &done, &e, ERRBUF));
	if (done)
		waited(&waiter.reply, &e);
}

struct pid_list {
	pid_t pids[1024];
	size_t n;
};

static void collect_pid(pid_t pid, void *arg)
{
	struct pid_list *l = arg;

	if (l->n < sizeof(l->pids) / sizeof(l->pids[0]))
		l->pids[l->n++] = pid;
}

static bool encode_pids(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
	const struct pid_list *l = *arg;

	for (size_t i = 0; i < l->n; i++) {
		containerd_types_ProcessInfo pi = { 0 };

		pi.pid = (uint32_t)l->pids[i];
		if (!pb_encode_tag_for_field(s, f) ||
		    !pb_encode_submessage(s, containerd_types_ProcessInfo_fields, &pi))
			return false;
	}
	return true;
}

static void t_pids(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_PidsRequest, req);
	containerd_task_v3_PidsResponse r = { 0 };
	static struct pid_list l;

	l.n = 0;
	CHECK(ctx, ctr_pids(req.id, collect_pid, &l, ERRBUF));
	r.processes.funcs.encode = encode_pids;
	r.processes.arg = &l;
	rpc_reply(ctx, containerd_task_v3_PidsResponse_fields, &r);
}

static void t_pause(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_PauseRequest, req);

	CHECK(ctx, ctr_pause(req.id, 1, ERRBUF));
	empty_reply(ctx);
}

static void t_resume(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_ResumeRequest, req);

	CHECK(ctx, ctr_pause(req.id, 0, ERRBUF));
	empty_reply(ctx);
}

static void t_checkpoint(struct rpc_ctx *ctx)
{
	rpc_error(ctx, RPC_UNIMPLEMENTED,
	          "checkpoint is not supported inside kuasar sandboxes (use VM templates)");
}

static void t_exec(struct rpc_ctx *ctx)
{
	struct bytes_view spec = { NULL, 0 };
	containerd_task_v3_ExecProcessRequest req = { 0 };
	struct ctr_stdio io;
	struct ctr_created done = { .fn = created };

	req.spec.value.funcs.decode = rpc_view_decode;
	req.spec.value.arg = &spec;
	if (rpc_decode(ctx, containerd_task_v3_ExecProcessRequest_fields, &req) < 0)
		return;
	if (!req.id[0] || !req.exec_id[0] || !spec.n) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT, "exec needs an id, an exec_id and a spec");
		return;
	}
	io = (struct ctr_stdio){ { req.stdin, req.stdout, req.stderr }, req.terminal };
	rpc_defer(ctx, &done.reply);
	CHECK(ctx, ctr_exec(req.id, req.exec_id, (const char *)spec.p, spec.n, &io, &done, ERRBUF));
}

static void t_resize_pty(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_ResizePtyRequest, req);

	CHECK(ctx, ctr_resize(req.id, req.exec_id, req.width, req.height, ERRBUF));
	empty_reply(ctx);
}

static void t_close_io(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_CloseIORequest, req);

	if (req.stdin)
		CHECK(ctx, ctr_close_io(req.id, req.exec_id, ERRBUF));
	empty_reply(ctx);
}

static void t_update(struct rpc_ctx *ctx)
{
	struct bytes_view res = { NULL, 0 };
	containerd_task_v3_UpdateTaskRequest req = { 0 };

	req.resources.value.funcs.decode = rpc_view_decode;
	req.resources.value.arg = &res;
	if (rpc_decode(ctx, containerd_task_v3_UpdateTaskRequest_fields, &req) < 0)
		return;
	if (!req.id[0] || !res.n) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT, "update needs an id and resources");
		return;
	}
	CHECK(ctx, ctr_update(req.id, (const char *)res.p, res.n, ERRBUF));
	empty_reply(ctx);
}

static void t_stats(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_StatsRequest, req);
	containerd_task_v3_StatsResponse r = { 0 };
	io_containerd_cgroups_v2_Metrics m = { 0 };
	struct cgroup_stats st;
	uint8_t buf[512];
	struct bytes_view v;
	pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));

	CHECK(ctx, ctr_stats(req.id, &st, ERRBUF));
	m.has_pids = m.has_cpu = m.has_memory = m.has_memory_events = true;
	m.pids = (io_containerd_cgroups_v2_PidsStat){ st.pids_current, st.pids_max };
	m.cpu = (io_containerd_cgroups_v2_CPUStat){ st.cpu_usage_usec,   st.cpu_user_usec,
		                                    st.cpu_system_usec,  st.cpu_nr_periods,
		                                    st.cpu_nr_throttled, st.cpu_throttled_usec };
	m.memory = (io_containerd_cgroups_v2_MemoryStat){
		st.mem[0],
		st.mem[1],
		st.mem[2],
		st.mem[3],
		st.mem[4],
		st.mem[5],
		st.mem[6],
		st.mem[7],
		st.mem[8],
		st.mem[9],
		st.mem[10],
		st.mem[11],
		st.mem[12],
		st.mem[13],
		st.memory_current,
		st.memory_max,
		st.memory_swap_current,
	};
	m.memory_events.oom = st.oom_events;
	m.memory_events.oom_kill = st.oom_kills;
	if (!pb_encode(&os, io_containerd_cgroups_v2_Metrics_fields, &m)) {
		rpc_error(ctx, RPC_INTERNAL, "encode metrics");
		return;
	}
	v = (struct bytes_view){ buf, os.bytes_written };
	r.has_stats = true;
	memcpy(r.stats.type_url, CGROUPS_V2_METRICS, sizeof(CGROUPS_V2_METRICS));
	r.stats.value.funcs.encode = rpc_view_encode;
	r.stats.value.arg = &v;
	rpc_reply(ctx, containerd_task_v3_StatsResponse_fields, &r);
}

static void t_connect(struct rpc_ctx *ctx)
{
	DECODE(ctx, containerd_task_v3_ConnectRequest, req);
	containerd_task_v3_ConnectResponse r = { 0 };

	r.shim_pid = 1;
	r.task_pid = (uint32_t)ctr_init_pid(req.id);
	r.version[0] = '3';
	rpc_reply(ctx, containerd_task_v3_ConnectResponse_fields, &r);
}

/* The sandbox outlives its tasks: Shutdown of the task service changes nothing. */
static void t_shutdown(struct rpc_ctx *ctx)
{
	containerd_task_v3_ShutdownRequest req = { 0 };

	if (rpc_decode(ctx, containerd_task_v3_ShutdownRequest_fields, &req) < 0)
		return;
	empty_reply(ctx);
}

static const struct rpc_method task_methods[] = {
	{ "State", t_state },
	{ "Create", t_create },
	{ "Start", t_start },
	{ "Delete", t_delete },
	{ "Pids", t_pids },
	{ "Pause", t_pause },
	{ "Resume", t_resume },
	{ "Checkpoint", t_checkpoint },
	{ "Kill", t_kill },
	{ "Exec", t_exec },
	{ "ResizePty", t_resize_pty },
	{ "CloseIO", t_close_io },
	{ "Update", t_update },
	{ "Wait", t_wait },
	{ "Stats", t_stats },
	{ "Connect", t_connect },
	{ "Shutdown", t_shutdown },
};

const struct rpc_service task_v3_service = {
	"containerd.task.v3.Task",
	task_methods,
	sizeof(task_methods) / sizeof(task_methods[0]),
};

const struct rpc_service task_v2_service = {
	"containerd.task.v2.Task",
	task_methods,
	sizeof(task_methods) / sizeof(task_methods[0]),
};
