/* Reaching a VM: QMP and the guest link (virtio-serial socket or vsock), retried while the
 * VMM starts, and the first Check that says the guest is ready. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "vm/vm_priv.h"

#define CONNECT_RETRY_NS 1000000
#define KUASAR_VSOCK_PORT 1024

/* QEMU stops reading a chardev while the guest has not opened its virtio-serial port,
 * and only looks again when its main loop wakes up, which an idle TCG guest may not cause
 * for hundreds of milliseconds. A cheap QMP command wakes it: while waiting for the first
 * answer, kick every KICK_NS. */
#define KICK_NS 20000000

int vm_link_wait(void *ctx, int fd, int64_t deadline_ns, kerr_t *err)
{
	struct vm *vm = ctx;

	while (vm->kick && vm->qmp.fd >= 0) {
		int64_t until = mono_ns() + KICK_NS;

		if (until > deadline_ns)
			break;
		if (vm_wait_for(vm, fd, POLLIN, until, err) == 0)
			return 0;
		if (err->errnum != ETIMEDOUT)
			return -1;
		if (qmp_call(&vm->qmp, "query-status", NULL, NULL, deadline_ns, err) < 0)
			return kerr_wrap(err, "kick the VMM's main loop");
	}
	return vm_wait_for(vm, fd, POLLIN, deadline_ns, err);
}

/* QEMU creates its server sockets while starting: retry until they accept. */
int vm_connect_retry(struct vm *vm, const char *path, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		int fd = unix_connect(path, err);

		if (fd >= 0)
			return fd;
		if (err->errnum != ENOENT && err->errnum != ECONNREFUSED)
			return -1;
		if (mono_ns() + CONNECT_RETRY_NS > deadline_ns)
			return kerr_set(err, ETIMEDOUT, "%s did not appear in time", path);
		if (vm_wait_for(vm, -1, 0, mono_ns() + CONNECT_RETRY_NS, err) < 0 &&
		    err->errnum != ETIMEDOUT)
			return -1;
	}
}

int vm_link_begin(struct vm *vm, int *connecting, kerr_t *err)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
		                  .svm_cid = vm->cid,
		                  .svm_port = KUASAR_VSOCK_PORT };
	_cleanup_close_ int fd = -1;

	*connecting = 0;
	if (vm->link_type != LINK_VSOCK)
		return unix_connect(vm->paths.agent, err);
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kerr_sys(err, "vsock socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS)
			return kerr_sys(err, "connect to vsock %u:%u", vm->cid, KUASAR_VSOCK_PORT);
		*connecting = 1;
	}
	return TAKE_FD(fd);
}

int vm_link_finish(const struct vm *vm, int fd, kerr_t *err)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
		errno = soerr ? soerr : errno;
		return kerr_sys(err, "connect to vsock %u:%u", vm->cid, KUASAR_VSOCK_PORT);
	}
	return 0;
}

/* One vsock connect, bounded by deadline; -1 with err on any failure. */
static int vsock_try(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	int connecting;
	_cleanup_close_ int fd = vm_link_begin(vm, &connecting, err);

	if (fd < 0)
		return -1;
	if (connecting &&
	    (vm_wait_for(vm, fd, POLLOUT, deadline_ns, err) < 0 || vm_link_finish(vm, fd, err) < 0))
		return -1;
	/* The ttrpc client writes with blocking semantics. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return TAKE_FD(fd);
}

/* Until the guest listens, connects are reset or time out: retry until the deadline. */
static int vsock_connect_retry(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		int64_t until = mono_ns() + 500000000;
		int fd = vsock_try(vm, until < deadline_ns ? until : deadline_ns, err);

		if (fd >= 0 || err->errnum == ECHILD || err->errnum == EINTR ||
		    mono_ns() >= deadline_ns)
			return fd;
		if (vm_wait_for(vm, -1, 0, mono_ns() + 10 * CONNECT_RETRY_NS, err) < 0 &&
		    err->errnum != ETIMEDOUT)
			return -1;
	}
}

int vm_link_connect(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	if (vm->link_type == LINK_VSOCK)
		return vsock_connect_retry(vm, deadline_ns, err);
	return vm_connect_retry(vm, vm->paths.agent, deadline_ns, err);
}

/* Asks over fd (connected to the guest link) until the guest answers Check. */
int vm_check_guest(struct vm *vm, int fd, int64_t deadline_ns, kerr_t *err)
{
	agent_check_t *chk = NULL;

	ttrpc_client_init(&vm->link, fd);
	vm->link.wait = vm_link_wait;
	vm->link.wait_ctx = vm;
	vm->kick = 1;
	if (agent_check(&vm->link, &chk, deadline_ns, err) < 0)
		return kerr_wrap(err, "wait for kuasar-init to answer");
	vm->kick = 0;
	vm->t.link_ns = mono_ns();
	vm->t.kernel_to_init_ns = chk->kernel_to_init_ns;
	vm->t.init_to_link_ns = chk->init_to_link_ns;
	snprintf(vm->link_kind, sizeof(vm->link_kind), "%s", chk->link);
	agent_check_free(chk);
	return 0;
}

int vm_connect_guest(struct vm *vm, int64_t deadline_ns, kerr_t *err)
{
	int fd = vm_link_connect(vm, deadline_ns, err);

	if (fd < 0)
		return kerr_wrap(err, "connect to the guest link");
	return vm_check_guest(vm, fd, deadline_ns, err);
}

int vm_wait_console(struct vm *vm, int64_t deadline, kerr_t *err)
{
	while (!vm->t.console_ns)
		if (vm_wait_for(vm, -1, 0, deadline, err) < 0)
			return kerr_wrap(err, "wait for the init's first console line");
	return 0;
}

int vm_open_qmp(struct vm *vm, int64_t deadline, kerr_t *err)
{
	int fd = vm_connect_retry(vm, vm->paths.qmp, deadline, err);

	if (fd < 0)
		return kerr_wrap(err, "connect to QMP");
	if (qmp_open(&vm->qmp, fd, deadline, err) < 0)
		return kerr_wrap(err, "QMP handshake");
	vm->t.qmp_ns = mono_ns();
	return 0;
}
