#include "core/netlink.h"
#include "core/fmt.h"
#include "core/sys.h"

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

	nl->fd = sys_socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl->fd < 0)
		return -1;
	if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(nl->fd, (struct sockaddr *)&sa, &len) < 0) {
		nl_close(nl);
		return -1;
	}
	nl->portid = sa.nl_pid;
	nl->seq = 1;
	nl->why[0] = '\0';
	/* Refusals carry the kernel's reason, and not our request echoed back. */
	setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &(int){ 1 }, sizeof(int));
	setsockopt(nl->fd, SOL_NETLINK, NETLINK_CAP_ACK, &(int){ 1 }, sizeof(int));
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

/* The message attribute of an extended ack's TLVs, kept in nl->why. */
static void ext_ack(struct nl_sock *nl, const char *p, size_t len)
{
	while (len >= NLA_HDRLEN) {
		const struct nlattr *a = (const struct nlattr *)p;
		size_t alen = a->nla_len, step = NLA_ALIGN(alen);

		if (alen < NLA_HDRLEN || alen > len)
			return;
		if (a->nla_type == NLMSGERR_ATTR_MSG && alen > NLA_HDRLEN && p[alen - 1] == '\0') {
			kfmt(nl->why, sizeof(nl->why), "; the kernel: %s", p + NLA_HDRLEN);
			return;
		}
		if (step >= len)
			return;
		p += step;
		len -= step;
	}
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
	if (e->error && (m->nlmsg_flags & NLM_F_ACK_TLVS) && (m->nlmsg_flags & NLM_F_CAPPED))
		ext_ack(nl, (const char *)(e + 1), m->nlmsg_len - NLMSG_LENGTH(sizeof(*e)));
	return 1;
}

int nl_talk(struct nl_sock *nl, struct nlmsghdr *nlh)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	uint32_t seq = nlh->nlmsg_seq = nl->seq++;
	int error = 0;

	nl->why[0] = '\0';
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

int nl_link_set(struct nl_sock *nl, int ifindex, const char *name, const uint8_t *mac, unsigned mtu,
                int up)
{
	char buf[256] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlmsghdr *nlh =
	    nl_msg_start(buf, sizeof(buf), RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	struct ifinfomsg *ifi = NLMSG_DATA(nlh);

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	if (up >= 0) {
		ifi->ifi_flags = up ? IFF_UP : 0;
		ifi->ifi_change = IFF_UP;
	}
	if ((name && nl_attr_put(nlh, sizeof(buf), IFLA_IFNAME, name, strlen(name) + 1) < 0) ||
	    (mac && nl_attr_put(nlh, sizeof(buf), IFLA_ADDRESS, mac, 6) < 0) ||
	    (mtu && nl_attr_put(nlh, sizeof(buf), IFLA_MTU, &mtu, sizeof(mtu)) < 0))
		return -1;
	return nl_talk(nl, nlh);
}

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

int nl_addr_flush4(struct nl_sock *nl, int ifindex)
{
	char buf[64] __attribute__((aligned(NLMSG_ALIGNTO)));

	/* A delete that names no address takes the link's first: repeated until none is left
	 * (EADDRNOTAVAIL), bounded in case the kernel keeps answering yes. */
	for (int i = 0; i < 256; i++) {
		struct nlmsghdr *nlh =
		    nl_msg_start(buf, sizeof(buf), RTM_DELADDR, 0, sizeof(struct ifaddrmsg));
		struct ifaddrmsg *ifa = NLMSG_DATA(nlh);

		ifa->ifa_family = AF_INET;
		ifa->ifa_index = (uint32_t)ifindex;
		if (nl_talk(nl, nlh) < 0)
			return errno == EADDRNOTAVAIL ? 0 : -1;
	}
	errno = ELOOP;
	return -1;
}

int nl_addr_add(struct nl_sock *nl, int ifindex, int family, const uint8_t *ip, unsigned prefix_len)
{
	char buf[256] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlmsghdr *nlh = nl_msg_start(buf, sizeof(buf), RTM_NEWADDR,
	                                    NLM_F_CREATE | NLM_F_REPLACE, sizeof(struct ifaddrmsg));
	struct ifaddrmsg *ifa = NLMSG_DATA(nlh);

	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = (uint8_t)prefix_len;
	ifa->ifa_index = (uint32_t)ifindex;
	/* CNI's IPAM owns the address: no duplicate detection delaying its use. */
	ifa->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	if (nl_attr_put(nlh, sizeof(buf), IFA_LOCAL, ip, addr_len(family)) < 0 ||
	    nl_attr_put(nlh, sizeof(buf), IFA_ADDRESS, ip, addr_len(family)) < 0)
		return -1;
	return nl_talk(nl, nlh);
}

int nl_route_add(struct nl_sock *nl, const struct nl_route *r)
{
	char buf[256] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlmsghdr *nlh = nl_msg_start(buf, sizeof(buf), RTM_NEWROUTE,
	                                    NLM_F_CREATE | NLM_F_REPLACE, sizeof(struct rtmsg));
	struct rtmsg *rt = NLMSG_DATA(nlh);
	size_t alen = addr_len(r->family);

	rt->rtm_family = (uint8_t)r->family;
	rt->rtm_dst_len = (uint8_t)r->dst_len;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = r->gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	rt->rtm_type = RTN_UNICAST;
	rt->rtm_flags = r->onlink ? RTNH_F_ONLINK : 0;
	if ((r->dst && r->dst_len && nl_attr_put(nlh, sizeof(buf), RTA_DST, r->dst, alen) < 0) ||
	    (r->gw && nl_attr_put(nlh, sizeof(buf), RTA_GATEWAY, r->gw, alen) < 0) ||
	    nl_attr_put(nlh, sizeof(buf), RTA_OIF, &r->ifindex, sizeof(r->ifindex)) < 0 ||
	    (r->metric &&
	     nl_attr_put(nlh, sizeof(buf), RTA_PRIORITY, &r->metric, sizeof(r->metric)) < 0))
		return -1;
	return nl_talk(nl, nlh);
}
