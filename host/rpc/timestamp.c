#include "rpc/timestamp.h"

void ts_from_ns(Google__Protobuf__Timestamp *ts, int64_t ns)
{
	ts->seconds = ns / 1000000000;
	ts->nanos = (int32_t)(ns % 1000000000);
}

int ts_to_ns(const Google__Protobuf__Timestamp *ts, int64_t *ns)
{
	if (!ts || ts->seconds < 0 || ts->seconds > INT64_MAX / 1000000000 - 1 || ts->nanos < 0 ||
	    ts->nanos > 999999999)
		return -1;
	*ns = ts->seconds * 1000000000 + ts->nanos;
	return 0;
}
