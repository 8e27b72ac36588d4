/* Waiting on a VM before the loop serves it (launch, restore, shutdown): for an fd, while
 * the VMM's exit, a signal and the console are watched; and for the VMM's exit. */
#include <errno.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "vm/vm.h"
#include "vm/vm_priv.h"

void vm_reap(struct vm *vm)
{
	int status = 0;

	if (vm->exited)
		return;
	if (vm->is_child) {
		if (waitpid(vm->pid, &status, WNOHANG) <= 0)
			return;
		vm->exit_status = status;
	}
	vm->exited = 1;
}

#define TICK_NS 50000000

/* Waits until fd is ready (fd < 0: until the console moved) while watching the VMM,
 * signals and the console. */
int vm_wait_for(struct vm *vm, int fd, short events, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		int64_t until = deadline_ns;
		int tick = 0;

		int64_t period = vm->tick_ns ? vm->tick_ns : TICK_NS;

		if (vm->tick && (until <= 0 || until > mono_ns() + period)) {
			until = mono_ns() + period;
			tick = 1;
		}
		struct pollfd p[4] = {
			{ .fd = vm->pidfd, .events = POLLIN },
			{ .fd = vm->sigfd, .events = POLLIN },
			{ .fd = vm->con_fd >= 0 ? vm->con_fd : vm->con_listen, .events = POLLIN },
			{ .fd = fd, .events = events },
		};
		int n = poll(p, 4, ms_until(until));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kerr_sys(err, "poll");
		if (n == 0 && tick) {
			vm->tick(vm->tick_arg);
			continue;
		}
		if (n == 0)
			return kerr_set(err, ETIMEDOUT, "timed out");
		if (p[0].revents) {
			vm_reap(vm);
			if (vm->exited || !vm->is_child)
				return vm_exited_error(vm, err);
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;

			if (read(vm->sigfd, &si, sizeof(si)) > 0)
				return kerr_set(err, EINTR, "interrupted by signal %u",
				                si.ssi_signo);
		}
		if (p[2].revents) {
			vm_console_pump(vm);
			/* Without an fd to wait for, console progress is what the caller waits on.
			 */
			if (fd < 0)
				return 0;
		}
		if (fd >= 0 && p[3].revents)
			return 0;
	}
}

int vm_wait_exit(struct vm *vm, int64_t deadline_ns)
{
	kerr_t e;

	while (!vm->exited) {
		if (vm_wait_for(vm, -1, 0, deadline_ns, &e) < 0 && e.errnum != ECHILD)
			return -1;
		if (!vm->is_child)
			vm->exited = 1;
	}
	return 0;
}
