/* Task events for the host: a bounded queue in PID 1, drained into the GetEvents stream of
 * the current subscriber. Events stay queued while nobody listens (oldest dropped first,
 * and counted). */
#ifndef KUASAR_EVENTS_H
#define KUASAR_EVENTS_H

#include <pb.h>
#include <stdint.h>

#include "wire/rpc.h"

/* Queues an event: msg is a containerd.events message described by fields. */
void events_publish(const char *topic, const char *type_url, const pb_msgdesc_t *fields,
                    const void *msg);
/* A new GetEvents subscriber: queued events are sent to it at once. */
void events_subscribe(const struct rpc_pending *sub);
/* Watches the container's memory.events for OOM kills (inotify in the loop). */
void events_watch_oom(const char *container_id, const char *cgroup);
void events_unwatch_oom(const char *container_id);

#endif
