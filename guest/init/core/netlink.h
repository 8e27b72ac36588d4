/* A small rtnetlink helper in libmnl's style: bounded attribute builders and replies
 * checked by sequence number and port id. The guest cannot link Debian's libmnl. */
#ifndef KUASAR_NETLINK_H
#define KUASAR_NETLINK_H

#include <linux/netlink.h>
#include <stddef.h>
#include <stdint.h>

struct nl_sock {
	int fd;
	uint32_t seq;
	uint32_t portid;
	/* The kernel's reason for the last refusal (NETLINK_EXT_ACK) as "; the kernel: ...",
	 * or "": appended to the messages that report it. */
	char why[128];
};

int nl_open(struct nl_sock *nl);
void nl_close(struct nl_sock *nl);
/* Starts a message in buf (size bytes, aligned) with hdrlen bytes of family header. */
struct nlmsghdr *nl_msg_start(void *buf, size_t size, uint16_t type, uint16_t flags, size_t hdrlen);
/* Appends an attribute; -1 (EMSGSIZE) if it would not fit in size bytes. */
int nl_attr_put(struct nlmsghdr *nlh, size_t size, uint16_t type, const void *data, size_t len);
/* Sends a request and waits for its ack. Returns 0 or -1 with errno from the kernel. */
int nl_talk(struct nl_sock *nl, struct nlmsghdr *nlh);
int nl_link_up(const char *ifname);

/* Link settings by index, each part optional: name NULL, mac NULL, mtu 0 leave it; up -1
 * leaves the state, 0 or 1 sets it. */
int nl_link_set(struct nl_sock *nl, int ifindex, const char *name, const uint8_t *mac, unsigned mtu,
                int up);
/* Removes every IPv4 address of ifindex (and with them the routes through it). */
int nl_addr_flush4(struct nl_sock *nl, int ifindex);
/* An address (4 or 16 bytes by family) on ifindex; IPv6 ones without duplicate detection. */
int nl_addr_add(struct nl_sock *nl, int ifindex, int family, const uint8_t *ip,
                unsigned prefix_len);
/* A main-table route: dst/dst_len (dst NULL: default), gw NULL for a link route. */
struct nl_route {
	int family;
	const uint8_t *dst, *gw;
	unsigned dst_len;
	int ifindex;
	uint32_t metric;
	int onlink;
};
int nl_route_add(struct nl_sock *nl, const struct nl_route *r);

#endif
