/* kuasar-ctl cri: a small CRI client (runtime.v1) for containerd's CRI socket, enough to
 * drive pods end to end without crictl (which Debian does not package), and the pod start
 * benchmark built on it. Pods use the node's network unless --pod-network is given (that
 * needs CNI configured in containerd). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/util.h"
#include "ctl/ctl.h"
#include "host/cri.pb-c.h"
#include "rpc/grpc.h"

#define RT "/runtime.v1.RuntimeService/"
#define IMG "/runtime.v1.ImageService/"
#define CRI_TIMEOUT_MS 120000

struct cri_opts {
	const char *address;
	/* pod */
	const char *name, *uid, *ns, *handler, *hostname, *log_dir;
	int64_t cpu_quota, cpu_period, memory;
	int pod_network;
	const char *cgroup_parent;
	char *dns_servers[4], *dns_searches[4];
	int n_dns_servers, n_dns_searches;
	int ports[4][2]; /* host, container (TCP) */
	int n_ports;
	char *annotations[4]; /* KEY=VALUE, split when the pod is built */
	int n_annotations;
	char *sysctls[4]; /* KEY=VALUE */
	int n_sysctls;
	int pid_mode;   /* CRI NamespaceMode of the pod and the container: CONTAINER unless set */
	int privileged; /* the pod and its container */
	/* container */
	const char *ctr_name, *image;
	int tty, stdin_, timeout;
	char *env[32];
	int n_env;
	char *mounts[4]; /* HOST:CONTAINER volumes */
	int n_mounts;
	char **cmd;
	int n_cmd;
	unsigned runs; /* bench */
};

/* Everything a PodSandboxConfig points to, owned by one struct. */
struct pod_msg {
	Runtime__V1__PodSandboxConfig cfg;
	Runtime__V1__PodSandboxMetadata meta;
	Runtime__V1__LinuxPodSandboxConfig lin;
	Runtime__V1__LinuxSandboxSecurityContext sec;
	Runtime__V1__NamespaceOption nso;
	Runtime__V1__LinuxContainerResources res;
	Runtime__V1__DNSConfig dns;
	Runtime__V1__PortMapping pm[4], *pmp[4];
	Runtime__V1__PodSandboxConfig__AnnotationsEntry ann[4], *annp[4];
	char ann_key[4][128];
	Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry sys[4], *sysp[4];
	char sys_key[4][128];
};

static void pod_build_net(const struct cri_opts *o, struct pod_msg *p)
{
	runtime__v1__dnsconfig__init(&p->dns);
	p->dns.servers = (char **)o->dns_servers;
	p->dns.n_servers = (size_t)o->n_dns_servers;
	p->dns.searches = (char **)o->dns_searches;
	p->dns.n_searches = (size_t)o->n_dns_searches;
	if (o->n_dns_servers || o->n_dns_searches)
		p->cfg.dns_config = &p->dns;
	for (int i = 0; i < o->n_ports; i++) {
		runtime__v1__port_mapping__init(&p->pm[i]);
		p->pm[i].host_port = o->ports[i][0];
		p->pm[i].container_port = o->ports[i][1];
		p->pmp[i] = &p->pm[i];
	}
	p->cfg.port_mappings = p->pmp;
	p->cfg.n_port_mappings = (size_t)o->n_ports;
}

static void pod_build(const struct cri_opts *o, struct pod_msg *p)
{
	runtime__v1__pod_sandbox_config__init(&p->cfg);
	runtime__v1__pod_sandbox_metadata__init(&p->meta);
	runtime__v1__linux_pod_sandbox_config__init(&p->lin);
	runtime__v1__linux_sandbox_security_context__init(&p->sec);
	runtime__v1__namespace_option__init(&p->nso);
	runtime__v1__linux_container_resources__init(&p->res);
	p->meta.name = (char *)o->name;
	p->meta.uid = (char *)o->uid;
	p->meta.namespace_ = (char *)o->ns;
	p->cfg.metadata = &p->meta;
	p->cfg.hostname = (char *)o->hostname;
	p->cfg.log_directory = (char *)o->log_dir;
	p->nso.network = o->pod_network ? 0 : 2; /* POD : NODE */
	p->nso.pid = o->pid_mode;
	p->sec.namespace_options = &p->nso;
	p->sec.privileged = o->privileged;
	p->lin.security_context = &p->sec;
	p->res.cpu_quota = o->cpu_quota;
	p->res.cpu_period = o->cpu_period;
	p->res.memory_limit_in_bytes = o->memory;
	if (o->cpu_quota || o->memory)
		p->lin.resources = &p->res;
	p->lin.cgroup_parent = (char *)o->cgroup_parent;
	p->cfg.linux_config = &p->lin;
	for (int i = 0; i < o->n_annotations; i++) {
		const char *eq = strchr(o->annotations[i], '=');

		runtime__v1__pod_sandbox_config__annotations_entry__init(&p->ann[i]);
		snprintf(p->ann_key[i], sizeof(p->ann_key[i]), "%.*s",
		         (int)(eq ? eq - o->annotations[i] : 0), o->annotations[i]);
		p->ann[i].key = p->ann_key[i];
		p->ann[i].value = (char *)(eq ? eq + 1 : "");
		p->annp[i] = &p->ann[i];
	}
	p->cfg.annotations = p->annp;
	p->cfg.n_annotations = (size_t)o->n_annotations;
	for (int i = 0; i < o->n_sysctls; i++) {
		const char *eq = strchr(o->sysctls[i], '=');

		runtime__v1__linux_pod_sandbox_config__sysctls_entry__init(&p->sys[i]);
		snprintf(p->sys_key[i], sizeof(p->sys_key[i]), "%.*s",
		         (int)(eq ? eq - o->sysctls[i] : 0), o->sysctls[i]);
		p->sys[i].key = p->sys_key[i];
		p->sys[i].value = (char *)(eq ? eq + 1 : "");
		p->sysp[i] = &p->sys[i];
	}
	p->lin.sysctls = p->sysp;
	p->lin.n_sysctls = (size_t)o->n_sysctls;
	pod_build_net(o, p);
}

static int call(const struct cri_opts *o, const char *path, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
	kerr_t err;

	if (grpc_call_msg(o->address, path, req, desc, resp, CRI_TIMEOUT_MS, &err) < 0)
		return ctl_fail(&err);
	return 0;
}

static int cri_runp(const struct cri_opts *o, char *id, size_t n)
{
	Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
	Runtime__V1__RunPodSandboxResponse *r = NULL;
	struct pod_msg p;

	pod_build(o, &p);
	req.config = &p.cfg;
	req.runtime_handler = (char *)o->handler;
	if (call(o, RT "RunPodSandbox", &req.base,
	         &runtime__v1__run_pod_sandbox_response__descriptor, (ProtobufCMessage **)&r))
		return 1;
	snprintf(id, n, "%s", r->pod_sandbox_id);
	runtime__v1__run_pod_sandbox_response__free_unpacked(r, NULL);
	return 0;
}

/* KEY=VALUE and HOST:CONTAINER (checked by parse): s ends at sep, the rest is returned. */
static char *cut_at(char *s, int sep)
{
	char *at = strchr(s, sep);

	*at = '\0';
	return at + 1;
}

/* --mount HOST:CONTAINER[:OPTS] into m, its strings in buf. OPTS, comma separated: ro, rro
 * (recursive read-only, with ro), rslave (host to container), rshared (bidirectional). */
static int volume_parse(const char *arg, Runtime__V1__Mount *m, char *buf, size_t n)
{
	char *opts, *o, *save = NULL;

	runtime__v1__mount__init(m);
	if (snprintf(buf, n, "%s", arg) >= (int)n)
		return fprintf(stderr, "--mount %s: too long\n", arg), -1;
	m->host_path = buf;
	m->container_path = cut_at(buf, ':');
	opts = strchr(m->container_path, ':');
	if (opts)
		*opts++ = '\0';
	for (o = opts ? strtok_r(opts, ",", &save) : NULL; o; o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "ro") || !strcmp(o, "rro")) {
			m->readonly = 1;
			m->recursive_read_only = o[1] == 'r';
		} else if (!strcmp(o, "rslave") || !strcmp(o, "rshared")) {
			m->propagation =
			    !strcmp(o, "rslave")
			        ? RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER
			        : RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
		} else {
			return fprintf(stderr, "--mount %s: unknown option %s\n", arg, o), -1;
		}
	}
	return 0;
}

static int cri_create(const struct cri_opts *o, const char *pod, char *id, size_t n)
{
	Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
	Runtime__V1__CreateContainerResponse *r = NULL;
	Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
	Runtime__V1__ContainerMetadata meta = RUNTIME__V1__CONTAINER_METADATA__INIT;
	Runtime__V1__ImageSpec img = RUNTIME__V1__IMAGE_SPEC__INIT;
	Runtime__V1__KeyValue kv[32], *kvp[32];
	Runtime__V1__Mount mnt[4], *mntp[4];
	char vol[4][512];
	Runtime__V1__LinuxContainerConfig lin = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
	Runtime__V1__LinuxContainerSecurityContext sec =
	    RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
	char logp[300];
	struct pod_msg p;

	pod_build(o, &p);
	meta.name = (char *)o->ctr_name;
	img.image = (char *)o->image;
	cfg.metadata = &meta;
	cfg.image = &img;
	cfg.command = o->cmd;
	cfg.n_command = (size_t)o->n_cmd;
	cfg.tty = o->tty;
	cfg.stdin = o->stdin_;
	snprintf(logp, sizeof(logp), "%s.log", o->ctr_name);
	cfg.log_path = logp;
	for (int i = 0; i < o->n_env; i++) {
		runtime__v1__key_value__init(&kv[i]);
		kv[i].key = o->env[i];
		kv[i].value = cut_at(o->env[i], '=');
		kvp[i] = &kv[i];
	}
	cfg.envs = kvp;
	cfg.n_envs = (size_t)o->n_env;
	for (int i = 0; i < o->n_mounts; i++) {
		if (volume_parse(o->mounts[i], &mnt[i], vol[i], sizeof(vol[i])) < 0)
			return -1;
		mntp[i] = &mnt[i];
	}
	cfg.mounts = mntp;
	cfg.n_mounts = (size_t)o->n_mounts;
	lin.security_context = &sec;
	sec.namespace_options = &p.nso; /* the pod's modes, as kubelet gives them */
	sec.privileged = o->privileged;
	cfg.linux_config = &lin;
	req.pod_sandbox_id = (char *)pod;
	req.config = &cfg;
	req.sandbox_config = &p.cfg;
	if (call(o, RT "CreateContainer", &req.base,
	         &runtime__v1__create_container_response__descriptor, (ProtobufCMessage **)&r))
		return 1;
	snprintf(id, n, "%s", r->container_id);
	runtime__v1__create_container_response__free_unpacked(r, NULL);
	return 0;
}

/* Calls that take one id and answer nothing worth printing. */
static int cri_simple(const struct cri_opts *o, const char *method, const char *id, int64_t timeout)
{
	Runtime__V1__StopContainerRequest req = RUNTIME__V1__STOP_CONTAINER_REQUEST__INIT;

	/* Start/Remove/StopPodSandbox/RemovePodSandbox requests are { string id = 1 }; Stop
	 * adds timeout = 2, zero (omitted) for the others. */
	req.container_id = (char *)id;
	req.timeout = timeout;
	return call(o, method, &req.base, NULL, NULL);
}

static const char *const ctr_states[] = { "CREATED", "RUNNING", "EXITED", "UNKNOWN" };

static int cri_status(const struct cri_opts *o, const char *id)
{
	Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
	Runtime__V1__ContainerStatusResponse *r = NULL;
	const Runtime__V1__ContainerStatus *s;

	req.container_id = (char *)id;
	if (call(o, RT "ContainerStatus", &req.base,
	         &runtime__v1__container_status_response__descriptor, (ProtobufCMessage **)&r))
		return 1;
	s = r->status;
	if (s)
		printf("state=%s exit_code=%d reason=%s log_path=%s\n",
		       s->state >= 0 && s->state < 4 ? ctr_states[s->state] : "?", s->exit_code,
		       s->reason ? s->reason : "", s->log_path ? s->log_path : "");
	runtime__v1__container_status_response__free_unpacked(r, NULL);
	return s ? 0 : 1;
}

static int cri_podstatus(const struct cri_opts *o, const char *id)
{
	Runtime__V1__PodSandboxStatusRequest req = RUNTIME__V1__POD_SANDBOX_STATUS_REQUEST__INIT;
	Runtime__V1__PodSandboxStatusResponse *r = NULL;

	req.pod_sandbox_id = (char *)id;
	if (call(o, RT "PodSandboxStatus", &req.base,
	         &runtime__v1__pod_sandbox_status_response__descriptor, (ProtobufCMessage **)&r))
		return 1;
	if (r->status) {
		const Runtime__V1__PodSandboxNetworkStatus *n = r->status->network;

		printf("state=%s handler=%s ip=%s ips=",
		       r->status->state == 0 ? "SANDBOX_READY" : "SANDBOX_NOTREADY",
		       r->status->runtime_handler ? r->status->runtime_handler : "",
		       n && n->ip && n->ip[0] ? n->ip : "-");
		for (size_t i = 0; n && i < n->n_additional_ips; i++)
			printf("%s%s", i ? "," : "", n->additional_ips[i]->ip);
		printf("\n");
	}
	runtime__v1__pod_sandbox_status_response__free_unpacked(r, NULL);
	return 0;
}

static unsigned long long u64v(const Runtime__V1__UInt64Value *v)
{
	return v ? (unsigned long long)v->value : 0;
}

static void print_stats(const Runtime__V1__PodSandboxStats *s)
{
	const Runtime__V1__LinuxPodSandboxStats *l = s->linux_stats;
	const Runtime__V1__NetworkInterfaceUsage *ni =
	    l && l->network ? l->network->default_interface : NULL;

	printf("id=%s cpu_ns=%llu memory_usage=%llu working_set=%llu net=%s rx_bytes=%llu "
	       "tx_bytes=%llu processes=%llu\n",
	       s->attributes && s->attributes->id ? s->attributes->id : "-",
	       l && l->cpu ? u64v(l->cpu->usage_core_nano_seconds) : 0,
	       l && l->memory ? u64v(l->memory->usage_bytes) : 0,
	       l && l->memory ? u64v(l->memory->working_set_bytes) : 0,
	       ni && ni->name ? ni->name : "-", ni ? u64v(ni->rx_bytes) : 0,
	       ni ? u64v(ni->tx_bytes) : 0, l && l->process ? u64v(l->process->process_count) : 0);
}

/* statsp POD: one pod's stats; statsp -: every pod's (ListPodSandboxStats). */
static int cri_statsp(const struct cri_opts *o, const char *id)
{
	if (strcmp(id, "-")) {
		Runtime__V1__PodSandboxStatsRequest req =
		    RUNTIME__V1__POD_SANDBOX_STATS_REQUEST__INIT;
		Runtime__V1__PodSandboxStatsResponse *r = NULL;

		req.pod_sandbox_id = (char *)id;
		if (call(o, RT "PodSandboxStats", &req.base,
		         &runtime__v1__pod_sandbox_stats_response__descriptor,
		         (ProtobufCMessage **)&r))
			return 1;
		if (r->stats)
			print_stats(r->stats);
		runtime__v1__pod_sandbox_stats_response__free_unpacked(r, NULL);
	} else {
		Runtime__V1__ListPodSandboxStatsRequest req =
		    RUNTIME__V1__LIST_POD_SANDBOX_STATS_REQUEST__INIT;
		Runtime__V1__ListPodSandboxStatsResponse *r = NULL;

		if (call(o, RT "ListPodSandboxStats", &req.base,
		         &runtime__v1__list_pod_sandbox_stats_response__descriptor,
		         (ProtobufCMessage **)&r))
			return 1;
		for (size_t i = 0; i < r->n_stats; i++)
			print_stats(r->stats[i]);
		runtime__v1__list_pod_sandbox_stats_response__free_unpacked(r, NULL);
	}
	return 0;
}

/* stats -: every container's stats (ListContainerStats, which containerd answers by asking
 * each task); stats POD: those of one pod's containers. */
static int cri_stats(const struct cri_opts *o, const char *pod)
{
	Runtime__V1__ListContainerStatsRequest req =
	    RUNTIME__V1__LIST_CONTAINER_STATS_REQUEST__INIT;
	Runtime__V1__ContainerStatsFilter f = RUNTIME__V1__CONTAINER_STATS_FILTER__INIT;
	Runtime__V1__ListContainerStatsResponse *r = NULL;

	if (strcmp(pod, "-")) {
		f.pod_sandbox_id = (char *)pod;
		req.filter = &f;
	}
	if (call(o, RT "ListContainerStats", &req.base,
	         &runtime__v1__list_container_stats_response__descriptor, (ProtobufCMessage **)&r))
		return 1;
	for (size_t i = 0; i < r->n_stats; i++) {
		const Runtime__V1__ContainerStats *s = r->stats[i];

		printf("id=%s cpu_ns=%llu working_set=%llu\n",
		       s->attributes && s->attributes->id ? s->attributes->id : "-",
		       s->cpu ? u64v(s->cpu->usage_core_nano_seconds) : 0,
		       s->memory ? u64v(s->memory->working_set_bytes) : 0);
	}
	runtime__v1__list_container_stats_response__free_unpacked(r, NULL);
	return 0;
}

static int cri_exec(const struct cri_opts *o, const char *id)
{
	Runtime__V1__ExecSyncRequest req = RUNTIME__V1__EXEC_SYNC_REQUEST__INIT;
	Runtime__V1__ExecSyncResponse *r = NULL;
	int code;

	req.container_id = (char *)id;
	req.cmd = o->cmd;
	req.n_cmd = (size_t)o->n_cmd;
	req.timeout = o->timeout;
	if (call(o, RT "ExecSync", &req.base, &runtime__v1__exec_sync_response__descriptor,
	         (ProtobufCMessage **)&r))
		return 125;
	fwrite(r->stdout.data, 1, r->stdout.len, stdout);
	fwrite(r->stderr.data, 1, r->stderr.len, stderr);
	code = r->exit_code;
	runtime__v1__exec_sync_response__free_unpacked(r, NULL);
	return code;
}

static int cri_image(const struct cri_opts *o, const char *ref)
{
	Runtime__V1__ImageStatusRequest req = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
	Runtime__V1__ImageStatusResponse *r = NULL;
	Runtime__V1__ImageSpec img = RUNTIME__V1__IMAGE_SPEC__INIT;
	int rc;

	img.image = (char *)ref;
	req.image = &img;
	if (call(o, IMG "ImageStatus", &req.base, &runtime__v1__image_status_response__descriptor,
	         (ProtobufCMessage **)&r))
		return 1;
	rc = r->image ? 0 : 1;
	printf("%s\n", r->image ? r->image->id : "absent");
	runtime__v1__image_status_response__free_unpacked(r, NULL);
	return rc;
}

/* ---- benchmark: pod start to first output, this runtime vs another, interleaved ---- */

static int wait_log(const char *path, int64_t deadline)
{
	struct stat st;

	while (mono_ns() < deadline) {
		if (stat(path, &st) == 0 && st.st_size > 0)
			return 0;
		usleep(500);
	}
	return -1;
}

/* One pod start: RunPodSandbox, then CreateContainer + StartContainer until the first byte
 * of output is in the container's log (its own file: a fresh name each run). Each call's
 * time is kept, and the time from StartContainer's answer to the first output. */
enum { T_ALL, T_RUNP, T_CREATE, T_START, T_OUTPUT, T_N };

/* A bench side: "HANDLER" with the pod network as the options say, "HANDLER/hostnet"
 * without one. */
static int one_pod(struct cri_opts o, const char *side, int i, int64_t t[T_N])
{
	char pod[128], ctr[128], name[96], logp[400], handler[64];
	const char *slash = strchr(side, '/');
	int64_t t0 = mono_ns(), t1, t2, t3;
	int rc;

	snprintf(handler, sizeof(handler), "%.*s", slash ? (int)(slash - side) : 63, side);
	if (slash && !strcmp(slash, "/hostnet"))
		o.pod_network = 0;
	snprintf(name, sizeof(name), "bench-%d-%s%s", i, handler, slash ? "-h" : "");
	o.uid = name;
	o.name = name;
	o.ctr_name = name;
	o.handler = handler;
	snprintf(logp, sizeof(logp), "%s/%s.log", o.log_dir, name);
	unlink(logp);
	if (cri_runp(&o, pod, sizeof(pod)))
		return -1;
	t1 = mono_ns();
	if (cri_create(&o, pod, ctr, sizeof(ctr)))
		return -1;
	t2 = mono_ns();
	if (cri_simple(&o, RT "StartContainer", ctr, 0))
		return -1;
	t3 = mono_ns();
	rc = wait_log(logp, t0 + 60000000000LL);
	t[T_ALL] = mono_ns() - t0;
	t[T_RUNP] = t1 - t0;
	t[T_CREATE] = t2 - t1;
	t[T_START] = t3 - t2;
	t[T_OUTPUT] = t0 + t[T_ALL] - t3;
	cri_simple(&o, RT "StopPodSandbox", pod, 0);
	cri_simple(&o, RT "RemovePodSandbox", pod, 0);
	unlink(logp);
	if (rc < 0)
		fprintf(stderr, "bench: %s: no output in %s within 60 s\n", handler, logp);
	return rc;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of each of a side's times (sorts them). */
static void medians(int64_t t[][T_N], unsigned runs, int64_t med[T_N])
{
	int64_t col[64] = { 0 };

	for (int k = 0; k < T_N; k++) {
		for (unsigned i = 0; i < runs; i++)
			col[i] = t[i][k];
		qsort(col, runs, sizeof(col[0]), cmp64);
		med[k] = col[runs / 2];
	}
}

static void report_line(const char *name, int64_t t[][T_N], unsigned runs)
{
	int64_t m[T_N], lo = t[0][T_ALL], hi = t[0][T_ALL];

	for (unsigned i = 1; i < runs; i++) {
		lo = t[i][T_ALL] < lo ? t[i][T_ALL] : lo;
		hi = t[i][T_ALL] > hi ? t[i][T_ALL] : hi;
	}
	medians(t, runs, m);
	printf("  %-15s median %8.1f ms (RunPodSandbox %7.1f ms)   min %8.1f ms   max %8.1f ms\n",
	       name, m[T_ALL] / 1e6, m[T_RUNP] / 1e6, lo / 1e6, hi / 1e6);
	printf("  %-15s   calls: RunPodSandbox %.1f, CreateContainer %.1f, StartContainer %.1f, "
	       "to first output %.1f ms (medians)\n",
	       "", m[T_RUNP] / 1e6, m[T_CREATE] / 1e6, m[T_START] / 1e6, m[T_OUTPUT] / 1e6);
}

static int cri_bench(struct cri_opts *o, const char *base, unsigned runs)
{
	static int64_t ours[64][T_N], theirs[64][T_N];
	char logdir[] = "/tmp/kuasar-bench-XXXXXX";
	static char *echo[] = { "echo", "started", NULL };
	int64_t a[T_N], b[T_N];
	int rc = 0;

	if (!mkdtemp(logdir))
		return perror("mkdtemp"), 1;
	o->log_dir = logdir;
	if (!o->cmd) {
		o->cmd = echo;
		o->n_cmd = 2;
	}
	for (unsigned i = 0; i < runs && !rc; i++) {
		fprintf(stderr, "\rbench: run %u/%u", i + 1, runs);
		/* Interleaved, alternating who goes first: drift hits both sides alike. */
		if (i & 1)
			rc = one_pod(*o, base, (int)i, theirs[i]) ||
			     one_pod(*o, o->handler, (int)i, ours[i]);
		else
			rc = one_pod(*o, o->handler, (int)i, ours[i]) ||
			     one_pod(*o, base, (int)i, theirs[i]);
	}
	fprintf(stderr, "\r%40s\r", "");
	rm_tree(logdir);
	if (rc)
		return 1;
	printf(
	    "pod start via CRI (RunPodSandbox + CreateContainer + StartContainer to first output), "
	    "%u runs each, interleaved\n",
	    runs);
	report_line(o->handler, ours, runs);
	report_line(base, theirs, runs);
	medians(ours, runs, a);
	medians(theirs, runs, b);
	printf("  ratio %s/%s (median): %.2fx\n", o->handler, base,
	       (double)a[T_ALL] / (double)b[T_ALL]);
	return 0;
}

static const char cri_usage[] =
    "usage: kuasar-ctl cri [OPTIONS] COMMAND [ARG] [-- CMD...]   (options first)\n"
    "  version | image REF | runp | create POD | start ID | status ID | podstatus POD\n"
    "  exec ID -- CMD... | stop ID | rm ID | stopp POD | rmp POD | statsp POD|- | stats POD|-\n"
    "  bench BASE           pod start, --handler vs BASE (-n RUNS, default 9); BASE is a\n"
    "                       handler, or HANDLER/hostnet for its pods without a network\n"
    "options: --address SOCK (containerd's, default $CONTAINERD_ADDRESS or\n"
    "  /run/containerd/containerd.sock) --name --uid --namespace --handler --hostname\n"
    "  --log-dir DIR --cpu-quota N --cpu-period N --memory BYTES --pod-network\n"
    "  --cgroup-parent P --dns-server IP --dns-search DOMAIN --port HOST:CONTAINER\n"
    "  --annotation KEY=VALUE (pod; up to 4) --sysctl KEY=VALUE (pod; up to 4)\n"
    "  --pid pod|container|node (the pod's and its containers' pid namespace; default\n"
    "  container, as kubelet without shareProcessNamespace) --privileged (the pod and its\n"
    "  container)\n"
    "  --container NAME --image REF --tty --stdin --env K=V --timeout SECS\n"
    "  --mount HOST:CONTAINER[:ro|rro,rslave|rshared] (a volume; up to 4)\n";

/* The options that add to a list (and --pid, --privileged): 1 taken, 0 not one of them, -1
 * bad. */
static int list_option(int c, char *arg, struct cri_opts *o)
{
	static const char *const modes[] = { "pod", "container", "node" };
	struct {
		int c, max;
		char **list;
		int *n;
		char sep;
	} const lists[] = {
		{ 'A', 4, o->annotations, &o->n_annotations, '=' },
		{ 'M', 4, o->mounts, &o->n_mounts, ':' },
		{ 'D', 4, o->dns_servers, &o->n_dns_servers, 0 },
		{ 'R', 4, o->dns_searches, &o->n_dns_searches, 0 },
		{ 'e', 32, o->env, &o->n_env, '=' },
		{ 'Y', 4, o->sysctls, &o->n_sysctls, '=' },
	};

	if (c == 'X')
		return o->privileged = 1, 1;
	for (size_t i = 0; c == 'I' && i < 3; i++)
		if (!strcmp(arg, modes[i]))
			return o->pid_mode = (int)i, 1;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		if (lists[i].c != c)
			continue;
		if (*lists[i].n >= lists[i].max || (lists[i].sep && !strchr(arg, lists[i].sep)))
			return -1;
		lists[i].list[(*lists[i].n)++] = arg;
		return 1;
	}
	return c == 'I' ? -1 : 0;
}

static const struct option cri_long_opts[] = {
	{ "address", 1, 0, 'a' },    { "name", 1, 0, 'N' },        { "uid", 1, 0, 'U' },
	{ "namespace", 1, 0, 'S' },  { "handler", 1, 0, 'H' },     { "hostname", 1, 0, 'h' },
	{ "log-dir", 1, 0, 'L' },    { "cpu-quota", 1, 0, 'q' },   { "cpu-period", 1, 0, 'p' },
	{ "memory", 1, 0, 'm' },     { "pod-network", 0, 0, 'P' }, { "container", 1, 0, 'c' },
	{ "image", 1, 0, 'i' },      { "tty", 0, 0, 't' },         { "stdin", 0, 0, 's' },
	{ "env", 1, 0, 'e' },        { "timeout", 1, 0, 'T' },     { "cgroup-parent", 1, 0, 'G' },
	{ "dns-server", 1, 0, 'D' }, { "dns-search", 1, 0, 'R' },  { "port", 1, 0, 'O' },
	{ "annotation", 1, 0, 'A' }, { "mount", 1, 0, 'M' },       { "sysctl", 1, 0, 'Y' },
	{ "pid", 1, 0, 'I' },        { "privileged", 0, 0, 'X' },  { 0 },
};

static int parse(int argc, char **argv, struct cri_opts *o, unsigned *runs)
{
	int c, rc;

	o->pid_mode = 1; /* CONTAINER, as kubelet asks without shareProcessNamespace */
	while ((c = getopt_long(argc, argv, "+n:", cri_long_opts, NULL)) != -1) {
		if ((rc = list_option(c, optarg, o)) != 0) {
			if (rc < 0)
				return -1;
			continue;
		}
		switch (c) {
		case 'a': o->address = optarg; break;
		case 'N': o->name = optarg; break;
		case 'U': o->uid = optarg; break;
		case 'S': o->ns = optarg; break;
		case 'H': o->handler = optarg; break;
		case 'h': o->hostname = optarg; break;
		case 'L': o->log_dir = optarg; break;
		case 'q': o->cpu_quota = atoll(optarg); break;
		case 'p': o->cpu_period = atoll(optarg); break;
		case 'm': o->memory = atoll(optarg); break;
		case 'P': o->pod_network = 1; break;
		case 'c': o->ctr_name = optarg; break;
		case 'i': o->image = optarg; break;
		case 't': o->tty = 1; break;
		case 's': o->stdin_ = 1; break;
		case 'T': o->timeout = atoi(optarg); break;
		case 'G': o->cgroup_parent = optarg; break;
		case 'O':
			if (o->n_ports >= 4 || sscanf(optarg, "%d:%d", &o->ports[o->n_ports][0],
			                              &o->ports[o->n_ports][1]) != 2)
				return -1;
			o->n_ports++;
			break;
		case 'n':
			if (ctl_parse_uint(optarg, 1, 64, runs) < 0)
				return -1;
			break;
		default: return -1;
		}
	}
	return optind;
}

static int c_version(const struct cri_opts *o, const char *arg)
{
	Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
	Runtime__V1__VersionResponse *r = NULL;

	if (call(o, RT "Version", &req.base, &runtime__v1__version_response__descriptor,
	         (ProtobufCMessage **)&r))
		return 1;
	printf("%s %s (CRI %s)\n", r->runtime_name, r->runtime_version, r->runtime_api_version);
	runtime__v1__version_response__free_unpacked(r, NULL);
	return 0;
}

static int c_runp(const struct cri_opts *o, const char *arg)
{
	char id[128];

	return cri_runp(o, id, sizeof(id)) ? 1 : (puts(id), 0);
}

static int c_create(const struct cri_opts *o, const char *arg)
{
	char id[128];

	return cri_create(o, arg, id, sizeof(id)) ? 1 : (puts(id), 0);
}

static int c_bench(const struct cri_opts *o, const char *arg)
{
	struct cri_opts copy = *o; /* the bench names its pods and containers itself */

	return cri_bench(&copy, arg, o->runs);
}

static int c_start(const struct cri_opts *o, const char *arg)
{
	return cri_simple(o, RT "StartContainer", arg, 0);
}

static int c_stop(const struct cri_opts *o, const char *arg)
{
	return cri_simple(o, RT "StopContainer", arg, o->timeout);
}

static int c_rm(const struct cri_opts *o, const char *arg)
{
	return cri_simple(o, RT "RemoveContainer", arg, 0);
}

static int c_stopp(const struct cri_opts *o, const char *arg)
{
	return cri_simple(o, RT "StopPodSandbox", arg, 0);
}

static int c_rmp(const struct cri_opts *o, const char *arg)
{
	return cri_simple(o, RT "RemovePodSandbox", arg, 0);
}

static int c_exec(const struct cri_opts *o, const char *arg)
{
	return o->cmd ? cri_exec(o, arg) : (fputs(cri_usage, stderr), 2);
}

static const struct cri_cmd {
	const char *name;
	int (*fn)(const struct cri_opts *o, const char *arg);
	int needs_arg;
} cri_cmds[] = {
	{ "version", c_version, 0 }, { "runp", c_runp, 0 },       { "bench", c_bench, 1 },
	{ "image", cri_image, 1 },   { "create", c_create, 1 },   { "start", c_start, 1 },
	{ "stop", c_stop, 1 },       { "rm", c_rm, 1 },           { "stopp", c_stopp, 1 },
	{ "rmp", c_rmp, 1 },         { "status", cri_status, 1 }, { "podstatus", cri_podstatus, 1 },
	{ "statsp", cri_statsp, 1 }, { "stats", cri_stats, 1 },   { "exec", c_exec, 1 },
};

int ctl_cri(int argc, char **argv)
{
	struct cri_opts o = { .name = "pod",
		              .uid = "uid-0",
		              .ns = "default",
		              .handler = "kuasar",
		              .ctr_name = "ctr",
		              .image = "busybox:latest",
		              .runs = 9 };
	const char *env = getenv("CONTAINERD_ADDRESS"), *sub, *arg;
	int i = parse(argc, argv, &o, &o.runs);

	o.address = o.address ? o.address : env && *env ? env : "/run/containerd/containerd.sock";
	if (i < 0 || i >= argc)
		return fputs(cri_usage, stderr), 2;
	sub = argv[i++];
	/* Options come first: SUB [ARG] [-- CMD...]. */
	arg = i < argc && strcmp(argv[i], "--") ? argv[i++] : NULL;
	if (i < argc && strcmp(argv[i], "--"))
		return fputs(cri_usage, stderr), 2;
	if (i < argc && i + 1 < argc) {
		o.cmd = argv + i + 1;
		o.n_cmd = argc - i - 1;
	}
	for (size_t k = 0; k < sizeof(cri_cmds) / sizeof(cri_cmds[0]); k++)
		if (!strcmp(sub, cri_cmds[k].name) && (arg || !cri_cmds[k].needs_arg))
			return cri_cmds[k].fn(&o, arg);
	return fputs(cri_usage, stderr), 2;
}
