/* rtnetlink over Debian's libmnl: one socket in the calling thread's network namespace,
 * requests acked by sequence number, dumps walked with a callback. */
#ifndef KUASAR_RTNL_H
#define KUASAR_RTNL_H

#include <libmnl/libmnl.h>
#include <stdint.h>

#include "base/err.h"

#define RTNL_BUF (MNL_SOCKET_BUFFER_SIZE > 8192 ? MNL_SOCKET_BUFFER_SIZE : 8192)

struct rtnl {
	struct mnl_socket *sock;
	uint32_t portid;
	uint32_t seq;
	/* The kernel's own words for the last request it refused (NETLINK_EXT_ACK), or "". */
	char why[256];
};

int rtnl_open(struct rtnl *r, kerr_t *err);
void rtnl_close(struct rtnl *r);
/* A request message in buf (RTNL_BUF bytes) with hdrlen bytes of family header, zeroed. */
struct nlmsghdr *rtnl_msg(struct rtnl *r, void *buf, uint16_t type, uint16_t flags, size_t hdrlen);
/* Sends a request built with rtnl_msg and waits for its ack: 0, or -1 with errno set to
 * what the kernel answered (no message: callers say what they asked). */
int rtnl_talk(struct rtnl *r, struct nlmsghdr *nlh);
/* Sends a dump request and calls cb for each message of the answer. */
int rtnl_dump(struct rtnl *r, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);
/* kerr_sys for a refused request, with the kernel's message when it gave one:
 * "redirect eth0 <-> tap0: Invalid argument (the kernel: Filter kind not found)". */
int rtnl_err(struct rtnl *r, kerr_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
