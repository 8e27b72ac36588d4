/* What the guest's boot.c provides to the code under test in a host process (test-link and
 * fuzz-guest-frames link every guest file but main.c, boot.c, link.c and alloc.c): the clock
 * reads the host's, and there is no appliance disk to read. */
#ifndef KUASAR_TEST_BOOT_STUBS_H
#define KUASAR_TEST_BOOT_STUBS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int boot_read_file(const char *path, char *buf, size_t size)
{
	(void)path;
	(void)buf;
	(void)size;
	errno = ENOENT;
	return -1;
}

#endif
