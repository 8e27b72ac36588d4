/* Starting a VM the fastest way its shape allows: restored from its template (built on
 * first use), else a cold boot, with the reason written down. */
#include "vm/launch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "vm/vm.h"

/* What a retry keeps of a VM that failed to restore. */
static void reset_for_cold_boot(struct vm *vm)
{
	struct vm keep = *vm;

	vm_init(vm, keep.id);
	vm->sigfd = keep.sigfd;
	vm->tick = keep.tick;
	vm->tick_arg = keep.tick_arg;
	vm->tick_ns = keep.tick_ns;
	vm->reuse_dir = keep.reuse_dir;
	memcpy(vm->hostname, keep.hostname, sizeof(vm->hostname));
	memcpy(vm->boot_note, keep.boot_note, sizeof(vm->boot_note));
	memcpy(vm->template_key, keep.template_key, sizeof(vm->template_key));
}

/* Whether a failed restore is the template's fault: the VMM refused the state or died
 * loading it, or the clone never answered. Not: an id taken, a missing device, a signal. */
static int restore_refused(int errnum)
{
	return errnum == ECHILD || errnum == EIO || errnum == EPROTO || errnum == ECONNRESET ||
	       errnum == ETIMEDOUT;
}

static int restore_from(struct vm *vm, const struct vm_config *cfg, const struct tpl_store *s,
                        enum accel accel, const char *run_dir, int keep, kerr_t *err)
{
	struct vm_config c = *cfg;
	struct template t;
	struct tpl_info in;
	int built = 0, lock, rc;

	lock = tpl_acquire(s, cfg, accel, 1, &t, &in, &built, err);
	if (lock < 0)
		return -1;
	snprintf(vm->template_key, sizeof(vm->template_key), "%s", t.key);
	if (built)
		snprintf(vm->boot_note, sizeof(vm->boot_note), "built template %s in %.0f ms",
		         t.key, in.build_ms);
	c.accel = accel;
	c.mem_path = t.mem;
	rc = vm_restore(vm, &c, t.state, run_dir, keep, err);
	if (rc == 0)
		tpl_touch(&t);
	close(lock);
	if (rc < 0 && restore_refused(err->errnum)) {
		/* Intact files that QEMU will not load (checked above): not worth keeping. */
		lock = tpl_lock(&t, 1, mono_ns() + 5000000000LL, NULL);
		if (lock >= 0 && tpl_remove_files(&t, NULL) == 0)
			kerr_wrap(err, "template %s removed", t.key);
		if (lock >= 0)
			close(lock);
	}
	return rc;
}

int vm_launch(struct vm *vm, const struct vm_config *cfg, const struct tpl_store *s,
              const char *run_dir, int keep, kerr_t *err)
{
	enum accel accel;
	kerr_t why;

	if (!s)
		return vm_start(vm, cfg, run_dir, keep, err);
	if (id_valid(vm->id, err) < 0)
		return -1;
	if (accel_known(cfg->accel, run_dir, &accel) < 0) {
		snprintf(vm->boot_note, sizeof(vm->boot_note),
		         "cold boot: KVM is not proven on this host yet (this boot decides)");
		return vm_start(vm, cfg, run_dir, keep, err);
	}
	if (restore_from(vm, cfg, s, accel, run_dir, keep, &why) == 0)
		return 0;
	if (why.errnum == EINTR || why.errnum == EEXIST)
		return kerr_set(err, why.errnum, "%s", why.msg);
	fmt_msg(vm->boot_note, sizeof(vm->boot_note), "cold boot: %s", why.msg);
	reset_for_cold_boot(vm);
	return vm_start(vm, cfg, run_dir, keep, err);
}
