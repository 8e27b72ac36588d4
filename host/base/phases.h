/* Where a start's time goes: named steps, timed one after another from a first moment, and
 * written out as one line for the log ("restore 40.2 ms, reseed 3.1 ms, ...; 95.0 ms in
 * all"). The bench (tools/bench-pod.sh) reads these lines back. */
#ifndef KUASAR_PHASES_H
#define KUASAR_PHASES_H

#include <stddef.h>
#include <stdint.h>

#define PHASES_MAX 16

struct phases {
	int64_t t0, last; /* CLOCK_MONOTONIC ns; t0 == 0: not started (marks are ignored) */
	unsigned n;
	struct {
		const char *name; /* a string literal */
		int64_t ns;
	} step[PHASES_MAX];
};

/* Starts timing at t0 (mono_ns() when 0). */
void phases_begin(struct phases *ph, int64_t t0);
/* The step called name ended now (or at `at`, when not 0); steps past PHASES_MAX add to the
 * last one. */
void phases_mark(struct phases *ph, const char *name);
void phases_mark_at(struct phases *ph, const char *name, int64_t at);
/* "name 1.2 ms, ...; 9.9 ms in all", cut to fit n. */
void phases_format(const struct phases *ph, char *buf, size_t n);
/* Logs "phases WHAT: name 1.2 ms, ...; 9.9 ms in all" at info. */
void log_phases(const struct phases *ph, const char *what_fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
