/* What kuasar-ctl appliance (ctl_appliance.c) and bench appliance (ctl_bench_appliance.c)
 * share: an appliance loaded with kuasar-ctl's defaults, its template, and running clones. */
#ifndef KUASAR_CTL_CLONE_H
#define KUASAR_CTL_CLONE_H

#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "net/podnet.h"
#include "vm/appliance.h"
#include "vm/template.h"
#include "vm/vm.h"

#define MAX_CLONES 32

/* One running copy: its VM, and its network (a pod netns, or a scratch tap). */
struct clone {
	struct vm vm;
	const char *netns;
	struct pod_net net;
	struct vm_nic nic;
	int attached;
	/* CLOCK_MONOTONIC: start, the guest answered, made unique, network set up */
	int64_t t0, t_launched, t_unique, t_net;
	off_t log_off;
	int done;
	unsigned exit_status;
	const char *fork_state; /* set: a fork, restored from this device state */
};

/* The appliance at dir with kuasar-ctl's defaults, one NIC (clones get a pod's network or a
 * tap that goes nowhere) and the template memory directory from the environment. */
int ctl_appliance_load(const char *dir, struct appliance *a, kerr_t *err);
/* The accelerator this host was found to have, decided by one boot if it is not known. */
int ctl_appliance_accel(struct appliance *a);
/* The appliance's template, built (*built set) if it is missing or does not verify. */
int ctl_appliance_snapshot(struct appliance *a, struct template *t, struct tpl_info *in, int *built,
                           kerr_t *err);
/* Starts one clone (or a cold boot with cold set): restored, unique, networked. */
int ctl_clone_start(struct appliance *a, struct clone *c, const char *id, int cold, int sigfd,
                    int keep, kerr_t *err);
void ctl_clone_stop(struct clone *c);
/* --network's list, one namespace per clone (or none: scratch taps). */
int ctl_assign_netns(struct clone *cl, unsigned n, char *list, kerr_t *err);
/* After starting clones (rc: how that went): with keep, leaves them running and prints
 * their ids; else prints their output until every app exited or a signal came, then stops
 * them. Returns the exit code. */
int ctl_clones_finish(struct clone *cl, unsigned started, int rc, int keep, int sigfd);

/* Until an HTTP answer's first bytes arrive from addr:port (connects retried every 2 ms,
 * each attempt given 200 ms). */
int ctl_http_answer(const char *addr, unsigned port, int64_t deadline, kerr_t *err);

#endif
