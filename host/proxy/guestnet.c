#include "proxy/guestnet.h"

#include <string.h>
#include <sys/socket.h>

#include "rpc/agent.h"
#include "vm/vmm.h"

struct msg {
	Kuasar__Sandbox__V1__SetupNetworkRequest req;
	Kuasar__Sandbox__V1__Interface ifs[PODNET_MAX_IFACES], *ifp[PODNET_MAX_IFACES];
	uint8_t dev_mac[PODNET_MAX_IFACES][6];
	Kuasar__Sandbox__V1__IPAddress addrs[PODNET_MAX_IFACES][PODNET_MAX_ADDRS];
	Kuasar__Sandbox__V1__IPAddress *addrp[PODNET_MAX_IFACES][PODNET_MAX_ADDRS];
	Kuasar__Sandbox__V1__Route routes[PODNET_MAX_ROUTES], *routep[PODNET_MAX_ROUTES];
};

static ProtobufCBinaryData bytes(const uint8_t *p, size_t n)
{
	ProtobufCBinaryData b = { .len = n, .data = (uint8_t *)p };

	return b;
}

static size_t alen(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

static void build_iface(struct msg *m, const struct pod_net *pn, unsigned i, int template_macs)
{
	const struct net_iface *f = &pn->ifs[i];
	Kuasar__Sandbox__V1__Interface *o = &m->ifs[i];

	kuasar__sandbox__v1__interface__init(o);
	if (template_macs)
		vm_template_mac(i, m->dev_mac[i]);
	else
		memcpy(m->dev_mac[i], f->mac, 6);
	o->device_mac = bytes(m->dev_mac[i], 6);
	o->name = (char *)f->name;
	o->mac = bytes(f->mac, 6);
	o->mtu = f->mtu;
	for (unsigned k = 0; k < f->n_addrs; k++) {
		Kuasar__Sandbox__V1__IPAddress *a = &m->addrs[i][k];

		kuasar__sandbox__v1__ipaddress__init(a);
		a->ip = bytes(f->addrs[k].ip, alen(f->addrs[k].family));
		a->prefix_len = f->addrs[k].prefix;
		m->addrp[i][k] = a;
	}
	o->addresses = m->addrp[i];
	o->n_addresses = f->n_addrs;
	m->ifp[i] = o;
}

static void build_route(struct msg *m, const struct pod_net *pn, unsigned i)
{
	const struct net_route *r = &pn->routes[i];
	Kuasar__Sandbox__V1__Route *o = &m->routes[i];

	kuasar__sandbox__v1__route__init(o);
	o->dst = bytes(r->dst, alen(r->family));
	o->dst_len = r->dst_len;
	if (r->has_gw)
		o->gateway = bytes(r->gw, alen(r->family));
	o->device = (char *)pn->ifs[r->iface].name;
	o->metric = r->metric;
	o->onlink = r->onlink;
	m->routep[i] = o;
}

int guestnet_setup(struct ttrpc_client *c, const struct pod_net *pn, int template_macs,
                   const char *resolv, int64_t deadline_ns, kerr_t *err)
{
	struct msg m;

	kuasar__sandbox__v1__setup_network_request__init(&m.req);
	for (unsigned i = 0; i < pn->n_ifs; i++)
		build_iface(&m, pn, i, template_macs);
	for (unsigned i = 0; i < pn->n_routes; i++)
		build_route(&m, pn, i);
	m.req.interfaces = m.ifp;
	m.req.n_interfaces = pn->n_ifs;
	m.req.routes = m.routep;
	m.req.n_routes = pn->n_routes;
	if (resolv)
		m.req.resolv_conf = (char *)resolv;
	return agent_setup_network(c, &m.req, deadline_ns, err);
}
