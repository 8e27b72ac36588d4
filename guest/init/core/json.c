#include "core/json.h"

#include <string.h>

#include "core/fmt.h"

#define MAX_DEPTH 64

struct parser {
	struct json *j;
	size_t pos;
	int depth;
};

static int fail(struct parser *p, const char *what)
{
	kfmt(p->j->error, sizeof(p->j->error), "%s at byte %zu", what, p->pos);
	return -1;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->j->len) {
		char c = p->j->text[p->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static int peek(struct parser *p)
{
	return p->pos < p->j->len ? (unsigned char)p->j->text[p->pos] : -1;
}

static int new_tok(struct parser *p, uint8_t type, uint32_t start)
{
	struct jtok *t;

	if (p->j->used >= p->j->ntoks)
		return fail(p, "too many tokens");
	t = &p->j->toks[p->j->used];
	t->type = type;
	t->start = start;
	t->end = start;
	t->count = 0;
	t->next = 0;
	return (int)p->j->used++;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int check_escape(struct parser *p)
{
	int c = peek(p);

	p->pos++;
	if (c == 'u') {
		for (int i = 0; i < 4; i++, p->pos++)
			if (hexval(peek(p)) < 0)
				return fail(p, "bad \\u escape");
		return 0;
	}
	if (c < 0 || !strchr("\"\\/bfnrt", c))
		return fail(p, "bad escape");
	return 0;
}

static int parse_string(struct parser *p)
{
	int t;

	p->pos++; /* opening quote */
	t = new_tok(p, J_STRING, (uint32_t)p->pos);
	if (t < 0)
		return -1;
	for (;;) {
		int c = peek(p);

		if (c < 0)
			return fail(p, "unterminated string");
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(p, "control character in string");
		p->pos++;
		if (c == '\\' && check_escape(p) < 0)
			return -1;
	}
	p->j->toks[t].end = (uint32_t)p->pos;
	p->pos++;
	p->j->toks[t].next = p->j->used;
	return t;
}

static void digits(struct parser *p)
{
	while (peek(p) >= '0' && peek(p) <= '9')
		p->pos++;
}

static int parse_number(struct parser *p)
{
	size_t start = p->pos;
	int t;

	if (peek(p) == '-')
		p->pos++;
	if (peek(p) == '0')
		p->pos++;
	else if (peek(p) >= '1' && peek(p) <= '9')
		digits(p);
	else
		return fail(p, "bad number");
	if (peek(p) == '.') {
		p->pos++;
		if (peek(p) < '0' || peek(p) > '9')
			return fail(p, "bad fraction");
		digits(p);
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (peek(p) < '0' || peek(p) > '9')
			return fail(p, "bad exponent");
		digits(p);
	}
	t = new_tok(p, J_NUMBER, (uint32_t)start);
	if (t < 0)
		return -1;
	p->j->toks[t].end = (uint32_t)p->pos;
	p->j->toks[t].next = p->j->used;
	return t;
}

static int parse_literal(struct parser *p, const char *word, uint8_t type)
{
	size_t n = strlen(word);
	int t;

	if (p->j->len - p->pos < n || memcmp(p->j->text + p->pos, word, n))
		return fail(p, "unexpected character");
	t = new_tok(p, type, (uint32_t)p->pos);
	if (t < 0)
		return -1;
	p->pos += n;
	p->j->toks[t].end = (uint32_t)p->pos;
	p->j->toks[t].next = p->j->used;
	return t;
}

static int parse_value(struct parser *p);

static int parse_member(struct parser *p, uint8_t type)
{
	if (type == J_OBJECT) {
		if (peek(p) != '"')
			return fail(p, "expected a key");
		if (parse_string(p) < 0)
			return -1;
		skip_ws(p);
		if (peek(p) != ':')
			return fail(p, "expected ':'");
		p->pos++;
	}
	return parse_value(p);
}

/* An object or an array: the opening bracket is at p->pos. */
static int parse_container(struct parser *p, uint8_t type, char close)
{
	int t = new_tok(p, type, (uint32_t)p->pos);

	if (t < 0)
		return -1;
	if (++p->depth > MAX_DEPTH)
		return fail(p, "nesting too deep");
	p->pos++;
	skip_ws(p);
	if (peek(p) == close) {
		p->pos++;
	} else {
		for (;;) {
			if (parse_member(p, type) < 0)
				return -1;
			p->j->toks[t].count++;
			skip_ws(p);
			if (peek(p) == close) {
				p->pos++;
				break;
			}
			if (peek(p) != ',')
				return fail(p, "expected ',' or a closing bracket");
			p->pos++;
			skip_ws(p);
		}
	}
	p->depth--;
	p->j->toks[t].end = (uint32_t)p->pos;
	p->j->toks[t].next = p->j->used;
	return t;
}

static int parse_value(struct parser *p)
{
	skip_ws(p);
	switch (peek(p)) {
	case '{': return parse_container(p, J_OBJECT, '}');
	case '[': return parse_container(p, J_ARRAY, ']');
	case '"': return parse_string(p);
	case 't': return parse_literal(p, "true", J_TRUE);
	case 'f': return parse_literal(p, "false", J_FALSE);
	case 'n': return parse_literal(p, "null", J_NULL);
	case -1: return fail(p, "unexpected end");
	default: return parse_number(p);
	}
}

int json_parse(struct json *j, const char *text, size_t len, struct jtok *toks, unsigned ntoks)
{
	struct parser p = { j, 0, 0 };

	j->text = text;
	j->len = len;
	j->toks = toks;
	j->ntoks = ntoks;
	j->used = 0;
	j->error[0] = '\0';
	if (len > UINT32_MAX - 1)
		return fail(&p, "document too large");
	if (parse_value(&p) < 0)
		return -1;
	skip_ws(&p);
	if (p.pos != len)
		return fail(&p, "trailing characters");
	return (int)j->used;
}

int json_type(const struct json *j, int t)
{
	return t >= 0 && (unsigned)t < j->used ? j->toks[t].type : 0;
}

int json_first(const struct json *j, int c)
{
	int type = json_type(j, c);

	if ((type != J_OBJECT && type != J_ARRAY) || !j->toks[c].count)
		return -1;
	return c + 1;
}

int json_next(const struct json *j, int c, int child)
{
	int type = json_type(j, c);
	uint32_t n;

	if ((type != J_OBJECT && type != J_ARRAY) || child <= c || json_type(j, child) == 0)
		return -1;
	/* In an object the child is a key: step over its value too. */
	n = type == J_OBJECT ? j->toks[child + 1].next : j->toks[child].next;
	return n < j->toks[c].next ? (int)n : -1;
}

/* Decodes one \uXXXX (and a following low surrogate) to UTF-8; returns bytes consumed. */
static size_t unicode(const char *s, size_t left, char *out, size_t *outlen)
{
	unsigned cp = 0;
	size_t used = 6;

	for (int i = 0; i < 4; i++)
		cp = cp << 4 | (unsigned)hexval(s[2 + i]);
	if (cp >= 0xd800 && cp < 0xdc00 && left >= 12 && s[6] == '\\' && s[7] == 'u') {
		unsigned lo = 0;

		for (int i = 0; i < 4; i++)
			lo = lo << 4 | (unsigned)hexval(s[8 + i]);
		if (lo >= 0xdc00 && lo < 0xe000) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			used = 12;
		}
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		*outlen = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		*outlen = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		*outlen = 3;
	} else {
		out[0] = (char)(0xf0 | cp >> 18);
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		*outlen = 4;
	}
	return used;
}

static char simple_escape(char c)
{
	switch (c) {
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	default: return c; /* " \ / */
	}
}

int json_str(const struct json *j, int t, char *out, size_t n)
{
	const char *s, *end;
	size_t o = 0;

	if (json_type(j, t) != J_STRING || n == 0)
		return -1;
	s = j->text + j->toks[t].start;
	end = j->text + j->toks[t].end;
	while (s < end) {
		char buf[4];
		size_t k = 1;

		if (*s != '\\') {
			buf[0] = *s++;
		} else if (s[1] == 'u') {
			s += unicode(s, (size_t)(end - s), buf, &k);
		} else {
			buf[0] = simple_escape(s[1]);
			s += 2;
		}
		if (o + k >= n || memchr(buf, '\0', k))
			return -1;
		memcpy(out + o, buf, k);
		o += k;
	}
	out[o] = '\0';
	return (int)o;
}

int json_str_eq(const struct json *j, int t, const char *s)
{
	char buf[256];
	size_t n;

	if (json_type(j, t) != J_STRING)
		return 0;
	n = j->toks[t].end - j->toks[t].start;
	/* Fast path: no escapes, compare in place. */
	if (!memchr(j->text + j->toks[t].start, '\\', n))
		return strlen(s) == n && !memcmp(j->text + j->toks[t].start, s, n);
	return json_str(j, t, buf, sizeof(buf)) >= 0 && !strcmp(buf, s);
}

int json_get(const struct json *j, int obj, const char *key)
{
	if (json_type(j, obj) != J_OBJECT)
		return -1;
	for (int k = json_first(j, obj); k > 0; k = json_next(j, obj, k))
		if (json_str_eq(j, k, key))
			return k + 1;
	return -1;
}

static int parse_digits(const char *s, const char *end, uint64_t *out)
{
	uint64_t v = 0;

	if (s == end)
		return -1;
	for (; s < end; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (*s < '0' || *s > '9' || v > (UINT64_MAX - d) / 10)
			return -1; /* fractional, exponent or too large */
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int json_uint(const struct json *j, int t, uint64_t *out)
{
	if (json_type(j, t) != J_NUMBER)
		return -1;
	return parse_digits(j->text + j->toks[t].start, j->text + j->toks[t].end, out);
}

int json_int(const struct json *j, int t, int64_t *out)
{
	const char *s, *end;
	uint64_t v;
	int neg;

	if (json_type(j, t) != J_NUMBER)
		return -1;
	s = j->text + j->toks[t].start;
	end = j->text + j->toks[t].end;
	neg = *s == '-';
	if (parse_digits(s + neg, end, &v) < 0 || v > (uint64_t)INT64_MAX + (uint64_t)neg)
		return -1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int json_bool(const struct json *j, int t, int *out)
{
	int type = json_type(j, t);

	if (type != J_TRUE && type != J_FALSE)
		return -1;
	*out = type == J_TRUE;
	return 0;
}
