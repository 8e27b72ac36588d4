/* The one line a task proxy writes to the daemon when its sandbox's start is over (fd 3, a
 * pipe): "OK <vmm pid> <accel> <boot ms> <cold|template> <template key|-> <network...>" or
 * "E <errno> <message>". Both ends use these two functions; the line fits one atomic pipe
 * write, so the daemon reads it whole. */
#ifndef KUASAR_PROXY_RESULT_H
#define KUASAR_PROXY_RESULT_H

#include <stddef.h>
#include <sys/types.h>

#define PROXY_RESULT_MAX 1200 /* bytes, the line included; below PIPE_BUF */

struct proxy_result {
	int ok;
	int errnum;         /* !ok */
	char message[1024]; /* !ok: why the start failed */
	pid_t vmm_pid;
	char accel[16];
	long long boot_ms;
	char boot_mode[16]; /* "cold" or "template" */
	char template_key[33];
	char net[512]; /* the pod network as the VM got it, or why it has none (rest of line) */
};

/* Writes r's line into buf (n >= PROXY_RESULT_MAX); a long message is cut to fit. Returns
 * its length. */
size_t proxy_result_format(const struct proxy_result *r, char *buf, size_t n);
/* Parses a line as read from the pipe (not NUL-terminated). -1 when it is not a result. */
int proxy_result_parse(const char *buf, size_t len, struct proxy_result *r);

#endif
