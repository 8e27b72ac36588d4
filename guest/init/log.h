/* Console logging for PID 1: one write(2) per line, no stdio, levels from the kernel
 * command line (kuasar.log=error|warn|info|debug). */
#ifndef KUASAR_LOG_H
#define KUASAR_LOG_H

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int log_level;

void log_set_fd(int fd);
int log_parse_level(const char *s);
void klog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define err(...) klog(LOG_ERR, __VA_ARGS__)
#define warn(...) klog(LOG_WARN, __VA_ARGS__)
#define info(...) klog(LOG_INFO, __VA_ARGS__)
#define debug(...) klog(LOG_DEBUG, __VA_ARGS__)

#endif
