#include "rpc/timestamp.h"

void ts_from_ns(Google__Protobuf__Timestamp *ts, int64_t ns)
{
	ts->seconds = ns / 1000000000;
	ts->nanos = (int32_t)(ns % 1000000000);
}
