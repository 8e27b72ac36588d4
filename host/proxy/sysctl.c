#include "proxy/sysctl.h"

#include <errno.h>
#include <string.h>

static int word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

int sysctl_check(const char *name, const char *value, kerr_t *err)
{
	size_t n = strlen(name), word = 0;

	if (!n || n > SYSCTL_NAME_MAX)
		return kerr_set(err, EINVAL, "sysctl `%.64s`: a name of 1 to %d bytes", name,
		                SYSCTL_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '.' || name[i] == '/') {
			if (!word)
				return kerr_set(err, EINVAL, "sysctl `%s`: an empty part", name);
			word = 0;
		} else if (!word_char(name[i])) {
			return kerr_set(err, EINVAL, "sysctl `%s`: byte 0x%02x is not allowed",
			                name, (unsigned char)name[i]);
		} else {
			word++;
		}
	}
	if (!word)
		return kerr_set(err, EINVAL, "sysctl `%s`: an empty part", name);
	if (strlen(value) > SYSCTL_VALUE_MAX || strchr(value, '\n'))
		return kerr_set(err, EINVAL, "sysctl %s: a value of at most %d bytes on one line",
		                name, SYSCTL_VALUE_MAX);
	return 0;
}
