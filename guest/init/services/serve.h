/* The guest's ttrpc server: each connection's frames go to serve_on_frame. */
#ifndef KUASAR_GUEST_SERVE_H
#define KUASAR_GUEST_SERVE_H

#include <stdint.h>

#include "wire/rpc.h"
#include "wire/ttrpc.h"

extern const struct rpc_service sandbox_service;
extern const struct rpc_service task_v3_service;
extern const struct rpc_service task_v2_service;
/* What Shutdown does once it has answered (main sets the power-off). */
extern void (*sandbox_poweroff)(void);

void serve_on_frame(struct ttrpc_rx *rx, const struct ttrpc_header *h, const uint8_t *data);

#endif
