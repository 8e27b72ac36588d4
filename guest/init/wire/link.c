#include "wire/link.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/fmt.h"
#include "core/klog.h"
#include "core/netlink.h"
#include "core/sys.h"
#include "wire/ttrpc.h"

#define MAX_VSOCK_CONNS 16

enum serial_state { SERIAL_ABSENT, SERIAL_WAIT_HOST, SERIAL_SERVING };

static struct conn serial;
static enum serial_state serial_state;
static int serial_sigio; /* the port signals host connects: no polling while waiting */
static struct watch uevent_w = { .fd = -1 };
static struct watch vsock_w = { .fd = -1 };
static struct conn *vsock_conns[MAX_VSOCK_CONNS];
static ttrpc_frame_fn on_frame; /* where every connection's frames go (link_start) */

static void link_ready(void)
{
	if (!boot.link_ns) {
		boot.link_ns = mono_now();
		info("guest link ready after %llu us",
		     (unsigned long long)(boot.link_ns - boot.init_ns) / 1000);
	}
}

uint32_t link_local_cid(void)
{
	unsigned int cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
			cid = VMADDR_CID_ANY;
		close(fd);
	}
	/* 1 (local loopback) and 2 (host) are not guest CIDs: no guest transport is up. */
	return cid == VMADDR_CID_ANY || cid <= VMADDR_CID_HOST ? 0 : cid;
}

/* virtio_console reports POLLHUP while no host is attached to the port's chardev. */
static int host_connected(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

static void serial_serve(void)
{
	serial_state = SERIAL_SERVING;
	ev_add(&serial.w, EPOLLIN);
	debug("virtio-serial: host connected");
}

/* Out of the epoll set while no host is attached: EPOLLHUP cannot be masked. */
static void serial_wait_host(void)
{
	serial_state = SERIAL_WAIT_HOST;
	if (host_connected(serial.w.fd))
		serial_serve();
}

/* The port reads EOF only once every byte the old host sent has been read, so nothing of
 * the old session is left to leak into the next one. */
static void serial_on_close(struct conn *c)
{
	ev_del(&c->w);
	conn_reset(c);
	boot.link_resets++;
	debug("virtio-serial: host went away, session reset");
	serial_wait_host();
}

/* The host side of the port connected or went away. While serving, the EOF that follows a
 * disconnect arrives through epoll; a host that reconnects must give us that moment (the
 * port has no session marker, so bytes from two sessions cannot be told apart). */
void link_on_sigio(void)
{
	if (serial_state == SERIAL_WAIT_HOST)
		serial_wait_host();
}

static int port_name_matches(const char *dev)
{
	char path[128], name[64];
	int fd, n;

	kfmt(path, sizeof(path), "/sys/class/virtio-ports/%s/name", dev);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = (int)read(fd, name, sizeof(name) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	name[n] = '\0';
	*strchrnul(name, '\n') = '\0';
	return !strcmp(name, LINK_PORT_NAME);
}

static int open_port(const char *dev)
{
	char path[128];
	int fd;

	kfmt(path, sizeof(path), "/dev/%s", dev);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		warn("open %s: errno %d", path, errno);
		return -1;
	}
	/* SIGIO tells us when the host side connects or goes away. */
	serial_sigio = sys_fcntl(fd, F_SETOWN, getpid()) == 0 &&
	               sys_fcntl(fd, F_SETFL, sys_fcntl(fd, F_GETFL, 0) | O_ASYNC) == 0;
	if (!serial_sigio)
		warn("%s: no SIGIO on host connect (errno %d), polling instead", path, errno);
	return fd;
}

static void serial_scan(void)
{
	DIR *d;
	struct dirent *e;
	int fd = -1;

	if (serial_state != SERIAL_ABSENT || !(d = opendir("/sys/class/virtio-ports")))
		return;
	while (fd < 0 && (e = readdir(d)))
		if (e->d_name[0] != '.' && port_name_matches(e->d_name))
			fd = open_port(e->d_name);
	closedir(d);
	if (fd < 0)
		return;
	conn_init(&serial, fd, CONN_SERIAL, on_frame, serial_on_close);
	info("virtio-serial port %s open", LINK_PORT_NAME);
	link_ready();
	serial_wait_host();
}

static void uevent_on_event(struct watch *w, uint32_t events)
{
	char buf[4096];
	ssize_t n;

	(void)events;
	while ((n = recv(w->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[n] = '\0';
		/* Fields are NUL separated; look for the subsystem among them. */
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
			if (!strcmp(buf + i, "SUBSYSTEM=virtio-ports"))
				serial_scan();
	}
	if (serial_state != SERIAL_ABSENT) {
		ev_del(w);
		close(w->fd);
		w->fd = -1;
	}
}

/* Ports are announced by the host after the driver probed: watch uevents until it shows. */
static void uevent_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int fd = sys_socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                    NETLINK_KOBJECT_UEVENT);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		warn("uevent socket: errno %d; polling for the serial port", errno);
		if (fd >= 0)
			close(fd);
		return;
	}
	uevent_w.fd = fd;
	uevent_w.fn = uevent_on_event;
	ev_add(&uevent_w, EPOLLIN);
}

static void vsock_on_close(struct conn *c)
{
	for (int i = 0; i < MAX_VSOCK_CONNS; i++)
		if (vsock_conns[i] == c)
			vsock_conns[i] = NULL;
	ev_del(&c->w);
	close(c->w.fd);
	conn_reset(c);
	free(c);
}

static void vsock_accept(struct watch *w, uint32_t events)
{
	int fd, slot = -1;
	struct conn *c;

	(void)events;
	while ((fd = sys_accept4(w->fd, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		for (int i = 0; i < MAX_VSOCK_CONNS && slot < 0; i++)
			if (!vsock_conns[i])
				slot = i;
		if (slot < 0 || !(c = malloc(sizeof(*c)))) {
			warn("vsock: refusing a connection: %d already open", MAX_VSOCK_CONNS);
			close(fd);
			continue;
		}
		conn_init(c, fd, CONN_VSOCK, on_frame, vsock_on_close);
		vsock_conns[slot] = c;
		ev_add(&c->w, EPOLLIN);
		slot = -1;
	}
}

static void vsock_listen(void)
{
	struct sockaddr_vm sa = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = LINK_VSOCK_PORT,
	};
	int fd = sys_socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		debug("vsock: not listening (errno %d)", errno);
		if (fd >= 0)
			close(fd);
		return;
	}
	vsock_w.fd = fd;
	vsock_w.fn = vsock_accept;
	ev_add(&vsock_w, EPOLLIN);
	if (link_local_cid()) {
		info("vsock: listening on port %d, cid %u", LINK_VSOCK_PORT, link_local_cid());
		link_ready();
	}
}

void link_start(ttrpc_frame_fn fn)
{
	on_frame = fn;
	vsock_listen();
	uevent_open();
	serial_scan();
}

struct conn *link_conn_by_id(uint64_t id)
{
	if (serial_state == SERIAL_SERVING && serial.id == id)
		return &serial;
	for (int i = 0; i < MAX_VSOCK_CONNS; i++)
		if (vsock_conns[i] && vsock_conns[i]->id == id)
			return vsock_conns[i];
	return NULL;
}

int link_timeout_ms(void)
{
	/* An idle guest sleeps until something happens. Only where the kernel gave us no
	 * uevent socket (port not yet seen) or no SIGIO (host not yet attached) do we look
	 * again once a second. */
	switch (serial_state) {
	case SERIAL_ABSENT: return uevent_w.fd < 0 ? 1000 : -1;
	case SERIAL_WAIT_HOST: return serial_sigio ? -1 : 1000;
	default: return -1;
	}
}

void link_tick(void)
{
	if (serial_state == SERIAL_ABSENT)
		serial_scan();
	else
		link_on_sigio();
}
