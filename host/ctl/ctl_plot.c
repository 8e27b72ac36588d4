/* Benchmark figures shared by kuasar-ctl's benches: order statistics of a series, and an
 * SVG with one row per series (every run a dot on a log time axis, the median a bar). */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

#define SVG_W 760
#define SVG_LEFT 110
#define SVG_RIGHT 30
#define SVG_ROW 60
#define SVG_TOP 40
#define MAX_SERIES 1000

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct ctl_stats ctl_stats_of(const double *v, int n)
{
	double sorted[MAX_SERIES], sum = 0;
	struct ctl_stats s = { 0 };

	if (n <= 0)
		return s;
	if (n > MAX_SERIES)
		n = MAX_SERIES;
	memcpy(sorted, v, (size_t)n * sizeof(double));
	qsort(sorted, (size_t)n, sizeof(double), cmp_double);
	for (int i = 0; i < n; i++)
		sum += sorted[i];
	s.min = sorted[0];
	s.median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
	s.p90 = sorted[(int)ceil(0.9 * n) - 1];
	s.mean = sum / n;
	return s;
}

static double svg_x(double ms, double lo, double hi)
{
	return SVG_LEFT +
	       (log10(ms) - log10(lo)) / (log10(hi) - log10(lo)) * (SVG_W - SVG_LEFT - SVG_RIGHT);
}

static void svg_axis(FILE *f, double lo, double hi, int y, const char *label)
{
	static const double ticks[] = { 1,   2,    5,    10,   20,    50,    100,   200,
		                        500, 1000, 2000, 5000, 10000, 20000, 50000, 100000 };

	fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#444'/>\n", SVG_LEFT, y,
	        SVG_W - SVG_RIGHT, y);
	for (size_t i = 0; i < sizeof(ticks) / sizeof(ticks[0]); i++) {
		double x;

		if (ticks[i] < lo || ticks[i] > hi)
			continue;
		x = svg_x(ticks[i], lo, hi);
		fprintf(f,
		        "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#ddd'/>"
		        "<text x='%.1f' y='%d' text-anchor='middle'>%g</text>\n",
		        x, SVG_TOP - 10, x, y, x, y + 16, ticks[i]);
	}
	fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>%s</text>\n", (SVG_W + SVG_LEFT) / 2,
	        y + 34, label);
}

void ctl_svg(const char *path, const char *title, const char *axis, const struct ctl_row *rows,
             int n_rows)
{
	double lo = 1e9, hi = 0;
	int h = SVG_TOP + n_rows * SVG_ROW + 50;
	FILE *f = fopen(path, "we");

	if (!f) {
		fprintf(stderr, "kuasar-ctl: warning: %s: %s\n", path, strerror(errno));
		return;
	}
	for (int r = 0; r < n_rows; r++)
		for (int i = 0; i < rows[r].n; i++) {
			lo = fmin(lo, rows[r].ms[i]);
			hi = fmax(hi, rows[r].ms[i]);
		}
	lo = pow(10, floor(log10(lo > 0 && lo < 1e9 ? lo : 1)));
	hi = pow(10, ceil(log10(hi > lo ? hi : lo * 10)));
	fprintf(f,
	        "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
	        "font-family='sans-serif' font-size='12'>\n"
	        "<rect width='100%%' height='100%%' fill='white'/>\n"
	        "<text x='%d' y='20' font-size='14'>%s</text>\n",
	        SVG_W, h, SVG_LEFT, title);
	for (int r = 0; r < n_rows; r++) {
		int y = SVG_TOP + r * SVG_ROW + SVG_ROW / 2;
		struct ctl_stats st = ctl_stats_of(rows[r].ms, rows[r].n);
		double mx = svg_x(st.median > 0 ? st.median : lo, lo, hi);

		fprintf(f, "<text x='%d' y='%d' text-anchor='end'>%s</text>\n", SVG_LEFT - 10,
		        y + 4, rows[r].name);
		for (int i = 0; i < rows[r].n; i++)
			fprintf(f,
			        "<circle cx='%.1f' cy='%d' r='3' fill='%s' fill-opacity='0.5'/>\n",
			        svg_x(rows[r].ms[i], lo, hi), y + (i % 5 - 2) * 3, rows[r].color);
		fprintf(
		    f,
		    "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='black' stroke-width='2'/>"
		    "<text x='%.1f' y='%d' text-anchor='middle'>%.1f</text>\n",
		    mx, y - 14, mx, y + 14, mx, y - 17, st.median);
	}
	svg_axis(f, lo, hi, SVG_TOP + n_rows * SVG_ROW, axis);
	fprintf(f, "</svg>\n");
	fclose(f);
}

void ctl_write_json(const char *path, json_object *o)
{
	FILE *f = fopen(path, "we");

	if (f) {
		fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		fclose(f);
	} else {
		fprintf(stderr, "kuasar-ctl: warning: %s: %s\n", path, strerror(errno));
	}
	json_object_put(o);
}
