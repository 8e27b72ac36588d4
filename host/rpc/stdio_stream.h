/* Host end of containerd-style streaming stdio over the guest link: one ttrpc stream per
 * stdio pipe, named by StreamInit, data as transfer.Data within WindowUpdate credit. */
#ifndef KUASAR_STDIO_STREAM_H
#define KUASAR_STDIO_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/ttrpc_client.h"

enum hstream_dir { HSTREAM_OUT, HSTREAM_IN }; /* as the container sees it */

struct hstream {
	uint32_t id;
	char name[160];
	enum hstream_dir dir;
	int fd;         /* OUT: where the output goes; IN: where stdin comes from */
	int64_t credit; /* IN: what the guest lets us send */
	int acked, remote_closed, local_closed, finished;
};

struct hstreams {
	struct ttrpc_client *c;
	struct hstream s[3];
	int n;
};

/* Opens a stream named name and waits for the guest's acknowledgement. */
int hstream_open(struct hstreams *hs, const char *name, enum hstream_dir dir, int fd,
                 int64_t deadline_ns, kerr_t *err);
/* Installs the frame hook that feeds the streams; call once after opening them. */
void hstreams_attach(struct hstreams *hs);
/* Removes that hook; the link then drops stream frames. Pair it with every attach. */
void hstreams_detach(struct hstreams *hs);
/* Sends what stdin has within the credit; at EOF closes the stream. Never blocks on fd. */
void hstreams_pump_input(struct hstreams *hs);
/* Reads frames until every output stream has ended (or the deadline). */
int hstreams_drain(struct hstreams *hs, int64_t deadline_ns, kerr_t *err);
/* The URI a Create or Exec names a stream with. */
void hstream_uri(const struct hstream *s, char *buf, size_t n);

#endif
