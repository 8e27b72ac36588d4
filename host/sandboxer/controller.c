/* containerd.services.sandbox.v1.Controller over gRPC: decode, check, hand to sandbox.c. */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "cgroups_v2.pb-c.h"
#include "host/cri.pb-c.h"
#include "host/sandbox_controller.pb-c.h"
#include "proxy/bundle.h"
#include "proxy/sysctl.h"
#include "rpc/timestamp.h"
#include "rpc/ttrpc_client.h"
#include "sandboxer/sandbox.h"
#include "sandboxer/sb_cgroup.h"
#include "sandboxer/sb_resize.h"
#include "vm/appliance.h"
#include "vm/vmsnap.h"

#define PFX "/containerd.services.sandbox.v1.Controller/"

/* Decodes the request or answers INVALID_ARGUMENT. */
#define DECODE(type, fn, call, msg, len)                                                           \
	type *req = fn##__unpack(NULL, len, msg);                                                  \
	if (!req) {                                                                                \
		grpc_reply_error(call, RPC_INVALID_ARGUMENT,                                       \
		                 "malformed %s (not a valid protobuf)",                            \
		                 fn##__descriptor.short_name);                                     \
		return;                                                                            \
	}

static struct sandboxer *sbx_of(struct grpc_call *call)
{
	return grpc_call_ctx(call);
}

/* The sandbox named by a request, or an answered error. */
static struct sandbox *lookup(struct grpc_call *call, const char *id)
{
	struct sandbox *sb;
	kerr_t err;

	if (!id || !id[0]) {
		grpc_reply_error(call, RPC_INVALID_ARGUMENT, "sandbox_id is empty");
		return NULL;
	}
	if (id_valid(id, &err) < 0) {
		grpc_reply_error(call, RPC_INVALID_ARGUMENT, "%s", err.msg);
		return NULL;
	}
	sb = sandbox_find(sbx_of(call), id);
	if (!sb)
		grpc_reply_error(call, RPC_NOT_FOUND, "sandbox %s not found", id);
	return sb;
}

/* The VM fits its pod's cgroup. kubelet caps the pod's cgroup at the pod's memory limit (the
 * sum of its containers' limits) plus the RuntimeClass overhead, and the VMM and the task
 * proxy run in it: so the guest gets that sum less what those two need for themselves
 * (memory_overhead_mb), and the guest's own OOM killer acts before the host's limit is
 * reached. A pod without a memory limit gets the configured size. CPU quota/period rounds
 * up to whole vCPUs. */
/* CRI's NamespaceMode for the host's namespace. */
#define NAMESPACE_MODE_NODE 2

static int64_t pod_limit_bytes(const Runtime__V1__LinuxPodSandboxConfig *lc)
{
	const Runtime__V1__LinuxContainerResources *r = lc ? lc->resources : NULL,
	                                           *o = lc ? lc->overhead : NULL;

	if (!r || r->memory_limit_in_bytes <= 0)
		return 0;
	return r->memory_limit_in_bytes +
	       (o && o->memory_limit_in_bytes > 0 ? o->memory_limit_in_bytes : 0);
}

static int size_from_pod(const struct sb_config *cfg, const Runtime__V1__PodSandboxConfig *pod,
                         unsigned *vcpus, unsigned *mem, kerr_t *err)
{
	const Runtime__V1__LinuxPodSandboxConfig *lc = pod ? pod->linux_config : NULL;
	const Runtime__V1__LinuxContainerResources *r = lc ? lc->resources : NULL;
	long host_cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int64_t limit = pod_limit_bytes(lc);

	*vcpus = cfg->vcpus;
	*mem = cfg->memory_mib;
	if (r && r->cpu_quota > 0 && r->cpu_period > 0) {
		int64_t n = (r->cpu_quota + r->cpu_period - 1) / r->cpu_period;

		if (host_cpus > 0 && n > host_cpus)
			n = host_cpus;
		*vcpus = (unsigned)(n < 1 ? 1 : n);
	}
	return limit > 0 ? pod_vm_mib(cfg, limit, mem, err) : 0;
}

/* A pod from an appliance has the appliance's VM: its size, not the pod's (the snapshot is
 * of that size). The appliance must exist when the pod is created. */
static int size_from_appliance(const struct sb_config *cfg, const char *name, int64_t limit,
                               unsigned *vcpus, unsigned *mem, kerr_t *err)
{
	static struct appliance a;
	struct vm_config base;
	char dir[KPATH_SIZE];

	if (sandbox_appliance_check(name, err) < 0)
		return -1;
	if (fmt_path(dir, sizeof(dir), "%s/%s", cfg->appliance_dir, name) < 0)
		return kerr_set(err, ENAMETOOLONG, "appliance %s: path too long", name);
	vm_config_defaults(&base);
	if (appliance_open(dir, &base, NULL, &a, err) < 0)
		return -1;
	*vcpus = a.cfg.vcpus;
	*mem = a.cfg.memory_mib;
	if (limit > 0 && ((int64_t)(*mem + cfg->overhead_mib) << 20) > limit)
		return kerr_set(
		    err, EINVAL,
		    "appliance %s's VM has %u MiB: with the VMM's and task proxy's %u MiB "
		    "it needs a pod memory limit of at least %u MiB",
		    name, *mem, cfg->overhead_mib, *mem + cfg->overhead_mib);
	return 0;
}

/* A pod from a snapshot has the snapshot's VM, as an appliance's pod has the appliance's.
 * The snapshot must exist, whole, when the pod is created. */
static int size_from_snapshot(const struct sb_config *cfg, const char *name, int64_t limit,
                              unsigned *vcpus, unsigned *mem, kerr_t *err)
{
	static struct vm_shape sh;
	struct template t;
	char mem_dir[KPATH_SIZE];
	int lock;

	if (fmt_path(mem_dir, sizeof(mem_dir), "%s/snapshots", cfg->template_memory_dir) < 0)
		return kerr_set(err, ENAMETOOLONG, "snapshot memory directory: path too long");
	lock = snap_open(cfg->snapshot_dir, mem_dir, name, &sh, &t, err);
	if (lock < 0)
		return kerr_wrap(err, "annotation " SNAPSHOT_ANNOTATION);
	close(lock);
	*vcpus = sh.cfg.vcpus;
	*mem = sh.cfg.memory_mib;
	if (limit > 0 && ((int64_t)(*mem + cfg->overhead_mib) << 20) > limit)
		return kerr_set(err, EINVAL,
		                "snapshot %s's VM has %u MiB: with the VMM's and task proxy's %u "
		                "MiB it needs a pod memory limit of at least %u MiB",
		                name, *mem, cfg->overhead_mib, *mem + cfg->overhead_mib);
	return 0;
}

static json_object *resources_json(const Runtime__V1__LinuxContainerResources *r)
{
	json_object *res = json_object_new_object(), *cpu = json_object_new_object();
	json_object *memo = json_object_new_object();

	if (r->cpu_shares)
		json_object_object_add(cpu, "shares", json_object_new_int64(r->cpu_shares));
	if (r->cpu_quota)
		json_object_object_add(cpu, "quota", json_object_new_int64(r->cpu_quota));
	if (r->cpu_period)
		json_object_object_add(cpu, "period", json_object_new_int64(r->cpu_period));
	if (r->memory_limit_in_bytes)
		json_object_object_add(memo, "limit",
		                       json_object_new_int64(r->memory_limit_in_bytes));
	json_object_object_add(res, "cpu", cpu);
	json_object_object_add(res, "memory", memo);
	return res;
}

/* linux: the pod's resources and its sysctls (which the proxy has the guest apply). */
static json_object *linux_json(const Runtime__V1__LinuxPodSandboxConfig *lc)
{
	json_object *lin = json_object_new_object();

	if (lc->resources)
		json_object_object_add(lin, "resources", resources_json(lc->resources));
	if (lc->n_sysctls) {
		json_object *sys = json_object_new_object();

		for (size_t i = 0; i < lc->n_sysctls; i++)
			json_object_object_add(sys, lc->sysctls[i]->key,
			                       json_object_new_string(lc->sysctls[i]->value));
		json_object_object_add(lin, "sysctl", sys);
	}
	return lin;
}

/* The pod as an OCI runtime spec, which Start hands back to containerd: hostname, the
 * pod's annotations, its resources and sysctls, and the VM size chosen from them. */
static char *pod_spec(const Runtime__V1__PodSandboxConfig *pod, unsigned vcpus, unsigned mem)
{
	json_object *o = json_object_new_object(), *ann = json_object_new_object();
	char buf[32];
	char *out;

	json_object_object_add(o, "ociVersion", json_object_new_string("1.1.0"));
	if (pod && pod->hostname && pod->hostname[0])
		json_object_object_add(o, "hostname", json_object_new_string(pod->hostname));
	for (size_t i = 0; pod && i < pod->n_annotations; i++)
		json_object_object_add(ann, pod->annotations[i]->key,
		                       json_object_new_string(pod->annotations[i]->value));
	snprintf(buf, sizeof(buf), "%u", vcpus);
	json_object_object_add(ann, "io.kuasar.vm.vcpus", json_object_new_string(buf));
	snprintf(buf, sizeof(buf), "%u", mem);
	json_object_object_add(ann, "io.kuasar.vm.memory_mib", json_object_new_string(buf));
	json_object_object_add(o, "annotations", ann);
	if (pod && pod->linux_config)
		json_object_object_add(o, "linux", linux_json(pod->linux_config));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

/* resolv.conf from the pod's DNS config, as containerd writes it for its own sandboxes;
 * NULL without one (the host's is copied then). */
static char *pod_resolv(const Runtime__V1__PodSandboxConfig *pod)
{
	const Runtime__V1__DNSConfig *d = pod ? pod->dns_config : NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!d)
		return NULL;
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	if (d->n_searches)
		fputs("search", f);
	for (size_t i = 0; i < d->n_searches; i++)
		fprintf(f, " %s%s", d->searches[i], i + 1 == d->n_searches ? "\n" : "");
	for (size_t i = 0; i < d->n_servers; i++)
		fprintf(f, "nameserver %s\n", d->servers[i]);
	if (d->n_options)
		fputs("options", f);
	for (size_t i = 0; i < d->n_options; i++)
		fprintf(f, " %s%s", d->options[i], i + 1 == d->n_options ? "\n" : "");
	fclose(f);
	return text;
}

static int is_pod_config(const char *type_url)
{
	size_t n = type_url ? strlen(type_url) : 0;

	return n >= 16 && !strcmp(type_url + n - 16, "PodSandboxConfig");
}

/* The pod's config from Create's options (NULL without one); -1 when it is malformed. */
static int create_pod(const Containerd__Services__Sandbox__V1__CreateRequest *req,
                      Runtime__V1__PodSandboxConfig **pod, kerr_t *err)
{
	*pod = NULL;
	if (!req->sandbox_id || !req->sandbox_id[0])
		return kerr_set(err, EINVAL, "sandbox_id is empty");
	if (id_valid(req->sandbox_id, err) < 0)
		return -1;
	if (!req->options || !is_pod_config(req->options->type_url))
		return 0;
	*pod = runtime__v1__pod_sandbox_config__unpack(NULL, req->options->value.len,
	                                               req->options->value.data);
	return *pod ? 0 : kerr_set(err, EINVAL, "options: malformed PodSandboxConfig");
}

/* What the pod asks for (size, appliance, rootfs) into c; -1 when no VM can honour it. */
static int create_shape(const struct sb_config *cfg, const Runtime__V1__PodSandboxConfig *pod,
                        struct sb_create *c, kerr_t *err)
{
	if (size_from_pod(cfg, pod, &c->vcpus, &c->memory_mib, err) < 0)
		return -1;
	for (size_t i = 0; pod && i < pod->n_annotations; i++) {
		const char *k = pod->annotations[i]->key, *v = pod->annotations[i]->value;

		if (k && !strcmp(k, APPLIANCE_ANNOTATION))
			c->appliance = v ? v : "";
		else if (k && !strcmp(k, SNAPSHOT_ANNOTATION))
			c->snapshot = v ? v : "";
		else if (k && !strcmp(k, ROOTFS_ANNOTATION))
			c->rootfs = v ? v : "";
	}
	if (c->appliance && c->snapshot)
		return kerr_set(err, EINVAL,
		                "annotations " APPLIANCE_ANNOTATION " and " SNAPSHOT_ANNOTATION
		                ": a pod's VM is restored from one or the other");
	if (c->appliance &&
	    size_from_appliance(cfg, c->appliance, pod_limit_bytes(pod ? pod->linux_config : NULL),
	                        &c->vcpus, &c->memory_mib, err) < 0)
		return -1;
	if (c->snapshot &&
	    size_from_snapshot(cfg, c->snapshot, pod_limit_bytes(pod ? pod->linux_config : NULL),
	                       &c->vcpus, &c->memory_mib, err) < 0)
		return -1;
	c->hostname = pod ? pod->hostname : NULL;
	c->cgroup_parent = pod && pod->linux_config ? pod->linux_config->cgroup_parent : NULL;
	return 0;
}

/* What no VM of this sandboxer gives a pod: the host's network (unless the config lets a
 * pod have a VM without a NIC), or a sysctl that cannot be one. */
static int create_refusals(const struct sb_config *cfg, const Runtime__V1__PodSandboxConfig *pod,
                           kerr_t *err)
{
	const Runtime__V1__LinuxPodSandboxConfig *lc = pod ? pod->linux_config : NULL;
	const Runtime__V1__NamespaceOption *ns =
	    lc && lc->security_context ? lc->security_context->namespace_options : NULL;

	if (ns && ns->network == NAMESPACE_MODE_NODE && !cfg->allow_host_network)
		return kerr_set(err, EINVAL,
		                "host network: a VM cannot share the host's network stack (set "
		                "allow_host_network = true in [sandboxer] of the config for a VM "
		                "without a NIC)");
	if (lc && lc->n_sysctls > SYSCTL_MAX)
		return kerr_set(err, EINVAL, "%zu sysctls: at most %d", lc->n_sysctls, SYSCTL_MAX);
	for (size_t i = 0; lc && i < lc->n_sysctls; i++)
		if (sysctl_check(lc->sysctls[i]->key, lc->sysctls[i]->value, err) < 0)
			return -1;
	return 0;
}

static void h_create(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__CreateRequest,
	       containerd__services__sandbox__v1__create_request, call, msg, len);
	Containerd__Services__Sandbox__V1__CreateResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__CREATE_RESPONSE__INIT;
	Runtime__V1__PodSandboxConfig *pod = NULL;
	struct sandboxer *sbx = sbx_of(call);
	_cleanup_free_ char *spec = NULL, *resolv = NULL;
	struct sb_create c = { 0 };
	struct sandbox *sb;
	kerr_t err;

	if (create_pod(req, &pod, &err) < 0 || create_refusals(&sbx->cfg, pod, &err) < 0 ||
	    create_shape(&sbx->cfg, pod, &c, &err) < 0) {
		grpc_reply_error(call, RPC_INVALID_ARGUMENT, "%s", err.msg);
		goto out;
	}
	spec = pod_spec(pod, c.vcpus, c.memory_mib);
	c.netns = req->netns_path;
	c.spec_json = spec;
	if (sandbox_create(sbx, req->sandbox_id, &c, &sb, &err) < 0) {
		grpc_reply_error(call,
		                 err.errnum == EEXIST   ? RPC_ALREADY_EXISTS
		                 : err.errnum == EINVAL ? RPC_INVALID_ARGUMENT
		                                        : RPC_INTERNAL,
		                 "%s", err.msg);
		goto out;
	}
	resolv = pod_resolv(pod);
	if (pod_files_write(sb->paths.shared, pod ? pod->hostname : NULL, resolv, &err) < 0)
		log_warn("sandbox %s: %s (containers get the image's)", sb->id, err.msg);
	log_info("sandbox %s: created (%u vCPU, %u MiB%s%s%s%s%s%s%s%s)", sb->id, c.vcpus,
	         c.memory_mib, req->netns_path && req->netns_path[0] ? ", netns " : "",
	         req->netns_path ? req->netns_path : "", sb->appliance[0] ? ", appliance " : "",
	         sb->appliance, sb->snapshot[0] ? ", snapshot " : "", sb->snapshot,
	         sb->rootfs[0] ? ", rootfs " : "", sb->rootfs);
	r.sandbox_id = sb->id;
	grpc_reply(call, &r.base);
out:
	if (pod)
		runtime__v1__pod_sandbox_config__free_unpacked(pod, NULL);
	containerd__services__sandbox__v1__create_request__free_unpacked(req, NULL);
}

static void h_start(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__StartRequest,
	       containerd__services__sandbox__v1__start_request, call, msg, len);
	struct sandbox *sb = lookup(call, req->sandbox_id);

	if (sb)
		sandbox_start(sb, call);
	containerd__services__sandbox__v1__start_request__free_unpacked(req, NULL);
}

static void h_platform(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__PlatformRequest,
	       containerd__services__sandbox__v1__platform_request, call, msg, len);
	Containerd__Services__Sandbox__V1__PlatformResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__PLATFORM_RESPONSE__INIT;
	Containerd__Services__Sandbox__V1__Platform p =
	    CONTAINERD__SERVICES__SANDBOX__V1__PLATFORM__INIT;

	if (lookup(call, req->sandbox_id)) {
		p.os = "linux";
		p.architecture = "amd64";
		r.platform = &p;
		grpc_reply(call, &r.base);
	}
	containerd__services__sandbox__v1__platform_request__free_unpacked(req, NULL);
}

static void h_stop(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__StopRequest,
	       containerd__services__sandbox__v1__stop_request, call, msg, len);
	struct sandbox *sb = lookup(call, req->sandbox_id);

	if (sb)
		sandbox_stop(sb, req->timeout_secs, call);
	containerd__services__sandbox__v1__stop_request__free_unpacked(req, NULL);
}

static void h_wait(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__WaitRequest,
	       containerd__services__sandbox__v1__wait_request, call, msg, len);
	struct sandbox *sb = lookup(call, req->sandbox_id);

	if (sb)
		sandbox_add_waiter(sb, call);
	containerd__services__sandbox__v1__wait_request__free_unpacked(req, NULL);
}

#define INFO_MAX 16

struct info {
	Containerd__Services__Sandbox__V1__StatusResponse__InfoEntry e[INFO_MAX];
	Containerd__Services__Sandbox__V1__StatusResponse__InfoEntry *p[INFO_MAX];
	char v[INFO_MAX][512];
	size_t n;
};

static void info_add(struct info *in, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void info_add(struct info *in, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (in->n >= INFO_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(in->v[in->n], sizeof(in->v[0]), fmt, ap);
	va_end(ap);
	containerd__services__sandbox__v1__status_response__info_entry__init(&in->e[in->n]);
	in->e[in->n].key = (char *)key;
	in->e[in->n].value = in->v[in->n];
	in->p[in->n] = &in->e[in->n];
	in->n++;
}

/* Status's verbose info: the sandbox as the daemon knows it. */
/* The VM's memory now (after a resize, what the balloon left it). */
static uint64_t vm_bytes(const struct sandbox *sb)
{
	return (uint64_t)(sb->memory_now_mib ? sb->memory_now_mib : sb->memory_mib) << 20;
}

static void status_info(const struct sandbox *sb, struct info *in)
{
	struct proc_mem pm;

	info_add(in, "state", "%s", sandbox_state_name(sb));
	info_add(in, "vcpus", "%u", sb->vcpus);
	info_add(in, "memory_mib", "%u", sb->memory_mib);
	if (sb->memory_now_mib)
		info_add(in, "memory_now_mib", "%u", sb->memory_now_mib);
	info_add(in, "vmm_pid", "%d", sb->pid);
	info_add(in, "task_proxy_pid", "%d", sb->proxy);
	info_add(in, "dir", "%s", sb->paths.dir);
	if (sb->boot[0])
		info_add(in, "boot", "%s", sb->boot);
	if (sb->state == SB_READY && sb->pid > 0 && proc_mem(sb->pid, &pm, NULL) == 0) {
		info_add(in, "vmm_uss_kib", "%llu", pm.uss_kib);
		info_add(in, "vmm_pss_kib", "%llu", pm.pss_kib);
		info_add(in, "vmm_rss_kib", "%llu", pm.rss_kib);
	}
	if (sb->netns[0])
		info_add(in, "netns", "%s", sb->netns);
	if (sb->network[0])
		info_add(in, "network", "%s", sb->network);
	info_add(in, "waiters", "%u", sandbox_n_waiters(sb));
	if (sb->state == SB_STOPPED)
		info_add(in, "exit_status", "%d", sb->exit_status);
	if (sb->last_error[0])
		info_add(in, "error", "%s", sb->last_error);
}

static void h_status(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__StatusRequest,
	       containerd__services__sandbox__v1__status_request, call, msg, len);
	Containerd__Services__Sandbox__V1__StatusResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__STATUS_RESPONSE__INIT;
	Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Timestamp exited = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	struct sandbox *sb = lookup(call, req->sandbox_id);
	struct info *in;

	if (!sb)
		goto out;
	in = calloc(1, sizeof(*in));
	if (!in) {
		grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	r.sandbox_id = sb->id;
	r.pid = (uint32_t)sb->pid;
	r.state = sb->state == SB_READY ? "SANDBOX_READY" : "SANDBOX_NOTREADY";
	ts_from_ns(&created, sb->created_ns);
	r.created_at = &created;
	if (sb->state == SB_STOPPED) {
		ts_from_ns(&exited, sb->exited_ns);
		r.exited_at = &exited;
	}
	if (sb->state == SB_READY || sb->state == SB_STOPPING) {
		r.address = sb->task_address;
		r.version = 3;
	}
	if (req->verbose) {
		status_info(sb, in);
		r.n_info = in->n;
		r.info = in->p;
	}
	grpc_reply(call, &r.base);
	free(in);
out:
	containerd__services__sandbox__v1__status_request__free_unpacked(req, NULL);
}

static void h_shutdown(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__ShutdownRequest,
	       containerd__services__sandbox__v1__shutdown_request, call, msg, len);
	Containerd__Services__Sandbox__V1__ShutdownResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__SHUTDOWN_RESPONSE__INIT;
	struct sandbox *sb;

	/* A sandbox that is gone already (its Start failed) is shut down: nothing is left. */
	if (req->sandbox_id && id_valid(req->sandbox_id, NULL) == 0 &&
	    !sandbox_find(sbx_of(call), req->sandbox_id)) {
		log_debug("Shutdown %s: not known (removed already)", req->sandbox_id);
		grpc_reply(call, &r.base);
	} else if ((sb = lookup(call, req->sandbox_id))) {
		sandbox_shutdown(sb, call);
	}
	containerd__services__sandbox__v1__shutdown_request__free_unpacked(req, NULL);
}

/* Host-side figures of the VMM process: CPU time and resident memory. */
static int vmm_usage(pid_t pid, uint64_t *cpu_usec, uint64_t *rss)
{
	char path[64], *text = NULL, *p;
	unsigned long long ut, st;
	long pages;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, &text, NULL, 4096, NULL) < 0)
		return -1;
	p = strrchr(text, ')');
	if (!p || sscanf(p + 2,
	                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
	                 "%*d %*d %*u %*u %ld",
	                 &ut, &st, &pages) != 3) {
		free(text);
		return -1;
	}
	free(text);
	*cpu_usec = (ut + st) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK);
	*rss = (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
	return 0;
}

/* The sandbox's cgroup (VMM and task proxy) where it has one, else the VMM process. */
static int measure(const struct sandbox *sb, Io__Containerd__Cgroups__V2__CPUStat *cpu,
                   Io__Containerd__Cgroups__V2__MemoryStat *mem,
                   Io__Containerd__Cgroups__V2__PidsStat *pids)
{
	uint64_t usec, rss;
	struct cg_stats cs;
	kerr_t err;

	if (sb->has_cgroup && sb_cgroup_stats(sb->cg_parent, sb->id, &cs, &err) == 0) {
		cpu->usage_usec = cs.cpu_usec;
		mem->usage = cs.memory_bytes;
		mem->usage_limit = cs.memory_limit ? cs.memory_limit : vm_bytes(sb);
		pids->current = cs.pids;
		return 0;
	}
	if (vmm_usage(sb->pid, &usec, &rss) < 0)
		return -1;
	cpu->usage_usec = usec;
	mem->usage = rss;
	mem->usage_limit = vm_bytes(sb);
	return 0;
}

static void h_metrics(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__MetricsRequest,
	       containerd__services__sandbox__v1__metrics_request, call, msg, len);
	Containerd__Services__Sandbox__V1__MetricsResponse r =
	    CONTAINERD__SERVICES__SANDBOX__V1__METRICS_RESPONSE__INIT;
	Containerd__Services__Sandbox__V1__Metric m =
	    CONTAINERD__SERVICES__SANDBOX__V1__METRIC__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Io__Containerd__Cgroups__V2__Metrics cg = IO__CONTAINERD__CGROUPS__V2__METRICS__INIT;
	Io__Containerd__Cgroups__V2__CPUStat cpu = IO__CONTAINERD__CGROUPS__V2__CPUSTAT__INIT;
	Io__Containerd__Cgroups__V2__MemoryStat mem =
	    IO__CONTAINERD__CGROUPS__V2__MEMORY_STAT__INIT;
	Io__Containerd__Cgroups__V2__PidsStat pids = IO__CONTAINERD__CGROUPS__V2__PIDS_STAT__INIT;
	struct sandbox *sb = lookup(call, req->sandbox_id);
	uint8_t *buf = NULL;

	if (!sb)
		goto out;
	if (sb->state != SB_READY) {
		grpc_reply_error(call, RPC_FAILED_PRECONDITION,
		                 "sandbox %s is %s: no VMM to measure", sb->id,
		                 sandbox_state_name(sb));
		goto out;
	}
	if (measure(sb, &cpu, &mem, &pids) < 0) {
		grpc_reply_error(call, RPC_UNAVAILABLE, "sandbox %s: VMM %d cannot be measured",
		                 sb->id, sb->pid);
		goto out;
	}
	if (pids.current)
		cg.pids = &pids;
	cg.cpu = &cpu;
	cg.memory = &mem;
	any.type_url = "io.containerd.cgroups.v2.Metrics";
	any.value.len = io__containerd__cgroups__v2__metrics__get_packed_size(&cg);
	buf = malloc(any.value.len + 1);
	if (!buf) {
		grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	io__containerd__cgroups__v2__metrics__pack(&cg, buf);
	any.value.data = buf;
	ts_from_ns(&ts, real_ns());
	m.timestamp = &ts;
	m.id = sb->id;
	m.data = &any;
	r.metrics = &m;
	grpc_reply(call, &r.base);
out:
	free(buf);
	containerd__services__sandbox__v1__metrics_request__free_unpacked(req, NULL);
}

/* Whether field (an UpdateRequest field path) is one the VM has nothing to do with:
 * containerd's own records. */
static int field_is_record(const char *f)
{
	return !strcmp(f, "labels") || !strncmp(f, "labels.", 7) || !strcmp(f, "extensions") ||
	       !strncmp(f, "extensions.", 11) || !strcmp(f, "updated_at");
}

/* The updated-resources extension when the update carries it: 1 with *r filled, 0 when
 * absent, -1 with err set when it is malformed. */
static int updated_resources(const Containerd__Services__Sandbox__V1__UpdateRequest *req,
                             struct pod_resize *r, kerr_t *err)
{
	const Containerd__Services__Sandbox__V1__SandboxInfo *si = req->sandbox;
	int asked = 0;

	for (size_t i = 0; i < req->n_fields; i++)
		if (!strcmp(req->fields[i], "extensions") ||
		    !strcmp(req->fields[i], "extensions." UPDATED_RESOURCES_KEY))
			asked = 1;
	for (size_t i = 0; asked && si && i < si->n_extensions; i++) {
		const Google__Protobuf__Any *v = si->extensions[i]->value;

		if (strcmp(si->extensions[i]->key, UPDATED_RESOURCES_KEY) || !v)
			continue;
		if (pod_resize_parse(v->value.data, v->value.len, r, err) < 0)
			return -1;
		return 1;
	}
	return 0;
}

static void h_update(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	DECODE(Containerd__Services__Sandbox__V1__UpdateRequest,
	       containerd__services__sandbox__v1__update_request, call, msg, len);
	struct sandbox *sb = lookup(call, req->sandbox_id);
	struct pod_resize r;
	kerr_t err;
	int rc;

	if (!sb)
		goto out;
	for (size_t i = 0; i < req->n_fields; i++) {
		if (!field_is_record(req->fields[i])) {
			grpc_reply_error(
			    call, RPC_UNIMPLEMENTED,
			    "sandbox %s: updating `%s` of a running VM is not supported", sb->id,
			    req->fields[i]);
			goto out;
		}
	}
	rc = updated_resources(req, &r, &err);
	if (rc < 0)
		grpc_reply_error(call, RPC_INVALID_ARGUMENT, "sandbox %s: %s", sb->id, err.msg);
	else if (rc == 0)
		grpc_reply(call, NULL);
	else if (sb->state != SB_READY)
		grpc_reply_error(call, RPC_FAILED_PRECONDITION,
		                 "sandbox %s is %s: nothing to resize", sb->id,
		                 sandbox_state_name(sb));
	else
		sandbox_resize(sb, &r, call);
out:
	containerd__services__sandbox__v1__update_request__free_unpacked(req, NULL);
}

const struct grpc_method controller_methods[] = {
	{ PFX "Create", h_create },     { PFX "Start", h_start },
	{ PFX "Platform", h_platform }, { PFX "Stop", h_stop },
	{ PFX "Wait", h_wait },         { PFX "Status", h_status },
	{ PFX "Shutdown", h_shutdown }, { PFX "Metrics", h_metrics },
	{ PFX "Update", h_update },
};
const size_t controller_n_methods = sizeof(controller_methods) / sizeof(controller_methods[0]);
