/* containerd-shim-kuasar-v1: what containerd runs by the runtime's name when it restarts.
 *
 * containerd reloads every task it knows after a restart; for that it resolves the runtime
 * name ("io.containerd.kuasar.v1") to a shim binary even for tasks a sandboxer serves, and
 * drops the task if there is none. It then reconnects to the task address it recorded (our
 * task socket), which is all a kuasar task needs. The binary is only ever asked to `delete`
 * (clean up after a task whose socket went away): the sandboxer cleans up its own, so this
 * answers with an empty DeleteResponse. Installed as a link to kuasar-sandboxer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "rpc/timestamp.h"
#include "rpc/ttrpc_client.h"
#include "sandboxer/sandbox.h"
#include "task.pb-c.h"

int shim_compat_main(int argc, char **argv)
{
	const char *action = NULL;

	/* Go-style flags (-id X, -namespace Y, ...) then the action. */
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-') {
			if (!strchr(argv[i], '=') && i + 1 < argc && argv[i + 1][0] != '-' &&
			    strcmp(argv[i], "-debug") && strcmp(argv[i], "--debug"))
				i++;
			continue;
		}
		action = argv[i];
	}
	if (action && !strcmp(action, "delete")) {
		Containerd__Task__V3__DeleteResponse r =
		    CONTAINERD__TASK__V3__DELETE_RESPONSE__INIT;
		Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		uint8_t buf[64];
		size_t n;

		ts_from_ns(&ts, real_ns());
		r.exit_status = 255;
		r.exited_at = &ts;
		n = containerd__task__v3__delete_response__pack(&r, buf);
		return write_all(1, buf, n) < 0 ? 1 : 0;
	}
	fprintf(stderr,
	        "containerd-shim-kuasar-v1: kuasar tasks are served by kuasar-sandboxer; configure "
	        "the runtime with sandboxer = \"kuasar\" (action `%s` is not supported)\n",
	        action ? action : "");
	return 1;
}
