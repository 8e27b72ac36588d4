/* A pod's network joined to its VM. CNI has put an interface (normally eth0, a veth whose
 * peer is on a bridge) with addresses and routes in the pod's network namespace. For each
 * such interface we create a tap in that namespace and join the two with tc: an ingress
 * qdisc on each and a u32 match-everything filter whose mirred action redirects every frame
 * to the other's egress. The namespace's own stack then never sees the pod's traffic; the
 * VMM gets the tap's fd, and the guest is told the interface's MAC, MTU, addresses and
 * routes. All of it through rtnetlink; the taps go away with their last fd. */
#ifndef KUASAR_PODNET_H
#define KUASAR_PODNET_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define PODNET_MAX_IFACES 4
#define PODNET_MAX_ADDRS 8
#define PODNET_MAX_ROUTES 16
/* Our taps are named tap<N>_kuasar; our filters have this priority. */
#define PODNET_TAP_FMT "tap%u_kuasar"
#define PODNET_FILTER_PRIO 0xc0de

struct net_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t ip[16];
	unsigned prefix;
};

struct net_route {
	int family;
	uint8_t dst[16];
	unsigned dst_len;
	uint8_t gw[16];
	int has_gw;
	int onlink;
	uint32_t metric;
	unsigned iface; /* index in pod_net.ifs */
};

struct net_iface {
	char name[IFNAMSIZ]; /* CNI's name for it (eth0) */
	int ifindex;         /* in the pod netns */
	uint8_t mac[6];
	unsigned mtu;
	struct net_addr addrs[PODNET_MAX_ADDRS];
	unsigned n_addrs;
	char tap[IFNAMSIZ];
	int tap_index;
	int tap_fd; /* -1 once closed */
};

struct pod_net {
	struct net_iface ifs[PODNET_MAX_IFACES];
	unsigned n_ifs;
	struct net_route routes[PODNET_MAX_ROUTES];
	unsigned n_routes;
};

/* Checks that path names a network namespace (ENOENT: no such file; EINVAL: not one). */
int podnet_check_netns(const char *path, kerr_t *err);
/* Reads CNI's interfaces, addresses and routes in the netns at path and joins each interface
 * to a new tap (fds in pn). On failure nothing of ours is left in the netns. A netns with no
 * interface but lo gives n_ifs 0 and no error. */
int podnet_attach(const char *netns_path, struct pod_net *pn, kerr_t *err);
/* Removes our filters, the ingress qdiscs they leave empty and our taps from the netns at
 * path. Idempotent: a netns already gone, or one with nothing of ours, is not an error. */
int podnet_detach(const char *netns_path, kerr_t *err);
/* The network namespace at path, open (EINVAL: the file is not one). */
int podnet_netns_open(const char *path, kerr_t *err);
/* Moves this (single-threaded) process into the netns at path for good: what it forks
 * then (the VMM) is there too. */
int podnet_join(const char *path, kerr_t *err);
/* A socket made in the netns netns_fd: it stays there, whatever netns uses it later. */
int podnet_socket_at(int netns_fd, int family, int type, kerr_t *err);
/* Closes the tap fds still held. */
void podnet_close_fds(struct pod_net *pn);
/* n taps that go nowhere, in a network namespace of their own that lives as long as they
 * do: the NICs of a template VM. */
int podnet_scratch_taps(unsigned n, int *fds, kerr_t *err);
/* The same for a pooled VM: *ns_fd keeps their netns open, to move them out of later. */
int podnet_pool_taps(unsigned n, int *fds, int *ns_fd, kerr_t *err);
/* A pooled VM's n taps (named as podnet_attach names them, in the netns pool_ns; their fds
 * are the VMM's) moved into the pod netns at path and joined to CNI's interfaces there; pn
 * as podnet_attach fills it, without tap fds (-1). EXDEV when the pod has not n interfaces:
 * then nothing has changed. After a later failure the taps may be in the pod netns
 * (podnet_detach). */
int podnet_adopt(const char *netns_path, int pool_ns, unsigned n, struct pod_net *pn, kerr_t *err);
/* Whether /dev/vhost-net can be used (QEMU then moves the data path into the kernel). */
int podnet_vhost_usable(void);
/* "eth0 aa:bb:..:ff mtu 1500 10.88.0.5/16 fd00::5/64 via tap0_kuasar; ..." */
void podnet_describe(const struct pod_net *pn, char *buf, size_t n);
/* Text form of a MAC into buf (18 bytes). */
void podnet_mac_str(const uint8_t mac[6], char buf[18]);

#endif
