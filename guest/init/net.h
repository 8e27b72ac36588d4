/* The pod's network inside the VM (kuasar.sandbox.v1.Sandbox/SetupNetwork). */
#ifndef KUASAR_NET_H
#define KUASAR_NET_H

struct rpc_ctx;

void sb_setup_network(struct rpc_ctx *ctx);

#endif
