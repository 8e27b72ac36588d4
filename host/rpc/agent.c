#include "rpc/agent.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "base/util.h"
#include "google/protobuf/empty.pb-c.h"

#define CLOCK_ROUNDS 4

int agent_check(struct ttrpc_client *c, agent_check_t **out, int64_t deadline_ns, kerr_t *err)
{
	Kuasar__Sandbox__V1__CheckRequest req = KUASAR__SANDBOX__V1__CHECK_REQUEST__INIT;

	return ttrpc_call(c, AGENT_SANDBOX_SERVICE, "Check", &req.base,
	                  &kuasar__sandbox__v1__check_response__descriptor,
	                  (ProtobufCMessage **)out, deadline_ns, err);
}

void agent_check_free(agent_check_t *r)
{
	if (r)
		kuasar__sandbox__v1__check_response__free_unpacked(r, NULL);
}

static int clock_round(struct ttrpc_client *c, int64_t offset, int apply, int64_t *t,
                       int64_t deadline_ns, kerr_t *err)
{
	Kuasar__Sandbox__V1__SyncClockRequest req = KUASAR__SANDBOX__V1__SYNC_CLOCK_REQUEST__INIT;
	Kuasar__Sandbox__V1__SyncClockResponse *r = NULL;

	req.offset_ns = offset;
	req.apply = apply;
	t[0] = req.host_send_ns = real_ns();
	if (ttrpc_call(c, AGENT_SANDBOX_SERVICE, "SyncClock", &req.base,
	               &kuasar__sandbox__v1__sync_clock_response__descriptor,
	               (ProtobufCMessage **)&r, deadline_ns, err) < 0)
		return -1;
	t[3] = real_ns();
	t[1] = r->guest_recv_ns;
	t[2] = r->guest_send_ns;
	kuasar__sandbox__v1__sync_clock_response__free_unpacked(r, NULL);
	return 0;
}

int clock_round_estimate(const int64_t t[4], int64_t tolerance_ns, int64_t *off, int64_t *rtt)
{
	*rtt = (t[3] - t[0]) - (t[2] - t[1]);
	*off = ((t[0] - t[1]) + (t[3] - t[2])) / 2;
	return llabs(*off) <= *rtt / 2 + tolerance_ns;
}

int agent_measure_clock(struct ttrpc_client *c, struct clock_sync *out, int64_t deadline_ns,
                        kerr_t *err)
{
	int64_t best_rtt = INT64_MAX, best_off = 0, t[4];

	for (int i = 0; i < CLOCK_ROUNDS; i++) {
		int64_t rtt, off;

		if (clock_round(c, 0, 0, t, deadline_ns, err) < 0)
			return kerr_wrap(err, "clock sync round %d", i + 1);
		clock_round_estimate(t, 0, &off, &rtt);
		if (rtt < best_rtt) {
			best_rtt = rtt;
			best_off = off;
		}
	}
	out->offset_ns = best_off;
	out->rtt_ns = best_rtt;
	out->rounds = CLOCK_ROUNDS;
	return 0;
}

int agent_sync_clock(struct ttrpc_client *c, struct clock_sync *out, int64_t deadline_ns,
                     kerr_t *err)
{
	int64_t t[4];

	if (agent_measure_clock(c, out, deadline_ns, err) < 0)
		return -1;
	if (clock_round(c, out->offset_ns, 1, t, deadline_ns, err) < 0)
		return kerr_wrap(err, "apply clock offset");
	return 0;
}

int agent_check_clock(struct ttrpc_client *c, int64_t tolerance_ns, struct clock_sync *out,
                      int64_t deadline_ns, kerr_t *err)
{
	int64_t t[4], off, rtt;
	int settled;

	if (clock_round(c, 0, 0, t, deadline_ns, err) < 0)
		return kerr_wrap(err, "clock check");
	settled = clock_round_estimate(t, tolerance_ns, &off, &rtt);
	*out = (struct clock_sync){ .offset_ns = off, .rtt_ns = rtt, .rounds = 1 };
	if (settled)
		return 0;
	return agent_sync_clock(c, out, deadline_ns, err) < 0 ? -1 : 1;
}

int agent_add_entropy(struct ttrpc_client *c, size_t len, int restored, uint32_t *entropy_avail,
                      int64_t deadline_ns, kerr_t *err)
{
	Kuasar__Sandbox__V1__AddEntropyRequest req = KUASAR__SANDBOX__V1__ADD_ENTROPY_REQUEST__INIT;
	Kuasar__Sandbox__V1__AddEntropyResponse *r = NULL;
	uint8_t buf[4096];

	if (len > sizeof(buf))
		return kerr_set(err, EINVAL, "at most %zu bytes of entropy per call", sizeof(buf));
	if (getrandom(buf, len, 0) != (ssize_t)len)
		return kerr_sys(err, "getrandom");
	req.data.data = buf;
	req.data.len = len;
	req.reseed = 1;
	req.restored = restored != 0;
	if (ttrpc_call(c, AGENT_SANDBOX_SERVICE, "AddEntropy", &req.base,
	               &kuasar__sandbox__v1__add_entropy_response__descriptor,
	               (ProtobufCMessage **)&r, deadline_ns, err) < 0)
		return -1;
	if (entropy_avail)
		*entropy_avail = r->entropy_avail;
	kuasar__sandbox__v1__add_entropy_response__free_unpacked(r, NULL);
	return 0;
}

int agent_mount_share(struct ttrpc_client *c, const char *fstype, uint64_t *fs_magic,
                      int64_t deadline_ns, kerr_t *err)
{
	Kuasar__Sandbox__V1__MountShareRequest req = KUASAR__SANDBOX__V1__MOUNT_SHARE_REQUEST__INIT;
	Kuasar__Sandbox__V1__MountShareResponse *r = NULL;

	req.tag = "kuasar";
	req.fstype = (char *)fstype;
	if (ttrpc_call(c, AGENT_SANDBOX_SERVICE, "MountShare", &req.base,
	               &kuasar__sandbox__v1__mount_share_response__descriptor,
	               (ProtobufCMessage **)&r, deadline_ns, err) < 0)
		return -1;
	if (fs_magic)
		*fs_magic = r->fs_magic;
	kuasar__sandbox__v1__mount_share_response__free_unpacked(r, NULL);
	return 0;
}

int agent_set_hostname(struct ttrpc_client *c, const char *hostname, const struct pod_etc *etc,
                       int64_t deadline_ns, kerr_t *err)
{
	Kuasar__Sandbox__V1__SetHostnameRequest req =
	    KUASAR__SANDBOX__V1__SET_HOSTNAME_REQUEST__INIT;
	Google__Protobuf__Empty *r = NULL;

	req.hostname = (char *)hostname;
	if (etc) {
		req.pod_files = 1;
		req.has_hosts = etc->hosts != NULL;
		req.hosts = etc->hosts ? etc->hosts : "";
		req.has_resolv_conf = etc->resolv_conf != NULL;
		req.resolv_conf = etc->resolv_conf ? etc->resolv_conf : "";
	}
	if (ttrpc_call(c, AGENT_SANDBOX_SERVICE, "SetHostname", &req.base,
	               &google__protobuf__empty__descriptor, (ProtobufCMessage **)&r, deadline_ns,
	               err) < 0)
		return kerr_wrap(err, "set the guest's hostname");
	google__protobuf__empty__free_unpacked(r, NULL);
	return 0;
}

int agent_set_sysctls(struct ttrpc_client *c, const char *const *names, const char *const *values,
                      size_t n, int64_t deadline_ns, kerr_t *err)
{
	Kuasar__Sandbox__V1__SetSysctlsRequest req = KUASAR__SANDBOX__V1__SET_SYSCTLS_REQUEST__INIT;
	Kuasar__Sandbox__V1__Sysctl items[32], *ptrs[32];
	Google__Protobuf__Empty *r = NULL;

	if (n > sizeof(items) / sizeof(items[0]))
		return kerr_set(err, E2BIG, "%zu sysctls: at most %zu", n,
		                sizeof(items) / sizeof(items[0]));
	for (size_t i = 0; i < n; i++) {
		kuasar__sandbox__v1__sysctl__init(&items[i]);
		items[i].name = (char *)names[i];
		items[i].value = (char *)values[i];
		ptrs[i] = &items[i];
	}
	req.sysctls = ptrs;
	req.n_sysctls = n;
	if (ttrpc_call(c, AGENT_SANDBOX_SERVICE, "SetSysctls", &req.base,
	               &google__protobuf__empty__descriptor, (ProtobufCMessage **)&r, deadline_ns,
	               err) < 0)
		return kerr_wrap(err, "the pod's sysctls");
	google__protobuf__empty__free_unpacked(r, NULL);
	return 0;
}

int agent_shutdown(struct ttrpc_client *c, int64_t deadline_ns, kerr_t *err)
{
	Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
	Google__Protobuf__Empty *r = NULL;

	if (ttrpc_call(c, AGENT_SANDBOX_SERVICE, "Shutdown", &req.base,
	               &google__protobuf__empty__descriptor, (ProtobufCMessage **)&r, deadline_ns,
	               err) < 0)
		return -1;
	google__protobuf__empty__free_unpacked(r, NULL);
	return 0;
}

int agent_setup_network(struct ttrpc_client *c, const Kuasar__Sandbox__V1__SetupNetworkRequest *req,
                        int64_t deadline_ns, kerr_t *err)
{
	Kuasar__Sandbox__V1__SetupNetworkResponse *r = NULL;

	if (ttrpc_call(c, AGENT_SANDBOX_SERVICE, "SetupNetwork", &req->base,
	               &kuasar__sandbox__v1__setup_network_response__descriptor,
	               (ProtobufCMessage **)&r, deadline_ns, err) < 0)
		return kerr_wrap(err, "set up the guest's network");
	kuasar__sandbox__v1__setup_network_response__free_unpacked(r, NULL);
	return 0;
}
