/* Steering a netns's TCP connections to one socket with a BPF sk_lookup program.
 *
 * A pod's netns holds nothing that listens: every frame of its interfaces goes to the VM
 * (podnet.h), and what listens in the pod listens inside the VM. containerd's port-forward
 * still enters the pod netns and dials localhost:PORT there. An sk_lookup program attached
 * to the netns hands every TCP connection made in it, whatever its port, to our listener,
 * and the accepted socket's local address keeps the port that was dialled. The program,
 * the socket map and the link live as long as their fds: a proxy that dies takes them. */
#ifndef KUASAR_SKLOOKUP_H
#define KUASAR_SKLOOKUP_H

#include "base/err.h"

struct sklookup {
	int listen_fd; /* non-blocking; accept from it */
	int map_fd, prog_fd, link_fd;
};

/* Sets up the listener in the netns at path and steers the netns's TCP connections to it.
 * On failure nothing is left (s's fds are -1). */
int sklookup_start(struct sklookup *s, const char *netns_path, kerr_t *err);
void sklookup_stop(struct sklookup *s);
/* The port a steered connection was made to (its local port), 0 if unknown. */
unsigned sklookup_port(int conn_fd);

#endif
