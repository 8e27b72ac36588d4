/* Console logging for PID 1: one write(2) per line, no stdio, levels from the kernel
 * command line (kuasar.log=error|warn|info|debug). */
#ifndef KUASAR_GUEST_KLOG_H
#define KUASAR_GUEST_KLOG_H

enum klog_level { KLOG_ERR, KLOG_WARN, KLOG_INFO, KLOG_DEBUG };

extern int klog_level;

void klog_set_fd(int fd);
int klog_parse_level(const char *s);
void klog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define err(...) klog(KLOG_ERR, __VA_ARGS__)
#define warn(...) klog(KLOG_WARN, __VA_ARGS__)
#define info(...) klog(KLOG_INFO, __VA_ARGS__)
#define debug(...) klog(KLOG_DEBUG, __VA_ARGS__)

#endif
