/* A VM's console and the VMM's last words, for waits and for error messages. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "vm/vm_priv.h"

/* A guest's own account of a container's Create, into our log: rate-bounded, printable. */
static void echo_created(struct vm *vm)
{
	static const char tag[] = "kuasar-init: info: ";
	char *at = strstr(vm->con_line, tag);
	int64_t now = mono_ns();

	if (!at || strncmp(at += sizeof(tag) - 1, "container ", 10) ||
	    !strstr(at, ": created, pid "))
		return;
	if (now - vm->echo_ns >= 1000000000LL) {
		vm->echo_ns = now;
		vm->echo_budget = 10;
	}
	if (!vm->echo_budget)
		return;
	vm->echo_budget--;
	for (char *c = at; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	log_info("guest: %s", at);
}

static void console_line(struct vm *vm)
{
	vm->con_line[vm->con_len] = '\0';
	if (vm->echo_created)
		echo_created(vm);
	if (!vm->t.console_ns && strstr(vm->con_line, "kuasar-init:"))
		vm->t.console_ns = mono_ns();
	vm->con_len = 0;
}

/* Accepts QEMU's console connection, then reads it line by line (console.log keeps all). */
void vm_console_pump(struct vm *vm)
{
	char buf[4096];
	ssize_t n;

	if (vm->con_fd < 0) {
		vm->con_fd = accept4(vm->con_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		return;
	}
	n = read(vm->con_fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN) {
			close(vm->con_fd);
			vm->con_fd = -1;
		}
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || vm->con_len == sizeof(vm->con_line) - 1)
			console_line(vm);
		else
			vm->con_line[vm->con_len++] = buf[i];
	}
}

void vm_console_tail(const struct vm *vm, char *buf, size_t n)
{
	char *log = NULL, *p;
	size_t len = 0;
	int lines = 0;

	buf[0] = '\0';
	if (read_file(vm->paths.console_log, &log, &len, 1 << 20, NULL) < 0)
		return;
	for (p = log + len; p > log && lines < 6; p--)
		if (p[-1] == '\n' && p != log + len)
			lines++;
	snprintf(buf, n, "%s", p);
	free(log);
}

/* The VMM's last words (its stderr goes to vmm.log). */
static void vmm_log_last_line(const struct vm *vm, char *buf, size_t n)
{
	char *log = NULL, *end, *start;
	size_t len = 0;

	buf[0] = '\0';
	if (read_file(vm->paths.vmm_log, &log, &len, 1 << 20, NULL) < 0)
		return;
	end = log + len;
	while (end > log && end[-1] == '\n')
		end--;
	*end = '\0';
	start = strrchr(log, '\n');
	snprintf(buf, n, "%s", start ? start + 1 : log);
	free(log);
}

int vm_exited_error(struct vm *vm, kerr_t *err)
{
	char tail[1024], last[256];

	vm_console_tail(vm, tail, sizeof(tail));
	vmm_log_last_line(vm, last, sizeof(last));
	if (vm->is_child && WIFSIGNALED(vm->exit_status))
		kerr_set(err, ECHILD, "the VMM was killed by signal %d%s%s%s",
		         WTERMSIG(vm->exit_status),
		         WTERMSIG(vm->exit_status) == SIGBUS
		             ? " (SIGBUS: a page of its memory file could not be had: is the "
		               "filesystem of its memory file full?)"
		             : "",
		         last[0] ? ": " : "", last);
	else if (vm->is_child)
		kerr_set(err, ECHILD, "the VMM exited with status %d%s%s",
		         WEXITSTATUS(vm->exit_status), last[0] ? ": " : "", last);
	else
		kerr_set(err, ECHILD, "the VMM exited");
	if (tail[0])
		kerr_wrap(err, "console ends with:\n%s\n", tail);
	return -1;
}
