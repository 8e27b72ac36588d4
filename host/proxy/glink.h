/* The sandboxer's one ttrpc connection to a guest, shared by every client of that sandbox.
 * Each user opens a route: the link gives it a fresh odd stream id on the guest side and
 * hands it every frame the guest sends on that id. Writes never block: frames queue until
 * the link drains. */
#ifndef KUASAR_GLINK_H
#define KUASAR_GLINK_H

#include <stdint.h>

#include "base/loop.h"
#include "proto/ttrpc_wire.h"
#include "rpc/ttrpc_frame.h"

struct glink;

/* A guest frame on the route's stream. data is NULL for empty frames. */
typedef void (*glink_frame_fn)(void *owner, uintptr_t tag, const struct ttrpc_header *h,
                               const uint8_t *data);

struct glink_route {
	uint32_t gid;
	glink_frame_fn fn;
	void *owner;
	uintptr_t tag;
	struct glink_route *next;
};

struct glink {
	struct loop *loop;
	struct loop_watch w;
	struct buf out;
	struct ttrpc_reader rd;
	uint32_t next_id;
	struct glink_route *routes;
	int up;
	/* A send found the link broken. The link goes down from the loop, never inside a
	 * send: its callers hold streams that on_down's cleanup would free under them. */
	int broken;
	/* The link broke (guest gone or VMM dead); routes were dropped without a frame. */
	void (*on_down)(struct glink *l, void *arg);
	void *down_arg;
};

/* Takes over fd (made non-blocking). */
int glink_start(struct glink *l, struct loop *loop, int fd, kerr_t *err);
void glink_stop(struct glink *l);
/* Returns the guest stream id, 0 when the link is down. */
uint32_t glink_open(struct glink *l, glink_frame_fn fn, void *owner, uintptr_t tag);
void glink_close(struct glink *l, uint32_t gid);
/* Drops every route of owner (its client went away). */
void glink_close_owner(struct glink *l, void *owner);
int glink_send(struct glink *l, uint32_t gid, uint8_t type, uint8_t flags, const void *data,
               uint32_t len);
/* A Request frame for service/method with a protobuf payload. */
int glink_request(struct glink *l, uint32_t gid, uint8_t flags, const char *service,
                  const char *method, const uint8_t *payload, size_t len);

#endif
