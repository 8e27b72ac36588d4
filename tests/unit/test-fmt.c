/* The init's printf replacement: every conversion it claims to support. */
#include "core/fmt.h"
#include "tap.h"

int main(void)
{
	char b[64];

	kfmt(b, sizeof(b), "%s=%d", "x", -42);
	is_str(b, "x=-42", "string and negative int");
	kfmt(b, sizeof(b), "%u %x %lu %llu %zu", 7u, 255u, 1234567890ul, 18446744073709551615ull,
	     (size_t)9);
	is_str(b, "7 ff 1234567890 18446744073709551615 9", "unsigned, hex and length modifiers");
	kfmt(b, sizeof(b), "[%5lu.%06lu]", 3ul, 42ul);
	is_str(b, "[    3.000042]", "width with space and zero padding");
	kfmt(b, sizeof(b), "%.*s|%c|%%", 3, "abcdef", 'z');
	is_str(b, "abc|z|%", "precision, char and percent");
	kfmt(b, sizeof(b), "%lld", -9223372036854775807ll - 1);
	is_str(b, "-9223372036854775808", "most negative long long");
	is_int(kfmt(b, 5, "%s", "abcdefgh"), 4, "truncation reports the written length");
	is_str(b, "abcd", "truncated output is terminated");
	is_str(err_str(2), "No such file or directory", "err_str knows ENOENT");
	is_str(err_str(95), "Operation not supported", "and the last entry");
	is_str(err_str(200), "errno 200", "an unknown one is its number");
	return done_testing();
}
