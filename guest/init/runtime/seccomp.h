/* OCI seccomp profiles compiled to classic BPF. */
#ifndef KUASAR_SECCOMP_H
#define KUASAR_SECCOMP_H

#include <linux/filter.h>
#include <stddef.h>

#include "runtime/oci.h"

/* The filter is malloc'd into out->filter. -1 with a message in err. */
int seccomp_compile(const struct oci_seccomp *sc, struct sock_fprog *out, char *err, size_t n);
/* This kernel's number for a syscall name (from the generated table), -1 if unknown. */
int seccomp_syscall_nr(const char *name);

#endif
