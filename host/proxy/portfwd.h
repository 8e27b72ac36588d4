/* Port-forward into a VM pod. containerd serves `kubectl port-forward` by entering the pod's
 * netns and dialling localhost:PORT there; nothing of the pod listens in that netns (it all
 * runs in the VM). sklookup.h steers every TCP connection made in the netns to one listener
 * of ours; each accepted connection becomes a PortForward stream on the guest link, and the
 * guest connects to the same port on its own loopback. Bytes go both ways within 64 KiB
 * windows, a half-close is passed on as one, and a broken connection as a reset. */
#ifndef KUASAR_PORTFWD_H
#define KUASAR_PORTFWD_H

#include "base/loop.h"
#include "net/sklookup.h"
#include "proxy/glink.h"

#define PORTFWD_MAX_CONNS 64

struct pf_conn;

struct portfwd {
	struct loop *loop;
	struct glink *link;
	struct sklookup sk;
	struct loop_watch lw;
	struct pf_conn *conns;
	unsigned n;
};

/* Listens for the netns at path. */
int portfwd_start(struct portfwd *pf, struct loop *loop, struct glink *link, const char *netns,
                  kerr_t *err);
/* Resets every connection and stops listening. Safe on one never started. */
void portfwd_stop(struct portfwd *pf);
/* The guest link broke: its streams are gone, so are their connections (reset). */
void portfwd_link_down(struct portfwd *pf);

#endif
