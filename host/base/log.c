#include "base/log.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level level = LOG_INFO;
static char prefix[96];

void log_set_prefix(const char *p)
{
	snprintf(prefix, sizeof(prefix), "[%s]", p);
}

void log_set_level(const char *name)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(name, names[i]))
			level = (enum log_level)i;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const tags[] = { "error", "warn", "info", "debug" };
	struct timespec ts;
	char line[2048];
	va_list ap;

	if (lvl > level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%lld.%03ld kuasar-sandboxer%s: %s: %s\n", (long long)ts.tv_sec,
	        ts.tv_nsec / 1000000, prefix, tags[lvl], line);
}

static char context[160];

void log_context(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(context, sizeof(context), fmt, ap);
	va_end(ap);
}

/* Async-signal-safe pieces of the fatal line. */
static size_t put_str(char *buf, size_t off, size_t n, const char *s)
{
	while (*s && off + 1 < n)
		buf[off++] = *s++;
	return off;
}

static size_t put_num(char *buf, size_t off, size_t n, uintptr_t v, unsigned base)
{
	char tmp[24];
	size_t k = 0;

	do {
		tmp[k++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && k < sizeof(tmp));
	while (k && off + 1 < n)
		buf[off++] = tmp[--k];
	return off;
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
	char line[512];
	size_t off = 0;

	off = put_str(line, off, sizeof(line), "kuasar-sandboxer");
	off = put_str(line, off, sizeof(line), prefix);
	off = put_str(line, off, sizeof(line), ": error: fatal signal ");
	off = put_num(line, off, sizeof(line), (uintptr_t)sig, 10);
	off = put_str(line, off, sizeof(line), " (pid ");
	off = put_num(line, off, sizeof(line), (uintptr_t)getpid(), 10);
	off = put_str(line, off, sizeof(line), ", address 0x");
	off = put_num(line, off, sizeof(line), (uintptr_t)si->si_addr, 16);
	off = put_str(line, off, sizeof(line), ") while: ");
	off = put_str(line, off, sizeof(line), context[0] ? context : "(between requests)");
	off = put_str(line, off, sizeof(line), "\n");
	if (write(2, line, off) < 0) {
		/* nothing more can be said */
	}
	/* SA_RESETHAND restored the default action: raise it again for the core and status. */
	raise(sig);
}

void log_catch_fatal(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	static char stack[16384];
	stack_t ss = { .ss_sp = stack, .ss_size = sizeof(stack) };
	struct sigaction sa;

	/* Its own stack: a stack overflow is a SIGSEGV too. */
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}
