/* The guest's ttrpc server: each connection's frames go to serve_on_frame. */
#ifndef KUASAR_GUEST_SERVE_H
#define KUASAR_GUEST_SERVE_H

#include <stdint.h>

#include "ttrpc.h"

void serve_on_frame(struct ttrpc_rx *rx, const struct ttrpc_header *h, const uint8_t *data);

#endif
