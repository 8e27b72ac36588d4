#include "runtime/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/fmt.h"
#include "core/klog.h"
#include "core/sys.h"
#include "google/protobuf/any.pb.h"
#include "streaming.pb.h"
#include "transfer.pb.h"
#include "wire/link.h"

#define MAX_STREAMS 96
#define CHUNK (32u << 10)
#define STDIN_WINDOW (64u << 10)

#define T_INIT "containerd.services.streaming.v1.StreamInit"
#define T_DATA "containerd.types.transfer.Data"
#define T_WINDOW "containerd.types.transfer.WindowUpdate"
#define T_EMPTY "google.protobuf.Empty"

enum sstate { S_FREE, S_INIT, S_PARKED, S_BOUND };

struct stream {
	struct watch w; /* the pipe: read end for output, write end for stdin */
	enum sstate state;
	enum stream_dir dir;
	struct rpc_pending at; /* connection and ttrpc stream */
	char name[257];
	int remote_closed, local_closed;
	int polled;     /* the pipe is in the epoll set */
	int64_t credit; /* output: bytes the reader still accepts */
	uint8_t *buf;   /* stdin: received, not yet written to the program */
	size_t len;
};

static struct stream streams[MAX_STREAMS];

/* In the epoll set only while there is something to do: a pipe's EPOLLHUP/EPOLLERR
 * cannot be masked, so an idle stream must not be there at all. */
static void poll_pipe(struct stream *s, uint32_t events)
{
	if (s->w.fd < 0)
		return;
	if (events && !s->polled)
		ev_add(&s->w, events);
	else if (events)
		ev_mod(&s->w, events);
	else if (s->polled)
		ev_del(&s->w);
	s->polled = events != 0;
}

static void close_pipe(struct stream *s)
{
	poll_pipe(s, 0);
	if (s->w.fd >= 0)
		close(s->w.fd);
	s->w.fd = -1;
}

static void stream_free(struct stream *s)
{
	close_pipe(s);
	free(s->buf);
	memset(s, 0, sizeof(*s));
	s->w.fd = -1;
}

/* Output whose reader's connection is gone: the program still writes to it. */
static int orphaned(const struct stream *s)
{
	return s->state == S_BOUND && s->dir == STREAM_OUT && s->w.fd >= 0 &&
	       !link_conn_by_id(s->at.conn_id);
}

/* Streams whose connection is gone can never finish: reclaim them, but for orphaned output,
 * whose pipe is drained until the program closes it (stream_drop_orphans). */
static void sweep(void)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (streams[i].state != S_FREE && !orphaned(&streams[i]) &&
		    !link_conn_by_id(streams[i].at.conn_id))
			stream_free(&streams[i]);
}

void stream_drop_orphans(void)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (orphaned(&streams[i]))
			poll_pipe(&streams[i], EPOLLIN);
}

static int send_any(struct stream *s, const char *type, const pb_msgdesc_t *fields, const void *msg,
                    uint8_t flags)
{
	static uint8_t buf[CHUNK + 64];
	google_protobuf_Any any = { 0 };
	struct bytes_view v = { buf, 0 };
	pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));

	if (fields && !pb_encode(&os, fields, msg))
		return -1;
	v.n = os.bytes_written;
	kfmt(any.type_url, sizeof(any.type_url), "%s", type);
	any.value.funcs.encode = rpc_view_encode;
	any.value.arg = &v;
	return rpc_stream_send(&s->at, TTRPC_DATA, flags, google_protobuf_Any_fields, &any);
}

/* Both sides closed with empty close frames: the stream is over. No response follows
 * (ttrpc clients forget a stream once both sides closed; a late response is an error to
 * them); responses end streams only with an error status. */
static void maybe_finish(struct stream *s)
{
	if (!s->local_closed || !s->remote_closed)
		return;
	stream_free(s);
}

static void close_local(struct stream *s)
{
	if (s->local_closed)
		return;
	s->local_closed = 1;
	rpc_stream_send(&s->at, TTRPC_DATA, TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_NO_DATA, NULL,
	                NULL);
	maybe_finish(s);
}

/* Output: the program wrote; send what the credit allows. */
static void on_output(struct watch *w, uint32_t events)
{
	struct stream *s = (struct stream *)w;
	static uint8_t chunk[CHUNK];
	containerd_types_transfer_Data d = { 0 };
	struct bytes_view v = { chunk, 0 };
	size_t want = s->credit < (int64_t)CHUNK ? (size_t)s->credit : CHUNK;
	ssize_t n;

	(void)events;
	if (!link_conn_by_id(s->at.conn_id)) { /* dropped, never SIGPIPE: freed at EOF */
		n = read(w->fd, chunk, CHUNK);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			stream_free(s);
		return;
	}
	/* The reader left: what the program writes now stays in the pipe for the one that
	 * comes back (take_over), instead of going to a closed stream. */
	if (!want || s->remote_closed) { /* or out of credit: wait for a WindowUpdate */
		poll_pipe(s, 0);
		return;
	}
	n = read(w->fd, chunk, want);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) { /* EOF (EIO on a pty master): every writer is gone */
		close_pipe(s);
		close_local(s);
		return;
	}
	{
		v.n = (size_t)n;
		d.data.funcs.encode = rpc_view_encode;
		d.data.arg = &v;
		send_any(s, T_DATA, containerd_types_transfer_Data_fields, &d, 0);
		s->credit -= n;
	}
	if (s->credit <= 0)
		poll_pipe(s, 0);
}

static void grant(struct stream *s, size_t bytes)
{
	containerd_types_transfer_WindowUpdate wu = { (int32_t)bytes };

	send_any(s, T_WINDOW, containerd_types_transfer_WindowUpdate_fields, &wu, 0);
}

/* Stdin: write what was received; credit goes back as the program takes it. */
static void flush_input(struct stream *s)
{
	ssize_t n = 0;

	while (s->len && s->w.fd >= 0) {
		n = write(s->w.fd, s->buf, s->len);
		if (n <= 0)
			break;
		memmove(s->buf, s->buf + n, s->len - (size_t)n);
		s->len -= (size_t)n;
		grant(s, (size_t)n);
	}
	if (s->w.fd < 0)
		return;
	if (n < 0 && errno != EAGAIN) { /* the program closed its stdin: drop the rest */
		s->len = 0;
		close_pipe(s);
		s->local_closed = s->remote_closed;
		maybe_finish(s);
		return;
	}
	if (s->len) {
		poll_pipe(s, EPOLLOUT);
		return;
	}
	poll_pipe(s, 0);
	if (s->remote_closed) { /* all delivered: the program sees EOF */
		close_pipe(s);
		s->local_closed = 1;
		maybe_finish(s);
	}
}

static void on_input_ready(struct watch *w, uint32_t events)
{
	(void)events;
	flush_input((struct stream *)w);
}

static int take_input(struct stream *s, const uint8_t *p, size_t n)
{
	uint8_t *nb;

	/* The sender stays within the window we granted; more is a protocol error. */
	if (s->len + n > STDIN_WINDOW)
		return -1;
	nb = realloc(s->buf, STDIN_WINDOW);
	if (!nb)
		return -1;
	s->buf = nb;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	if (s->state == S_BOUND)
		flush_input(s);
	return 0;
}

struct any_view {
	google_protobuf_Any any;
	struct bytes_view v;
};

static int decode_any(const uint8_t *data, size_t len, struct any_view *a)
{
	pb_istream_t is = pb_istream_from_buffer(data, len);

	memset(a, 0, sizeof(*a));
	a->any.value.funcs.decode = rpc_view_decode;
	a->any.value.arg = &a->v;
	return pb_decode(&is, google_protobuf_Any_fields, &a->any) ? 0 : -1;
}

/* A reader that comes back under the same name (containerd restarted and reopens a running
 * container's output) takes over the stream its predecessor left: the program's output
 * carries on into the new one. */
static void take_over(struct stream *s, struct stream *old)
{
	if (old->state == S_BOUND && old->dir == STREAM_OUT && old->w.fd >= 0) {
		poll_pipe(old, 0);
		s->w.fd = old->w.fd;
		old->w.fd = -1;
		s->w.fn = on_output;
		s->dir = STREAM_OUT;
		s->state = S_BOUND;
	}
	stream_free(old);
}

static int on_init(struct stream *s, const struct any_view *a)
{
	containerd_services_streaming_v1_StreamInit init = { 0 };
	pb_istream_t is = pb_istream_from_buffer(a->v.p ? a->v.p : (const uint8_t *)"", a->v.n);

	if (!pb_decode(&is, containerd_services_streaming_v1_StreamInit_fields, &init) ||
	    !init.id[0])
		return -1;
	kfmt(s->name, sizeof(s->name), "%s", init.id);
	s->state = S_PARKED;
	for (int i = 0; i < MAX_STREAMS; i++) {
		struct stream *old = &streams[i];

		if (old == s || old->state < S_PARKED || strcmp(old->name, init.id))
			continue;
		if (!old->remote_closed)
			return -1; /* the name is taken */
		take_over(s, old);
	}
	debug("stream %s %s", s->name, s->state == S_BOUND ? "re-attached" : "parked");
	return send_any(s, T_EMPTY, NULL, NULL, 0);
}

static int on_message(struct stream *s, const uint8_t *data, size_t len)
{
	struct any_view a;

	if (decode_any(data, len, &a) < 0)
		return -1;
	if (s->state == S_INIT)
		return strcmp(a.any.type_url, T_INIT) ? -1 : on_init(s, &a);
	if (!strcmp(a.any.type_url, T_WINDOW)) {
		containerd_types_transfer_WindowUpdate wu = { 0 };
		pb_istream_t is =
		    pb_istream_from_buffer(a.v.p ? a.v.p : (const uint8_t *)"", a.v.n);

		if (!pb_decode(&is, containerd_types_transfer_WindowUpdate_fields, &wu) ||
		    wu.update < 0)
			return -1;
		s->credit += wu.update;
		if (s->state == S_BOUND && s->dir == STREAM_OUT && s->credit > 0)
			poll_pipe(s, EPOLLIN);
		return 0;
	}
	if (!strcmp(a.any.type_url, T_DATA)) {
		struct bytes_view v = { NULL, 0 };
		containerd_types_transfer_Data d = { 0 };
		pb_istream_t is =
		    pb_istream_from_buffer(a.v.p ? a.v.p : (const uint8_t *)"", a.v.n);

		d.data.funcs.decode = rpc_view_decode;
		d.data.arg = &v;
		if (!pb_decode(&is, containerd_types_transfer_Data_fields, &d))
			return -1;
		return v.n ? take_input(s, v.p, v.n) : 0;
	}
	return -1;
}

static struct stream *find(uint64_t conn_id, uint32_t id)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (streams[i].state != S_FREE && streams[i].at.conn_id == conn_id &&
		    streams[i].at.stream == id)
			return &streams[i];
	return NULL;
}

int stream_on_data(struct conn *c, const struct ttrpc_header *h, const uint8_t *data)
{
	struct stream *s = find(c->id, h->stream);

	if (!s)
		return -1;
	if (h->length && !(h->flags & TTRPC_FLAG_NO_DATA) && on_message(s, data, h->length) < 0) {
		rpc_pending_error(&s->at, RPC_INVALID_ARGUMENT, "stream %s: unexpected message",
		                  s->name[0] ? s->name : "(not initialised)");
		stream_free(s);
		return 0;
	}
	if (h->flags & TTRPC_FLAG_REMOTE_CLOSED) {
		s->remote_closed = 1;
		if (s->dir == STREAM_IN && s->state == S_BOUND)
			flush_input(s);
		else if (s->dir == STREAM_OUT && s->state == S_BOUND && !s->local_closed)
			poll_pipe(s, 0); /* output waits in the pipe for a reader that comes back */
		else
			maybe_finish(s);
	}
	return 0;
}

static void st_stream(struct rpc_ctx *ctx)
{
	struct stream *s = NULL;

	sweep();
	for (int i = 0; i < MAX_STREAMS && !s; i++)
		if (streams[i].state == S_FREE)
			s = &streams[i];
	if (!s) {
		rpc_error(ctx, RPC_RESOURCE_EXHAUSTED, "at most %d open streams", MAX_STREAMS);
		return;
	}
	memset(s, 0, sizeof(*s));
	s->w.fd = -1;
	s->state = S_INIT;
	rpc_defer(ctx, &s->at);
}

static const char *stream_name(const char *uri)
{
	const char *p = str_find(uri, "streaming_id=");

	return p ? p + 13 : NULL;
}

static struct stream *parked(const char *name)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (streams[i].state == S_PARKED && !strcmp(streams[i].name, name))
			return &streams[i];
	return NULL;
}

int stream_is_open(const char *uri)
{
	const char *name = stream_name(uri);

	return name && parked(name);
}

int stream_attach_fd(const char *uri, enum stream_dir dir, int fd, char *err, size_t n)
{
	const char *name = stream_name(uri);
	struct stream *s = name ? parked(name) : NULL;

	if (!name)
		return 0;
	if (!s) {
		kfmt(err, n, "stdio stream `%s` is not open", name);
		return RPC_FAILED_PRECONDITION;
	}
	s->dir = dir;
	s->state = S_BOUND;
	s->w.fd = fd;
	s->w.fn = dir == STREAM_OUT ? on_output : on_input_ready;
	sys_fcntl(s->w.fd, F_SETFL, sys_fcntl(s->w.fd, F_GETFL, 0) | O_NONBLOCK);
	if (dir == STREAM_OUT && s->credit > 0)
		poll_pipe(s, EPOLLIN);
	if (dir == STREAM_IN) {
		grant(s, STDIN_WINDOW - s->len);
		flush_input(s);
	}
	return 1;
}

int stream_bind(const char *uri, enum stream_dir dir, int *child_fd, char *err, size_t n)
{
	const char *name = stream_name(uri);
	int p[2], rc;

	if (!name)
		return 0;
	if (!parked(name)) {
		kfmt(err, n, "stdio stream `%s` is not open", name);
		return RPC_FAILED_PRECONDITION;
	}
	if (sys_pipe2(p, O_CLOEXEC) < 0) {
		kfmt(err, n, "pipe: errno %d", errno);
		return RPC_INTERNAL;
	}
	rc = stream_attach_fd(uri, dir, dir == STREAM_OUT ? p[0] : p[1], err, n);
	*child_fd = dir == STREAM_OUT ? p[1] : p[0];
	return rc;
}

void stream_close_input(const char *uri)
{
	const char *name = stream_name(uri);

	for (int i = 0; name && i < MAX_STREAMS; i++) {
		struct stream *s = &streams[i];

		if (s->state == S_BOUND && s->dir == STREAM_IN && !strcmp(s->name, name)) {
			/* What was received still goes in first; then the program reads EOF. */
			s->remote_closed = 1;
			flush_input(s);
		}
	}
}

static const struct rpc_method streaming_methods[] = {
	{ "Stream", st_stream },
};

const struct rpc_service streaming_service = {
	"containerd.services.streaming.v1.Streaming",
	streaming_methods,
	1,
};
