#include "rpc/stdio_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "google/protobuf/any.pb-c.h"
#include "streaming.pb-c.h"
#include "transfer.pb-c.h"

#define CHUNK (32u << 10)
#define OUT_WINDOW (1u << 20)

/* Sends one frame on a stream: an Any wrapping msg (NULL: no payload). */
static int send_any(struct ttrpc_client *c, uint32_t stream, uint8_t flags, const char *type,
                    const ProtobufCMessage *msg)
{
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct ttrpc_header h = { 0, stream, TTRPC_DATA, flags };
	uint8_t *inner = NULL, *outer = NULL;
	size_t n = 0;
	int rc;

	if (msg) {
		inner = malloc(protobuf_c_message_get_packed_size(msg) + 1);
		if (!inner)
			return -1;
		any.type_url = (char *)type;
		any.value.len = protobuf_c_message_pack(msg, inner);
		any.value.data = inner;
		n = google__protobuf__any__get_packed_size(&any);
		outer = malloc(n + 1);
		if (!outer) {
			free(inner);
			return -1;
		}
		google__protobuf__any__pack(&any, outer);
	}
	h.length = (uint32_t)n;
	rc = ttrpc_send_frame(c, &h, outer, NULL);
	free(inner);
	free(outer);
	return rc;
}

static void grant(struct ttrpc_client *c, struct hstream *s, uint32_t bytes)
{
	Containerd__Types__Transfer__WindowUpdate wu =
	    CONTAINERD__TYPES__TRANSFER__WINDOW_UPDATE__INIT;

	wu.update = (int32_t)bytes;
	send_any(c, s->id, 0, "containerd.types.transfer.WindowUpdate", &wu.base);
}

static void close_local(struct ttrpc_client *c, struct hstream *s)
{
	if (s->local_closed)
		return;
	s->local_closed = 1;
	send_any(c, s->id, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA, NULL, NULL);
}

static void on_message(struct hstreams *hs, struct hstream *s, const uint8_t *data, size_t len)
{
	Google__Protobuf__Any *a = google__protobuf__any__unpack(NULL, len, data);

	if (!a)
		return;
	if (!strcmp(a->type_url, "google.protobuf.Empty")) {
		s->acked = 1;
	} else if (!strcmp(a->type_url, "containerd.types.transfer.Data")) {
		Containerd__Types__Transfer__Data *d =
		    containerd__types__transfer__data__unpack(NULL, a->value.len, a->value.data);

		if (d && s->dir == HSTREAM_OUT) {
			(void)!write_all(s->fd, d->data.data, d->data.len);
			grant(hs->c, s, (uint32_t)d->data.len);
		}
		containerd__types__transfer__data__free_unpacked(d, NULL);
	} else if (!strcmp(a->type_url, "containerd.types.transfer.WindowUpdate")) {
		Containerd__Types__Transfer__WindowUpdate *w =
		    containerd__types__transfer__window_update__unpack(NULL, a->value.len,
		                                                       a->value.data);

		if (w && w->update > 0)
			s->credit += w->update;
		containerd__types__transfer__window_update__free_unpacked(w, NULL);
	}
	google__protobuf__any__free_unpacked(a, NULL);
}

static void on_frame(void *ctx, const struct ttrpc_header *h, const uint8_t *data)
{
	struct hstreams *hs = ctx;

	for (int i = 0; i < hs->n; i++) {
		struct hstream *s = &hs->s[i];

		if (s->id != h->stream)
			continue;
		if (h->type == TTRPC_RESPONSE) {
			s->finished = s->remote_closed = 1;
			return;
		}
		if (h->length && !(h->flags & TTRPC_FLAG_NO_DATA))
			on_message(hs, s, data, h->length);
		if (h->flags & TTRPC_FLAG_REMOTE_CLOSED) {
			s->remote_closed = 1;
			/* Our side has nothing more to say on an output stream. */
			close_local(hs->c, s);
		}
		return;
	}
}

void hstreams_attach(struct hstreams *hs)
{
	hs->c->on_frame = on_frame;
	hs->c->frame_ctx = hs;
}

void hstreams_detach(struct hstreams *hs)
{
	if (hs->c && hs->c->frame_ctx == hs) {
		hs->c->on_frame = NULL;
		hs->c->frame_ctx = NULL;
	}
}

int hstream_open(struct hstreams *hs, const char *name, enum hstream_dir dir, int fd,
                 int64_t deadline_ns, kerr_t *err)
{
	Containerd__Services__Streaming__V1__StreamInit init =
	    CONTAINERD__SERVICES__STREAMING__V1__STREAM_INIT__INIT;
	struct hstream *s = &hs->s[hs->n++];
	uint8_t *frame;
	size_t len;

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->dir = dir;
	s->fd = fd;
	s->id = hs->c->next_stream;
	hs->c->next_stream += 2;
	if (ttrpc_encode_request(s->id, "containerd.services.streaming.v1.Streaming", "Stream",
	                         NULL, 0, &frame, &len) < 0)
		return kerr_set(err, ENOMEM, "encode a stream request");
	frame[9] = TTRPC_FLAG_REMOTE_OPEN;
	if (write_all(hs->c->fd, frame, len) < 0) {
		free(frame);
		return kerr_sys(err, "open stream %s", name);
	}
	free(frame);
	init.id = s->name;
	if (send_any(hs->c, s->id, 0, "containerd.services.streaming.v1.StreamInit", &init.base) <
	    0)
		return kerr_sys(err, "init stream %s", name);
	hstreams_attach(hs);
	while (!s->acked) {
		struct ttrpc_header h;
		uint8_t *data = NULL;

		if (ttrpc_read_frame(hs->c, &h, &data, deadline_ns, err) < 0)
			return kerr_wrap(err, "stream %s", name);
		if (h.stream == s->id && h.type == TTRPC_RESPONSE) {
			free(data);
			return kerr_set(err, EPROTO, "stream %s refused by the guest", name);
		}
		on_frame(hs, &h, data);
		free(data);
	}
	if (dir == HSTREAM_OUT)
		grant(hs->c, s, OUT_WINDOW);
	return 0;
}

void hstreams_pump_input(struct hstreams *hs)
{
	static uint8_t buf[CHUNK];

	for (int i = 0; i < hs->n; i++) {
		struct hstream *s = &hs->s[i];

		while (s->dir == HSTREAM_IN && !s->local_closed && s->credit > 0) {
			Containerd__Types__Transfer__Data d =
			    CONTAINERD__TYPES__TRANSFER__DATA__INIT;
			struct pollfd p = { .fd = s->fd, .events = POLLIN };
			size_t want = s->credit < (int64_t)CHUNK ? (size_t)s->credit : CHUNK;
			ssize_t n;

			if (poll(&p, 1, 0) != 1)
				break;
			n = read(s->fd, buf, want);
			if (n <= 0) {
				close_local(hs->c, s);
				break;
			}
			d.data.data = buf;
			d.data.len = (size_t)n;
			send_any(hs->c, s->id, 0, "containerd.types.transfer.Data", &d.base);
			s->credit -= n;
		}
	}
}

static int outputs_done(const struct hstreams *hs)
{
	for (int i = 0; i < hs->n; i++)
		if (hs->s[i].dir == HSTREAM_OUT && !hs->s[i].remote_closed)
			return 0;
	return 1;
}

int hstreams_drain(struct hstreams *hs, int64_t deadline_ns, kerr_t *err)
{
	while (!outputs_done(hs)) {
		struct ttrpc_header h;
		uint8_t *data = NULL;

		if (ttrpc_read_frame(hs->c, &h, &data, deadline_ns, err) < 0)
			return kerr_wrap(err, "drain the output streams");
		on_frame(hs, &h, data);
		free(data);
	}
	return 0;
}

void hstream_uri(const struct hstream *s, char *buf, size_t n)
{
	snprintf(buf, n, "ttrpc+virtio-serial://guest?streaming_id=%s", s->name);
}
