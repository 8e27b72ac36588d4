/* The sandboxer's log: one line per event on stderr (journald or a test's log file),
 * "kuasar-sandboxer: LEVEL: message". */
#ifndef KUASAR_LOG_H
#define KUASAR_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(const char *name);
/* Names the process in each line: "kuasar-sandboxer[PREFIX]". */
void log_set_prefix(const char *prefix);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What the process is doing now (a request's service, method and stream), for the line a
 * fatal signal leaves. Cut to fit; cheap enough to call per request. */
void log_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT write one line (signal, fault address, the
 * context) to stderr before their default action: a process never dies without a word. */
void log_catch_fatal(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
