/* google.protobuf.Timestamp, which both RPC flavours (ttrpc and gRPC) carry. */
#ifndef KUASAR_TIMESTAMP_H
#define KUASAR_TIMESTAMP_H

#include <stdint.h>

#include "google/protobuf/timestamp.pb-c.h"

/* From nanoseconds since the epoch (CLOCK_REALTIME). */
void ts_from_ns(Google__Protobuf__Timestamp *ts, int64_t ns);

/* To nanoseconds since the epoch; -1 when it is not a valid Timestamp or does not fit
 * (seconds before 1970 or past 2262, nanos outside 0..999999999): values from the guest
 * or containerd are not trusted. */
int ts_to_ns(const Google__Protobuf__Timestamp *ts, int64_t *ns);

#endif
