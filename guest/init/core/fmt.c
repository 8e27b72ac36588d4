#include "core/fmt.h"

#include <stdint.h>
#include <string.h>

struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len++] = c;
}

static void put_str(struct out *o, const char *s, size_t max)
{
	if (!s)
		s = "(null)";
	for (size_t i = 0; i < max && s[i]; i++)
		put(o, s[i]);
}

struct spec {
	size_t width;
	size_t prec;
	char pad;
	int len;
};

static void put_num(struct out *o, unsigned long long v, unsigned base, int neg,
                    const struct spec *sp)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg && sp->pad == '0')
		put(o, '-');
	for (size_t w = n + (size_t)neg; w < sp->width; w++)
		put(o, sp->pad);
	if (neg && sp->pad != '0')
		put(o, '-');
	while (n)
		put(o, tmp[--n]);
}

enum { LEN_INT, LEN_LONG, LEN_LLONG, LEN_SIZE };

static long long get_signed(va_list *ap, int len)
{
	switch (len) {
	case LEN_LONG: return va_arg(*ap, long);
	case LEN_LLONG: return va_arg(*ap, long long);
	case LEN_SIZE: return va_arg(*ap, long);
	default: return va_arg(*ap, int);
	}
}

static unsigned long long get_unsigned(va_list *ap, int len)
{
	switch (len) {
	case LEN_LONG: return va_arg(*ap, unsigned long);
	case LEN_LLONG: return va_arg(*ap, unsigned long long);
	case LEN_SIZE: return va_arg(*ap, size_t);
	default: return va_arg(*ap, unsigned);
	}
}

static const char *parse_spec(const char *p, struct spec *sp, va_list *ap)
{
	sp->pad = ' ';
	sp->width = 0;
	sp->prec = (size_t)-1;
	if (*p == '0') {
		sp->pad = '0';
		p++;
	}
	while (*p >= '0' && *p <= '9')
		sp->width = sp->width * 10 + (size_t)(*p++ - '0');
	if (p[0] == '.' && p[1] == '*') {
		sp->prec = (size_t)va_arg(*ap, int);
		p += 2;
	}
	return p;
}

static const char *parse_len(const char *p, int *len)
{
	*len = LEN_INT;
	if (*p == 'z') {
		*len = LEN_SIZE;
		return p + 1;
	}
	if (*p == 'l') {
		p++;
		*len = LEN_LONG;
		if (*p == 'l') {
			p++;
			*len = LEN_LLONG;
		}
	}
	return p;
}

static void conv(struct out *o, char c, const struct spec *sp, va_list *ap)
{
	long long s;
	int len = sp->len;

	switch (c) {
	case 's': put_str(o, va_arg(*ap, const char *), sp->prec); break;
	case 'c': put(o, (char)va_arg(*ap, int)); break;
	case 'd':
	case 'i':
		s = get_signed(ap, len);
		put_num(o, s < 0 ? 0ULL - (unsigned long long)s : (unsigned long long)s, 10, s < 0,
		        sp);
		break;
	case 'u': put_num(o, get_unsigned(ap, len), 10, 0, sp); break;
	case 'x': put_num(o, get_unsigned(ap, len), 16, 0, sp); break;
	case 'p':
		put_str(o, "0x", 2);
		put_num(o, (uintptr_t)va_arg(*ap, void *), 16, 0, sp);
		break;
	case '%': put(o, '%'); break;
	default: put(o, '%'); put(o, c);
	}
}

size_t kvfmt(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	va_list aq;

	va_copy(aq, ap);
	for (const char *p = fmt; *p; p++) {
		struct spec sp;

		if (*p != '%') {
			put(&o, *p);
			continue;
		}
		p = parse_spec(p + 1, &sp, &aq);
		p = parse_len(p, &sp.len);
		if (!*p)
			break;
		conv(&o, *p, &sp, &aq);
	}
	va_end(aq);
	if (size)
		buf[o.len] = '\0';
	return o.len;
}

size_t kfmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = kvfmt(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

uint64_t parse_u64(const char *s, const char **end)
{
	uint64_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	if (end)
		*end = s;
	return v;
}

const char *str_find(const char *h, const char *n)
{
	size_t len = strlen(n);

	for (; *h; h++)
		if (!strncmp(h, n, len))
			return h;
	return NULL;
}

/* Each entry: the errno as one byte, then its text. */
static const char err_texts[] = "\001Operation not permitted\0"
                                "\002No such file or directory\0"
                                "\003No such process\0"
                                "\005Input/output error\0"
                                "\006No such device or address\0"
                                "\007Argument list too long\0"
                                "\010Exec format error\0"
                                "\011Bad file descriptor\0"
                                "\013Resource temporarily unavailable\0"
                                "\014Cannot allocate memory\0"
                                "\015Permission denied\0"
                                "\017Block device required\0"
                                "\020Device or resource busy\0"
                                "\021File exists\0"
                                "\022Cross-device link\0"
                                "\023No such device\0"
                                "\024Not a directory\0"
                                "\025Is a directory\0"
                                "\026Invalid argument\0"
                                "\030Too many open files\0"
                                "\032Text file busy\0"
                                "\033File too large\0"
                                "\034No space left on device\0"
                                "\036Read-only file system\0"
                                "\044File name too long\0"
                                "\046Function not implemented\0"
                                "\047Directory not empty\0"
                                "\050Too many levels of symbolic links\0"
                                "\137Operation not supported\0";

const char *err_str(int errnum)
{
	static char other[24];

	for (const char *p = err_texts; *p; p += strlen(p) + 1)
		if ((unsigned char)*p == errnum)
			return p + 1;
	kfmt(other, sizeof(other), "errno %d", errnum);
	return other;
}

int kfail(char *buf, size_t size, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kvfmt(buf, size, fmt, ap);
	va_end(ap);
	return code;
}
