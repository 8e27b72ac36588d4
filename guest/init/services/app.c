/* Appliances. A disk whose virtio serial is "kuasar-app" holds an OCI bundle as EROFS:
 * config.json, rootfs/ and optionally `ready` ("tcp:PORT", "http:PORT[/PATH]" or
 * "log:PATTERN", match.h). At boot the init mounts it read-only as the lower layer of an
 * overlay on a tmpfs (so a clone's writes live in its own private memory and never reach the
 * image), runs it as container "app", and watches for readiness: a connect to the port on
 * loopback every 10 ms (with an HTTP GET for http:), or each line of the app's output, which
 * is copied to the console, against the pattern. Check reports the state; the host saves a
 * template once it reads READY. */
#include "services/app.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/fmt.h"
#include "core/klog.h"
#include "core/match.h"
#include "core/sys.h"
#include "runtime/container.h"
#include "services/disk.h"

#define APP_SERIAL "kuasar-app"
#define APP_DIR "/run/kuasar/app"
#define APP_ID "app"
#define APP_LOG APP_DIR "/log"
#define PROBE_MS 10

enum ready_kind { READY_START, READY_TCP, READY_HTTP, READY_LOG };

static struct {
	kuasar_sandbox_v1_AppStatus st;
	enum ready_kind kind;
	unsigned port;
	char pattern[256]; /* log: the pattern; http: the path */
	char line[512];
	size_t line_len;
	int console;
	unsigned ticks, probe_ticks, probe_sent;
	struct watch log_w, timer_w, probe_w;
} app; /* in .bss: app_boot sets the fds before anything reads them */

static void app_failed(const char *what, int errnum)
{
	app.st.state = kuasar_sandbox_v1_AppStatus_State_FAILED;
	if (errnum)
		kfmt(app.st.detail, sizeof(app.st.detail), "%s: %s", what, err_str(errnum));
	else
		kfmt(app.st.detail, sizeof(app.st.detail), "%s", what);
	err("app: %s", app.st.detail);
}

static void stop_watch(struct watch *w)
{
	if (w->fd < 0)
		return;
	ev_del(w);
	close(w->fd);
	w->fd = -1;
}

static void app_ready(const char *why)
{
	if (app.st.state != kuasar_sandbox_v1_AppStatus_State_STARTING)
		return;
	app.st.state = kuasar_sandbox_v1_AppStatus_State_READY;
	app.st.ready_ns = mono_now();
	kfmt(app.st.detail, sizeof(app.st.detail), "%s", why);
	info("app: ready (%s) %llu us after its start", why,
	     (unsigned long long)(app.st.ready_ns - app.st.started_ns) / 1000);
	stop_watch(&app.timer_w);
	stop_watch(&app.probe_w);
}

/* An app that exited is reported so, with its status, whether or not it was ready. */
static void app_refresh(void)
{
	struct ctr_state cs;
	char e[64];

	if (app.st.state != kuasar_sandbox_v1_AppStatus_State_STARTING &&
	    app.st.state != kuasar_sandbox_v1_AppStatus_State_READY)
		return;
	if (ctr_state(APP_ID, "", &cs, e, sizeof(e)) || cs.status != PS_STOPPED)
		return;
	if (app.st.state == kuasar_sandbox_v1_AppStatus_State_STARTING)
		kfmt(app.st.detail, sizeof(app.st.detail),
		     "exited with status %u before it was ready", cs.exit_status);
	app.st.state = kuasar_sandbox_v1_AppStatus_State_EXITED;
	app.st.exit_status = cs.exit_status;
	stop_watch(&app.timer_w);
}

/* One probe in flight at a time: a nonblocking connect to the port on loopback, IPv4 and
 * IPv6 on alternate ticks. tcp: ready once connected. http: a GET of the path is sent and
 * the app is ready once its whole answer, starting with "HTTP/", has been read (which also
 * warms the request path up before a snapshot); an answer that does not end within 5 s is
 * given up and retried. */
static void on_probe(struct watch *w, uint32_t events)
{
	char buf[300];
	int e = 0, n;
	socklen_t len = sizeof(e);

	(void)events;
	if (app.probe_sent) { /* 1: sent; 2: the answer began with HTTP/ */
		n = (int)read(w->fd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			return;
		if (n >= 5 && app.probe_sent == 1 && !memcmp(buf, "HTTP/", 5))
			app.probe_sent = 2;
		if (n > 0)
			return;
		/* The whole answer read: the app is done with the request before a snapshot. */
		if (n == 0 && app.probe_sent == 2)
			app_ready("it answered HTTP");
		stop_watch(w);
		return;
	}
	if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e) {
		stop_watch(w);
	} else if (app.kind == READY_TCP) {
		app_ready("its port accepts");
	} else {
		n = (int)kfmt(buf, sizeof(buf), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n",
		              app.pattern);
		app.probe_sent = write(w->fd, buf, (size_t)n) == n;
		if (!app.probe_sent || ev_mod(w, EPOLLIN) < 0)
			stop_watch(w);
	}
}

static void probe(void)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(app.port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(app.port) };
	int v6 = app.ticks++ & 1, rc;

	if (app.probe_w.fd >= 0 && ++app.probe_ticks < 5000 / PROBE_MS)
		return;
	stop_watch(&app.probe_w);
	app.probe_ticks = app.probe_sent = 0;
	a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a6.sin6_addr = in6addr_loopback;
	app.probe_w.fd =
	    sys_socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	app.probe_w.fn = on_probe;
	if (app.probe_w.fd < 0)
		return;
	rc = v6 ? connect(app.probe_w.fd, (struct sockaddr *)&a6, sizeof(a6))
	        : connect(app.probe_w.fd, (struct sockaddr *)&a4, sizeof(a4));
	if ((rc < 0 && errno != EINPROGRESS) || ev_add(&app.probe_w, EPOLLOUT) < 0) {
		close(app.probe_w.fd);
		app.probe_w.fd = -1;
	}
}

static void on_timer(struct watch *w, uint32_t events)
{
	uint64_t n;

	(void)events;
	(void)!read(w->fd, &n, sizeof(n));
	app_refresh();
	if (app.kind == READY_TCP || app.kind == READY_HTTP)
		probe();
}

static void check_line(void)
{
	app.line[app.line_len] = '\0';
	app.line_len = 0;
	if (re_match(app.pattern, app.line) == 1)
		app_ready("its output matched");
}

/* The app's stdout and stderr: copied to the console (dropped rather than blocking PID 1
 * when the console is full) and matched line by line while it is not ready. */
static void on_log(struct watch *w, uint32_t events)
{
	char buf[4096];
	ssize_t r;

	(void)events;
	while ((r = read(w->fd, buf, sizeof(buf))) > 0) {
		if (app.console >= 0)
			(void)!write(app.console, buf, (size_t)r);
		/* Lines are put together only while a pattern waits for one. */
		for (ssize_t i = 0;
		     app.kind == READY_LOG &&
		     app.st.state == kuasar_sandbox_v1_AppStatus_State_STARTING && i < r;
		     i++) {
			if (buf[i] != '\n' && app.line_len < sizeof(app.line) - 1)
				app.line[app.line_len++] = buf[i];
			else if (buf[i] == '\n' || app.line_len == sizeof(app.line) - 1)
				check_line();
		}
	}
	if (r == 0) /* every writer closed: the app and whatever it left running are gone */
		stop_watch(w);
}

static void on_created(const struct rpc_pending *reply, pid_t pid, const char *e)
{
	struct itimerspec its = { .it_interval.tv_nsec = PROBE_MS * 1000000,
		                  .it_value.tv_nsec = PROBE_MS * 1000000 };
	char why[128];

	(void)reply;
	if (e) {
		app_failed(e, 0);
		return;
	}
	if (ctr_start(APP_ID, "", &pid, why, sizeof(why))) {
		app_failed(why, 0);
		return;
	}
	app.st.started_ns = mono_now();
	info("app: started, pid %d", pid);
	if (app.kind == READY_START) {
		app_ready("it started");
		return;
	}
	app.timer_w.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	app.timer_w.fn = on_timer;
	if (app.timer_w.fd < 0 || timerfd_settime(app.timer_w.fd, 0, &its, NULL) < 0 ||
	    ev_add(&app.timer_w, EPOLLIN) < 0)
		app_failed("the readiness timer", errno);
}

/* The app disk's device, found by its serial. */
static int find_disk(char *dev, size_t n)
{
	for (char c = 'a'; c <= 'z'; c++) {
		char path[40], serial[64];
		int len;

		kfmt(path, sizeof(path), "/sys/block/vd%c/serial", c);
		len = boot_read_file(path, serial, sizeof(serial));
		if (len < 0)
			continue;
		if (len && serial[len - 1] == '\n')
			serial[len - 1] = '\0';
		if (!strcmp(serial, APP_SERIAL)) {
			kfmt(dev, n, "/dev/vd%c", c);
			return 0;
		}
	}
	return -1;
}

static int failed(const char *what)
{
	app_failed(what, errno);
	return -1;
}

static int mount_bundle(const char *dev)
{
	static const char *const dirs[] = { "/run/kuasar", APP_DIR, APP_DIR "/bundle",
		                            APP_DIR "/bundle/rootfs" };
	const char *what;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		mkdir(dirs[i], 0755);
	what = disk_overlay(dev, APP_DIR, "lower/rootfs", "bundle/rootfs");
	if (what)
		return failed(what);
	if (symlink("../lower/config.json", APP_DIR "/bundle/config.json") < 0)
		return failed("link the app's config.json");
	return 0;
}

/* <bundle>/ready: "tcp:PORT", "http:PORT[/PATH]", "log:PATTERN", or none (ready once
 * started). */
static int read_ready(void)
{
	char buf[300];
	int len = boot_read_file(APP_DIR "/lower/ready", buf, sizeof(buf));
	const char *end;

	if (len < 0)
		return errno == ENOENT ? 0 : failed("read the readiness spec");
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (!strncmp(buf, "tcp:", 4) || !strncmp(buf, "http:", 5)) {
		app.kind = buf[0] == 't' ? READY_TCP : READY_HTTP;
		app.port = (unsigned)parse_u64(buf + (app.kind == READY_TCP ? 4 : 5), &end);
		kfmt(app.pattern, sizeof(app.pattern), "%s", *end ? end : "/");
		if ((!*end || (*end == '/' && app.kind == READY_HTTP)) && app.port &&
		    app.port < 65536)
			return 0;
	} else if (!strncmp(buf, "log:", 4) && len - 4 < (int)sizeof(app.pattern)) {
		kfmt(app.pattern, sizeof(app.pattern), "%s", buf + 4);
		app.kind = READY_LOG;
		if (re_match(app.pattern, "") >= 0)
			return 0;
	}
	app_failed("bad readiness spec (tcp:PORT, http:PORT/PATH or log:PATTERN)", 0);
	return -1;
}

void app_boot(void)
{
	static const struct ctr_stdio io = { .uri = { "", "file://" APP_LOG, "file://" APP_LOG } };
	static const struct ctr_created done = { .fn = on_created };
	char dev[16], e[160];

	app.timer_w.fd = app.probe_w.fd = -1;
	if (find_disk(dev, sizeof(dev)) < 0)
		return;
	app.st.state = kuasar_sandbox_v1_AppStatus_State_STARTING;
	info("app: bundle on %s", dev);
	if (mount_bundle(dev) < 0 || read_ready() < 0)
		return;
	app.console = open("/dev/console", O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (mkfifo(APP_LOG, 0600) < 0) {
		app_failed("make the app's log pipe", errno);
		return;
	}
	app.log_w.fd = open(APP_LOG, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	app.log_w.fn = on_log;
	if (app.log_w.fd < 0 || ev_add(&app.log_w, EPOLLIN) < 0)
		app_failed("watch the app's log pipe", errno);
	else if (ctr_create(APP_ID, APP_DIR "/bundle", &io, &done, e, sizeof(e)))
		app_failed(e, 0);
}

void app_set_resolv(const char *text)
{
	int dir, fd = -1;

	if (app.st.state == kuasar_sandbox_v1_AppStatus_State_NONE)
		return;
	/* The app's root is ours to write, but its links are the app's: none is followed. */
	dir = open(APP_DIR "/bundle/rootfs/etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir >= 0) {
		unlinkat(dir, "resolv.conf", 0);
		fd = openat(dir, "resolv.conf",
		            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		close(dir);
	}
	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		warn("app: /etc/resolv.conf not written: %s", err_str(errno));
	if (fd >= 0)
		close(fd);
}

void app_status(kuasar_sandbox_v1_AppStatus *out)
{
	app_refresh();
	*out = app.st;
}
