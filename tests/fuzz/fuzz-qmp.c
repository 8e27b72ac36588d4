/* libFuzzer: what a VMM says on its QMP socket. The bytes arrive on a socketpair as QMP's
 * greeting and answers (matched by id); the real client reads them (lines, JSON, events,
 * errors) through qmp_open and a query-migrate call, and the answer goes to the code that
 * acts on it. */
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "vm/qmp.h"
#include "vm/vm_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp q = { 0 };
	json_object *r = NULL;
	int sv[2];
	kerr_t err;

	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	/* All of it is there before the client reads; EOF after it. */
	if (write_all(sv[1], data, size) < 0 || shutdown(sv[1], SHUT_WR) < 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	if (qmp_open(&q, sv[0], mono_ns() + 1000000000LL, &err) == 0) {
		if (qmp_call(&q, "query-migrate", NULL, &r, mono_ns() + 1000000000LL, &err) == 0) {
			(void)vm_migration_status(r, &err);
			json_object_put(r);
		}
		qmp_close(&q);
	}
	close(sv[1]);
	return 0;
}
