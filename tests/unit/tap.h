/* Minimal TAP producer for the unit tests: ok()/is_int()/is_str() then done_testing(). */
#ifndef KUASAR_TAP_H
#define KUASAR_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                              \
	do {                                                                                       \
		int ok_ = !!(cond);                                                                \
		tap_n++;                                                                           \
		if (!ok_)                                                                          \
			tap_failed++;                                                              \
		printf("%sok %d - ", ok_ ? "" : "not ", tap_n);                                    \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		if (!ok_)                                                                          \
			printf("#   failed at %s:%d\n", __FILE__, __LINE__);                       \
	} while (0)

#define is_int(got, want, name)                                                                    \
	do {                                                                                       \
		long long g_ = (long long)(got), w_ = (long long)(want);                           \
		ok(g_ == w_, "%s", name);                                                          \
		if (g_ != w_)                                                                      \
			printf("#   got %lld, want %lld\n", g_, w_);                               \
	} while (0)

#define is_str(got, want, name)                                                                    \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (want);                                              \
		int same_ = g_ && w_ && !strcmp(g_, w_);                                           \
		ok(same_, "%s", name);                                                             \
		if (!same_)                                                                        \
			printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", w_);               \
	} while (0)

/* A check that cannot run here, counted apart from passes. */
#define skip(...)                                                                                  \
	do {                                                                                       \
		tap_n++;                                                                           \
		printf("ok %d - # SKIP ", tap_n);                                                  \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
	} while (0)

static inline int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
