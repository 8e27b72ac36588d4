/* The guest link: the virtio-serial port io.kuasar.agent (one host session at a time,
 * reset when the host goes away) and an AF_VSOCK listener on port 1024. */
#ifndef KUASAR_LINK_H
#define KUASAR_LINK_H

#include <stdint.h>

#include "wire/ttrpc.h"

struct conn;

#define LINK_PORT_NAME "io.kuasar.agent"
#define LINK_VSOCK_PORT 1024

/* Serves both transports; every connection's frames go to fn (the services' dispatch). */
void link_start(ttrpc_frame_fn fn);
/* The host side of a virtio-serial port connected or went away (SIGIO from the driver). */
void link_on_sigio(void);
/* Loop timeout while something needs a periodic look, else -1. */
int link_timeout_ms(void);
void link_tick(void);
uint32_t link_local_cid(void);
/* The live connection with this id, or NULL. */
struct conn *link_conn_by_id(uint64_t id);

#endif
