/* containerd's streaming stdio (containerd.services.streaming.v1.Streaming/Stream).
 *
 * containerd opens one bidirectional stream per stdio pipe and names it with a StreamInit
 * before it creates the task; we park it by that name until a Create or Exec names it in a
 * stdio URI (`...?streaming_id=<name>`). Output goes out as transfer.Data chunks of at most
 * 32 KiB within the credit the reader granted with transfer.WindowUpdate; for stdin we are
 * the reader and grant credit as the program consumes what it was sent. */
#ifndef KUASAR_STREAM_H
#define KUASAR_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "wire/rpc.h"
#include "wire/ttrpc.h"

enum stream_dir { STREAM_OUT, STREAM_IN };

/* If uri names a stream, binds it: *child_fd gets the pipe end for the container process.
 * Returns 1 if bound, 0 if the URI names no stream, or an RPC code with err set. */
int stream_bind(const char *uri, enum stream_dir dir, int *child_fd, char *err, size_t n);
/* Whether uri names a stream waiting to be bound. */
int stream_is_open(const char *uri);
/* Same, with an fd we already have for our side (a pty master); the stream owns it. */
int stream_attach_fd(const char *uri, enum stream_dir dir, int fd, char *err, size_t n);
/* CloseIO: the program's stdin ends once what was received is delivered. */
void stream_close_input(const char *uri);
/* Output streams whose connection went away (a fork, a host that reconnected): what their
 * programs write is read and dropped from now on, so that none blocks on a full pipe or
 * dies of SIGPIPE; each is freed when its program closes it. */
void stream_drop_orphans(void);
/* A data frame for a ttrpc stream of ours. Returns 0 if it was ours, -1 otherwise. */
int stream_on_data(struct conn *c, const struct ttrpc_header *h, const uint8_t *data);

extern const struct rpc_service streaming_service;

#endif
