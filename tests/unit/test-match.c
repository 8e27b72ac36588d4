/* The readiness pattern matcher (guest/init/match.c): every construct it documents, and
 * what it must treat as literal. */
#include "core/match.h"
#include "tap.h"

static void yes(const char *re, const char *text)
{
	ok(re_match(re, text), "`%s` matches `%s`", re, text);
}

static void no(const char *re, const char *text)
{
	ok(!re_match(re, text), "`%s` does not match `%s`", re, text);
}

int main(void)
{
	yes("listening", "server listening on :8000");
	no("listening", "server starting");
	yes("^Serving", "Serving HTTP on 0.0.0.0 port 8000");
	no("^HTTP", "Serving HTTP on 0.0.0.0");
	yes("port [0-9]+ ", "Serving HTTP on 0.0.0.0 port 8000 (http://0.0.0.0:8000/) ...");
	no("port [0-9]+$", "port x");
	yes("ready$", "app ready");
	no("ready$", "ready now");
	yes("a.c", "abc");
	yes("ab*c", "ac");
	yes("ab*c", "abbbc");
	no("ab+c", "ac");
	yes("colou?r", "color");
	yes("colou?r", "colour");
	no("^colou?r$", "colouur");
	yes("[^ ]+:[0-9]+", "bound to 127.0.0.1:80");
	yes("\\.\\*", "a.*b");
	no("\\.", "abc");
	yes("[]x]", "]");
	yes("[a-]", "-");
	yes("[", "a[b"); /* an unterminated class is a literal [ */
	yes("", "anything");
	yes("^$", "");
	yes(".*", "");
	no("^.+$", "");
	yes("^a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaab");
	no("^a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); /* linear */
	is_int(re_match("0123456789012345678901234567890123456789012345678901234567890123", "x"),
	       -1, "more than 63 atoms is refused");
	yes("^x+y*z?$", "xxx");
	return done_testing();
}
