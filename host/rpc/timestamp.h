/* google.protobuf.Timestamp, which both RPC flavours (ttrpc and gRPC) carry. */
#ifndef KUASAR_TIMESTAMP_H
#define KUASAR_TIMESTAMP_H

#include <stdint.h>

#include "google/protobuf/timestamp.pb-c.h"

/* From nanoseconds since the epoch (CLOCK_REALTIME). */
void ts_from_ns(Google__Protobuf__Timestamp *ts, int64_t ns);

#endif
