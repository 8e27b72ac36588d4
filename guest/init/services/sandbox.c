/* kuasar.sandbox.v1.Sandbox: liveness, clock, entropy, hostname, share and shutdown for the
 * host. */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/timex.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "core/fmt.h"
#include "core/klog.h"
#include "core/sys.h"
#include "google/protobuf/empty.pb.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/events.h"
#include "runtime/podns.h"
#include "runtime/stream.h"
#include "sandbox.pb.h"
#include "services/app.h"
#include "services/disk.h"
#include "services/net.h"
#include "services/portfwd.h"
#include "services/serve.h"
#include "wire/link.h"
#include "wire/rpc.h"

void (*sandbox_poweroff)(void);

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	sys_clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sb_check(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_CheckRequest req;
	kuasar_sandbox_v1_CheckResponse r = { 0 };
	struct utsname u;

	if (rpc_decode(ctx, kuasar_sandbox_v1_CheckRequest_fields, &req) < 0)
		return;
	kfmt(r.version, sizeof(r.version), "%s", KUASAR_VERSION);
	r.uptime_ns = (uint64_t)clock_ns(CLOCK_BOOTTIME);
	r.kernel_to_init_ns = boot.init_ns;
	r.init_to_link_ns = boot.link_ns ? boot.link_ns - boot.init_ns : 0;
	kfmt(r.link, sizeof(r.link), "%s", conn_kind_name(ctx->conn->kind));
	r.cid = link_local_cid();
	if (uname(&u) == 0)
		kfmt(r.hostname, sizeof(r.hostname), "%s", u.nodename);
	r.link_resets = boot.link_resets;
	app_status(&r.app);
	r.has_app = r.app.state != kuasar_sandbox_v1_AppStatus_State_NONE;
	rpc_reply(ctx, kuasar_sandbox_v1_CheckResponse_fields, &r);
}

/* Steps CLOCK_REALTIME by offset_ns atomically (no read-modify-write race). */
static int clock_step(int64_t offset_ns)
{
	struct timex tx = { .modes = ADJ_SETOFFSET | ADJ_NANO };
	int64_t sec = offset_ns / 1000000000, nsec = offset_ns % 1000000000;

	if (nsec < 0) {
		nsec += 1000000000;
		sec--;
	}
	tx.time.tv_sec = sec;
	tx.time.tv_usec = nsec; /* nanoseconds with ADJ_NANO */
	return adjtimex(&tx) < 0 ? -1 : 0;
}

static void sb_sync_clock(struct rpc_ctx *ctx)
{
	int64_t t1 = clock_ns(CLOCK_REALTIME);
	kuasar_sandbox_v1_SyncClockRequest req = { 0 };
	kuasar_sandbox_v1_SyncClockResponse r = { 0 };

	if (rpc_decode(ctx, kuasar_sandbox_v1_SyncClockRequest_fields, &req) < 0)
		return;
	r.guest_recv_ns = t1;
	if (req.apply && req.offset_ns) {
		if (clock_step(req.offset_ns) < 0) {
			rpc_error(ctx, RPC_INTERNAL, "step the clock by %lld ns: errno %d",
			          (long long)req.offset_ns, errno);
			return;
		}
		r.applied_ns = req.offset_ns;
		debug("clock stepped by %lld us", (long long)req.offset_ns / 1000);
	}
	r.guest_send_ns = clock_ns(CLOCK_REALTIME);
	rpc_reply(ctx, kuasar_sandbox_v1_SyncClockResponse_fields, &r);
}

static uint32_t entropy_avail(void)
{
	char buf[16];
	int fd = open("/proc/sys/kernel/random/entropy_avail", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	uint32_t v = 0;

	if (fd >= 0)
		close(fd);
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		v = v * 10 + (uint32_t)(buf[i] - '0');
	return v;
}

/* Credits the host's bytes to the input pool and optionally reseeds the CRNG, so clones
 * restored from one memory image stop producing the same random stream. */
static int add_entropy(const uint8_t *data, size_t len, int reseed)
{
	/* The header and its bytes as the kernel reads them: one run of memory. */
	uint8_t raw[sizeof(struct rand_pool_info) + 4096] __attribute__((aligned(8)));
	struct rand_pool_info *info = (struct rand_pool_info *)raw;
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -1;
	info->entropy_count = (int)(len * 8);
	info->buf_size = (int)len;
	memcpy(raw + sizeof(*info), data, len);
	if (len && ioctl(fd, RNDADDENTROPY, info) < 0)
		rc = -1;
	if (rc == 0 && reseed && ioctl(fd, RNDRESEEDCRNG) < 0)
		rc = -1;
	close(fd);
	return rc;
}

/* A reseed is the first step of making a VM unique: once after its boot or its restore
 * from a template, then once per fork. Its count goes to /run/kuasar/generation; after a
 * restore the containers already running that asked are told (ctr_made_unique). */
static void made_unique(int restored)
{
	static unsigned generation;
	char buf[16];
	size_t n = kfmt(buf, sizeof(buf), "%u\n", ++generation);
	int fd = open("/run/kuasar/generation.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);

	if (fd >= 0 && write(fd, buf, n) == (ssize_t)n)
		rename("/run/kuasar/generation.tmp", "/run/kuasar/generation");
	if (fd >= 0)
		close(fd);
	stream_drop_orphans();
	if (restored)
		info("made unique after a restore (generation %u): %u container(s) signalled",
		     generation, ctr_made_unique());
}

static void sb_add_entropy(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_AddEntropyRequest req = { 0 };
	kuasar_sandbox_v1_AddEntropyResponse r = { 0 };

	if (rpc_decode(ctx, kuasar_sandbox_v1_AddEntropyRequest_fields, &req) < 0)
		return;
	if (add_entropy(req.data.bytes, req.data.size, req.reseed) < 0) {
		rpc_error(ctx, RPC_INTERNAL, "add %u bytes of entropy: errno %d",
		          (unsigned)req.data.size, errno);
		return;
	}
	if (req.reseed)
		made_unique(req.restored);
	r.entropy_avail = entropy_avail();
	rpc_reply(ctx, kuasar_sandbox_v1_AddEntropyResponse_fields, &r);
}

#define SHARE_DIR "/run/kuasar/shared"

/* nodev, but not nosuid: root filesystems on the share keep their setuid programs (ping,
 * sudo), which work as under runc; the VM, not the mount, is the boundary. */
static int mount_share(const char *tag, const char *fstype)
{
	if (!strcmp(fstype, "9p"))
		return mount(tag, SHARE_DIR, "9p", MS_NODEV,
		             "trans=virtio,version=9p2000.L,msize=262144,cache=mmap");
	if (!strcmp(fstype, "virtiofs"))
		return mount(tag, SHARE_DIR, "virtiofs", MS_NODEV, NULL);
	errno = EPROTONOSUPPORT;
	return -1;
}

#define BLOCK_DIR "/run/kuasar/block"

/* A container's root disk (SCSI target req->tag) under a tmpfs overlay, or its removal. */
static void mount_root_disk(struct rpc_ctx *ctx, const kuasar_sandbox_v1_MountShareRequest *req)
{
	kuasar_sandbox_v1_MountShareResponse r = { 0 };
	const char *end, *what = "not a SCSI target";
	char dir[32], dev[80];
	unsigned t = (unsigned)parse_u64(req->tag, &end);
	int code = RPC_INVALID_ARGUMENT;

	kfmt(dir, sizeof(dir), BLOCK_DIR "/%u", t);
	kfmt(r.mountpoint, sizeof(r.mountpoint), "%s/rootfs", dir);
	errno = EINVAL;
	if (!req->tag[0] || *end || t > 255)
		goto fail;
	if (req->unmount) {
		disk_overlay_undo(dir, "rootfs");
		goto done;
	}
	code = RPC_NOT_FOUND;
	what = "no such disk yet";
	if (disk_scsi_find(t, dev, sizeof(dev)) < 0)
		goto fail;
	code = RPC_FAILED_PRECONDITION;
	/* The host gives a target to one container at a time: what is there is stale (an
	 * unmount that never came) and goes first. */
	disk_overlay_undo(dir, "rootfs");
	mkdir(BLOCK_DIR, 0755);
	mkdir(dir, 0755);
	what = mkdir(r.mountpoint, 0755) < 0 ? "mkdir" : disk_overlay(dev, dir, "lower", "rootfs");
	if (what) {
		disk_overlay_undo(dir, "rootfs");
		goto fail;
	}
	info("%s mounted on %s", dev, r.mountpoint);
done:
	rpc_reply(ctx, kuasar_sandbox_v1_MountShareResponse_fields, &r);
	return;
fail:
	rpc_error(ctx, code, "erofs disk `%s`: %s: %s", req->tag, what, err_str(errno));
}

/* The share away (before the host snapshots the VM: a mounted 9p share blocks it). Not
 * mounted is done already; what still uses it (a container's bind, an open file) keeps it,
 * and the host's VMM says so. */
static void unmount_share(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_MountShareResponse r = { 0 };

	if (umount2(SHARE_DIR, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) {
		rpc_error(ctx, RPC_FAILED_PRECONDITION, "unmount %s: %s", SHARE_DIR,
		          err_str(errno));
		return;
	}
	info("share unmounted from %s", SHARE_DIR);
	rpc_reply(ctx, kuasar_sandbox_v1_MountShareResponse_fields, &r);
}

static void sb_mount_share(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_MountShareRequest req = { 0 };
	kuasar_sandbox_v1_MountShareResponse r = { 0 };
	const char *tag, *fstype;
	struct statfs st;
	struct stat dir, parent;

	if (rpc_decode(ctx, kuasar_sandbox_v1_MountShareRequest_fields, &req) < 0)
		return;
	if (!strcmp(req.fstype, "erofs")) {
		mount_root_disk(ctx, &req);
		return;
	}
	tag = req.tag[0] ? req.tag : "kuasar";
	fstype = req.fstype[0] ? req.fstype : "9p";
	if (strcmp(fstype, "9p") && strcmp(fstype, "virtiofs")) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT, "share type `%s`: 9p or virtiofs", fstype);
		return;
	}
	if (req.unmount) {
		unmount_share(ctx);
		return;
	}
	mkdir("/run/kuasar", 0755);
	mkdir(SHARE_DIR, 0755);
	/* Mounts would stack: a second request is an error, not a second mount. */
	if (sys_stat(SHARE_DIR, &dir) == 0 && sys_stat("/run/kuasar", &parent) == 0 &&
	    dir.st_dev != parent.st_dev) {
		rpc_error(ctx, RPC_ALREADY_EXISTS, "a share is already mounted on %s", SHARE_DIR);
		return;
	}
	if (mount_share(tag, fstype) < 0) {
		rpc_error(ctx, RPC_FAILED_PRECONDITION, "mount %s share `%s` on %s: errno %d",
		          fstype, tag, SHARE_DIR, errno);
		return;
	}
	kfmt(r.mountpoint, sizeof(r.mountpoint), "%s", SHARE_DIR);
	if (sys_statfs(SHARE_DIR, &st) == 0)
		r.fs_magic = (uint64_t)st.f_type;
	info("%s share `%s` mounted on %s", fstype, tag, SHARE_DIR);
	rpc_reply(ctx, kuasar_sandbox_v1_MountShareResponse_fields, &r);
}

static void sb_shutdown(struct rpc_ctx *ctx)
{
	google_protobuf_Empty req, r = { 0 };

	if (rpc_decode(ctx, google_protobuf_Empty_fields, &req) < 0)
		return;
	rpc_reply(ctx, google_protobuf_Empty_fields, &r);
	info("shutdown requested by the host");
	conn_flush(ctx->conn, 1000);
	if (sandbox_poweroff)
		sandbox_poweroff();
}

/* One of the pod's /etc files in the guest's tmpfs, for every container to bind. */
static int pod_file(const char *name, const char *text, const char *nl)
{
	char path[64];
	int fd;
	ssize_t a, b;

	kfmt(path, sizeof(path), "%s/%s", POD_ETC_DIR, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	a = write(fd, text, strlen(text));
	b = write(fd, nl, strlen(nl));
	close(fd);
	return a < 0 || b < 0 ? -1 : 0;
}

static int pod_files(const kuasar_sandbox_v1_SetHostnameRequest *req)
{
	if ((mkdir("/run/kuasar", 0755) < 0 && errno != EEXIST) ||
	    (mkdir("/run/kuasar/pod", 0711) < 0 && errno != EEXIST) ||
	    (mkdir(POD_ETC_DIR, 0755) < 0 && errno != EEXIST) ||
	    pod_file("hostname", req->hostname, "\n") < 0 ||
	    (req->has_hosts && pod_file("hosts", req->hosts, "") < 0) ||
	    (req->has_resolv_conf && pod_file("resolv.conf", req->resolv_conf, "") < 0))
		return -1;
	return 0;
}

static void sb_set_hostname(struct rpc_ctx *ctx)
{
	static kuasar_sandbox_v1_SetHostnameRequest req;
	google_protobuf_Empty r = { 0 };
	size_t len;

	memset(&req, 0, sizeof(req));
	if (rpc_decode(ctx, kuasar_sandbox_v1_SetHostnameRequest_fields, &req) < 0)
		return;
	len = strlen(req.hostname);
	if (!len) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT, "hostname: empty");
		return;
	}
	if (sethostname(req.hostname, len) < 0) {
		rpc_error(ctx, RPC_INVALID_ARGUMENT, "sethostname `%s`: errno %d", req.hostname,
		          errno);
		return;
	}
	if (req.pod_files && pod_files(&req) < 0) {
		rpc_error(ctx, RPC_INTERNAL, "the pod's files in %s: %s", POD_ETC_DIR,
		          err_str(errno));
		return;
	}
	debug("hostname set to %s%s", req.hostname,
	      req.pod_files ? ", the pod's files written" : "");
	rpc_reply(ctx, google_protobuf_Empty_fields, &r);
}

static void sb_set_sysctls(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_SetSysctlsRequest req;
	google_protobuf_Empty r = { 0 };

	memset(&req, 0, sizeof(req));
	if (rpc_decode(ctx, kuasar_sandbox_v1_SetSysctlsRequest_fields, &req) < 0)
		return;
	for (pb_size_t i = 0; i < req.sysctls_count; i++) {
		const kuasar_sandbox_v1_Sysctl *s = &req.sysctls[i];

		if (sysctl_write(s->name, s->value) < 0) {
			int e = errno;

			rpc_error(ctx, RPC_INVALID_ARGUMENT, "sysctl %s=%s: %s", s->name, s->value,
			          e == EINVAL   ? "not a sysctl name, or a value it refuses"
			          : e == ENOENT ? "no such sysctl in the VM's kernel"
			                        : err_str(e));
			return;
		}
	}
	info("%u sysctls set", (unsigned)req.sysctls_count);
	rpc_reply(ctx, google_protobuf_Empty_fields, &r);
}

static void sb_set_pod_resources(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_SetPodResourcesRequest req;
	google_protobuf_Empty r = { 0 };
	const char *what = "";

	memset(&req, 0, sizeof(req));
	if (rpc_decode(ctx, kuasar_sandbox_v1_SetPodResourcesRequest_fields, &req) < 0)
		return;
	if (cgroup_pod_limits(req.cpu_quota, req.cpu_period, req.memory_max, &what) < 0) {
		rpc_error(ctx, errno == EINVAL ? RPC_INVALID_ARGUMENT : RPC_INTERNAL,
		          "pod cgroup %s: %s", what, err_str(errno));
		return;
	}
	info("pod limits: cpu %lld/%llu, memory %llu", (long long)req.cpu_quota,
	     (unsigned long long)req.cpu_period, (unsigned long long)req.memory_max);
	rpc_reply(ctx, google_protobuf_Empty_fields, &r);
}

static void sb_get_events(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_GetEventsRequest req;
	struct rpc_pending sub;

	if (rpc_decode(ctx, kuasar_sandbox_v1_GetEventsRequest_fields, &req) < 0)
		return;
	rpc_defer(ctx, &sub);
	events_subscribe(&sub);
}

static const struct rpc_method sandbox_methods[] = {
	{ "Check", sb_check },
	{ "SyncClock", sb_sync_clock },
	{ "AddEntropy", sb_add_entropy },
	{ "MountShare", sb_mount_share },
	{ "GetEvents", sb_get_events },
	{ "Shutdown", sb_shutdown },
	{ "SetHostname", sb_set_hostname },
	{ "SetupNetwork", sb_setup_network },
	{ "SetSysctls", sb_set_sysctls },
	{ "PortForward", portfwd_open },
	{ "SetPodResources", sb_set_pod_resources },
};

const struct rpc_service sandbox_service = {
	"kuasar.sandbox.v1.Sandbox",
	sandbox_methods,
	sizeof(sandbox_methods) / sizeof(sandbox_methods[0]),
};
