#include "base/phases.h"

#include <stdarg.h>
#include <stdio.h>

#include "base/log.h"
#include "base/util.h"

void phases_begin(struct phases *ph, int64_t t0)
{
	ph->t0 = ph->last = t0 ? t0 : mono_ns();
	ph->n = 0;
}

void phases_mark_at(struct phases *ph, const char *name, int64_t at)
{
	if (!ph || !ph->t0)
		return;
	if (!at)
		at = mono_ns();
	if (ph->n < PHASES_MAX) {
		ph->step[ph->n].name = name;
		ph->step[ph->n++].ns = 0;
	}
	ph->step[ph->n - 1].ns += at - ph->last;
	ph->last = at;
}

void phases_mark(struct phases *ph, const char *name)
{
	phases_mark_at(ph, name, 0);
}

void phases_format(const struct phases *ph, char *buf, size_t n)
{
	size_t used = 0;
	int w;

	buf[0] = '\0';
	for (unsigned i = 0; i < ph->n && used < n; i++) {
		w = snprintf(buf + used, n - used, "%s%s %.1f ms", i ? ", " : "", ph->step[i].name,
		             ph->step[i].ns / 1e6);
		used += w > 0 ? (size_t)w : 0;
	}
	if (used < n)
		snprintf(buf + used, n - used, "; %.1f ms in all", (ph->last - ph->t0) / 1e6);
}

void log_phases(const struct phases *ph, const char *what_fmt, ...)
{
	char what[160], steps[768];
	va_list ap;

	va_start(ap, what_fmt);
	vsnprintf(what, sizeof(what), what_fmt, ap);
	va_end(ap);
	phases_format(ph, steps, sizeof(steps));
	log_info("phases %s: %s", what, steps);
}
