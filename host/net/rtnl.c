#include "net/rtnl.h"

#include <errno.h>
#include <string.h>
#include <time.h>

int rtnl_open(struct rtnl *r, kerr_t *err)
{
	r->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!r->sock)
		return kerr_sys(err, "netlink socket");
	if (mnl_socket_bind(r->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		mnl_socket_close(r->sock);
		r->sock = NULL;
		return kerr_sys(err, "bind netlink socket");
	}
	r->portid = mnl_socket_get_portid(r->sock);
	r->seq = (uint32_t)time(NULL);
	return 0;
}

void rtnl_close(struct rtnl *r)
{
	if (r->sock)
		mnl_socket_close(r->sock);
	r->sock = NULL;
}

struct nlmsghdr *rtnl_msg(struct rtnl *r, void *buf, uint16_t type, uint16_t flags, size_t hdrlen)
{
	struct nlmsghdr *nlh;

	memset(buf, 0, RTNL_BUF);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++r->seq;
	mnl_nlmsg_put_extra_header(nlh, hdrlen);
	return nlh;
}

static int run(struct rtnl *r, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	uint32_t seq = nlh->nlmsg_seq;
	ssize_t n;
	int rc;

	if (!r->sock)
		return errno = EBADF, -1; /* lost when a failed dump's socket was replaced */
	if (mnl_socket_sendto(r->sock, nlh, nlh->nlmsg_len) < 0)
		return -1;
	do {
		n = mnl_socket_recvfrom(r->sock, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		/* Checks seq and portid; an NLMSG_ERROR answer sets errno and returns -1. */
		rc = mnl_cb_run(buf, (size_t)n, seq, r->portid, cb, data);
	} while (rc == MNL_CB_OK);
	return rc < 0 ? -1 : 0;
}

int rtnl_talk(struct rtnl *r, struct nlmsghdr *nlh)
{
	nlh->nlmsg_flags |= NLM_F_ACK;
	return run(r, nlh, NULL, NULL);
}

int rtnl_dump(struct rtnl *r, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	int e;

	nlh->nlmsg_flags |= NLM_F_DUMP;
	if (run(r, nlh, cb, data) == 0)
		return 0;
	/* A dump that failed part way (a message over the buffer: ENOSPC, a callback's error)
	 * leaves the rest of its messages on the socket, where the next request would read
	 * them: a fresh socket instead. */
	e = errno;
	rtnl_close(r);
	rtnl_open(r, NULL);
	errno = e;
	return -1;
}
