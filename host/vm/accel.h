/* Accelerator choice. `auto` uses KVM only after a probe has run real guest code under it:
 * a /dev/kvm that opens is not enough (nested PVM devices accept ioctls but hang guests). */
#ifndef KUASAR_ACCEL_H
#define KUASAR_ACCEL_H

#include <stddef.h>

enum accel { ACCEL_AUTO, ACCEL_KVM, ACCEL_TCG };

int accel_parse(const char *s, enum accel *out);
const char *accel_name(enum accel a);
/* Runs a few instructions in a throwaway KVM VM in a child process, bounded in time.
 * Returns 0 if KVM works, else -1 with the reason in why. */
int kvm_probe(char *why, size_t n);
/* The verdict of auto for this host boot, remembered in run_dir: 0 and *a when there is
 * one. */
int accel_cache_get(const char *run_dir, enum accel *a, char *why, size_t n);
void accel_cache_put(const char *run_dir, enum accel a, const char *why);
/* The accelerator a start asking for want would use: want itself, or what auto decided on
 * this host boot (recorded in run_dir). -1 while auto is undecided (KVM opens but no guest
 * has run under it yet). */
int accel_known(enum accel want, const char *run_dir, enum accel *out);
/* Resolves auto to kvm or tcg; why says what decided it. */
enum accel accel_resolve(enum accel want, char *why, size_t n);

#endif
