/* The pod's network as the guest is told it (SetupNetwork), from what the net layer read in
 * the pod's netns. */
#ifndef KUASAR_GUESTNET_H
#define KUASAR_GUESTNET_H

#include <stdint.h>

#include "net/podnet.h"
#include "rpc/ttrpc_client.h"

/* template_macs: the VM's devices have the template's MACs (a clone), not the pod's. */
int guestnet_setup(struct ttrpc_client *c, const struct pod_net *pn, int template_macs,
                   int64_t deadline_ns, kerr_t *err);

#endif
