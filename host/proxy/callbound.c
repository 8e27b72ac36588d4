#include "proxy/callbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_task(const char *service)
{
	return !strcmp(service, "containerd.task.v3.Task") ||
	       !strcmp(service, "containerd.task.v2.Task");
}

enum call_kind call_kind(const char *service, const char *method, int bidi)
{
	if (bidi || !is_task(service))
		return bidi ? CALL_OPEN : CALL_OTHER;
	if (!strcmp(method, "Wait"))
		return CALL_OPEN;
	if (!strcmp(method, "Stats") || !strcmp(method, "State") || !strcmp(method, "Pids"))
		return CALL_CACHED;
	if (!strcmp(method, "Kill"))
		return CALL_KILL;
	if (!strcmp(method, "Create"))
		return CALL_CREATE;
	return CALL_OTHER;
}

int call_bound_ms(enum call_kind k)
{
	switch (k) {
	case CALL_CACHED: return CALL_CACHED_MS;
	case CALL_KILL: return CALL_KILL_MS;
	case CALL_CREATE: return CALL_CREATE_MS;
	case CALL_OTHER: return CALL_OTHER_MS;
	case CALL_OPEN: break;
	}
	return 0;
}

static int same(const struct answer *a, const char *method, const uint8_t *req, uint32_t len)
{
	return a->resp && !strcmp(a->method, method) && a->req_len == len &&
	       (!len || !memcmp(a->req, req, len));
}

const struct answer *answers_get(const struct answers *c, const char *method, const uint8_t *req,
                                 uint32_t req_len)
{
	for (size_t i = 0; i < ANSWERS_MAX; i++)
		if (same(&c->a[i], method, req, req_len))
			return &c->a[i];
	return NULL;
}

static void clear(struct answer *a)
{
	free(a->req);
	free(a->resp);
	memset(a, 0, sizeof(*a));
}

void answers_put(struct answers *c, const char *method, const uint8_t *req, uint32_t req_len,
                 const uint8_t *resp, uint32_t resp_len, int64_t now_ns)
{
	struct answer *slot = (struct answer *)answers_get(c, method, req, req_len);

	if (resp_len > ANSWER_MAX_LEN || req_len > ANSWER_MAX_LEN || strlen(method) >= 16)
		return;
	/* The same request's slot, else a free one, else the oldest. */
	for (size_t i = 0; i < ANSWERS_MAX && !slot; i++)
		if (!c->a[i].resp)
			slot = &c->a[i];
	if (!slot) {
		slot = &c->a[0];
		for (size_t i = 1; i < ANSWERS_MAX; i++)
			if (c->a[i].ns < slot->ns)
				slot = &c->a[i];
	}
	clear(slot);
	slot->req = malloc(req_len ? req_len : 1);
	slot->resp = malloc(resp_len ? resp_len : 1);
	if (!slot->req || !slot->resp) {
		clear(slot);
		return;
	}
	if (req_len)
		memcpy(slot->req, req, req_len);
	if (resp_len)
		memcpy(slot->resp, resp, resp_len);
	slot->req_len = req_len;
	slot->resp_len = resp_len;
	slot->ns = now_ns;
	snprintf(slot->method, sizeof(slot->method), "%s", method);
}

void answers_free(struct answers *c)
{
	for (size_t i = 0; i < ANSWERS_MAX; i++)
		clear(&c->a[i]);
}
