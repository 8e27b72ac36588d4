#include "vm/qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/util.h"

/* Reads one newline-terminated JSON object. */
static int read_line(struct qmp *q, json_object **out, int64_t deadline_ns, kerr_t *err)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->have);
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		ssize_t n;

		if (nl) {
			*nl = '\0';
			*out = json_tokener_parse(q->buf);
			q->have -= (size_t)(nl + 1 - q->buf);
			memmove(q->buf, nl + 1, q->have);
			if (!*out)
				return kerr_set(err, EPROTO, "QMP sent malformed JSON");
			return 0;
		}
		if (q->have == sizeof(q->buf))
			return kerr_set(err, EPROTO, "QMP line longer than %zu bytes",
			                sizeof(q->buf));
		if (poll(&p, 1, ms_until(deadline_ns)) == 0)
			return kerr_set(err, ETIMEDOUT, "QMP did not answer in time");
		n = read(q->fd, q->buf + q->have, sizeof(q->buf) - q->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kerr_sys(err, "read QMP");
		if (n == 0)
			return kerr_set(err, ECONNRESET, "QMP closed the connection (VMM exited?)");
		q->have += (size_t)n;
	}
}

int qmp_open(struct qmp *q, int fd, int64_t deadline_ns, kerr_t *err)
{
	json_object *greeting = NULL;

	q->have = 0;
	q->fd = fd;
	if (read_line(q, &greeting, deadline_ns, err) < 0) {
		qmp_close(q);
		return kerr_wrap(err, "QMP greeting");
	}
	json_object_put(greeting);
	if (qmp_call(q, "qmp_capabilities", NULL, NULL, deadline_ns, err) < 0) {
		qmp_close(q);
		return -1;
	}
	return 0;
}

void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

/* The first byte carries fd (SCM_RIGHTS) when fd >= 0, as QMP's getfd expects. */
static int send_line(struct qmp *q, const char *line, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)line, .iov_len = strlen(line) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	if (fd < 0)
		return write_all(q->fd, line, iov.iov_len);
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		n = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return write_all(q->fd, line + n, iov.iov_len - (size_t)n);
}

static int send_cmd(struct qmp *q, const char *cmd, json_object *args, int fd, kerr_t *err)
{
	json_object *o = json_object_new_object();
	char *line;
	int rc;

	json_object_object_add(o, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(o, "arguments", args);
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0)
		abort();
	rc = send_line(q, line, fd);
	free(line);
	json_object_put(o);
	return rc < 0 ? kerr_sys(err, "QMP %s", cmd) : 0;
}

static int take_answer(json_object *o, const char *cmd, json_object **ret, kerr_t *err)
{
	json_object *v, *desc;

	if (json_object_object_get_ex(o, "return", &v)) {
		if (ret)
			*ret = json_object_get(v);
		return 0;
	}
	if (json_object_object_get_ex(o, "error", &v)) {
		json_object_object_get_ex(v, "desc", &desc);
		return kerr_set(err, EIO, "QMP %s failed: %s", cmd,
		                desc ? json_object_get_string(desc) : "(no description)");
	}
	return 1;
}

int qmp_call(struct qmp *q, const char *cmd, json_object *args, json_object **ret,
             int64_t deadline_ns, kerr_t *err)
{
	return qmp_call_fd(q, cmd, args, -1, ret, deadline_ns, err);
}

int qmp_call_fd(struct qmp *q, const char *cmd, json_object *args, int fd, json_object **ret,
                int64_t deadline_ns, kerr_t *err)
{
	if (send_cmd(q, cmd, args, fd, err) < 0)
		return -1;
	for (;;) {
		json_object *o;
		int rc;

		if (read_line(q, &o, deadline_ns, err) < 0)
			return kerr_wrap(err, "QMP %s", cmd);
		rc = take_answer(o, cmd, ret, err);
		json_object_put(o);
		if (rc <= 0)
			return rc;
		/* An asynchronous event: not the answer, keep reading. */
	}
}
