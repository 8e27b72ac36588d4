/* The pod's network as the guest is told it (SetupNetwork), from what the net layer read in
 * the pod's netns. */
#ifndef KUASAR_GUESTNET_H
#define KUASAR_GUESTNET_H

#include <stdint.h>

#include "net/podnet.h"
#include "rpc/ttrpc_client.h"

/* The longest resolv.conf the guest takes (sandbox.options). */
#define GUESTNET_RESOLV_MAX 1024

/* template_macs: the VM's devices have the template's MACs (a clone), not the pod's.
 * resolv: the pod's resolv.conf for an appliance's app (NULL: the app keeps its own). */
int guestnet_setup(struct ttrpc_client *c, const struct pod_net *pn, int template_macs,
                   const char *resolv, int64_t deadline_ns, kerr_t *err);

#endif
