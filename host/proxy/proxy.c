/* kuasar-sandboxer proxy: one sandbox's data plane, started by the daemon per sandbox.
 *
 * It boots the VM (keeping the VMM as its child), prepares the guest, reports the result
 * on fd 3, then serves the sandbox's task socket over the guest link and forwards the
 * guest's task events to containerd until the VMM exits; it exits with the VMM's status
 * (also left in <dir>/vmm-exit for a daemon that re-adopted it and cannot wait for it).
 * SIGTERM asks the guest to power off. It runs in its own session and outlives the daemon,
 * so containerd's connections to the task socket survive a daemon restart. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/log.h"
#include "base/util.h"
#include "net/podnet.h"
#include "proxy/bundle.h"
#include "proxy/config.h"
#include "proxy/event_filter.h"
#include "proxy/events_fwd.h"
#include "proxy/glink.h"
#include "proxy/guestnet.h"
#include "proxy/hostns.h"
#include "proxy/podsnap.h"
#include "proxy/pooled.h"
#include "proxy/portfwd.h"
#include "proxy/proxy.h"
#include "proxy/proxy_result.h"
#include "proxy/resize.h"
#include "proxy/rootdisk.h"
#include "proxy/sysctl.h"
#include "proxy/taskproxy.h"
#include "rpc/agent.h"
#include "rpc/timestamp.h"
#include "sandbox.pb-c.h"
#include "vm/appliance.h"
#include "vm/launch.h"
#include "vm/template.h"
#include "vm/vm.h"
#include "vm/vmsnap.h"

#define RESULT_FD 3
#define GONE_LINGER_MS 60000
/* After the last Delete: a call racing it (containerd's exit handler and a RemoveContainer
 * both delete) still gets its answer rather than a closed socket. */
#define GONE_IDLE_MS 1000
#define RELINK_WAIT_MS 300
/* Relinking: each attempt is given RELINK_TRY_MS, the next one starts RELINK_RETRY_MS later,
 * and after RELINK_FOR_NS the link is given up (the VMM's exit or the daemon ends it). */
#define RELINK_TRY_MS 500
#define RELINK_RETRY_MS 20
#define RELINK_FOR_NS (2 * 1000000000LL)
#define EVENT_WARN_NS (10 * 1000000000LL)

struct proxy {
	struct sb_config cfg;
	struct loop loop;
	struct vm vm;
	struct glink link;
	struct taskproxy tp;
	struct portfwd pf;      /* port-forward from the pod netns (not for host network) */
	struct resize rs;       /* in-place resize from the daemon */
	struct podsnap snap;    /* snapshots for forks (kuasar-ctl snapshot POD) */
	const char *builder_cg; /* the daemon's cgroup for work not charged to the pod */
	struct events_fwd *events;
	struct loop_watch vmm_w, sig_w, con_w;
	struct loop_timer linger; /* after the VMM: how long its tasks are still answered */
	uint32_t events_gid;
	unsigned events_refused; /* guest events that failed event_check */
	int64_t refused_warn_ns;
	const char *netns;     /* the pod's (CNI's) netns, NULL for host network */
	const char *appliance; /* the appliance the VM runs, NULL for none */
	const char *snapshot;  /* the snapshot the VM carries on from, NULL for none */
	struct pod_net net;
	struct vm_nic nics[VM_MAX_NICS];
	char net_desc[512];
	int64_t net_ns[2]; /* host side (netns, taps, filters), guest side (SetupNetwork) */
	int exit_status;
	int stopping;               /* the guest was asked to power off */
	struct loop_timer relink;   /* the link broke: made again unless the VMM exits first */
	struct loop_watch relink_w; /* a vsock connect in progress (fd -1: none) */
	int64_t relink_until;       /* while relinking: when to give up; 0 otherwise */
	unsigned vm_mib;            /* the VM's memory: containers' limits are capped below it */
	struct phases start;        /* where the sandbox start's time went (logged once) */
	struct pod_etc etc;         /* the pod's /etc files, for the guest to keep (vm.pod_etc) */
	int pooled;                 /* a pooled VM, handed to this sandbox (proxy --pool) */
	int pool_ns;                /* a pooled VM's: the netns its taps wait in */
};

static void own_resize(struct taskproxy *tp, const struct tp_call *call, const uint8_t *payload,
                       size_t len, void *arg)
{
	resize_on_call(tp, call, payload, len, &((struct proxy *)arg)->rs);
}

static void own_snapshot(struct taskproxy *tp, const struct tp_call *call, const uint8_t *payload,
                         size_t len, void *arg)
{
	podsnap_on_call(tp, call, payload, len, &((struct proxy *)arg)->snap);
}

/* The proxy's own service (PROXY_SERVICE on the task socket), by method. */
static const struct {
	const char *method;
	void (*fn)(struct taskproxy *tp, const struct tp_call *call, const uint8_t *payload,
	           size_t len, void *arg);
} own_calls[] = {
	{ "Resize", own_resize },
	{ "Snapshot", own_snapshot },
};

static void on_own(struct taskproxy *tp, const struct tp_call *call, const char *method,
                   const uint8_t *payload, size_t len, void *arg)
{
	for (size_t i = 0; i < sizeof(own_calls) / sizeof(own_calls[0]); i++)
		if (!strcmp(method, own_calls[i].method)) {
			own_calls[i].fn(tp, call, payload, len, arg);
			return;
		}
	taskproxy_answer(tp, call, RPC_UNIMPLEMENTED, NULL, 0, "no such method");
}

/* Resize calls from the daemon (a cold-booted VM has a balloon: qemu.c; a restored one's RAM
 * is its template's file) and snapshots. */
static void own_setup(struct proxy *p)
{
	p->rs.loop = &p->loop;
	p->rs.tp = &p->tp;
	p->rs.link = &p->link;
	p->rs.balloon = !strcmp(p->vm.boot_mode, "cold") ? &p->vm.qmp : NULL;
	p->rs.boot_mib = p->vm_mib;
	p->rs.vm_mib = &p->tp.bundles.vm_mib;
	p->snap.loop = &p->loop;
	p->snap.tp = &p->tp;
	p->snap.link = &p->link;
	p->snap.vm = &p->vm;
	p->snap.run_dir = p->cfg.run_dir;
	p->snap.cgroup = p->builder_cg ? p->builder_cg : "";
	p->snap.result_fd = -1;
	p->tp.on_own = on_own;
	p->tp.own_arg = p;
}

/* The start's result for the daemon; a pooled VM's first one (keep) leaves fd 3 open for
 * the take message and the second. */
static void send_result_as(const struct proxy_result *r, int keep)
{
	char buf[PROXY_RESULT_MAX];

	write_all(RESULT_FD, buf, proxy_result_format(r, buf, sizeof(buf)));
	if (!keep)
		close(RESULT_FD);
}

static void send_result(const struct proxy_result *r)
{
	send_result_as(r, 0);
}

static int fail(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int errnum, const char *fmt, ...)
{
	struct proxy_result r = { .errnum = errnum };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.message, sizeof(r.message), fmt, ap);
	va_end(ap);
	send_result(&r);
	return 1;
}

static void memory_note(char *out, size_t n);

/* A guest event goes to containerd only as event_check lets it (event_filter.h); the rest
 * are dropped, with a warning at most every EVENT_WARN_NS. */
static void forward_event(struct proxy *p, const char *topic, const Google__Protobuf__Any *any,
                          int64_t ts)
{
	struct event_checked ok;
	char why[256];

	if (event_check(topic, any->type_url, any->value.data, any->value.len, taskproxy_owns,
	                &p->tp, &ok, why, sizeof(why)) < 0) {
		p->events_refused++;
		if (mono_ns() - p->refused_warn_ns >= EVENT_WARN_NS) {
			log_warn("guest event dropped (%u so far): %s", p->events_refused, why);
			p->refused_warn_ns = mono_ns();
		}
		return;
	}
	if (!strcmp(topic, "/tasks/oom")) {
		char note[512];

		memory_note(note, sizeof(note));
		log_warn("container %s was OOM-killed inside the VM%s", ok.container_id, note);
	}
	events_fwd_publish(p->events, p->tp.ns[0] ? p->tp.ns : "k8s.io", topic, any->type_url,
	                   ok.value, ok.len, ts);
	free(ok.value);
}

static void on_event(void *owner, uintptr_t tag, const struct ttrpc_header *h, const uint8_t *data)
{
	struct proxy *p = owner;
	Kuasar__Sandbox__V1__Event *ev;
	int64_t ts;

	if (h->type == TTRPC_RESPONSE) {
		p->events_gid = 0; /* the guest ended the subscription */
		return;
	}
	if (h->type != TTRPC_DATA || !data)
		return;
	log_context("a guest event");
	ev = kuasar__sandbox__v1__event__unpack(NULL, h->length, data);
	if (!ev)
		return;
	if (ev->dropped)
		log_warn("the guest dropped %u events", ev->dropped);
	/* The guest's clock is its own business; a time out of range becomes ours. */
	if (ts_to_ns(ev->timestamp, &ts) < 0)
		ts = real_ns();
	if (ev->event)
		forward_event(p, ev->topic, ev->event, ts);
	kuasar__sandbox__v1__event__free_unpacked(ev, NULL);
}

static void subscribe_events(struct proxy *p)
{
	p->events_gid = glink_open(&p->link, on_event, p, 0);
	if (p->events_gid && glink_request(&p->link, p->events_gid, TTRPC_FLAG_REMOTE_CLOSED,
	                                   AGENT_SANDBOX_SERVICE, "GetEvents", NULL, 0) < 0)
		p->events_gid = 0;
}

/* The link broke while the VMM runs (a chardev reset): calls in flight fail, then the
 * link comes back and the event subscription with it. */
static int vmm_gone(struct proxy *p);
static void vmm_exited(struct loop_watch *w, uint32_t events);
static void vm_gone(struct proxy *p);
static void write_exit(struct proxy *p);
static void net_detach(struct proxy *p);

static void relink_drop(struct proxy *p)
{
	if (p->relink_w.fd >= 0) {
		loop_del(&p->loop, &p->relink_w);
		close(p->relink_w.fd);
		p->relink_w.fd = -1;
	}
}

/* An attempt failed: another one soon, or none once RELINK_FOR_NS is spent. */
static void relink_again(struct proxy *p, const kerr_t *err)
{
	if (mono_ns() < p->relink_until) {
		loop_timer_arm(&p->loop, &p->relink, RELINK_RETRY_MS);
		return;
	}
	p->relink_until = 0;
	log_warn("guest link lost and not re-established: %s", err->msg);
}

static void relinked(struct proxy *p, int fd)
{
	kerr_t err;

	p->relink_until = 0;
	if (glink_start(&p->link, &p->loop, fd, &err) < 0) {
		close(fd);
		log_warn("guest link: %s", err.msg);
		return;
	}
	subscribe_events(p);
	log_info("guest link re-established");
}

/* The vsock connect in progress is done, one way or the other. */
static void relink_ready(struct loop_watch *w, uint32_t events)
{
	struct proxy *p = container_of(w, struct proxy, relink_w);
	int fd = w->fd;
	kerr_t err;

	loop_del(&p->loop, w);
	w->fd = -1;
	loop_timer_cancel(&p->loop, &p->relink);
	if (vm_link_finish(&p->vm, fd, &err) < 0) {
		close(fd);
		relink_again(p, &err);
		return;
	}
	relinked(p, fd);
}

/* The link broke and the VMM still runs RELINK_WAIT_MS later: its calls in flight fail,
 * and the link is made again, one attempt at a time, never waiting in place. Also each
 * attempt's bound. */
static void relink(struct loop_timer *t)
{
	struct proxy *p = container_of(t, struct proxy, relink);
	kerr_t err;
	int fd, connecting;

	if (vmm_gone(p)) {
		vmm_exited(&p->vmm_w, EPOLLIN);
		return;
	}
	if (p->relink_w.fd >= 0) {
		relink_drop(p);
		kerr_set(&err, ETIMEDOUT, "no vsock connection in %d ms", RELINK_TRY_MS);
		relink_again(p, &err);
		return;
	}
	if (!p->relink_until) {
		taskproxy_link_down(&p->tp);
		p->relink_until = mono_ns() + RELINK_FOR_NS;
	}
	fd = vm_link_begin(&p->vm, &connecting, &err);
	if (fd >= 0 && !connecting) {
		relinked(p, fd);
		return;
	}
	p->relink_w.fd = fd;
	p->relink_w.fn = relink_ready;
	if (fd < 0 || loop_add(&p->loop, &p->relink_w, EPOLLOUT, &err) < 0) {
		if (fd >= 0)
			close(fd);
		p->relink_w.fd = -1;
		relink_again(p, &err);
		return;
	}
	loop_timer_arm(&p->loop, &p->relink, RELINK_TRY_MS);
}

/* A guest that powers off closes the link just before its VMM exits: the VMM's exit (its
 * pidfd, watched) is given the time to come first, so the calls in flight get the answers
 * of a gone VM. */
static void link_down(struct glink *l, void *arg)
{
	struct proxy *p = arg;

	p->events_gid = 0;
	portfwd_link_down(&p->pf);
	if (vmm_gone(p)) {
		vmm_exited(&p->vmm_w, EPOLLIN);
		return;
	}
	if (p->stopping)
		return; /* powering off: the exit comes, or the daemon's stop timeout kills it */
	p->relink.fn = relink;
	if (!p->relink_until) /* not while relinking already */
		loop_timer_arm(&p->loop, &p->relink, RELINK_WAIT_MS);
}

static void vmm_exited(struct loop_watch *w, uint32_t events)
{
	struct proxy *p = container_of(w, struct proxy, vmm_w);
	siginfo_t si = { 0 };
	int st;

	loop_timer_cancel(&p->loop, &p->relink);
	relink_drop(p);
	if (p->vm.exited) { /* reaped already (a reconnect attempt noticed the death) */
		st = p->vm.exit_status;
		p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	} else {
		if (waitid(P_PID, (id_t)p->vm.pid, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
			return;
		p->exit_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	}
	vm_gone(p);
}

static void linger_over(struct loop_timer *t)
{
	struct proxy *p = container_of(t, struct proxy, linger);

	log_warn("containerd did not delete %u tasks of the exited VM in %d s; exiting",
	         p->tp.n_ctrs, GONE_LINGER_MS / 1000);
	p->loop.stop = 1;
}

static void idle_over(struct loop_timer *t)
{
	container_of(t, struct proxy, linger)->loop.stop = 1;
}

/* The VM's tasks all deleted: a stop we were asked for ends now; a VM that died lingers a
 * moment for calls racing the last Delete. */
static void tasks_deleted(struct taskproxy *tp, void *arg)
{
	struct proxy *p = arg;

	if (p->stopping) {
		p->loop.stop = 1;
		return;
	}
	p->linger.fn = idle_over;
	loop_timer_arm(&p->loop, &p->linger, GONE_IDLE_MS);
}

/* The VMM exited: what is left of the sandbox goes (network, the link), and the task
 * socket keeps answering for the VM's containers, as exited ones, until containerd has
 * deleted them (a shim outlives its processes the same way), or a while has passed. */
static void vm_gone(struct proxy *p)
{
	if (p->tp.gone)
		return;
	if (p->vmm_w.fd >= 0)
		loop_del(&p->loop, &p->vmm_w); /* readable for good now */
	write_exit(p);
	portfwd_stop(&p->pf);
	net_detach(p);
	glink_stop(&p->link);
	log_info("VMM %d exited with status %d; %u containers to report as exited", p->vm.pid,
	         p->exit_status, p->tp.n_ctrs);
	p->linger.fn = linger_over;
	loop_timer_arm(&p->loop, &p->linger, GONE_LINGER_MS);
	p->tp.on_idle = tasks_deleted; /* may be called at once, and re-arm linger */
	p->tp.arg = p;
	taskproxy_vm_gone(&p->tp);
}

/* Whether the VMM has exited, by a look at its pidfd (never a wait). */
static int vmm_gone(struct proxy *p)
{
	struct pollfd pf = { .fd = p->vm.pidfd, .events = POLLIN };

	return p->vm.exited || poll(&pf, 1, 0) == 1;
}

static void on_answer(void *owner, uintptr_t tag, const struct ttrpc_header *h, const uint8_t *data)
{
	/* The guest powers off after answering Shutdown; the VMM's exit ends the proxy. */
}

static void on_signal(struct loop_watch *w, uint32_t events)
{
	struct proxy *p = container_of(w, struct proxy, sig_w);
	struct signalfd_siginfo si;
	uint32_t gid;

	if (read(w->fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (p->tp.gone) {
		log_info("signal %u: the VM is gone; exiting", si.ssi_signo);
		p->loop.stop = 1;
		return;
	}
	log_info("signal %u: asking the guest to power off", si.ssi_signo);
	p->stopping = 1;
	if (p->tp.disks)
		rootdisks_closing(p->tp.disks);
	gid = glink_open(&p->link, on_answer, p, 0);
	if (!gid ||
	    glink_request(&p->link, gid, 0, AGENT_SANDBOX_SERVICE, "Shutdown", NULL, 0) < 0) {
		log_warn("guest link down: stopping the VMM by force");
		kill(p->vm.pid, SIGKILL);
	}
}

static void on_console(struct loop_watch *w, uint32_t events)
{
	struct proxy *p = container_of(w, struct proxy, con_w);

	vm_console_pump(&p->vm);
	if (p->vm.con_fd < 0) {
		loop_del(&p->loop, w);
		w->fd = -1;
	}
}

static int watch_signals(struct proxy *p, kerr_t *err)
{
	static const int sigs[] = { SIGTERM, SIGINT, 0 };

	p->sig_w.fd = signalfd_for(sigs);
	if (p->sig_w.fd < 0)
		return kerr_sys(err, "signalfd");
	p->sig_w.fn = on_signal;
	return loop_add(&p->loop, &p->sig_w, EPOLLIN, err);
}

/* A cgroup file's text with newlines as spaces, "" if it cannot be read. */
static void cg_read(const char *dir, const char *name, char *out, size_t n)
{
	_cleanup_free_ char *text = NULL;
	char path[KPATH_SIZE];

	out[0] = '\0';
	if (fmt_path(path, sizeof(path), "%s/%s", dir, name) < 0 ||
	    read_file(path, &text, NULL, 1 << 16, NULL) < 0)
		return;
	for (char *c = text; *c; c++)
		if (*c == '\n')
			*c = ' ';
	fmt_msg(out, n, "%s", text);
}

/* This process's memory cgroup (the sandbox's, within the pod's): its figures for the log. */
static void memory_note(char *out, size_t n)
{
	_cleanup_free_ char *cg = NULL;
	char dir[KPATH_SIZE], a[256], b[64], *at, *nl;
	int v2;

	out[0] = '\0';
	if (read_file("/proc/self/cgroup", &cg, NULL, 8192, NULL) < 0)
		return;
	v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
	at = strstr(cg, v2 ? "0::/" : ":memory:/");
	if (!at)
		return;
	at = strchr(at + 1, ':') + 1;
	if ((nl = strchr(at, '\n')))
		*nl = '\0';
	if (fmt_path(dir, sizeof(dir), "/sys/fs/cgroup%s%s", v2 ? "" : "/memory", at) < 0)
		return;
	cg_read(dir, v2 ? "memory.events" : "memory.failcnt", a, sizeof(a));
	cg_read(dir, v2 ? "memory.current" : "memory.usage_in_bytes", b, sizeof(b));
	fmt_msg(out, n, " (its cgroup %s: %s %s, usage %s)", dir,
	        v2 ? "memory.events" : "limit hits", a, b);
}

/* A Kill the guest does not answer: it is stuck, and the VM goes so the kill ends. */
static void guest_stuck(struct taskproxy *tp, const char *why, void *arg)
{
	struct proxy *p = arg;
	char note[512];

	memory_note(note, sizeof(note));
	log_warn("%s: stopping the VM (SIGKILL to VMM %d); its containers exit with 137%s", why,
	         p->vm.pid, note);
	kill(p->vm.pid, SIGKILL);
}

static void qmp_event(void *arg, const char *event, json_object *data)
{
	struct proxy *p = arg;

	log_debug("QMP event %s", event);
	if (p->tp.disks)
		rootdisks_qmp_event(p->tp.disks, event, data);
}

/* From the ready VM to a served task socket. */
static int serve(struct proxy *p, kerr_t *err)
{
	char sock[KPATH_SIZE];
	kerr_t pe;

	p->vm.qmp.on_event = qmp_event;
	p->vm.qmp.event_arg = p;
	if (qmp_attach(&p->vm.qmp, &p->loop, err) < 0)
		return kerr_wrap(err, "QMP");

	p->events = events_fwd_new(&p->loop, p->cfg.containerd_ttrpc);
	p->link.on_down = link_down;
	p->link.down_arg = p;
	if (glink_start(&p->link, &p->loop, p->vm.link.fd, err) < 0)
		return -1;
	p->vm.link.fd = -1; /* the glink owns it now */
	if (fmt_path(sock, sizeof(sock), "%s/task.sock", p->vm.paths.dir) < 0)
		return kerr_sys(err, "task socket in %s", p->vm.paths.dir);
	if (taskproxy_start(&p->tp, &p->loop, &p->link, sock, p->vm.paths.shared, err) < 0)
		return -1;
	p->tp.bundles.vm_mib = p->vm_mib;
	p->tp.on_stuck = guest_stuck;
	p->tp.arg = p;
	own_setup(p);
	if (p->netns && portfwd_start(&p->pf, &p->loop, &p->link, p->netns, &pe) < 0)
		log_warn("port-forward unavailable: %s", pe.msg);
	p->vmm_w.fd = p->vm.pidfd;
	p->vmm_w.fn = vmm_exited;
	if (loop_add(&p->loop, &p->vmm_w, EPOLLIN, err) < 0 || watch_signals(p, err) < 0)
		return -1;
	p->con_w.fd = p->vm.con_fd;
	p->con_w.fn = on_console;
	if (p->con_w.fd >= 0 && loop_add(&p->loop, &p->con_w, EPOLLIN, err) < 0)
		return -1;
	subscribe_events(p);
	phases_mark(&p->start, "serve");
	return 0;
}

/* pooled: the first result of a pooled VM (restored and waiting), which keeps fd 3. */
static void report_ready(const struct proxy *p, int pooled)
{
	struct proxy_result r = { .ok = 1, .vmm_pid = p->vm.pid };

	fmt_msg(r.accel, sizeof(r.accel), "%s", accel_name(p->vm.accel));
	/* a pooled VM's start is its take */
	r.boot_ms = (mono_ns() - (p->pooled ? p->start.t0 : p->vm.t.spawn_ns)) / 1000000;
	fmt_msg(r.boot_mode, sizeof(r.boot_mode), "%s",
	        pooled      ? "pooled"
	        : p->pooled ? "pool"
	                    : p->vm.boot_mode);
	fmt_msg(r.template_key, sizeof(r.template_key), "%s", p->vm.template_key);
	fmt_msg(r.net, sizeof(r.net), "%s", p->net_desc);
	send_result_as(&r, pooled);
}

static void write_exit(struct proxy *p)
{
	char path[KPATH_SIZE], buf[16];
	int n;
	kerr_t err;

	n = snprintf(buf, sizeof(buf), "%d\n", p->exit_status);
	if (fmt_path(path, sizeof(path), "%s/vmm-exit", p->vm.paths.dir) < 0 ||
	    write_file_atomic(path, buf, (size_t)n, &err) < 0)
		log_warn("cannot leave the VMM's exit status for the daemon in %s",
		         p->vm.paths.dir);
}

/* The proxy, and so the VMM it forks, live in the pod's netns: they need only the taps'
 * fds and unix sockets, and whatever reads a pod's network through a process of its cgroup
 * (cadvisor: /proc/PID/net/dev) sees the pod's interfaces, not the host's. */
static void join_pod_netns(struct proxy *p)
{
	kerr_t err;

	if (podnet_join(p->netns, &err) < 0)
		log_warn("staying in the host's network namespace: %s", err.msg);
}

/* The pod netns joined to the VM: a tap per CNI interface, handed to the VMM as its NICs.
 * Host-network pods (no netns) get a VM without a NIC, and say so. */
static int net_attach(struct proxy *p, struct vm_config *vc, kerr_t *err)
{
	int vhost = podnet_vhost_usable();

	if (!p->netns) {
		fmt_msg(p->net_desc, sizeof(p->net_desc),
		        "none: host network (a VM cannot share the host's network stack; the VM "
		        "has no NIC)");
		log_info("%s", p->net_desc);
		return 0;
	}
	p->net_ns[0] = mono_ns();
	if (podnet_attach(p->netns, &p->net, err) < 0)
		return -1;
	p->net_ns[0] = mono_ns() - p->net_ns[0];
	for (unsigned i = 0; i < p->net.n_ifs; i++) {
		p->nics[i].fd = p->net.ifs[i].tap_fd;
		memcpy(p->nics[i].mac, p->net.ifs[i].mac, 6);
		p->nics[i].mtu = p->net.ifs[i].mtu;
	}
	vc->nics = p->nics;
	vc->n_nics = p->net.n_ifs;
	vc->vhost_net = vhost;
	podnet_describe(&p->net, p->net_desc, sizeof(p->net_desc));
	if (!p->net.n_ifs)
		fmt_msg(p->net_desc, sizeof(p->net_desc), "none: no interface in %s", p->netns);
	else
		fmt_msg(p->net_desc + strlen(p->net_desc),
		        sizeof(p->net_desc) - strlen(p->net_desc), " (virtio-net, %s)",
		        vhost ? "vhost-net" : "no vhost-net: userspace");
	log_info("network: %s", p->net_desc);
	join_pod_netns(p);
	return 0;
}

/* A pod annotated with an appliance: its VM is the appliance's (kernel, initrd, disk, size)
 * and is restored from the appliance's snapshot, the app already serving; the pod's
 * containers still run next to it. The snapshot is built on first use for the pod's NIC
 * count. */
static int use_appliance(struct proxy *p, const char *name, struct appliance *a,
                         struct vm_config *vc, kerr_t *err)
{
	char dir[KPATH_SIZE];

	if (fmt_path(dir, sizeof(dir), "%s/%s", p->cfg.appliance_dir, name) < 0)
		return kerr_set(err, ENAMETOOLONG, "appliance %s: path too long", name);
	if (appliance_open(dir, vc, p->cfg.template_memory_dir, a, err) < 0)
		return -1;
	a->store.scratch_taps = podnet_scratch_taps;
	*vc = a->cfg;
	log_info("appliance %s (%s, ready %s)", dir, a->name[0] ? a->name : "?",
	         a->ready[0] ? a->ready : "at start");
	return 0;
}

/* A pod annotated with a snapshot (kuasar-ctl snapshot): its VM is the snapshot's (boot
 * files, size, its parent's containers' root disks) and carries on from the snapshot's
 * moment, made unique as a clone is. Returns the snapshot's lock (held until the VMM maps
 * its memory). */
static int use_snapshot(struct proxy *p, const char *name, struct vm_shape *sh, struct template *t,
                        struct vm_config *vc, kerr_t *err)
{
	struct vm_config base = *vc;
	char mem_dir[KPATH_SIZE];
	int lock;

	if (fmt_path(mem_dir, sizeof(mem_dir), "%s/snapshots", p->cfg.template_memory_dir) < 0)
		return kerr_set(err, ENAMETOOLONG, "snapshot memory directory: path too long");
	lock = snap_open(p->cfg.snapshot_dir, mem_dir, name, sh, t, err);
	if (lock < 0)
		return -1;
	*vc = sh->cfg;
	vc->log_level = base.log_level;
	vc->entropy_source = base.entropy_source;
	vc->boot_timeout_ms = base.boot_timeout_ms;
	log_info("snapshot %s (%u MiB, %u vCPU, %u root disk%s of its parent's containers)", t->dir,
	         vc->memory_mib, vc->vcpus, vc->n_disks, vc->n_disks == 1 ? "" : "s");
	return lock;
}

/* The VM from the snapshot: its NICs must be as many as the pod's interfaces. */
static int restore_snapshot(struct proxy *p, const struct vm_config *vc, const struct template *t,
                            unsigned nics, kerr_t *err)
{
	if (vc->n_nics != nics)
		return kerr_set(
		    err, EXDEV, "snapshot %s's VM has %u NIC%s, the pod's network %u interface%s",
		    t->key, nics, nics == 1 ? "" : "s", vc->n_nics, vc->n_nics == 1 ? "" : "s");
	snprintf(p->vm.boot_mode, sizeof(p->vm.boot_mode), "fork");
	return vm_restore(&p->vm, vc, t->state, p->cfg.run_dir, 1, err);
}

/* The guest told its interfaces and routes: devices found by the template's MACs in a
 * clone, by the pod's after a cold boot. */
/* The pod's resolv.conf (the daemon wrote it at Create) for an appliance's app, whose
 * image brought its own; NULL when there is none to give. */
static char *app_resolv(const struct proxy *p)
{
	_cleanup_close_ int share = -1;
	char *text = NULL;
	kerr_t err;

	if (!p->appliance)
		return NULL;
	/* The share is the guest's to write: the file is read without following a link, and
	 * only if it is a regular file (a FIFO would hang us, a link would read the host's). */
	share = open(p->vm.paths.shared, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (share < 0)
		kerr_sys(&err, "open %s", p->vm.paths.shared);
	else if (read_file_beneath(share, POD_FILES_DIR "/resolv.conf", &text, NULL,
	                           GUESTNET_RESOLV_MAX, &err) == 0)
		return text;
	log_warn("appliance: its app keeps its image's resolv.conf: %s", err.msg);
	return NULL;
}

static int guest_net(struct proxy *p, kerr_t *err)
{
	int64_t t0 = mono_ns();
	_cleanup_free_ char *resolv = NULL;
	int rc;

	if (!p->net.n_ifs)
		return 0;
	resolv = app_resolv(p);
	/* A clone's NICs, and a pooled VM's, still have the template's MACs. */
	rc = guestnet_setup(&p->vm.link, &p->net, p->pooled || strcmp(p->vm.boot_mode, "cold"),
	                    resolv, t0 + 10000000000LL, err);
	if (rc < 0)
		return -1;
	p->net_ns[1] = mono_ns() - t0;
	phases_mark(&p->start, "net-guest");
	log_info("network set up: host side %.1f ms, guest side %.1f ms", p->net_ns[0] / 1e6,
	         p->net_ns[1] / 1e6);
	return 0;
}

static void net_detach(struct proxy *p)
{
	kerr_t err;

	if (p->netns && podnet_detach(p->netns, &err) < 0)
		log_warn("pod network: %s", err.msg);
}

/* A failed start: nothing of ours stays in the pod netns. */
static int start_failed(struct proxy *p, const kerr_t *err)
{
	podnet_close_fds(&p->net);
	net_detach(p);
	return fail(err->errnum, "%s", err->msg);
}

/* Each container's mounts in the share are held by fd until it is deleted (bundle.h): the
 * soft limit on open files goes up to the hard one. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* What the daemon says on the proxy's command line. */
struct proxy_args {
	const char *config, *id, *run_dir, *ttrpc, *level, *appliance, *rootfs, *builder_cg;
	const char *snapshot;
	const char *sysctls; /* the pod's, a JSON object of strings ("" for none) */
	unsigned vcpus, memory_mib;
	int pool; /* --pool: a pooled VM, waiting for the sandbox it becomes */
};

/* 0, or the exit status with the failure reported on fd 3. */
static int parse_args(int argc, char **argv, struct proxy *p, struct proxy_args *a)
{
	static const struct option opts[] = {
		{ "config", 1, 0, 'c' },
		{ "run-dir", 1, 0, 'r' },
		{ "containerd-ttrpc", 1, 0, 't' },
		{ "id", 1, 0, 'i' },
		{ "vcpus", 1, 0, 'v' },
		{ "memory", 1, 0, 'm' },
		{ "hostname", 1, 0, 'h' },
		{ "netns", 1, 0, 'n' },
		{ "appliance", 1, 0, 'A' },
		{ "snapshot", 1, 0, 'F' },
		{ "rootfs", 1, 0, 'R' },
		{ "builder-cgroup", 1, 0, 'B' },
		{ "log-level", 1, 0, 'L' },
		{ "sysctls", 1, 0, 'S' },
		{ "pool", 0, 0, 'P' },
		{ 0 },
	};
	int c;

	a->config = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': a->config = optarg; break;
		case 'r': a->run_dir = optarg; break;
		case 't': a->ttrpc = optarg; break;
		case 'i': a->id = optarg; break;
		case 'v': a->vcpus = (unsigned)atoi(optarg); break;
		case 'm': a->memory_mib = (unsigned)atoi(optarg); break;
		case 'L': a->level = optarg; break;
		case 'n': p->netns = optarg[0] ? optarg : NULL; break;
		case 'A': p->appliance = a->appliance = optarg[0] ? optarg : NULL; break;
		case 'F': p->snapshot = a->snapshot = optarg[0] ? optarg : NULL; break;
		case 'R': a->rootfs = optarg[0] ? optarg : NULL; break;
		case 'B': a->builder_cg = optarg; break;
		case 'S': a->sysctls = optarg; break;
		case 'P': a->pool = 1; break;
		case 'h':
			if (fmt_path(p->tp.hostname, sizeof(p->tp.hostname), "%s", optarg) < 0)
				return fail(EINVAL, "hostname `%.64s...` is over %d characters",
				            optarg, HOSTNAME_MAX);
			break;
		default: return fail(EINVAL, "kuasar-sandboxer proxy: bad arguments"), 2;
		}
	}
	if (!a->id || id_valid(a->id, NULL) < 0)
		return fail(EINVAL,
		            "usage: kuasar-sandboxer proxy --id ID [--config F] ... (started "
		            "by the daemon)"),
		       2;
	return 0;
}

/* config.toml with the command line over it; the process set up to outlive the daemon. */
static int configure(struct proxy *p, const struct proxy_args *a)
{
	char tag[96];
	kerr_t err;

	if (config_load(&p->cfg, a->config, &err) < 0)
		return fail(err.errnum, "%s", err.msg);
	if (a->vcpus)
		p->cfg.vcpus = a->vcpus;
	if (a->memory_mib)
		p->cfg.memory_mib = a->memory_mib;
	if (a->rootfs)
		p->cfg.rootfs_block = !strcmp(a->rootfs, "block");
	if (a->run_dir)
		snprintf(p->cfg.run_dir, sizeof(p->cfg.run_dir), "%s", a->run_dir);
	if (a->ttrpc)
		snprintf(p->cfg.containerd_ttrpc, sizeof(p->cfg.containerd_ttrpc), "%s", a->ttrpc);
	snprintf(tag, sizeof(tag), "proxy %.12s", a->id);
	log_set_prefix(tag);
	log_set_level(a->level ? a->level : p->cfg.debug ? "debug" : p->cfg.log_level);
	/* Its own session: the daemon's death, or a signal to its process group, leaves the
	 * sandbox running. */
	setsid();
	if (hostns_init() < 0) /* proxy/hostns.h */
		log_warn("mounts in the host's namespace: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	log_catch_fatal();
	return 0;
}

/* The pod's /etc files the daemon wrote in the share at Create, read before the guest has
 * the share mounted, to hand over with SetHostname: the guest keeps them in its tmpfs and
 * no container start binds them over 9p. A file too big for that stays in the share. The
 * guest's /etc/hostname is the VM's hostname (the pod's, or the sandbox id when the pod
 * named none), as uname says in the pod. */
static void pod_etc_load(struct proxy *p)
{
	static const struct {
		const char *name;
		size_t max;
	} files[] = { { POD_FILES_DIR "/hosts", POD_ETC_HOSTS_MAX },
		      { POD_FILES_DIR "/resolv.conf", POD_ETC_RESOLV_MAX } };
	char **to[] = { &p->etc.hosts, &p->etc.resolv_conf };
	_cleanup_close_ int share = -1;
	kerr_t err;

	if (p->appliance)
		return;
	share = open(p->vm.paths.shared, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	for (size_t i = 0; share >= 0 && i < 2; i++)
		if (read_file_beneath(share, files[i].name, to[i], NULL, files[i].max, &err) < 0 &&
		    err.errnum != ENOENT) {
			log_info("the pod's files stay in the share: %s", err.msg);
			return;
		}
	p->vm.pod_etc = share >= 0 ? &p->etc : NULL;
}

static void boot_said(const struct proxy *p)
{
	if (!strcmp(p->vm.boot_mode, "template"))
		log_info("restored from template %s%s%s", p->vm.template_key,
		         p->vm.boot_note[0] ? " (" : "", p->vm.boot_note[0] ? p->vm.boot_note : "");
	else if (p->vm.boot_note[0])
		log_warn("template not used, %s", p->vm.boot_note);
}

/* Containers' root filesystems as disks, when the VM has the bus for them. */
static void root_disks(struct proxy *p, const struct proxy_args *a, const struct vm_config *vc)
{
	static struct rootdisks disks;

	if (!vc->disk_bus)
		return;
	rootdisks_init(&disks, &p->loop, &p->vm.qmp, p->cfg.rootfs_cache_dir, a->builder_cg);
	rootdisks_keep_targets(&disks, vc->disks, vc->n_disks);
	p->tp.disks = &disks;
	log_info("container root filesystems as disks (EROFS images cached in %s)",
	         p->cfg.rootfs_cache_dir);
}

/* What every launch starts from: the VM's settings, its struct (the directory the daemon
 * made), and the template store (builds charged to the daemon's cgroup). */
static int launch_setup(struct proxy *p, const struct proxy_args *a, struct vm_config *vc,
                        struct tpl_store *store, kerr_t *err)
{
	config_vm(&p->cfg, vc);
	vm_init(&p->vm, a->id);
	p->vm.reuse_dir = 1;
	p->vm.echo_created = 1;
	if (tpl_store_init(store, p->cfg.template_dir, p->cfg.template_memory_dir, err) < 0)
		return -1;
	store->scratch_taps = podnet_scratch_taps;
	fmt_msg(store->cgroup, sizeof(store->cgroup), "%s", a->builder_cg ? a->builder_cg : "");
	p->vm_mib = vc->memory_mib;
	p->builder_cg = a->builder_cg;
	return 0;
}

/* The VM up: from a template (or the appliance's snapshot) when it can be, with the pod's
 * network, and its root-disk bus when containers' layers go as disks. */
static int launch(struct proxy *p, const struct proxy_args *a, struct vm_config *vc, kerr_t *err)
{
	static struct appliance app;
	static struct tpl_store store;
	static struct vm_shape sh;
	const struct tpl_store *use = &store;
	struct template t;
	int lock = -1, rc;

	if (launch_setup(p, a, vc, &store, err) < 0)
		return -1;
	p->vm.phases = &p->start;
	if (p->tp.hostname[0])
		memcpy(p->vm.hostname, p->tp.hostname, sizeof(p->vm.hostname));
	if (a->appliance) {
		if (use_appliance(p, a->appliance, &app, vc, err) < 0)
			return -1;
		use = &app.store;
		memcpy(app.store.cgroup, store.cgroup, sizeof(store.cgroup));
	}
	if (a->snapshot && (lock = use_snapshot(p, a->snapshot, &sh, &t, vc, err)) < 0)
		return -1;
	p->vm_mib = vc->memory_mib; /* an appliance's or a snapshot's size */
	phases_mark(&p->start, "setup");
	rc = net_attach(p, vc, err);
	phases_mark(&p->start, "net-host");
	if (rc == 0 && lock >= 0)
		rc = restore_snapshot(p, vc, &t, sh.cfg.n_nics, err);
	else if (rc == 0)
		rc = vm_launch(&p->vm, vc, p->cfg.template ? use : NULL, p->cfg.run_dir, 1, err);
	if (lock >= 0)
		close(lock);
	if (rc < 0)
		return -1;
	vm_phases(&p->vm, &p->start);
	podnet_close_fds(&p->net); /* the VMM holds the taps now */
	pod_etc_load(p);
	boot_said(p);
	root_disks(p, a, vc);
	return 0;
}

/* The pod's sysctls, in the VM before any container (an error fails the start). */
static int pod_sysctls(struct proxy *p, const char *text, kerr_t *err)
{
	json_object *o = text && text[0] ? json_tokener_parse(text) : NULL;
	const char *names[SYSCTL_MAX], *values[SYSCTL_MAX];
	size_t n = 0;
	int rc = 0;

	if (!o)
		return text && text[0] ? kerr_set(err, EINVAL, "--sysctls: malformed JSON") : 0;
	if (!json_object_is_type(o, json_type_object))
		rc = kerr_set(err, EINVAL, "--sysctls: not a JSON object");
	else if (json_object_object_length(o) > SYSCTL_MAX)
		rc = kerr_set(err, E2BIG, "more than %d sysctls", SYSCTL_MAX);
	if (rc < 0) {
		json_object_put(o);
		return -1;
	}
	for (struct json_object_iterator it = json_object_iter_begin(o),
	                                 end = json_object_iter_end(o);
	     rc == 0 && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *k = json_object_iter_peek_name(&it);
		json_object *v = json_object_iter_peek_value(&it);

		if (!json_object_is_type(v, json_type_string))
			rc = kerr_set(err, EINVAL, "sysctl %s: not a string", k);
		else if ((rc = sysctl_check(k, json_object_get_string(v), err)) == 0) {
			names[n] = k;
			values[n++] = json_object_get_string(v);
		}
	}
	if (rc == 0 && n)
		rc = agent_set_sysctls(&p->vm.link, names, values, n, mono_ns() + 10000000000LL,
		                       err);
	if (rc == 0 && n) {
		phases_mark(&p->start, "sysctls");
		log_info("%zu sysctls set in the VM", n);
	}
	json_object_put(o);
	return rc;
}

/* ---- a pooled VM ---- */

/* Its NIC: a tap in a netns of its own, moved into the pod's when a pod takes the VM. The
 * NIC has the template's MAC, restored or cold booted, until the pod's replaces it. */
static int pool_net(struct proxy *p, struct vm_config *vc, kerr_t *err)
{
	int fd;

	if (podnet_pool_taps(1, &fd, &p->pool_ns, err) < 0)
		return -1;
	p->nics[0].fd = fd;
	vm_template_mac(0, p->nics[0].mac);
	p->nics[0].mtu = 0;
	vc->nics = p->nics;
	vc->n_nics = 1;
	vc->vhost_net = podnet_vhost_usable();
	return 0;
}

/* Restored (or booted) in <run_dir>/.pool/<name>, which the daemon made. */
static int pool_launch(struct proxy *p, const struct proxy_args *a, struct vm_config *vc,
                       kerr_t *err)
{
	static struct tpl_store store;
	char dir[KPATH_SIZE];
	int rc;

	if (launch_setup(p, a, vc, &store, err) < 0)
		return -1;
	if (fmt_path(dir, sizeof(dir), "%s/" POOL_DIR, p->cfg.run_dir) < 0)
		return kerr_set(err, ENAMETOOLONG, "%s/" POOL_DIR ": too long", p->cfg.run_dir);
	if (pool_net(p, vc, err) < 0)
		return -1;
	rc = vm_launch(&p->vm, vc, p->cfg.template ? &store : NULL, dir, 1, err);
	close(p->nics[0].fd); /* the VMM's now */
	if (rc < 0)
		return -1;
	boot_said(p);
	root_disks(p, a, vc);
	return 0;
}

/* Unique before any pod has it: its own randomness and clock, the share mounted. */
static int pool_prepare(struct proxy *p, kerr_t *err)
{
	int64_t deadline = mono_ns() + 10000000000LL;
	struct clock_sync cs;
	uint32_t avail;
	uint64_t magic;

	if (agent_add_entropy(&p->vm.link, 64, 1, &avail, deadline, err) < 0 ||
	    agent_sync_clock(&p->vm.link, &cs, deadline, err) < 0 ||
	    agent_mount_share(&p->vm.link, "9p", &magic, deadline, err) < 0)
		return kerr_wrap(err, "pooled VM %s", p->vm.id);
	return 0;
}

/* The pod's network: its taps moved into the pod netns and joined to CNI's interfaces. An
 * EXDEV (the pod has another number of interfaces) has changed nothing. */
static int pool_take_net(struct proxy *p, const struct pool_take *t, kerr_t *err)
{
	p->net_ns[0] = mono_ns();
	if (podnet_adopt(t->netns, p->pool_ns, 1, &p->net, err) < 0)
		return -1;
	p->net_ns[0] = mono_ns() - p->net_ns[0];
	close(p->pool_ns);
	p->pool_ns = -1;
	podnet_describe(&p->net, p->net_desc, sizeof(p->net_desc));
	fmt_msg(p->net_desc + strlen(p->net_desc), sizeof(p->net_desc) - strlen(p->net_desc),
	        " (virtio-net, %s)",
	        podnet_vhost_usable() ? "vhost-net" : "no vhost-net: userspace");
	log_info("network: %s", p->net_desc);
	join_pod_netns(p);
	phases_mark(&p->start, "net-host");
	return 0;
}

/* The VM becomes sandbox t->id: its directory, network, clock, hostname, /etc files and
 * sysctls. A VMM found dead (ESRCH) or a pod it does not fit (EXDEV) has changed nothing: the
 * daemon starts the sandbox without the pool then. */
static int pool_take(struct proxy *p, const struct pool_take *t, kerr_t *err)
{
	struct pollfd pf = { .fd = p->vm.pidfd, .events = POLLIN };
	int64_t deadline = mono_ns() + 10000000000LL;
	struct clock_sync cs;
	char tag[96];
	int rc;

	if (poll(&pf, 1, 0) != 0)
		return kerr_set(err, ESRCH, "the pooled VM's VMM has exited");
	p->pooled = 1;
	p->netns = t->netns;
	if (pool_take_net(p, t, err) < 0 ||
	    pool_dir_swap(p->cfg.run_dir, p->vm.id, t->id, err) < 0 ||
	    vm_paths_init(&p->vm.paths, p->cfg.run_dir, t->id, err) < 0)
		return -1;
	snprintf(tag, sizeof(tag), "proxy %.12s", t->id);
	log_set_prefix(tag);
	log_info("pooled VM %s (VMM %d) is sandbox %s", p->vm.id, p->vm.pid, t->id);
	memcpy(p->tp.hostname, t->hostname, sizeof(p->tp.hostname));
	snprintf(p->vm.hostname, sizeof(p->vm.hostname), "%s",
	         t->hostname[0] ? t->hostname : t->id);
	phases_mark(&p->start, "dir");
	pod_etc_load(p);
	if ((rc = agent_check_clock(&p->vm.link, 1000000, &cs, deadline, err)) < 0)
		return -1;
	phases_mark(&p->start, rc ? "clock-sync" : "clock-check");
	if (agent_set_hostname(&p->vm.link, p->vm.hostname, p->vm.pod_etc, deadline, err) < 0)
		return -1;
	phases_mark(&p->start, "hostname");
	return guest_net(p, err) < 0 || pod_sysctls(p, t->sysctls, err) < 0 ? -1 : 0;
}

/* A pooled VM: made, reported (the first result), then waiting until the daemon hands it a
 * sandbox, or until it cannot serve one. */
static int start_pooled(struct proxy *p, const struct proxy_args *a, kerr_t *err)
{
	static struct pool_take t;
	static char buf[POOL_TAKE_MAX];
	struct vm_config vc;
	int n;

	if (pool_launch(p, a, &vc, err) < 0 || pool_prepare(p, err) < 0)
		return -1;
	report_ready(p, 1);
	log_info("pooled: %s in %.1f ms, waiting for a pod", p->vm.boot_mode,
	         (mono_ns() - p->vm.t.spawn_ns) / 1e6);
	n = pooled_wait(&p->vm, RESULT_FD, buf, sizeof(buf), err);
	if (n < 0 || pool_take_parse(buf, (size_t)n, &t, err) < 0)
		return -1;
	phases_begin(&p->start, 0);
	return pool_take(p, &t, err);
}

/* A sandbox's own VM: launched, made unique and given the pod. */
static int start_own(struct proxy *p, const struct proxy_args *a, kerr_t *err)
{
	struct vm_config vc;
	struct guest_prep prep;

	if (launch(p, a, &vc, err) < 0)
		return -1;
	if (vm_prepare_guest(&p->vm, &prep, err) < 0 || guest_net(p, err) < 0 ||
	    pod_sysctls(p, a->sysctls, err) < 0)
		return -2;
	return 0;
}

int proxy_main(int argc, char **argv)
{
	static struct proxy p = { .relink_w.fd = -1, .pool_ns = -1 };
	struct proxy_args a = { 0 };
	kerr_t err;
	int rc = parse_args(argc, argv, &p, &a);

	phases_begin(&p.start, 0);
	if (rc || (rc = configure(&p, &a)))
		return rc;
	rc = a.pool ? start_pooled(&p, &a, &err) : start_own(&p, &a, &err);
	if (rc == -1 && !a.pool)
		return start_failed(&p, &err);
	if (rc < 0 || loop_init(&p.loop, &err) < 0 || serve(&p, &err) < 0) {
		vm_destroy(&p.vm);
		return start_failed(&p, &err);
	}
	/* The guest has the pod's files now: its containers bind its copies. */
	if (p.vm.pod_etc)
		p.tp.bundles.pod_etc = GUEST_POD_ETC;
	p.vm.pod_etc = NULL;
	free(p.etc.hosts);
	free(p.etc.resolv_conf);
	report_ready(&p, 0);
	log_phases(&p.start, "sandbox start (%s)", p.pooled ? "pool" : p.vm.boot_mode);
	log_info("serving %s (VMM %d)", p.tp.path, p.vm.pid);
	loop_run(&p.loop);
	if (!p.tp.gone) { /* the loop ended otherwise: say what the VMM did */
		net_detach(&p);
		write_exit(&p);
	}
	portfwd_stop(&p.pf);
	taskproxy_stop(&p.tp);
	glink_stop(&p.link);
	events_fwd_free(p.events);
	log_info("exiting with the VMM's status %d", p.exit_status);
	return p.exit_status;
}
