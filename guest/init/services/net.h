/* The pod's network inside the VM (kuasar.sandbox.v1.Sandbox/SetupNetwork). */
#ifndef KUASAR_NET_H
#define KUASAR_NET_H

struct rpc_ctx;

void sb_setup_network(struct rpc_ctx *ctx);
/* At boot: every NIC up but silent (IPv6 off, no IPv4 address) until SetupNetwork. */
void net_boot(void);

#endif
