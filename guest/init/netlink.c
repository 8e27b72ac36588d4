#include "netlink.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int nl_open(struct nl_sock *nl)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t len = sizeof(sa);

	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl->fd < 0)
		return -1;
	if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(nl->fd, (struct sockaddr *)&sa, &len) < 0) {
		nl_close(nl);
		return -1;
	}
	nl->portid = sa.nl_pid;
	nl->seq = 1;
	return 0;
}

void nl_close(struct nl_sock *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

struct nlmsghdr *nl_msg_start(void *buf, size_t size, uint16_t type, uint16_t flags, size_t hdrlen)
{
	struct nlmsghdr *nlh = buf;
	size_t len = NLMSG_SPACE(hdrlen);

	if (len > size)
		return NULL;
	memset(buf, 0, len);
	nlh->nlmsg_len = (uint32_t)len;
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags | NLM_F_REQUEST | NLM_F_ACK;
	return nlh;
}

int nl_attr_put(struct nlmsghdr *nlh, size_t size, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)((char *)nlh + NLMSG_ALIGN(nlh->nlmsg_len));
	size_t need = NLA_HDRLEN + len;

	if (NLMSG_ALIGN(nlh->nlmsg_len) + NLA_ALIGN(need) > size || need > UINT16_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	a->nla_type = type;
	a->nla_len = (uint16_t)need;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	memset((char *)a + need, 0, NLA_ALIGN(need) - need);
	nlh->nlmsg_len = (uint32_t)(NLMSG_ALIGN(nlh->nlmsg_len) + NLA_ALIGN(need));
	return 0;
}

/* Returns 1 when msg is our ack (errno set from it), 0 to keep reading. */
static int check_reply(struct nl_sock *nl, const struct nlmsghdr *m, uint32_t seq, int *error)
{
	const struct nlmsgerr *e;

	if (m->nlmsg_seq != seq || m->nlmsg_pid != nl->portid)
		return 0;
	if (m->nlmsg_type != NLMSG_ERROR)
		return m->nlmsg_type == NLMSG_DONE;
	if (m->nlmsg_len < NLMSG_LENGTH(sizeof(*e))) {
		*error = EBADMSG;
		return 1;
	}
	e = NLMSG_DATA(m);
	*error = -e->error;
	return 1;
}

int nl_talk(struct nl_sock *nl, struct nlmsghdr *nlh)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	uint32_t seq = nlh->nlmsg_seq = nl->seq++;
	int error = 0;

	if (sendto(nl->fd, nlh, nlh->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	for (;;) {
		ssize_t n = recv(nl->fd, buf, sizeof(buf), 0);
		const struct nlmsghdr *m = (const struct nlmsghdr *)buf;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (size_t left = (size_t)n; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left))
			if (check_reply(nl, m, seq, &error)) {
				errno = error;
				return error ? -1 : 0;
			}
	}
}

int nl_link_up(const char *ifname)
{
	char buf[256] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nl_sock nl;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	int rc, saved;

	nlh = nl_msg_start(buf, sizeof(buf), RTM_NEWLINK, 0, sizeof(*ifi));
	ifi = NLMSG_DATA(nlh);
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	if (nl_attr_put(nlh, sizeof(buf), IFLA_IFNAME, ifname, strlen(ifname) + 1) < 0)
		return -1;
	if (nl_open(&nl) < 0)
		return -1;
	rc = nl_talk(&nl, nlh);
	saved = errno;
	nl_close(&nl);
	errno = saved;
	return rc;
}
