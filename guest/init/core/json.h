/* A small strict JSON reader that does not allocate: the text is split into tokens in a
 * caller-provided array, each token knowing where its subtree ends, so lookups skip
 * siblings in O(1). Strings are unescaped only when copied out.
 *
 *   struct json j;
 *   struct jtok toks[1024];
 *   if (json_parse(&j, text, len, toks, 1024) < 0) ... j.error says why
 *   int proc = json_get(&j, 0, "process");
 *   int args = json_get(&j, proc, "args");
 *   for (int a = json_first(&j, args); a > 0; a = json_next(&j, args, a))
 *           json_str(&j, a, buf, sizeof(buf));
 */
#ifndef KUASAR_JSON_H
#define KUASAR_JSON_H

#include <stddef.h>
#include <stdint.h>

enum jtype { J_OBJECT = 1, J_ARRAY, J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL };

struct jtok {
	uint8_t type;
	uint32_t start, end; /* bytes of the value (strings: without the quotes) */
	uint32_t next;       /* index of the token after this value's subtree */
	uint32_t count;      /* members of an object, elements of an array */
};

struct json {
	const char *text;
	size_t len;
	struct jtok *toks;
	unsigned ntoks, used;
	char error[96];
};

/* Parses a whole document (one value, optional surrounding white space). Returns the number
 * of tokens, or -1 with j->error set: malformed text, nesting over 64, too many tokens. */
int json_parse(struct json *j, const char *text, size_t len, struct jtok *toks, unsigned ntoks);

/* Navigation; every function accepts a negative index and returns -1 for it, so chains of
 * lookups need one check at the end. */
int json_get(const struct json *j, int obj, const char *key);
int json_first(const struct json *j, int container);
int json_next(const struct json *j, int container, int child);
/* In objects, json_first/json_next visit keys; a key's value is key + 1. */
int json_type(const struct json *j, int t);

/* Copies a string out, unescaped and NUL-terminated. -1 if not a string, if it does not fit
 * or if it holds a NUL (which C strings cannot carry). */
int json_str(const struct json *j, int t, char *out, size_t n);
/* Compares a string token with s, unescaping as needed. */
int json_str_eq(const struct json *j, int t, const char *s);
int json_int(const struct json *j, int t, int64_t *out);
int json_uint(const struct json *j, int t, uint64_t *out);
int json_bool(const struct json *j, int t, int *out);

#endif
