/* The pod network layer against the real kernel, in network namespaces of the test's own:
 * what podnet_attach reads from a CNI-like veth, the tc redirect it builds (a frame sent to
 * the pod's address comes out of the tap), that detach leaves nothing, bad netns paths, the
 * template's scratch taps, and the guest's netlink helper configuring a NIC. Needs root. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "core/netlink.h"
#include "net/podnet.h"
#include "net/rtnl.h"
#include "tap.h"

static char ns[32], nspath[64], br[40];

/* Runs a shell command; returns its exit status, its output in out. */
static int sh(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t n, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	FILE *p;
	size_t got = 0;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (out) {
		got = fread(out, 1, n - 1, p);
		out[got] = 0;
	} else {
		char sink[256];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	return pclose(p);
}

static int make_pod_netns(void)
{
	return sh(NULL, 0,
	          "set -e; ip netns add %s; ip netns add %s; ip -n %s link set lo up;"
	          "ip -n %s link add eth0 type veth peer name peer0 netns %s;"
	          "ip -n %s link set eth0 address 02:00:00:aa:bb:01 mtu 1400 up;"
	          "ip -n %s link set peer0 mtu 1400 up;"
	          "ip -n %s addr add 10.199.0.5/24 dev eth0;"
	          "ip -n %s addr add fd00:199::5/64 dev eth0 nodad;"
	          "ip -n %s route add default via 10.199.0.1;"
	          "ip -n %s route add 10.200.0.0/16 via 10.199.0.1 metric 7;"
	          "ip -n %s -6 route add default via fd00:199::1 2>&1",
	          ns, br, ns, ns, br, ns, br, ns, ns, ns, ns, ns);
}

static void test_attach(void)
{
	struct pod_net pn;
	char out[4096], desc[512];
	kerr_t err;
	int rc;

	rc = podnet_attach(nspath, &pn, &err);
	ok(rc == 0, "attach to the pod netns%s%s", rc ? ": " : "", rc ? err.msg : "");
	if (rc)
		return;
	is_int(pn.n_ifs, 1, "one CNI interface (lo and nothing else)");
	is_str(pn.ifs[0].name, "eth0", "its name");
	ok(!memcmp(pn.ifs[0].mac, "\x02\x00\x00\xaa\xbb\x01", 6), "its MAC");
	is_int(pn.ifs[0].mtu, 1400, "its MTU");
	is_int(pn.ifs[0].n_addrs, 2, "its IPv4 and global IPv6 address, not the link-local one");
	is_int(pn.n_routes, 3, "three routes, the kernel's prefix routes left out");
	ok(pn.ifs[0].tap_fd >= 0, "a tap fd for the VMM");
	podnet_describe(&pn, desc, sizeof(desc));
	ok(strstr(desc, "10.199.0.5/24") && strstr(desc, "fd00:199::5/64") &&
	       strstr(desc, "tap0_kuasar"),
	   "described: %s", desc);
	for (unsigned i = 0; i < pn.n_routes; i++)
		if (pn.routes[i].metric == 7)
			ok(pn.routes[i].dst_len == 16 && pn.routes[i].has_gw, "the metric-7 route");
	sh(out, sizeof(out),
	   "tc -n %s filter show dev eth0 ingress; tc -n %s filter show dev "
	   "tap0_kuasar ingress",
	   ns, ns);
	ok(strstr(out, "Egress Redirect to device tap0_kuasar") &&
	       strstr(out, "Egress Redirect to device eth0"),
	   "u32 + mirred filters redirect eth0 <-> tap0_kuasar");

	/* An ARP request for the pod address from the bridge side comes out of the tap. */
	{
		struct pollfd p = { .fd = pn.ifs[0].tap_fd, .events = POLLIN };
		unsigned char frame[2048];
		ssize_t n = 0;
		int arp = 0;

		sh(NULL, 0,
		   "ip -n %s addr add 10.199.0.1/24 dev peer0; ip netns exec %s ping -c1 "
		   "-W1 10.199.0.5 >/dev/null 2>&1 &",
		   br, br);
		while (!arp && poll(&p, 1, 3000) == 1 &&
		       (n = read(pn.ifs[0].tap_fd, frame, sizeof(frame))) > 0)
			/* A 10-byte virtio-net header, then the Ethernet frame. */
			arp = n >= 24 && frame[10 + 12] == 0x08 && frame[10 + 13] == 0x06;
		ok(arp, "an ARP request sent to the pod's address arrives on the tap");
	}
	podnet_close_fds(&pn);
	rc = podnet_detach(nspath, &err);
	ok(rc == 0, "detach%s%s", rc ? ": " : "", rc ? err.msg : "");
	sh(out, sizeof(out), "tc -n %s qdisc show; ip -n %s link show", ns, ns);
	ok(!strstr(out, "ingress") && !strstr(out, "tap0_kuasar"),
	   "no tap, ingress qdisc or filter left");
	ok(strstr(out, "eth0") != NULL, "CNI's eth0 is left alone");
	ok(podnet_detach(nspath, &err) == 0, "detach again: nothing to do, no error");
}

/* A second CNI interface (multus-style net1): one tap each, routes on the right one. */
static void test_two_ifaces(void)
{
	struct pod_net pn;
	kerr_t err;
	int rc;

	if (sh(NULL, 0,
	       "ip -n %s link add net1 type veth peer name peer1 netns %s && ip -n %s link set "
	       "net1 up && ip -n %s addr add 10.198.0.5/24 dev net1 && ip -n %s route add "
	       "10.197.0.0/16 via 10.198.0.1 dev net1",
	       ns, br, ns, ns, ns) != 0) {
		skip("a second veth");
		return;
	}
	rc = podnet_attach(nspath, &pn, &err);
	ok(rc == 0, "attach with two interfaces%s%s", rc ? ": " : "", rc ? err.msg : "");
	if (rc)
		return;
	is_int(pn.n_ifs, 2, "two CNI interfaces");
	ok(strcmp(pn.ifs[0].tap, pn.ifs[1].tap) && pn.ifs[0].tap_fd >= 0 && pn.ifs[1].tap_fd >= 0,
	   "a tap each: %s, %s", pn.ifs[0].tap, pn.ifs[1].tap);
	for (unsigned i = 0; i < pn.n_routes; i++)
		if (pn.routes[i].dst_len == 16 && pn.routes[i].dst[1] == 197)
			is_str(pn.ifs[pn.routes[i].iface].name, "net1", "net1's route is on net1");
	podnet_close_fds(&pn);
	ok(podnet_detach(nspath, &err) == 0, "detach both");
	sh(NULL, 0, "ip -n %s link del net1", ns);
}

static void test_bad_paths(void)
{
	struct pod_net pn;
	kerr_t err;

	ok(podnet_attach("/run/netns/kuasar-none-such", &pn, &err) < 0 && err.errnum == ENOENT,
	   "a missing netns: ENOENT (%s)", err.msg);
	ok(podnet_attach("/etc/hostname", &pn, &err) < 0 && err.errnum == EINVAL,
	   "a file that is not a netns: EINVAL (%s)", err.msg);
	ok(podnet_detach("/run/netns/kuasar-none-such", &err) == 0, "detach of a gone netns: 0");
	ok(podnet_check_netns(nspath, &err) == 0, "check_netns on a real one");
}

static void test_scratch(void)
{
	int fds[2] = { -1, -1 };
	struct ifreq ifr;
	kerr_t err;

	ok(podnet_scratch_taps(2, fds, &err) == 0, "two scratch taps");
	memset(&ifr, 0, sizeof(ifr));
	ok(fds[1] >= 0 && ioctl(fds[1], TUNGETIFF, &ifr) == 0 &&
	       !strcmp(ifr.ifr_name, "tap1_kuasar"),
	   "the second is tap1_kuasar");
	ok(if_nametoindex("tap0_kuasar") == 0, "not in our own netns");
	close(fds[0]);
	close(fds[1]);
}

/* A pooled VM's tap: made in a netns of its own, moved into the pod's and joined to eth0,
 * its fd (the VMM's) still the tap's; a pod with another number of interfaces: EXDEV, and
 * the tap stays where it was. */
static void test_pool_adopt(void)
{
	struct pod_net pn;
	char out[4096];
	int fd = -1, pool_ns = -1, rc;
	struct ifreq ifr;
	kerr_t err;

	ok(podnet_pool_taps(1, &fd, &pool_ns, &err) == 0 && pool_ns >= 0, "a pooled tap");
	if (fd < 0)
		return;
	sh(NULL, 0, "ip -n %s link add net1 type veth peer name peer1 netns %s", ns, br);
	rc = podnet_adopt(nspath, pool_ns, 1, &pn, &err);
	ok(rc < 0 && err.errnum == EXDEV, "two interfaces for one tap: EXDEV (%s)", err.msg);
	sh(out, sizeof(out), "ip -n %s link show", ns);
	ok(!strstr(out, "tap0_kuasar"), "the tap is not in the pod netns");
	sh(NULL, 0, "ip -n %s link del net1", ns);
	rc = podnet_adopt(nspath, pool_ns, 1, &pn, &err);
	ok(rc == 0, "adopted%s%s", rc ? ": " : "", rc ? err.msg : "");
	if (rc == 0) {
		ok(pn.n_ifs == 1 && pn.ifs[0].tap_fd == -1 && !strcmp(pn.ifs[0].tap, "tap0_kuasar"),
		   "eth0 joined to tap0_kuasar");
		memset(&ifr, 0, sizeof(ifr));
		ok(ioctl(fd, TUNGETIFF, &ifr) == 0 && !strcmp(ifr.ifr_name, "tap0_kuasar"),
		   "the VMM's fd is still the tap");
		sh(out, sizeof(out), "tc -n %s filter show dev eth0 ingress; ip -n %s link show",
		   ns, ns);
		ok(strstr(out, "Redirect to device tap0_kuasar") && strstr(out, "mtu 1400"),
		   "the redirect is on, the tap has eth0's MTU");
	}
	close(fd);
	close(pool_ns);
	ok(podnet_detach(nspath, &err) == 0, "detached");
}

/* The guest's helper in a namespace of its own, on a dummy NIC. */
static void test_guest_helper(void)
{
	static const uint8_t mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
	uint8_t ip4[4] = { 10, 1, 2, 3 }, gw4[4] = { 10, 1, 2, 1 }, far[4] = { 192, 0, 2, 1 };
	uint8_t ip6[16] = { 0xfd, 0, 0, 0x77, [15] = 3 };
	struct nl_route def = { .family = AF_INET, .gw = gw4 },
	                odd = { .family = AF_INET, .gw = far, .onlink = 1 };
	struct nl_sock nl;
	char out[2048];
	int idx;

	if (unshare(CLONE_NEWNET) < 0 ||
	    sh(NULL, 0, "ip link add d0 type veth peer name d1") != 0) {
		skip("no network namespace for the guest helper: %s", strerror(errno));
		return;
	}
	idx = (int)if_nametoindex("d0");
	ok(nl_open(&nl) == 0, "netlink socket");
	ok(nl_link_set(&nl, idx, "net7", mac, 1300, -1) == 0, "rename, MAC and MTU");
	ok(nl_addr_add(&nl, idx, AF_INET, ip4, 24) == 0, "an IPv4 address");
	ok(nl_addr_add(&nl, idx, AF_INET6, ip6, 64) == 0, "an IPv6 address");
	ok(nl_link_set(&nl, idx, NULL, NULL, 0, 1) == 0, "up");
	def.ifindex = odd.ifindex = idx;
	ok(nl_route_add(&nl, &def) == 0, "a default route");
	odd.dst = far;
	odd.dst_len = 32;
	ok(nl_route_add(&nl, &odd) == 0, "an onlink route through a gateway off every prefix");
	nl_close(&nl);
	sh(out, sizeof(out), "ip addr show net7; ip route show");
	ok(strstr(out, "02:11:22:33:44:55") && strstr(out, "mtu 1300") &&
	       strstr(out, "10.1.2.3/24") && strstr(out, "fd00:77::3/64") &&
	       !strstr(out, "tentative"),
	   "net7 has the MAC, MTU and both addresses, the IPv6 one not tentative");
	ok(strstr(out, "default via 10.1.2.1 dev net7") && strstr(out, "onlink"),
	   "the routes are there:\n%s", out);
}

/* NETLINK_EXT_ACK on both sides: a refused request says the kernel's reason. A link of a
 * kind no module provides is refused with one (in a netns of its own, nothing is made). */
static void test_ext_ack(void)
{
	char buf[RTNL_BUF] __attribute__((aligned(4))), gbuf[512] __attribute__((aligned(4)));
	struct nlmsghdr *nlh;
	struct nlattr *info;
	struct nl_sock g = { 0 };
	struct rtnl r;
	kerr_t err;

	rtnl_open(&r, &err);
	nlh = rtnl_msg(&r, buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, "kxt0");
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "no-such-kind");
	mnl_attr_nest_end(nlh, info);
	ok(rtnl_talk(&r, nlh) < 0 && rtnl_err(&r, &err, "add link kxt0") < 0 &&
	       strstr(err.msg, "(the kernel: "),
	   "host: a refusal carries the kernel's reason: %s", err.msg);
	rtnl_close(&r);
	nl_open(&g);
	nlh = nl_msg_start(gbuf, sizeof(gbuf), RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
	                   sizeof(struct ifinfomsg));
	nl_attr_put(nlh, sizeof(gbuf), IFLA_IFNAME, "kxt0", 5);
	ok(nl_talk(&g, nlh) < 0 && strstr(g.why, "; the kernel: "),
	   "guest: so does the init's (errno %d%s)", errno, g.why);
	nl_close(&g);
}

int main(void)
{
	if (geteuid() != 0 || sh(NULL, 0, "command -v ip >/dev/null && command -v tc >/dev/null")) {
		skip("needs root, ip and tc");
		return done_testing();
	}
	snprintf(ns, sizeof(ns), "kuasar-ut%d", (int)getpid());
	snprintf(br, sizeof(br), "%sb", ns);
	snprintf(nspath, sizeof(nspath), "/run/netns/%s", ns);
	if (make_pod_netns() != 0) {
		skip("cannot make a test netns with a veth");
		sh(NULL, 0, "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns, br);
		return done_testing();
	}
	test_attach();
	test_two_ifaces();
	test_bad_paths();
	test_scratch();
	test_pool_adopt();
	if (unshare(CLONE_NEWNET) == 0)
		test_ext_ack();
	sh(NULL, 0, "ip netns del %s; ip netns del %s", ns, br);
	test_guest_helper();
	return done_testing();
}
