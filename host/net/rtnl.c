#include "net/rtnl.h"

#include <errno.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdio.h>
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
	/* Refusals carry the kernel's reason, and not our request echoed back. */
	mnl_socket_setsockopt(r->sock, NETLINK_EXT_ACK, &(int){ 1 }, sizeof(int));
	mnl_socket_setsockopt(r->sock, NETLINK_CAP_ACK, &(int){ 1 }, sizeof(int));
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

static int ext_attr(const struct nlattr *a, void *data)
{
	struct rtnl *r = data;

	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		snprintf(r->why, sizeof(r->why), "%s", mnl_attr_get_str(a));
	return MNL_CB_OK;
}

/* The caller's callback and data, with the socket its acks report to. */
struct run_ctx {
	struct rtnl *r;
	mnl_cb_t cb;
	void *data;
};

static int on_data(const struct nlmsghdr *nlh, void *arg)
{
	const struct run_ctx *c = arg;

	return c->cb ? c->cb(nlh, c->data) : MNL_CB_OK;
}

/* An ack: 0 ends the request, an error sets errno and keeps the kernel's message. */
static int on_ack(const struct nlmsghdr *nlh, void *arg)
{
	const struct run_ctx *c = arg;
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e))) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if (!e->error)
		return MNL_CB_STOP;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) && mnl_nlmsg_size(off) <= nlh->nlmsg_len)
		mnl_attr_parse(nlh, (unsigned)off, ext_attr, c->r);
	errno = -e->error;
	return MNL_CB_ERROR;
}

static int run(struct rtnl *r, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	/* Only acks are ours: DONE and OVERRUN (above NLMSG_ERROR) keep libmnl's handling. */
	static const mnl_cb_t ctl[NLMSG_ERROR + 1] = { [NLMSG_ERROR] = on_ack };
	struct run_ctx c = { r, cb, data };
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	uint32_t seq = nlh->nlmsg_seq;
	ssize_t n;
	int rc;

	r->why[0] = '\0';
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
		rc = mnl_cb_run2(buf, (size_t)n, seq, r->portid, on_data, &c, (mnl_cb_t *)ctl,
		                 NLMSG_ERROR + 1);
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

int rtnl_err(struct rtnl *r, kerr_t *err, const char *fmt, ...)
{
	char what[512];
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (r->why[0])
		return kerr_set(err, e, "%s: %s (the kernel: %s)", what, strerror(e), r->why);
	return kerr_set(err, e, "%s: %s", what, strerror(e));
}
