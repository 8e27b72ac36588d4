#include "core/match.h"

#include <stddef.h>
#include <stdint.h>

struct atom {
	const char *re;
	unsigned char len, opt, many; /* opt: may be skipped; many: may repeat */
};

/* Bytes the atom at re takes: a character, an escape, or a class up to its `]`. An
 * unterminated class is a literal `[`. */
static size_t atom_len(const char *re)
{
	const char *p = re + 1;

	if (re[0] == '\\' && re[1])
		return 2;
	if (re[0] != '[')
		return 1;
	if (*p == '^')
		p++;
	if (*p == ']')
		p++;
	while (*p && *p != ']')
		p++;
	return *p && p - re < 255 ? (size_t)(p - re) + 1 : 1;
}

static int class_has(const char *re, size_t len, unsigned char c)
{
	const char *p = re + 1, *end = re + len - 1; /* between [ and ] */
	int neg = *p == '^', in = 0;

	if (neg)
		p++;
	for (const char *start = p; p < end; p++) {
		unsigned char lo = (unsigned char)*p, hi = lo;

		if (p + 2 < end && p[1] == '-' && (p > start || lo != ']')) {
			hi = (unsigned char)p[2];
			p += 2;
		}
		if (c >= lo && c <= hi)
			in = 1;
	}
	return in != neg;
}

static int atom_has(const struct atom *a, unsigned char c)
{
	if (a->len == 2)
		return c == (unsigned char)a->re[1];
	if (a->len > 2)
		return class_has(a->re, a->len, c);
	return a->re[0] == '.' || c == (unsigned char)a->re[0];
}

/* Splits re into atoms; returns how many, -1 if too many. */
static int compile(const char *re, struct atom *atoms, int *end_anchor)
{
	int n = 0;

	*end_anchor = 0;
	while (*re) {
		struct atom *a = &atoms[n];

		if (re[0] == '$' && !re[1]) {
			*end_anchor = 1;
			break;
		}
		if (n == RE_MAX_ATOMS)
			return -1;
		a->re = re;
		a->len = (unsigned char)atom_len(re);
		re += a->len;
		a->opt = *re == '*' || *re == '?';
		a->many = *re == '*' || *re == '+';
		if (*re == '*' || *re == '?' || *re == '+')
			re++;
		n++;
	}
	return n;
}

/* Adds the states reachable without consuming: past every atom that may be skipped. */
static uint64_t closure(uint64_t s, const struct atom *atoms, int n)
{
	for (int i = 0; i < n; i++)
		if ((s >> i & 1) && atoms[i].opt)
			s |= (uint64_t)1 << (i + 1);
	return s;
}

int re_match(const char *re, const char *text)
{
	struct atom atoms[RE_MAX_ATOMS];
	int anchored = re[0] == '^', end_anchor, n = compile(re + anchored, atoms, &end_anchor);
	uint64_t start, s, accept;

	if (n < 0)
		return -1;
	accept = (uint64_t)1 << n;
	start = closure(1, atoms, n);
	s = start;
	for (;; text++) {
		uint64_t next = 0;

		if ((s & accept) && !end_anchor)
			return 1;
		if (!*text)
			return (s & accept) != 0;
		for (int i = 0; i < n; i++)
			if ((s >> i & 1) && atom_has(&atoms[i], (unsigned char)*text))
				next |= (uint64_t)(atoms[i].many) << i | (uint64_t)1 << (i + 1);
		s = closure(next, atoms, n);
		if (!anchored)
			s |= start;
	}
}
