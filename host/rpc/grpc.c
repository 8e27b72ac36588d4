#include "rpc/grpc.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "rpc/ttrpc_client.h"

/* A connection holding more unsent output than this is too slow to keep. */
#define CONN_MAX_PENDING (64u << 20)

struct grpc_conn {
	struct loop_watch w;
	struct grpc_server *srv;
	nghttp2_session *h2;
	struct buf out;
	int dead;
	int busy;                /* inside nghttp2: no sending, no freeing */
	struct grpc_call *calls; /* open streams */
};

struct grpc_call {
	struct grpc_conn *conn; /* NULL once the stream is gone */
	struct grpc_call *next, **pprev;
	int32_t stream;
	char path[256];
	int bad_content_type;
	int too_big;
	struct buf in;
	/* The answer: one framed message (may be empty for errors) plus trailers. */
	uint8_t *body;
	size_t body_len, body_off;
	int code;
	char message[512];
	int replied;
	void (*on_cancel)(struct grpc_call *, void *);
	void *cancel_arg;
};

static void conn_flush(struct grpc_conn *c);
static void conn_free(struct grpc_conn *c);

void *grpc_call_ctx(struct grpc_call *call)
{
	return call->conn ? call->conn->srv->ctx : NULL;
}

void grpc_call_on_cancel(struct grpc_call *call, void (*fn)(struct grpc_call *, void *), void *arg)
{
	call->on_cancel = fn;
	call->cancel_arg = arg;
}

static void call_free(struct grpc_call *call)
{
	buf_free(&call->in);
	free(call->body);
	free(call);
}

/* grpc-message is percent-encoded (RFC 3986 unreserved characters pass as they are). */
static void percent_encode(const char *in, char *out, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in && o + 4 < n; in++) {
		unsigned char ch = (unsigned char)*in;

		if (ch >= 0x20 && ch < 0x7f && ch != '%') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = 0;
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE     \
	}

static int submit_trailers(struct grpc_call *call)
{
	char code[16], msg[1600];
	nghttp2_nv nv[2];

	snprintf(code, sizeof(code), "%d", call->code);
	percent_encode(call->message, msg, sizeof(msg));
	nv[0] = (nghttp2_nv)NV("grpc-status", code);
	nv[1] = (nghttp2_nv)NV("grpc-message", msg);
	return nghttp2_submit_trailer(call->conn->h2, call->stream, nv, call->code ? 2 : 1);
}

static ssize_t body_read(nghttp2_session *h2, int32_t stream, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct grpc_call *call = src->ptr;
	size_t n = call->body_len - call->body_off;

	if (n > len)
		n = len;
	memcpy(buf, call->body + call->body_off, n);
	call->body_off += n;
	if (call->body_off == call->body_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (submit_trailers(call) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

static void send_answer(struct grpc_call *call)
{
	nghttp2_nv hdr[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
	char code[16], msg[1600];

	call->replied = 1;
	if (call->code == 0) {
		nghttp2_data_provider prd = { .source.ptr = call, .read_callback = body_read };

		nghttp2_submit_response(call->conn->h2, call->stream, hdr, 2, &prd);
	} else {
		/* Trailers-only: one HEADERS frame that ends the stream. */
		nghttp2_nv all[4];

		snprintf(code, sizeof(code), "%d", call->code);
		percent_encode(call->message, msg, sizeof(msg));
		all[0] = hdr[0];
		all[1] = hdr[1];
		all[2] = (nghttp2_nv)NV("grpc-status", code);
		all[3] = (nghttp2_nv)NV("grpc-message", msg);
		nghttp2_submit_response(call->conn->h2, call->stream, all, 4, NULL);
	}
	/* Inside nghttp2's callbacks the connection's event handler sends it afterwards. */
	if (!call->conn->busy)
		conn_flush(call->conn);
}

void grpc_reply(struct grpc_call *call, const ProtobufCMessage *msg)
{
	size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;

	call->body = malloc(5 + n);
	if (!call->body) {
		grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "out of memory for the answer");
		return;
	}
	call->body[0] = 0;
	ttrpc_put_u32(call->body + 1, (uint32_t)n);
	if (msg)
		protobuf_c_message_pack(msg, call->body + 5);
	call->body_len = 5 + n;
	call->code = 0;
	send_answer(call);
}

void grpc_reply_error(struct grpc_call *call, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(call->message, sizeof(call->message), fmt, ap);
	va_end(ap);
	call->code = code ? code : RPC_UNKNOWN;
	send_answer(call);
}

static const struct grpc_method *find_method(struct grpc_server *s, const char *path)
{
	for (size_t i = 0; i < s->n_methods; i++)
		if (!strcmp(s->methods[i].path, path))
			return &s->methods[i];
	return NULL;
}

/* The request is complete: check its framing, then hand it to the handler. */
static void dispatch(struct grpc_call *call)
{
	const struct grpc_method *m = find_method(call->conn->srv, call->path);
	const uint8_t *p = call->in.p;
	size_t have = call->in.len;
	uint32_t len;

	if (call->too_big) {
		grpc_reply_error(call, RPC_RESOURCE_EXHAUSTED, "message larger than %u bytes",
		                 GRPC_MAX_MESSAGE);
		return;
	}
	if (call->bad_content_type) {
		grpc_reply_error(call, RPC_INVALID_ARGUMENT,
		                 "content-type is not application/grpc");
		return;
	}
	if (!m) {
		grpc_reply_error(call, RPC_UNIMPLEMENTED, "unknown method %s", call->path);
		return;
	}
	if (have < 5) {
		grpc_reply_error(call, RPC_INVALID_ARGUMENT,
		                 "request has %zu bytes, less than a message header", have);
		return;
	}
	if (p[0] != 0) {
		grpc_reply_error(call, RPC_UNIMPLEMENTED, "compressed messages are not supported");
		return;
	}
	len = ttrpc_get_u32(p + 1);
	if (len != have - 5) {
		grpc_reply_error(call, RPC_INVALID_ARGUMENT,
		                 "message length %u does not match the %zu bytes sent (one "
		                 "message per unary call)",
		                 len, have - 5);
		return;
	}
	m->fn(call, p + 5, len);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct grpc_call *call;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = calloc(1, sizeof(*call));
	if (!call)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	call->conn = user;
	call->stream = frame->hd.stream_id;
	call->next = call->conn->calls;
	if (call->next)
		call->next->pprev = &call->next;
	call->pprev = &call->conn->calls;
	call->conn->calls = call;
	nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
	return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
	struct grpc_call *call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);

	if (!call || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (namelen == 5 && !memcmp(name, ":path", 5)) {
		size_t n = valuelen < sizeof(call->path) - 1 ? valuelen : sizeof(call->path) - 1;

		memcpy(call->path, value, n);
		call->path[n] = 0;
	} else if (namelen == 12 && !memcmp(name, "content-type", 12)) {
		call->bad_content_type = valuelen < 16 || memcmp(value, "application/grpc", 16);
	}
	return 0;
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t stream, const uint8_t *data,
                   size_t len, void *user)
{
	struct grpc_call *call = nghttp2_session_get_stream_user_data(h2, stream);

	if (!call || call->too_big)
		return 0;
	/* Bounded before anything is kept: the rest of an oversized request is dropped. */
	if (call->in.len + len > GRPC_MAX_MESSAGE + 5) {
		call->too_big = 1;
		buf_free(&call->in);
		return 0;
	}
	if (buf_append(&call->in, data, len) < 0)
		call->too_big = 1;
	return 0;
}

static int on_frame(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct grpc_call *call;

	if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (call && !call->replied)
		dispatch(call);
	return 0;
}

/* The stream is gone: unlink the call; an unanswered one is cancelled. */
static void call_detach(struct grpc_call *call)
{
	*call->pprev = call->next;
	if (call->next)
		call->next->pprev = call->pprev;
	call->conn = NULL;
	if (call->replied) {
		call_free(call);
		return;
	}
	if (call->on_cancel)
		call->on_cancel(call, call->cancel_arg);
	call_free(call);
}

static int on_close(nghttp2_session *h2, int32_t stream, uint32_t code, void *user)
{
	struct grpc_call *call = nghttp2_session_get_stream_user_data(h2, stream);

	if (!call)
		return 0;
	nghttp2_session_set_stream_user_data(h2, stream, NULL);
	call_detach(call);
	return 0;
}

static void conn_flush(struct grpc_conn *c)
{
	const uint8_t *data;
	ssize_t n;

	if (c->dead)
		return;
	while ((n = nghttp2_session_mem_send(c->h2, &data)) > 0) {
		if (buf_append(&c->out, data, (size_t)n) < 0 ||
		    buf_pending(&c->out) > CONN_MAX_PENDING) {
			c->dead = 1;
			break;
		}
	}
	if (n < 0)
		c->dead = 1;
	if (!c->dead && buf_flush(&c->out, c->w.fd) < 0)
		c->dead = 1;
	if (!c->dead && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	    !buf_pending(&c->out))
		c->dead = 1;
	if (c->dead) {
		if (!c->busy)
			conn_free(c);
		return;
	}
	loop_mod(c->srv->loop, &c->w, EPOLLIN | (buf_pending(&c->out) ? EPOLLOUT : 0));
}

static void conn_free(struct grpc_conn *c)
{
	loop_del(c->srv->loop, &c->w);
	close(c->w.fd);
	c->w.fd = -1;
	while (c->calls) {
		nghttp2_session_set_stream_user_data(c->h2, c->calls->stream, NULL);
		call_detach(c->calls);
	}
	nghttp2_session_del(c->h2);
	buf_free(&c->out);
	c->srv->n_conns--;
	free(c);
}

static void conn_event(struct loop_watch *w, uint32_t events)
{
	struct grpc_conn *c = (struct grpc_conn *)w;
	uint8_t buf[16384];

	c->busy = 1;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
			c->dead = 1;
		else if (n > 0 && nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0)
			c->dead = 1;
	}
	c->busy = 0;
	if (c->dead) {
		conn_free(c);
		return;
	}
	conn_flush(c);
}

static nghttp2_session_callbacks *server_callbacks(void)
{
	static nghttp2_session_callbacks *cbs;

	if (cbs)
		return cbs;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
	return cbs;
}

static void accept_event(struct loop_watch *w, uint32_t events)
{
	struct grpc_server *s = container_of(w, struct grpc_server, listen);
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000 },
		                        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 } };
	struct grpc_conn *c =
	    loop_accept(s->loop, w->fd, sizeof(*c), offsetof(struct grpc_conn, w), conn_event);

	if (!c)
		return;
	if (!server_callbacks() || nghttp2_session_server_new(&c->h2, server_callbacks(), c)) {
		loop_del(s->loop, &c->w);
		close(c->w.fd);
		free(c);
		return;
	}
	c->srv = s;
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
	s->n_conns++;
	conn_flush(c);
}

int grpc_server_listen(struct grpc_server *s, struct loop *loop, const char *path, kerr_t *err)
{
	int fd = unix_listen(path, err);

	if (fd < 0)
		return -1;
	s->loop = loop;
	s->listen.fd = fd;
	s->listen.fn = accept_event;
	if (loop_add(loop, &s->listen, EPOLLIN, err) < 0) {
		close(fd);
		return -1;
	}
	return 0;
}

void grpc_server_close(struct grpc_server *s)
{
	loop_close(s->loop, &s->listen);
}

/* ---- blocking client ---- */

struct client_call {
	const uint8_t *req;
	size_t req_len, req_off;
	struct buf resp;
	struct grpc_status *st;
	int have_status;
	int closed;
	int too_big;
};

static ssize_t req_read(nghttp2_session *h2, int32_t stream, uint8_t *buf, size_t len,
                        uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct client_call *cc = user;
	size_t n = cc->req_len - cc->req_off;

	if (n > len)
		n = len;
	memcpy(buf, cc->req + cc->req_off, n);
	cc->req_off += n;
	if (cc->req_off == cc->req_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int percent_decode_into(const uint8_t *v, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		if (v[i] == '%' && i + 2 < n) {
			char hx[3] = { (char)v[i + 1], (char)v[i + 2], 0 };

			out[o++] = (char)strtol(hx, NULL, 16);
			i += 2;
		} else {
			out[o++] = (char)v[i];
		}
	}
	out[o] = 0;
	return 0;
}

static int client_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *user)
{
	struct client_call *cc = user;
	char tmp[32];

	if (namelen == 11 && !memcmp(name, "grpc-status", 11)) {
		snprintf(tmp, sizeof(tmp), "%.*s", (int)valuelen, (const char *)value);
		cc->st->code = atoi(tmp);
		cc->have_status = 1;
	} else if (namelen == 12 && !memcmp(name, "grpc-message", 12)) {
		percent_decode_into(value, valuelen, cc->st->message, sizeof(cc->st->message));
	}
	return 0;
}

static int client_data(nghttp2_session *h2, uint8_t flags, int32_t stream, const uint8_t *data,
                       size_t len, void *user)
{
	struct client_call *cc = user;

	if (cc->resp.len + len > GRPC_MAX_MESSAGE + 5) {
		cc->too_big = 1;
		return 0;
	}
	if (buf_append(&cc->resp, data, len) < 0)
		cc->too_big = 1;
	return 0;
}

static int client_close(nghttp2_session *h2, int32_t stream, uint32_t code, void *user)
{
	((struct client_call *)user)->closed = 1;
	return 0;
}

static int client_pump(nghttp2_session *h2, int fd, struct client_call *cc, int64_t deadline,
                       kerr_t *err)
{
	uint8_t buf[16384];

	while (!cc->closed) {
		const uint8_t *data;
		ssize_t n;
		struct pollfd p = { .fd = fd, .events = POLLIN };

		while ((n = nghttp2_session_mem_send(h2, &data)) > 0)
			if (write_all(fd, data, (size_t)n) < 0)
				return kerr_sys(err, "write");
		if (n < 0)
			return kerr_set(err, EPROTO, "http2: %s", nghttp2_strerror((int)n));
		n = poll(&p, 1, ms_until(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return kerr_set(err, ETIMEDOUT, "no answer in time");
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kerr_sys(err, "read");
		if (n == 0)
			return kerr_set(err, ECONNRESET, "the server closed the connection");
		if (nghttp2_session_mem_recv(h2, buf, (size_t)n) < 0)
			return kerr_set(err, EPROTO, "http2: bad input from the server");
	}
	return 0;
}

/* The answer a call came back with: its message (a copy, unframed) when its status is OK. */
static int client_answer(const struct client_call *cc, const char *sock, const char *path,
                         uint8_t **resp, size_t *resp_len, kerr_t *err)
{
	if (!cc->have_status)
		return kerr_set(err, EPROTO, "%s on %s: answer without grpc-status", path, sock);
	if (cc->too_big)
		return kerr_set(err, EMSGSIZE, "%s: answer larger than %u bytes", path,
		                GRPC_MAX_MESSAGE);
	if (cc->st->code != 0)
		return 0;
	if (cc->resp.len < 5 || ttrpc_get_u32(cc->resp.p + 1) != cc->resp.len - 5)
		return kerr_set(err, EPROTO, "%s: malformed answer (%zu bytes)", path,
		                cc->resp.len);
	*resp_len = cc->resp.len - 5;
	*resp = malloc(*resp_len + 1);
	if (!*resp)
		return kerr_set(err, ENOMEM, "out of memory");
	memcpy(*resp, cc->resp.p + 5, *resp_len);
	return 0;
}

int grpc_call_unary(const char *sock, const char *path, const uint8_t *req, size_t req_len,
                    uint8_t **resp, size_t *resp_len, struct grpc_status *st, int timeout_ms,
                    kerr_t *err)
{
	nghttp2_nv hdr[] = { NV(":method", "POST"),
		             NV(":scheme", "http"),
		             NV(":path", path),
		             NV(":authority", "localhost"),
		             NV("content-type", "application/grpc"),
		             NV("te", "trailers") };
	struct client_call cc = { .st = st };
	nghttp2_data_provider prd = { .read_callback = req_read };
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_session *h2 = NULL;
	_cleanup_free_ uint8_t *framed = malloc(req_len + 5);
	_cleanup_close_ int fd = -1;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	*resp = NULL;
	*resp_len = 0;
	if (!framed)
		return kerr_set(err, ENOMEM, "out of memory");
	framed[0] = 0;
	ttrpc_put_u32(framed + 1, (uint32_t)req_len);
	if (req_len)
		memcpy(framed + 5, req, req_len);
	cc.req = framed;
	cc.req_len = req_len + 5;
	fd = unix_connect(sock, err);
	if (fd < 0)
		return -1;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return kerr_set(err, ENOMEM, "out of memory");
	nghttp2_session_callbacks_set_on_header_callback(cbs, client_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, client_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, client_close);
	if (nghttp2_session_client_new(&h2, cbs, &cc) != 0) {
		nghttp2_session_callbacks_del(cbs);
		return kerr_set(err, ENOMEM, "out of memory");
	}
	nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0);
	hdr[2].valuelen = strlen(path);
	if (nghttp2_submit_request(h2, NULL, hdr, 6, &prd, NULL) < 0) {
		kerr_set(err, EPROTO, "http2: cannot submit the request");
		goto out;
	}
	if (client_pump(h2, fd, &cc, mono_ns() + (int64_t)timeout_ms * 1000000, err) < 0) {
		kerr_wrap(err, "%s on %s", path, sock);
		goto out;
	}
	rc = client_answer(&cc, sock, path, resp, resp_len, err);
out:
	buf_free(&cc.resp);
	nghttp2_session_del(h2);
	nghttp2_session_callbacks_del(cbs);
	return rc;
}

int grpc_call_msg(const char *sock, const char *path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                  int timeout_ms, kerr_t *err)
{
	size_t n = protobuf_c_message_get_packed_size(req), rlen;
	_cleanup_free_ uint8_t *buf = malloc(n ? n : 1);
	_cleanup_free_ uint8_t *rbuf = NULL;
	struct grpc_status st;

	if (!buf)
		return kerr_set(err, ENOMEM, "out of memory");
	protobuf_c_message_pack(req, buf);
	if (grpc_call_unary(sock, path, buf, n, &rbuf, &rlen, &st, timeout_ms, err) < 0)
		return -1;
	if (st.code)
		return kerr_set(err, EREMOTEIO, "%s: %s: %s", path, rpc_code_name(st.code),
		                st.message);
	if (resp_desc) {
		*resp = protobuf_c_message_unpack(resp_desc, NULL, rlen, rbuf);
		if (!*resp)
			return kerr_set(err, EPROTO, "%s: the answer does not decode", path);
	}
	return 0;
}
