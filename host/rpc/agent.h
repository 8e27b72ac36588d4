/* Client of kuasar-init's sandbox service (kuasar.sandbox.v1.Sandbox). */
#ifndef KUASAR_AGENT_H
#define KUASAR_AGENT_H

#include <stdint.h>

#include "rpc/ttrpc_client.h"
#include "sandbox.pb-c.h"

#define AGENT_SANDBOX_SERVICE "kuasar.sandbox.v1.Sandbox"

typedef Kuasar__Sandbox__V1__CheckResponse agent_check_t;

int agent_check(struct ttrpc_client *c, agent_check_t **out, int64_t deadline_ns, kerr_t *err);
void agent_check_free(agent_check_t *r);

struct clock_sync {
	int64_t offset_ns; /* host minus guest CLOCK_REALTIME */
	int64_t rtt_ns;    /* of the best round */
	int rounds;
};
/* One round's four times (host send, guest receive, guest send, host receive: t) as the
 * offset (host minus guest, averaged over both directions) and the round trip; 1 when the
 * offset is within what the round can tell plus tolerance_ns (a clock left as it is). */
int clock_round_estimate(const int64_t t[4], int64_t tolerance_ns, int64_t *off, int64_t *rtt);
/* NTP-style: several rounds; the one with the smallest round trip gives the offset. */
int agent_measure_clock(struct ttrpc_client *c, struct clock_sync *out, int64_t deadline_ns,
                        kerr_t *err);
/* Measures, then has the guest step its clock by the offset. */
int agent_sync_clock(struct ttrpc_client *c, struct clock_sync *out, int64_t deadline_ns,
                     kerr_t *err);
/* One round: a guest clock already set (a pooled VM's, which has kept time since) is left
 * alone if it is off by no more than the round can tell plus tolerance_ns (0); otherwise
 * it is synced (1). */
int agent_check_clock(struct ttrpc_client *c, int64_t tolerance_ns, struct clock_sync *out,
                      int64_t deadline_ns, kerr_t *err);
/* Sends len bytes from the host's RNG and asks the guest to reseed; restored: the VM was
 * restored from a memory image (its running containers that asked are signalled). */
int agent_add_entropy(struct ttrpc_client *c, size_t len, int restored, uint32_t *entropy_avail,
                      int64_t deadline_ns, kerr_t *err);
/* Mounts the share in the guest; fs_magic gets its statfs type. */
int agent_mount_share(struct ttrpc_client *c, const char *fstype, uint64_t *fs_magic,
                      int64_t deadline_ns, kerr_t *err);
/* SetSysctls: names[i] = values[i] for i < n (at most 32), in order, in the VM. */
int agent_set_sysctls(struct ttrpc_client *c, const char *const *names, const char *const *values,
                      size_t n, int64_t deadline_ns, kerr_t *err);
/* The pod's /etc files the guest keeps for its containers (SetHostname writes them with the
 * hostname); a NULL member: the pod has none. */
struct pod_etc {
	char *hosts, *resolv_conf;
};
#define POD_ETC_HOSTS_MAX 4096
#define POD_ETC_RESOLV_MAX 1024

/* SetHostname; with etc (not NULL), the pod's files too. */
int agent_set_hostname(struct ttrpc_client *c, const char *hostname, const struct pod_etc *etc,
                       int64_t deadline_ns, kerr_t *err);
/* The pod's network on the guest's NICs; the guest names what failed. */
int agent_setup_network(struct ttrpc_client *c, const Kuasar__Sandbox__V1__SetupNetworkRequest *req,
                        int64_t deadline_ns, kerr_t *err);
int agent_shutdown(struct ttrpc_client *c, int64_t deadline_ns, kerr_t *err);

#endif
