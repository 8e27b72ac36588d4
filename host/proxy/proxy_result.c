#include "proxy/proxy_result.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t proxy_result_format(const struct proxy_result *r, char *buf, size_t n)
{
	int len;

	if (r->ok)
		len = snprintf(buf, n, "OK %d %s %lld %s %s %s\n", (int)r->vmm_pid, r->accel,
		               r->boot_ms, r->boot_mode, r->template_key[0] ? r->template_key : "-",
		               r->net);
	else
		len = snprintf(buf, n, "E %d %s\n", r->errnum, r->message);
	if (len < 0)
		return 0;
	if ((size_t)len >= n) { /* a cut message still ends its line */
		len = (int)n - 1;
		buf[len - 1] = '\n';
	}
	return (size_t)len;
}

/* Copies the next space-separated word of s (at most n-1 bytes) into out. */
static const char *word(const char *s, const char *end, char *out, size_t n)
{
	size_t k = 0;

	while (s < end && *s != ' ' && *s != '\n') {
		if (k + 1 >= n)
			return NULL;
		out[k++] = *s++;
	}
	out[k] = 0;
	if (!k)
		return NULL;
	return s < end && *s == ' ' ? s + 1 : s;
}

static int parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || end == s || *end || *out < min || *out > max ? -1 : 0;
}

/* The rest of the line, without its end, into out. */
static void rest(const char *p, const char *end, char *out, size_t n)
{
	size_t m = (size_t)(end - p);

	while (m && (p[m - 1] == '\n' || p[m - 1] == 0))
		m--;
	if (m >= n)
		m = n - 1;
	memcpy(out, p, m);
	out[m] = 0;
}

int proxy_result_parse(const char *buf, size_t len, struct proxy_result *r)
{
	const char *p = buf, *end = buf + len;
	char tok[32];
	long long v;

	memset(r, 0, sizeof(*r));
	if (len >= 2 && !memcmp(buf, "E ", 2)) {
		p = word(p + 2, end, tok, sizeof(tok));
		if (!p || parse_ll(tok, 0, 4095, &v) < 0)
			return -1;
		r->errnum = (int)v;
		rest(p, end, r->message, sizeof(r->message));
		return 0;
	}
	if (len < 3 || memcmp(buf, "OK ", 3))
		return -1;
	p += 3;
	if (!(p = word(p, end, tok, sizeof(tok))) || parse_ll(tok, 1, 1 << 30, &v) < 0)
		return -1;
	r->vmm_pid = (pid_t)v;
	if (!(p = word(p, end, r->accel, sizeof(r->accel))) ||
	    !(p = word(p, end, tok, sizeof(tok))) || parse_ll(tok, 0, 1LL << 40, &r->boot_ms) < 0 ||
	    !(p = word(p, end, r->boot_mode, sizeof(r->boot_mode))) ||
	    !(p = word(p, end, r->template_key, sizeof(r->template_key))))
		return -1;
	if (!strcmp(r->template_key, "-"))
		r->template_key[0] = 0;
	rest(p, end, r->net, sizeof(r->net));
	r->ok = 1;
	return 0;
}
