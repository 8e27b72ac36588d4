/* containerd-shim-kuasar-v1: what containerd runs by the runtime's name when it restarts.
 *
 * containerd reloads every task it knows after a restart; for that it resolves the runtime
 * name ("io.containerd.kuasar.v1") to a shim binary even for tasks a sandboxer serves, and
 * drops the task if there is none. It then reconnects to the task address it recorded (our
 * task socket), which is all a kuasar task needs. The binary is only ever asked to `delete`
 * (clean up after a task whose socket went away): the sandboxer cleans up its own, so this
 * answers with an empty DeleteResponse. And containerd asks every runtime binary `-info`
 * (its options on stdin, a RuntimeInfo on stdout) for its OCI features: the runtime is
 * kuasar-init in the guest, which these describe. Installed as a link to kuasar-sandboxer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "host/introspection.pb-c.h"
#include "rpc/timestamp.h"
#include "rpc/ttrpc_client.h"
#include "sandboxer/sandbox.h"
#include "task.pb-c.h"

#define SHIM_VERSION "0.1.0"

/* An OCI runtime-spec features document: what the guest's runtime does. No user namespaces
 * (so CRI does not offer them), no hooks (they would name host binaries), cgroup v2 only.
 * "rro" is what makes CRI offer recursive read-only mounts: containerd >= 2.4 reads this of
 * any runtime; 2.1 to 2.3 only of runc's type, so they never offer them for kuasar. */
static const char features_json[] =
    "{\"ociVersionMin\":\"1.0.0\",\"ociVersionMax\":\"1.1.0\",\"hooks\":[],"
    "\"mountOptions\":[\"ro\",\"rw\",\"bind\",\"rbind\",\"nosuid\",\"nodev\",\"noexec\","
    "\"relatime\",\"private\",\"rprivate\",\"shared\",\"slave\",\"rslave\",\"rro\","
    "\"rrw\",\"rnosuid\",\"rsuid\",\"rnodev\",\"rdev\",\"rnoexec\",\"rexec\"],"
    "\"linux\":{\"namespaces\":[\"cgroup\",\"ipc\",\"mount\",\"network\",\"pid\",\"uts\"],"
    "\"cgroup\":{\"v1\":false,\"v2\":true,\"systemd\":false,\"systemdUser\":false},"
    "\"seccomp\":{\"enabled\":true},\"apparmor\":{\"enabled\":false},"
    "\"selinux\":{\"enabled\":false}},"
    "\"annotations\":{\"io.kuasar.runtime\":\"kuasar-init in a VM per pod\"}}";

static int info(void)
{
	Containerd__Types__RuntimeInfo r = CONTAINERD__TYPES__RUNTIME_INFO__INIT;
	Containerd__Types__RuntimeVersion v = CONTAINERD__TYPES__RUNTIME_VERSION__INIT;
	Google__Protobuf__Any features = GOOGLE__PROTOBUF__ANY__INIT;
	Google__Protobuf__Any *opts = NULL;
	uint8_t in[65536], *out;
	size_t n = 0, len;
	ssize_t k;
	int rc;

	/* The runtime's options (an Any), echoed back as runc's shim does. */
	while (n < sizeof(in) && (k = read(0, in + n, sizeof(in) - n)) > 0)
		n += (size_t)k;
	if (n)
		opts = google__protobuf__any__unpack(NULL, n, in);
	r.name = "io.containerd.kuasar.v1";
	v.version = SHIM_VERSION;
	v.revision = "";
	r.version = &v;
	r.options = opts;
	features.type_url = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";
	features.value.data = (uint8_t *)features_json;
	features.value.len = sizeof(features_json) - 1;
	r.features = &features;
	len = containerd__types__runtime_info__get_packed_size(&r);
	out = malloc(len ? len : 1);
	if (!out)
		return 1;
	containerd__types__runtime_info__pack(&r, out);
	rc = write_all(1, out, len) < 0 ? 1 : 0;
	free(out);
	if (opts)
		google__protobuf__any__free_unpacked(opts, NULL);
	return rc;
}

int shim_compat_main(int argc, char **argv)
{
	const char *action = NULL;

	/* Go-style flags (-id X, -namespace Y, ...) then the action. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-info") || !strcmp(argv[i], "--info"))
			return info();
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
