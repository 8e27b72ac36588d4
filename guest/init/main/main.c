/* kuasar-init: PID 1 of a kuasar sandbox VM.
 *
 * Boots the guest (mounts, console, lo), then serves the host over the guest link from one
 * epoll loop. From the moment the loop runs, nothing the host sends may end this process:
 * errors become RPC statuses, and the only way out is a requested or fatal power off. */
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/klog.h"
#include "core/sys.h"
#include "main/boot.h"
#include "runtime/container.h"
#include "runtime/podns.h"
#include "services/app.h"
#include "services/serve.h"
#include "wire/link.h"

static struct watch signal_w;

/* Every child of PID 1 is reaped here; container processes get their exit recorded. */
static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (!podns_on_exit(pid, status))
			ctr_on_exit(pid, status);
}

static void on_signal(struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD: reap(); break;
		case SIGIO: link_on_sigio(); break;
		case SIGTERM:
		case SIGINT:
		case SIGPWR: info("signal %u: shutting down", si.ssi_signo); boot_poweroff();
		default: break;
		}
	}
}

static int setup_signals(void)
{
	sigset_t set;

	/* A peer closing a vsock connection must not kill PID 1 on write. */
	sys_signal_disposition(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGIO);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPWR);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	signal_w.fd = sys_signalfd(&set, SFD_NONBLOCK | SFD_CLOEXEC);
	signal_w.fn = on_signal;
	return signal_w.fd < 0 ? -1 : ev_add(&signal_w, EPOLLIN);
}

int main(int argc, char **argv, char **envp)
{
	boot.init_ns = mono_now();
	(void)argc;
	if (getpid() != 1) {
		(void)!write(2, "kuasar-init: fatal: must run as PID 1\n", 38);
		return 1;
	}
	boot_leave_initramfs(argv, envp);
	boot_early();
	info("kuasar-init %s, kernel start to init %llu us, root %s", KUASAR_VERSION,
	     (unsigned long long)boot.init_ns / 1000,
	     boot.moved_root ? "moved from the initramfs to a tmpfs" : "as the kernel mounted it");
	if (ev_init() < 0 || setup_signals() < 0)
		boot_fatal("set up the event loop", errno);
	sandbox_poweroff = boot_poweroff;
	link_start(serve_on_frame);
	app_boot();
	for (;;) {
		int timeout = link_timeout_ms();

		if (ev_once(timeout) == 0 && timeout >= 0)
			link_tick();
	}
}
