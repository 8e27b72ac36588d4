/* The guest's JSON reader: well-formed documents, navigation, unescaping, numbers, and the
 * malformed or oversized input it must refuse with a reason. */
#include "core/json.h"
#include "tap.h"

static struct jtok toks[256];

static int parse(struct json *j, const char *s)
{
	return json_parse(j, s, strlen(s), toks, 256);
}

static void test_navigation(void)
{
	struct json j;
	const char *doc = "{ \"ociVersion\": \"1.1.0\", \"process\": { \"args\": [\"sh\", \"-c\", "
	                  "\"echo hi\"], \"terminal\": true, \"user\": {\"uid\": 1000} },"
	                  " \"empty\": {}, \"list\": [], \"n\": null }";
	char buf[64];
	int proc, args, a, n = 0;
	int64_t uid = 0;
	int term = 0;

	ok(parse(&j, doc) > 0, "parses a spec-shaped document");
	proc = json_get(&j, 0, "process");
	is_int(json_type(&j, proc), J_OBJECT, "object member lookup");
	args = json_get(&j, proc, "args");
	is_int(j.toks[args].count, 3, "array element count");
	for (a = json_first(&j, args); a > 0; a = json_next(&j, args, a))
		n++;
	is_int(n, 3, "iteration stays inside the array");
	a = json_next(&j, args, json_first(&j, args));
	ok(json_str(&j, json_next(&j, args, a), buf, sizeof(buf)) == 7 && !strcmp(buf, "echo hi"),
	   "third element");
	ok(json_bool(&j, json_get(&j, proc, "terminal"), &term) == 0 && term, "bool");
	ok(json_int(&j, json_get(&j, json_get(&j, proc, "user"), "uid"), &uid) == 0 && uid == 1000,
	   "nested int");
	is_int(json_get(&j, 0, "missing"), -1, "missing key");
	is_int(json_get(&j, json_get(&j, 0, "missing"), "x"), -1, "lookups chain through -1");
	is_int(json_first(&j, json_get(&j, 0, "empty")), -1, "empty object has no members");
	is_int(json_first(&j, json_get(&j, 0, "list")), -1, "empty array has no elements");
	is_int(json_type(&j, json_get(&j, 0, "n")), J_NULL, "null");
	ok(json_get(&j, 0, "ociVersion") > 0 &&
	       json_str_eq(&j, json_get(&j, 0, "ociVersion"), "1.1.0"),
	   "string compare");
	is_int(json_get(&j, args, "sh"), -1, "an array is not an object");
}

static void test_strings(void)
{
	struct json j;
	char buf[32];

	ok(parse(&j, "\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\"") > 0, "escapes parse");
	ok(json_str(&j, 0, buf, sizeof(buf)) > 0 &&
	       !strcmp(buf, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80"),
	   "escapes decode, including a surrogate pair");
	ok(json_str_eq(&j, 0, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80"), "escaped compare");
	ok(json_str(&j, 0, buf, 4) < 0, "too long for the buffer is refused");
	ok(parse(&j, "\"x\\u0000y\"") > 0 && json_str(&j, 0, buf, sizeof(buf)) < 0,
	   "an embedded NUL is refused");
}

static void test_numbers(void)
{
	struct json j;
	int64_t i;
	uint64_t u;

	ok(parse(&j, "[-9223372036854775808, 18446744073709551615, 1.5, 1e3, -1]") > 0,
	   "numbers parse");
	ok(json_int(&j, 1, &i) == 0 && i == INT64_MIN, "most negative int64");
	ok(json_uint(&j, 2, &u) == 0 && u == UINT64_MAX, "largest uint64");
	ok(json_int(&j, 2, &i) < 0, "uint64 max does not fit int64");
	ok(json_int(&j, 3, &i) < 0 && json_int(&j, 4, &i) < 0,
	   "fractions and exponents are not ints");
	ok(json_uint(&j, 5, &u) < 0, "negative is not unsigned");
	ok(parse(&j, "[99999999999999999999999]") > 0 && json_uint(&j, 1, &u) < 0,
	   "overflow refused");
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"",      "{",     "[1,]",       "{\"a\":}",  "{\"a\" 1}",  "{a:1}",
		"[1 2]", "\"abc", "\"\\x\"",    "tru",       "01",         "1.",
		"-",     "{} {}", "[\"\x01\"]", "\"\\u12\"", "{\"a\":1,}", "nul",
	};
	struct json j;
	char deep[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(parse(&j, bad[i]) < 0 && j.error[0], "refuses '%s' (%s)", bad[i], j.error);
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	ok(json_parse(&j, deep, 200, toks, 256) < 0 && strstr(j.error, "deep"), "nesting over 64");
	ok(json_parse(&j, "[1,2,3]", 7, toks, 3) < 0 && strstr(j.error, "too many"),
	   "token budget");
	ok(parse(&j, " \t\n[ 1 , { \"k\" : [ ] } ]\r\n") > 0, "white space everywhere");
}

int main(void)
{
	test_navigation();
	test_strings();
	test_numbers();
	test_malformed();
	return done_testing();
}
