/* Task events from a guest to containerd's ttrpc event service
 * (containerd.services.events.ttrpc.v1.Events/Forward). */
#ifndef KUASAR_EVENTS_FWD_H
#define KUASAR_EVENTS_FWD_H

#include <stddef.h>
#include <stdint.h>

#include "base/loop.h"

struct events_fwd;

/* NULL (events dropped) when ttrpc_path is empty. */
struct events_fwd *events_fwd_new(struct loop *loop, const char *ttrpc_path);
/* Closes the connection; what was not sent is lost. */
void events_fwd_free(struct events_fwd *ev);
void events_fwd_publish(struct events_fwd *ev, const char *ns, const char *topic,
                        const char *type_url, const uint8_t *event, size_t len, int64_t ts_ns);

#endif
