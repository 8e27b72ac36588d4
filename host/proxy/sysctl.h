/* A pod's sysctls (linux.sysctls of its PodSandboxConfig): checked when the sandbox is
 * created, applied by the guest in the VM before the first container (the VM's network, IPC
 * and UTS namespaces are the pod's, and its kernel is the pod's alone). */
#ifndef KUASAR_SYSCTL_H
#define KUASAR_SYSCTL_H

#include "base/err.h"

#define SYSCTL_NAME_MAX 95
#define SYSCTL_VALUE_MAX 159
#define SYSCTL_MAX 32

/* EINVAL unless name is a sysctl name (dot- or slash-separated words of a-z, 0-9, '_' and
 * '-', no empty word) and value fits the guest (no NUL or newline, at most
 * SYSCTL_VALUE_MAX bytes). */
int sysctl_check(const char *name, const char *value, kerr_t *err);

#endif
