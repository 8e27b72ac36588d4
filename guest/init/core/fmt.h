/* Minimal printf-style formatting without stdio, for PID 1's size budget.
 * Supports %s %.*s %c %d %i %u %x %p %% with a width (space or 0 padded) and the l, ll
 * and z length modifiers.
 * Always NUL-terminates when size > 0; returns the length written (truncated). */
#ifndef KUASAR_FMT_H
#define KUASAR_FMT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

size_t kvfmt(char *buf, size_t size, const char *fmt, va_list ap);
/* The guest's error convention: a helper that fails writes why into buf and returns its
 * RPC code, in one statement: `return kfail(why, n, RPC_INVALID_ARGUMENT, "...", ...);`. */
int kfail(char *buf, size_t size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
size_t kfmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Small replacements that keep musl's strtoull (and its scanner) and strstr (two-way)
 * out of PID 1: decimal parsing that stops at the first non-digit, and a naive search. */
uint64_t parse_u64(const char *s, const char **end);
const char *str_find(const char *haystack, const char *needle);
/* strerror for the errors a container runtime meets (file, exec, mount, namespace, cgroup),
 * without musl's full table; any other is "errno N". Not reentrant for those. */
const char *err_str(int errnum);

#endif
