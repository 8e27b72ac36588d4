/* Port-forward (kuasar.sandbox.v1.Sandbox/PortForward): a stream per forwarded connection,
 * joined to a TCP connection to the port on the guest's loopback (127.0.0.1, then ::1).
 * Bytes go both ways as PortData within 64 KiB windows each side grants as it delivers; an
 * empty close frame is a half-close; a reset or a broken connection ends both at once. */
#ifndef KUASAR_PORTFWD_H
#define KUASAR_PORTFWD_H

#include <stdint.h>

#include "wire/rpc.h"
#include "wire/ttrpc.h"

void portfwd_open(struct rpc_ctx *ctx);
/* A data frame for a forward of ours. Returns 0 if it was ours, -1 otherwise. */
int portfwd_on_data(struct conn *c, const struct ttrpc_header *h, const uint8_t *data);

#endif
