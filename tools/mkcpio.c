/* mkcpio: write a newc cpio archive (the initramfs format) to stdout from a list file.
 * Device nodes and root ownership are written into the archive, so no root rights are
 * needed, and mtimes are 0, so the output is reproducible.
 *
 * usage: mkcpio [-C DIR] LIST
 * LIST lines: dir PATH MODE | file PATH MODE SOURCE | nod PATH MODE c|b MAJOR MINOR
 *             | slink PATH TARGET; '#' starts a comment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned ino = 721;

static void pad4(size_t n)
{
	while (n++ % 4)
		putchar(0);
}

static void header(const char *name, unsigned mode, size_t size, unsigned rmaj, unsigned rmin)
{
	size_t namesize = strlen(name) + 1;

	printf("070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X", ino++, mode, 0u, 0u,
	       (mode & S_IFMT) == S_IFDIR ? 2u : 1u, 0u, size, 0u, 0u, rmaj, rmin, namesize, 0u);
	fwrite(name, 1, namesize, stdout);
	pad4(110 + namesize);
}

static int emit_file(const char *name, unsigned mode, const char *dir, const char *src)
{
	char path[4096];
	FILE *f;
	long size;
	char *data;

	snprintf(path, sizeof(path), "%s/%s", dir, src);
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "mkcpio: fatal: unable to open %s: %s\n", path, strerror(errno));
		return -1;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	data = malloc(size ? (size_t)size : 1);
	if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "mkcpio: fatal: unable to read %s\n", path);
		fclose(f);
		free(data);
		return -1;
	}
	fclose(f);
	header(name, S_IFREG | mode, (size_t)size, 0, 0);
	fwrite(data, 1, (size_t)size, stdout);
	pad4((size_t)size);
	free(data);
	return 0;
}

static int emit_line(char *line, const char *dir, int lineno)
{
	char *tok[8], *save = NULL;
	int n = 0;
	unsigned mode;
	const char *name;

	for (char *t = strtok_r(line, " \t", &save); t && n < 8; t = strtok_r(NULL, " \t", &save))
		tok[n++] = t;
	if (n == 0 || tok[0][0] == '#')
		return 0;
	if (n < 3)
		goto bad;
	name = tok[1][0] == '/' ? tok[1] + 1 : tok[1];
	if (!strcmp(tok[0], "slink") && n == 3) {
		header(name, S_IFLNK | 0777, strlen(tok[2]), 0, 0);
		fputs(tok[2], stdout);
		pad4(strlen(tok[2]));
		return 0;
	}
	if (sscanf(tok[2], "%o", &mode) != 1 || mode > 07777)
		goto bad;
	if (!strcmp(tok[0], "dir") && n == 3) {
		header(name, S_IFDIR | mode, 0, 0, 0);
		return 0;
	}
	if (!strcmp(tok[0], "file") && n == 4)
		return emit_file(name, mode, dir, tok[3]);
	if (!strcmp(tok[0], "nod") && n == 6 && (!strcmp(tok[3], "c") || !strcmp(tok[3], "b"))) {
		header(name, (tok[3][0] == 'c' ? S_IFCHR : S_IFBLK) | mode, 0,
		       (unsigned)strtoul(tok[4], NULL, 10), (unsigned)strtoul(tok[5], NULL, 10));
		return 0;
	}
bad:
	fprintf(stderr, "mkcpio: fatal: line %d: cannot parse it\n", lineno);
	return -1;
}

int main(int argc, char **argv)
{
	const char *dir = ".";
	char line[4096];
	int lineno = 0;
	FILE *list;

	if (argc == 4 && !strcmp(argv[1], "-C")) {
		dir = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: mkcpio [-C DIR] LIST\n");
		return 2;
	}
	list = fopen(argv[1], "r");
	if (!list) {
		fprintf(stderr, "mkcpio: fatal: unable to open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), list)) {
		line[strcspn(line, "\n")] = '\0';
		if (emit_line(line, dir, ++lineno) < 0)
			return 1;
	}
	fclose(list);
	header("TRAILER!!!", 0, 0, 0, 0);
	return fflush(stdout) ? 1 : 0;
}
