/* The VM's NICs. At boot each one is brought up silent: IPv6 disabled on it and no IPv4
 * address, so it sends nothing (a template's NICs never speak with the template's MAC) while
 * its receive ring is filled once, before a template is saved rather than in every clone.
 *
 * SetupNetwork then gives each NIC, found by the MAC the VMM gave the device, the pod
 * interface's name (renaming needs it down), MAC and MTU (both change while up), IPv6 back
 * (its link-local address now from the pod's MAC), the addresses and the routes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/fmt.h"
#include "core/klog.h"
#include "core/netlink.h"
#include "core/sys.h"
#include "sandbox.pb.h"
#include "services/app.h"
#include "services/net.h"
#include "wire/rpc.h"

#define NIC_SCAN_MAX 64

static int ipv6_set(const char *ifname, int enable)
{
	char path[80];
	int fd, rc;

	kfmt(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = write(fd, enable ? "0" : "1", 1) == 1 ? 0 : -1;
	close(fd);
	return rc;
}

/* Calls fn for each Ethernet link until it returns nonzero, which is returned. Indexes are
 * dense in a VM that never deletes links: a run of misses ends the scan. */
static int each_nic(int (*fn)(int idx, const struct ifreq *ifr, void *arg), void *arg)
{
	int fd = sys_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;
	struct ifreq ifr;

	if (fd < 0)
		return 0;
	for (int i = 1, miss = 0; i <= NIC_SCAN_MAX && !rc && miss < 4; i++) {
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_ifindex = i;
		if (ioctl(fd, SIOCGIFNAME, &ifr) < 0) {
			miss++;
			continue;
		}
		miss = 0;
		if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER)
			rc = fn(i, &ifr, arg);
	}
	close(fd);
	return rc;
}

static int silence(int idx, const struct ifreq *ifr, void *arg)
{
	if (ipv6_set(ifr->ifr_name, 0 /* disable */) < 0 ||
	    nl_link_set(arg, idx, NULL, NULL, 0, 1) < 0)
		warn("NIC %s: bring it up silent: errno %d", ifr->ifr_name, errno);
	return 0;
}

void net_boot(void)
{
	struct nl_sock nl;

	if (nl_open(&nl) < 0)
		return;
	each_nic(silence, &nl);
	nl_close(&nl);
}

struct nic_query {
	const uint8_t *mac;
	char *name;
};

/* Whether the NIC's own address (the device's, kept when its MAC is changed: a fork of a
 * VM whose NIC took its pod's MAC) is mac. */
static int perm_addr_is(const char *name, const uint8_t *mac)
{
	/* The header and its bytes as the kernel reads them: one run of memory. */
	uint32_t raw[2 + 8] = { ETHTOOL_GPERMADDR, 32 };
	struct ethtool_perm_addr *pa = (struct ethtool_perm_addr *)raw;
	struct ifreq ifr;
	int fd = sys_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, IFNAMSIZ);
	ifr.ifr_data = (void *)raw;
	rc = ioctl(fd, SIOCETHTOOL, &ifr);
	close(fd);
	return rc == 0 && pa->size == 6 && !memcmp(pa->data, mac, 6);
}

static int match_mac(int idx, const struct ifreq *ifr, void *arg)
{
	struct nic_query *q = arg;

	if (memcmp(ifr->ifr_hwaddr.sa_data, q->mac, 6) && !perm_addr_is(ifr->ifr_name, q->mac))
		return 0;
	memcpy(q->name, ifr->ifr_name, IFNAMSIZ);
	return idx;
}

/* The ifindex of the link whose hardware address is mac (its name in name), 0 if none. */
static int find_nic(const uint8_t *mac, char name[IFNAMSIZ])
{
	struct nic_query q = { mac, name };

	return each_nic(match_mac, &q);
}

static int family_of(size_t len)
{
	return len == 4 ? AF_INET : len == 16 ? AF_INET6 : -1;
}

static int name_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < IFNAMSIZ && !strchr(s, '/') && !strchr(s, ' ') && strcmp(s, ".") &&
	       strcmp(s, "..");
}

/* Configures one NIC; on failure what fills why. */
static int setup_iface(struct nl_sock *nl, const kuasar_sandbox_v1_Interface *in, int *ifindex,
                       char *why, size_t n)
{
	char cur[IFNAMSIZ];
	int idx;

	if (in->device_mac.size != 6 || (in->mac.size && in->mac.size != 6) ||
	    !name_valid(in->name)) {
		return kfail(why, n, RPC_INVALID_ARGUMENT,
		             "interface `%s`: a name, a 6-byte device MAC and MAC are needed",
		             in->name);
	}
	idx = find_nic(in->device_mac.bytes, cur);
	if (!idx) {
		return kfail(why, n, RPC_NOT_FOUND, "interface %s: no NIC with the device's MAC",
		             in->name);
	}
	if (strcmp(cur, in->name) && (nl_link_set(nl, idx, NULL, NULL, 0, 0) < 0 ||
	                              nl_link_set(nl, idx, in->name, NULL, 0, -1) < 0)) {
		return kfail(why, n, RPC_INTERNAL, "interface %s: rename %s: errno %d%s", in->name,
		             cur, errno, nl->why);
	}
	/* Unchanged MAC and MTU are not set again (a cold boot's device has the pod's MAC). */
	if (nl_link_set(nl, idx, NULL,
	                in->mac.size && memcmp(in->mac.bytes, in->device_mac.bytes, 6)
	                    ? in->mac.bytes
	                    : NULL,
	                in->mtu, -1) < 0) {
		return kfail(why, n, RPC_INTERNAL, "interface %s: set MAC and MTU %u: errno %d%s",
		             in->name, in->mtu, errno, nl->why);
	}
	/* A fork carries its parent's addresses and routes: they go first. Turning IPv6 off
	 * and on again drops its addresses too. */
	if (nl_addr_flush4(nl, idx) < 0) {
		return kfail(why, n, RPC_INTERNAL, "interface %s: remove old addresses: errno %d%s",
		             in->name, errno, nl->why);
	}
	if (ipv6_set(in->name, 0) < 0 || ipv6_set(in->name, 1) < 0)
		warn("interface %s: IPv6 stays off: errno %d", in->name, errno);
	for (pb_size_t i = 0; i < in->addresses_count; i++) {
		const kuasar_sandbox_v1_IPAddress *a = &in->addresses[i];
		int fam = family_of(a->ip.size);

		if (fam < 0 || a->prefix_len > (fam == AF_INET ? 32u : 128u)) {
			return kfail(why, n, RPC_INVALID_ARGUMENT,
			             "interface %s: address %u is not IPv4 or IPv6", in->name, i);
		}
		if (nl_addr_add(nl, idx, fam, a->ip.bytes, a->prefix_len) < 0) {
			return kfail(why, n, RPC_INTERNAL,
			             "interface %s: add address %u/%u: errno %d%s", in->name, i,
			             a->prefix_len, errno, nl->why);
		}
	}
	if (nl_link_set(nl, idx, NULL, NULL, 0, 1) < 0) {
		return kfail(why, n, RPC_INTERNAL, "interface %s: bring it up: errno %d%s",
		             in->name, errno, nl->why);
	}
	*ifindex = idx;
	return 0;
}

static int setup_route(struct nl_sock *nl, const kuasar_sandbox_v1_Route *r, int ifindex, char *why,
                       size_t n)
{
	int fam = family_of(r->dst.size);
	struct nl_route nr = { .family = fam,
		               .dst = r->dst.bytes,
		               .dst_len = r->dst_len,
		               .gw = r->gateway.size ? r->gateway.bytes : NULL,
		               .ifindex = ifindex,
		               .metric = r->metric,
		               .onlink = r->onlink };

	if (fam < 0 || (r->gateway.size && family_of(r->gateway.size) != fam) ||
	    r->dst_len > (fam == AF_INET ? 32u : 128u)) {
		return kfail(why, n, RPC_INVALID_ARGUMENT,
		             "route on %s: destination and gateway must be one family", r->device);
	}
	if (nl_route_add(nl, &nr) == 0)
		return 0;
	/* A gateway no prefix of ours covers is still on the link (CNI's /32 pod addresses). */
	if (errno == ENETUNREACH && nr.gw && !nr.onlink) {
		nr.onlink = 1;
		if (nl_route_add(nl, &nr) == 0)
			return 0;
	}
	return kfail(why, n, RPC_INTERNAL, "route %u bytes/%u via %s on %s: errno %d%s",
	             r->dst.size, r->dst_len, nr.gw ? "a gateway" : "the link", r->device, errno,
	             nl->why);
}

static int setup(struct nl_sock *nl, const kuasar_sandbox_v1_SetupNetworkRequest *req,
                 kuasar_sandbox_v1_SetupNetworkResponse *r, char *why, size_t n)
{
	int idx[4] = { 0 }, code;

	for (pb_size_t i = 0; i < req->interfaces_count; i++) {
		code = setup_iface(nl, &req->interfaces[i], &idx[i], why, n);
		if (code)
			return code;
		kfmt(r->devices[i], sizeof(r->devices[i]), "%s", req->interfaces[i].name);
		r->devices_count++;
	}
	/* Routes on the link before routes through gateways on it. */
	for (int pass = 0; pass < 2; pass++)
		for (pb_size_t i = 0; i < req->routes_count; i++) {
			const kuasar_sandbox_v1_Route *rt = &req->routes[i];
			int ifindex = 0;

			if ((rt->gateway.size != 0) != pass)
				continue;
			for (pb_size_t k = 0; k < req->interfaces_count; k++)
				if (!strcmp(rt->device, req->interfaces[k].name))
					ifindex = idx[k];
			if (!ifindex) {
				return kfail(why, n, RPC_INVALID_ARGUMENT,
				             "route on `%s`: no such interface in the request",
				             rt->device);
			}
			code = setup_route(nl, rt, ifindex, why, n);
			if (code)
				return code;
		}
	return 0;
}

void sb_setup_network(struct rpc_ctx *ctx)
{
	kuasar_sandbox_v1_SetupNetworkRequest req;
	kuasar_sandbox_v1_SetupNetworkResponse r;
	struct nl_sock nl;
	char why[160];
	int code;

	memset(&req, 0, sizeof(req));
	memset(&r, 0, sizeof(r));
	if (rpc_decode(ctx, kuasar_sandbox_v1_SetupNetworkRequest_fields, &req) < 0)
		return;
	if (nl_open(&nl) < 0) {
		rpc_error(ctx, RPC_INTERNAL, "netlink socket: errno %d", errno);
		return;
	}
	code = setup(&nl, &req, &r, why, sizeof(why));
	nl_close(&nl);
	if (code) {
		warn("network setup: %s", why);
		rpc_error(ctx, code, "%s", why);
		return;
	}
	info("network: %u interfaces, %u routes", (unsigned)req.interfaces_count,
	     (unsigned)req.routes_count);
	if (req.resolv_conf[0])
		app_set_resolv(req.resolv_conf);
	rpc_reply(ctx, kuasar_sandbox_v1_SetupNetworkResponse_fields, &r);
}
