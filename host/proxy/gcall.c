#include "proxy/gcall.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"
#include "rpc/agent.h"
#include "rpc/ttrpc_client.h"

void gcall_cancel(struct gcall *c)
{
	if (!c->loop) /* never started */
		return;
	loop_timer_cancel(c->loop, &c->timer);
	if (c->gid)
		glink_close(c->link, c->gid);
	c->gid = 0;
}

static void on_answer(void *owner, uintptr_t tag, const struct ttrpc_header *h, const uint8_t *data)
{
	struct gcall *c = owner;
	struct ttrpc_status st = { 0 };
	uint8_t *payload = NULL;
	size_t n = 0;
	char msg[600];

	(void)tag;
	if (h->type != TTRPC_RESPONSE)
		return;
	c->gid = 0; /* the response closed the route */
	loop_timer_cancel(c->loop, &c->timer);
	if (ttrpc_decode_response(data ? data : (const uint8_t *)"", h->length, &st, &payload, &n) <
	    0) {
		snprintf(msg, sizeof(msg), "the guest's %s answer is malformed", c->method);
		c->done(c, RPC_INTERNAL, msg, NULL, 0);
		return;
	}
	c->done(c, st.code, st.message, payload, n);
	free(payload);
}

static void on_timeout(struct loop_timer *t)
{
	struct gcall *c = container_of(t, struct gcall, timer);
	char msg[128];

	gcall_cancel(c);
	snprintf(msg, sizeof(msg), "the guest did not answer %s in %d ms", c->method,
	         c->timeout_ms);
	c->done(c, RPC_DEADLINE_EXCEEDED, msg, NULL, 0);
}

void gcall_start(struct gcall *c, const char *method, const uint8_t *buf, size_t n)
{
	snprintf(c->method, sizeof(c->method), "%s", method);
	c->timer.fn = on_timeout;
	c->gid = glink_open(c->link, on_answer, c, 0);
	if (!c->gid ||
	    glink_request(c->link, c->gid, 0, AGENT_SANDBOX_SERVICE, method, buf, n) < 0) {
		gcall_cancel(c);
		c->done(c, RPC_UNAVAILABLE, "the sandbox's guest link is down", NULL, 0);
		return;
	}
	loop_timer_arm(c->loop, &c->timer, c->timeout_ms);
}
