#include "net/podnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <linux/nsfs.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/ethernet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "net/rtnl.h"

#define INGRESS_HANDLE 0xffff0000U

/* ---- namespaces ---- */

int podnet_netns_open(const char *path, kerr_t *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kerr_sys(err, "network namespace %s", path);
	if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
		close(fd);
		return kerr_set(err, EINVAL, "%s is not a network namespace", path);
	}
	return fd;
}

int podnet_check_netns(const char *path, kerr_t *err)
{
	int fd = podnet_netns_open(path, err);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int podnet_join(const char *path, kerr_t *err)
{
	_cleanup_close_ int fd = podnet_netns_open(path, err);

	if (fd < 0)
		return -1;
	if (setns(fd, CLONE_NEWNET) < 0)
		return kerr_sys(err, "enter the network namespace %s", path);
	return 0;
}

/* Moves this (single-threaded) process into the netns fd; *back returns it. */
static int ns_enter_fd(int fd, int *back, kerr_t *err)
{
	*back = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*back < 0)
		return kerr_sys(err, "open /proc/self/ns/net");
	if (setns(fd, CLONE_NEWNET) < 0) {
		close(*back);
		return kerr_sys(err, "enter the network namespace");
	}
	return 0;
}

/* A process that cannot return must not go on in the pod's netns (every later socket, tap
 * and netlink call would land there): it ends here, and the daemon re-adopts what ran. */
static void ns_leave(int back)
{
	if (setns(back, CLONE_NEWNET) < 0) {
		log_error("fatal: cannot return to our network namespace: %s", strerror(errno));
		abort();
	}
	close(back);
}

/* ---- reading CNI's interfaces ---- */

struct attrs {
	const struct nlattr *tb[IFLA_MAX > RTA_MAX ? IFLA_MAX + 1 : RTA_MAX + 1];
	int max;
};

static int attr_cb(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	int type = mnl_attr_get_type(a);

	if (type <= t->max)
		t->tb[type] = a;
	return MNL_CB_OK;
}

static void parse_attrs(const struct nlmsghdr *nlh, size_t hdrlen, int max, struct attrs *t)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
	mnl_attr_parse(nlh, (unsigned)hdrlen, attr_cb, t);
}

static int is_our_tap(const char *name)
{
	unsigned n;
	char tail[IFNAMSIZ + 1];

	return sscanf(name, "tap%u%16s", &n, tail) == 2 && !strcmp(tail, "_kuasar");
}

static void tap_name(char buf[IFNAMSIZ], unsigned i)
{
	snprintf(buf, IFNAMSIZ, PODNET_TAP_FMT, i % 100);
}

static struct net_iface *iface_by_index(struct pod_net *pn, int ifindex)
{
	for (unsigned i = 0; i < pn->n_ifs; i++)
		if (pn->ifs[i].ifindex == ifindex)
			return &pn->ifs[i];
	return NULL;
}

struct walk {
	struct pod_net *pn;
	kerr_t *err;
	int failed;
};

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct walk *w = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	struct net_iface *f;
	struct attrs t;
	const char *name;

	parse_attrs(nlh, sizeof(*ifi), IFLA_MAX, &t);
	if (!t.tb[IFLA_IFNAME] || (ifi->ifi_flags & IFF_LOOPBACK) || ifi->ifi_type != ARPHRD_ETHER)
		return MNL_CB_OK;
	name = mnl_attr_get_str(t.tb[IFLA_IFNAME]);
	if (is_our_tap(name))
		return MNL_CB_OK;
	if (w->pn->n_ifs >= PODNET_MAX_IFACES) {
		w->failed = kerr_set(w->err, E2BIG, "more than %d interfaces in the pod netns",
		                     PODNET_MAX_IFACES);
		return MNL_CB_OK;
	}
	f = &w->pn->ifs[w->pn->n_ifs++];
	memset(f, 0, sizeof(*f));
	f->tap_fd = -1;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->ifindex = ifi->ifi_index;
	if (t.tb[IFLA_ADDRESS] && mnl_attr_get_payload_len(t.tb[IFLA_ADDRESS]) == 6)
		memcpy(f->mac, mnl_attr_get_payload(t.tb[IFLA_ADDRESS]), 6);
	if (t.tb[IFLA_MTU] && mnl_attr_get_payload_len(t.tb[IFLA_MTU]) == 4)
		f->mtu = mnl_attr_get_u32(t.tb[IFLA_MTU]);
	return MNL_CB_OK;
}

static size_t alen(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct walk *w = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct net_iface *f = iface_by_index(w->pn, (int)ifa->ifa_index);
	const struct nlattr *a;
	struct net_addr *out;
	struct attrs t;

	/* Link-local and host-scope addresses are the guest kernel's own business. */
	if (!f || ifa->ifa_scope != RT_SCOPE_UNIVERSE ||
	    (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
		return MNL_CB_OK;
	parse_attrs(nlh, sizeof(*ifa), IFA_MAX, &t);
	a = t.tb[IFA_LOCAL] ? t.tb[IFA_LOCAL] : t.tb[IFA_ADDRESS];
	if (!a || mnl_attr_get_payload_len(a) != alen(ifa->ifa_family))
		return MNL_CB_OK;
	if (f->n_addrs >= PODNET_MAX_ADDRS) {
		w->failed = kerr_set(w->err, E2BIG, "%s: more than %d addresses", f->name,
		                     PODNET_MAX_ADDRS);
		return MNL_CB_OK;
	}
	out = &f->addrs[f->n_addrs++];
	out->family = ifa->ifa_family;
	out->prefix = ifa->ifa_prefixlen;
	memcpy(out->ip, mnl_attr_get_payload(a), alen(ifa->ifa_family));
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct walk *w = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
	struct net_iface *f;
	struct net_route *r;
	struct attrs t;
	uint32_t table;

	parse_attrs(nlh, sizeof(*rt), RTA_MAX, &t);
	table = t.tb[RTA_TABLE] ? mnl_attr_get_u32(t.tb[RTA_TABLE]) : rt->rtm_table;
	/* Prefix routes come back by themselves when the guest adds the addresses. */
	if (table != RT_TABLE_MAIN || rt->rtm_type != RTN_UNICAST ||
	    rt->rtm_protocol == RTPROT_KERNEL || !t.tb[RTA_OIF] || t.tb[RTA_MULTIPATH] ||
	    (rt->rtm_family != AF_INET && rt->rtm_family != AF_INET6))
		return MNL_CB_OK;
	f = iface_by_index(w->pn, (int)mnl_attr_get_u32(t.tb[RTA_OIF]));
	if (!f)
		return MNL_CB_OK;
	if (w->pn->n_routes >= PODNET_MAX_ROUTES) {
		w->failed = kerr_set(w->err, E2BIG, "more than %d routes in the pod netns",
		                     PODNET_MAX_ROUTES);
		return MNL_CB_OK;
	}
	r = &w->pn->routes[w->pn->n_routes++];
	memset(r, 0, sizeof(*r));
	r->family = rt->rtm_family;
	r->dst_len = rt->rtm_dst_len;
	r->iface = (unsigned)(f - w->pn->ifs);
	r->onlink = !!(rt->rtm_flags & RTNH_F_ONLINK);
	if (t.tb[RTA_DST] && mnl_attr_get_payload_len(t.tb[RTA_DST]) == alen(r->family))
		memcpy(r->dst, mnl_attr_get_payload(t.tb[RTA_DST]), alen(r->family));
	if (t.tb[RTA_GATEWAY] && mnl_attr_get_payload_len(t.tb[RTA_GATEWAY]) == alen(r->family)) {
		memcpy(r->gw, mnl_attr_get_payload(t.tb[RTA_GATEWAY]), alen(r->family));
		r->has_gw = 1;
	}
	if (t.tb[RTA_PRIORITY])
		r->metric = mnl_attr_get_u32(t.tb[RTA_PRIORITY]);
	return MNL_CB_OK;
}

static int dump(struct rtnl *nl, uint16_t type, size_t hdrlen, int family, mnl_cb_t cb,
                struct walk *w, const char *what)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	struct nlmsghdr *nlh = rtnl_msg(nl, buf, type, 0, hdrlen);

	/* rtgenmsg, ifinfomsg, ifaddrmsg and rtmsg all start with the family byte. */
	*(uint8_t *)mnl_nlmsg_get_payload(nlh) = (uint8_t)family;
	if (rtnl_dump(nl, nlh, cb, w) < 0)
		return kerr_sys(w->err, "list the pod's %s", what);
	return w->failed ? -1 : 0;
}

static int read_pod(struct rtnl *nl, struct pod_net *pn, kerr_t *err)
{
	struct walk w = { .pn = pn, .err = err };

	memset(pn, 0, sizeof(*pn));
	if (dump(nl, RTM_GETLINK, sizeof(struct ifinfomsg), AF_UNSPEC, link_cb, &w, "interfaces") <
	        0 ||
	    dump(nl, RTM_GETADDR, sizeof(struct ifaddrmsg), AF_UNSPEC, addr_cb, &w, "addresses") <
	        0 ||
	    dump(nl, RTM_GETROUTE, sizeof(struct rtmsg), AF_UNSPEC, route_cb, &w, "routes") < 0)
		return -1;
	return 0;
}

/* ---- taps and tc ---- */

static int link_setup(struct rtnl *nl, int ifindex, unsigned mtu)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	struct nlmsghdr *nlh = rtnl_msg(nl, buf, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

	ifi->ifi_index = ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return rtnl_talk(nl, nlh);
}

/* A tap in the current netns: no packet info header, virtio-net headers (offloads). */
static int tap_open(const char *name, kerr_t *err)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return kerr_sys(err, "open /dev/net/tun");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		kerr_sys(err, "create tap %s", name);
		close(fd);
		return -1;
	}
	return fd;
}

static struct nlmsghdr *tc_msg(struct rtnl *nl, char *buf, uint16_t type, uint16_t flags,
                               int ifindex, uint32_t handle, uint32_t parent, uint32_t info)
{
	struct nlmsghdr *nlh = rtnl_msg(nl, buf, type, flags, sizeof(struct tcmsg));
	struct tcmsg *tc = mnl_nlmsg_get_payload(nlh);

	tc->tcm_family = AF_UNSPEC;
	tc->tcm_ifindex = ifindex;
	tc->tcm_handle = handle;
	tc->tcm_parent = parent;
	tc->tcm_info = info;
	return nlh;
}

static int ingress_add(struct rtnl *nl, int ifindex)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	struct nlmsghdr *nlh = tc_msg(nl, buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ifindex,
	                              INGRESS_HANDLE, TC_H_INGRESS, 0);

	mnl_attr_put_strz(nlh, TCA_KIND, "ingress");
	if (rtnl_talk(nl, nlh) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static uint32_t filter_info(void)
{
	return TC_H_MAKE((uint32_t)PODNET_FILTER_PRIO << 16, htons(ETH_P_ALL));
}

/* On from's ingress: u32 "match u32 0 0" (every frame), action mirred egress redirect to
 * dev `to`. */
static int redirect_add(struct rtnl *nl, int from, int to)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	struct nlmsghdr *nlh = tc_msg(nl, buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, from, 0,
	                              INGRESS_HANDLE, filter_info());
	/* A selector and its one key, as the kernel reads them: one run of bytes. */
	uint8_t selbuf[sizeof(struct tc_u32_sel) + sizeof(struct tc_u32_key)]
	    __attribute__((aligned(8)));
	struct tc_u32_sel *sel = (struct tc_u32_sel *)selbuf;
	struct tc_mirred m;
	struct nlattr *opts, *acts, *act, *aopts;

	memset(selbuf, 0, sizeof(selbuf));
	sel->flags = TC_U32_TERMINAL;
	sel->nkeys = 1; /* mask 0, value 0 at offset 0: matches everything */
	memset(&m, 0, sizeof(m));
	m.action = TC_ACT_STOLEN;
	m.eaction = TCA_EGRESS_REDIR;
	m.ifindex = (uint32_t)to;
	mnl_attr_put_strz(nlh, TCA_KIND, "u32");
	opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
	mnl_attr_put(nlh, TCA_U32_SEL, sizeof(selbuf), selbuf);
	acts = mnl_attr_nest_start(nlh, TCA_U32_ACT);
	act = mnl_attr_nest_start(nlh, 1); /* the first action of the list */
	mnl_attr_put_strz(nlh, TCA_ACT_KIND, "mirred");
	aopts = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
	mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof(m), &m);
	mnl_attr_nest_end(nlh, aopts);
	mnl_attr_nest_end(nlh, act);
	mnl_attr_nest_end(nlh, acts);
	mnl_attr_nest_end(nlh, opts);
	return rtnl_talk(nl, nlh);
}

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	(*(unsigned *)data)++;
	return MNL_CB_OK;
}

/* Our filter off ifindex's ingress, then the ingress qdisc if nothing else is on it. */
static void unredirect(struct rtnl *nl, int ifindex)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	struct nlmsghdr *nlh;
	unsigned left = 0;

	nlh = tc_msg(nl, buf, RTM_DELTFILTER, 0, ifindex, 0, INGRESS_HANDLE, filter_info());
	if (rtnl_talk(nl, nlh) < 0 && errno != ENOENT && errno != EINVAL)
		log_warn("remove our filter from interface %d: %s", ifindex, strerror(errno));
	nlh = tc_msg(nl, buf, RTM_GETTFILTER, 0, ifindex, 0, INGRESS_HANDLE, 0);
	if (rtnl_dump(nl, nlh, count_cb, &left) < 0 || left)
		return; /* no ingress qdisc (EINVAL), or someone else's filters are on it */
	nlh = tc_msg(nl, buf, RTM_DELQDISC, 0, ifindex, INGRESS_HANDLE, TC_H_INGRESS, 0);
	if (rtnl_talk(nl, nlh) < 0 && errno != ENOENT && errno != EINVAL)
		log_warn("remove the ingress qdisc of interface %d: %s", ifindex, strerror(errno));
}

/* Every link of the netns (a pod's may have many: none is skipped). */
struct links {
	struct link_ent {
		int index, tap;
	} * v;
	unsigned n, cap;
};

static int links_cb(const struct nlmsghdr *nlh, void *data)
{
	struct links *l = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	struct attrs t;

	parse_attrs(nlh, sizeof(*ifi), IFLA_MAX, &t);
	if (!t.tb[IFLA_IFNAME] || (ifi->ifi_flags & IFF_LOOPBACK))
		return MNL_CB_OK;
	if (l->n == l->cap) {
		unsigned cap = l->cap ? l->cap * 2 : 16;
		struct link_ent *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			errno = ENOMEM;
			return MNL_CB_ERROR;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].index = ifi->ifi_index;
	l->v[l->n++].tap = is_our_tap(mnl_attr_get_str(t.tb[IFLA_IFNAME]));
	return MNL_CB_OK;
}

/* Everything of ours out of the current netns: filters first (traffic stops going to the
 * taps), then the taps with their own qdiscs. */
static int detach_here(struct rtnl *nl, kerr_t *err)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	struct links l = { 0 };
	struct nlmsghdr *nlh = rtnl_msg(nl, buf, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
	int rc = 0;

	if (rtnl_dump(nl, nlh, links_cb, &l) < 0) {
		free(l.v);
		return kerr_sys(err, "list the pod's interfaces");
	}
	for (unsigned i = 0; i < l.n; i++)
		if (!l.v[i].tap)
			unredirect(nl, l.v[i].index);
	for (unsigned i = 0; i < l.n; i++) {
		struct ifinfomsg *ifi;

		if (!l.v[i].tap)
			continue;
		nlh = rtnl_msg(nl, buf, RTM_DELLINK, 0, sizeof(*ifi));
		ifi = mnl_nlmsg_get_payload(nlh);
		ifi->ifi_index = l.v[i].index;
		if (rtnl_talk(nl, nlh) < 0 && errno != ENODEV)
			rc = rtnl_err(nl, err, "remove tap %d", l.v[i].index);
	}
	free(l.v);
	return rc;
}

/* The tap named f->tap, here already, up with the interface's MTU and joined to it. */
static int tap_join(struct rtnl *nl, struct net_iface *f, kerr_t *err)
{
	f->tap_index = (int)if_nametoindex(f->tap);
	if (!f->tap_index)
		return kerr_sys(err, "index of tap %s", f->tap);
	if (link_setup(nl, f->tap_index, f->mtu) < 0)
		return rtnl_err(nl, err, "bring tap %s up with MTU %u", f->tap, f->mtu);
	if (ingress_add(nl, f->ifindex) < 0 || ingress_add(nl, f->tap_index) < 0)
		return rtnl_err(nl, err, "add ingress qdiscs on %s and %s", f->name, f->tap);
	if (redirect_add(nl, f->ifindex, f->tap_index) < 0 ||
	    redirect_add(nl, f->tap_index, f->ifindex) < 0)
		return rtnl_err(nl, err, "redirect %s <-> %s (tc u32 + mirred)", f->name, f->tap);
	return 0;
}

static int join(struct rtnl *nl, struct net_iface *f, unsigned i, kerr_t *err)
{
	tap_name(f->tap, i);
	f->tap_fd = tap_open(f->tap, err);
	if (f->tap_fd < 0)
		return -1;
	return tap_join(nl, f, err);
}

static int attach_here(struct pod_net *pn, kerr_t *err)
{
	struct rtnl nl;
	kerr_t ignore;
	int rc = -1;

	if (rtnl_open(&nl, err) < 0)
		return -1;
	/* Leftovers of an earlier start of this pod would make the filters clash. */
	if (detach_here(&nl, err) == 0 && read_pod(&nl, pn, err) == 0) {
		rc = 0;
		for (unsigned i = 0; i < pn->n_ifs && rc == 0; i++)
			rc = join(&nl, &pn->ifs[i], i, err);
	}
	if (rc < 0) {
		podnet_close_fds(pn);
		detach_here(&nl, &ignore);
	}
	rtnl_close(&nl);
	return rc;
}

int podnet_attach(const char *netns_path, struct pod_net *pn, kerr_t *err)
{
	int fd, back, rc;

	memset(pn, 0, sizeof(*pn));
	fd = podnet_netns_open(netns_path, err);
	if (fd < 0)
		return -1;
	rc = ns_enter_fd(fd, &back, err);
	close(fd);
	if (rc < 0)
		return kerr_wrap(err, "%s", netns_path);
	rc = attach_here(pn, err);
	ns_leave(back);
	return rc < 0 ? kerr_wrap(err, "pod network in %s", netns_path) : 0;
}

int podnet_detach(const char *netns_path, kerr_t *err)
{
	struct rtnl nl;
	int fd, back, rc;
	kerr_t why;

	fd = podnet_netns_open(netns_path, &why);
	if (fd < 0)
		return why.errnum == ENOENT ? 0 : kerr_set(err, why.errnum, "%s", why.msg);
	rc = ns_enter_fd(fd, &back, err);
	close(fd);
	if (rc < 0)
		return -1;
	rc = rtnl_open(&nl, err);
	if (rc == 0) {
		rc = detach_here(&nl, err);
		rtnl_close(&nl);
	}
	ns_leave(back);
	return rc;
}

int podnet_socket_at(int netns_fd, int family, int type, kerr_t *err)
{
	int back, fd;

	if (ns_enter_fd(netns_fd, &back, err) < 0)
		return -1;
	fd = socket(family, type, 0);
	if (fd < 0)
		kerr_sys(err, "socket");
	ns_leave(back);
	return fd;
}

void podnet_close_fds(struct pod_net *pn)
{
	for (unsigned i = 0; i < pn->n_ifs; i++)
		if (pn->ifs[i].tap_fd >= 0) {
			close(pn->ifs[i].tap_fd);
			pn->ifs[i].tap_fd = -1;
		}
}

int podnet_pool_taps(unsigned n, int *fds, int *ns_fd, kerr_t *err)
{
	int back = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), rc = 0;
	char name[IFNAMSIZ];
	unsigned i;

	if (back < 0)
		return kerr_sys(err, "open /proc/self/ns/net");
	if (unshare(CLONE_NEWNET) < 0) {
		close(back);
		return kerr_sys(err, "a network namespace for the VM's taps");
	}
	/* Each tap holds the namespace: it lives exactly as long as they do (or ns_fd). */
	for (i = 0; i < n && rc == 0; i++) {
		tap_name(name, i);
		fds[i] = tap_open(name, err);
		rc = fds[i] < 0 ? -1 : 0;
	}
	if (rc < 0)
		for (unsigned k = 0; k + 1 < i; k++)
			close(fds[k]);
	if (rc == 0 && ns_fd) {
		*ns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		if (*ns_fd < 0)
			rc = kerr_sys(err, "open the taps' network namespace");
	}
	ns_leave(back);
	return rc;
}

int podnet_scratch_taps(unsigned n, int *fds, kerr_t *err)
{
	return podnet_pool_taps(n, fds, NULL, err);
}

/* The pooled taps, in the netns we are in, sent to the netns pod_ns under the same names. */
static int taps_send(unsigned n, int pod_ns, kerr_t *err)
{
	char buf[RTNL_BUF] __attribute__((aligned(4)));
	struct rtnl nl;
	int rc = 0;

	if (rtnl_open(&nl, err) < 0)
		return -1;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		struct nlmsghdr *nlh = rtnl_msg(&nl, buf, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
		struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
		char name[IFNAMSIZ];

		tap_name(name, i);
		ifi->ifi_index = (int)if_nametoindex(name);
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)pod_ns);
		if (!ifi->ifi_index)
			rc = kerr_sys(err, "the pooled tap %s", name);
		else if (rtnl_talk(&nl, nlh) < 0)
			rc = rtnl_err(&nl, err, "move tap %s into the pod's netns", name);
	}
	rtnl_close(&nl);
	return rc;
}

/* In the pod netns: CNI's interfaces read, as many as the VM has taps. */
static int adopt_read(int pod_ns, unsigned n_taps, struct pod_net *pn, kerr_t *err)
{
	struct rtnl nl;
	int back, rc;

	if (ns_enter_fd(pod_ns, &back, err) < 0)
		return -1;
	rc = rtnl_open(&nl, err);
	if (rc == 0) {
		rc = detach_here(&nl, err) < 0 || read_pod(&nl, pn, err) < 0 ? -1 : 0;
		rtnl_close(&nl);
	}
	ns_leave(back);
	if (rc == 0 && pn->n_ifs != n_taps)
		rc = kerr_set(err, EXDEV, "the pod has %u interfaces, the pooled VM %u NICs",
		              pn->n_ifs, n_taps);
	return rc;
}

/* In the pod netns: each moved tap joined to its interface. */
static int adopt_join(int pod_ns, struct pod_net *pn, kerr_t *err)
{
	struct rtnl nl = { 0 };
	kerr_t ignore;
	int back, rc;

	if (ns_enter_fd(pod_ns, &back, err) < 0)
		return -1;
	rc = rtnl_open(&nl, err);
	for (unsigned i = 0; rc == 0 && i < pn->n_ifs; i++) {
		tap_name(pn->ifs[i].tap, i);
		rc = tap_join(&nl, &pn->ifs[i], err);
	}
	if (rc < 0 && nl.sock)
		detach_here(&nl, &ignore);
	rtnl_close(&nl);
	ns_leave(back);
	return rc;
}

int podnet_adopt(const char *netns_path, int pool_ns, unsigned n, struct pod_net *pn, kerr_t *err)
{
	_cleanup_close_ int pod_ns = -1;
	int back, rc;

	memset(pn, 0, sizeof(*pn));
	pod_ns = podnet_netns_open(netns_path, err);
	if (pod_ns < 0 || adopt_read(pod_ns, n, pn, err) < 0)
		return kerr_wrap(err, "pod network in %s", netns_path);
	if (ns_enter_fd(pool_ns, &back, err) < 0)
		return -1;
	rc = taps_send(n, pod_ns, err);
	ns_leave(back);
	if (rc < 0 || adopt_join(pod_ns, pn, err) < 0)
		return kerr_wrap(err, "pod network in %s", netns_path);
	return 0;
}

int podnet_vhost_usable(void)
{
	int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

void podnet_mac_str(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
	         mac[5]);
}

void podnet_describe(const struct pod_net *pn, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < pn->n_ifs && off < n; i++) {
		const struct net_iface *f = &pn->ifs[i];
		char mac[18], ip[INET6_ADDRSTRLEN];

		podnet_mac_str(f->mac, mac);
		off += (size_t)snprintf(buf + off, n - off, "%s%s %s mtu %u", i ? "; " : "",
		                        f->name, mac, f->mtu);
		for (unsigned k = 0; k < f->n_addrs && off < n; k++) {
			inet_ntop(f->addrs[k].family, f->addrs[k].ip, ip, sizeof(ip));
			off +=
			    (size_t)snprintf(buf + off, n - off, " %s/%u", ip, f->addrs[k].prefix);
		}
		if (off < n)
			off += (size_t)snprintf(buf + off, n - off, " via %s", f->tap);
	}
}
