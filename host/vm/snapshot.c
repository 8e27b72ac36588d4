/* Templates at the VMM level: saving a running VM's device state (its RAM stays in the
 * shared memory file: x-ignore-shared) and restoring a clone from it. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "vm/vm_priv.h"

int vm_set_ignore_shared(struct vm *vm, int on, int64_t deadline, kerr_t *err)
{
	json_object *cap = json_object_new_object(), *caps = json_object_new_array(),
	            *args = json_object_new_object();

	json_object_object_add(cap, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(cap, "state", json_object_new_boolean(on));
	json_object_array_add(caps, cap);
	json_object_object_add(args, "capabilities", caps);
	return qmp_call(&vm->qmp, "migrate-set-capabilities", args, NULL, deadline, err);
}

int vm_pass_fd(struct vm *vm, int fd, const char *name, int64_t deadline, kerr_t *err)
{
	json_object *args = json_object_new_object();

	json_object_object_add(args, "fdname", json_object_new_string(name));
	return qmp_call_fd(&vm->qmp, "getfd", args, fd, NULL, deadline, err);
}

int vm_migrate_cmd(struct vm *vm, const char *cmd, const char *uri, int64_t deadline, kerr_t *err)
{
	json_object *args = json_object_new_object();

	json_object_object_add(args, "uri", json_object_new_string(uri));
	return qmp_call(&vm->qmp, cmd, args, NULL, deadline, err);
}

/* The device state goes in while the VMM waits (-incoming defer). The template was saved
 * running, so the clone runs as soon as the state is loaded: no `cont`. The serial link is
 * connected before the load, so the port the template left connected stays connected and
 * the guest serves us at once; a load that fails makes QEMU exit, which the waits below
 * notice. */
static int restore_steps(struct vm *vm, const char *state_path, int64_t deadline, kerr_t *err)
{
	_cleanup_close_ int link = -1;
	_cleanup_close_ int st = -1;

	if (vm_open_qmp(vm, deadline, err) < 0)
		return -1;
	if (vm->link_type == LINK_SERIAL) {
		link = vm_connect_retry(vm, vm->paths.agent, deadline, err);
		if (link < 0)
			return kerr_wrap(err, "connect to the guest link");
	}
	st = open(state_path, O_RDONLY | O_CLOEXEC);
	if (st < 0)
		return kerr_sys(err, "open the template's device state %s", state_path);
	if (vm_set_ignore_shared(vm, 1, deadline, err) < 0 ||
	    vm_pass_fd(vm, st, "state", deadline, err) < 0 ||
	    vm_migrate_cmd(vm, "migrate-incoming", "fd:state", deadline, err) < 0)
		return kerr_wrap(err, "load the template's device state");
	vm->t.load_ns = mono_ns();
	if (link < 0) {
		link = vm_link_connect(vm, deadline, err);
		if (link < 0)
			return kerr_wrap(err, "connect to the guest link");
	}
	return vm_check_guest(vm, TAKE_FD(link), deadline, err);
}

int vm_restore(struct vm *vm, const struct vm_config *cfg, const char *state_path,
               const char *run_dir, int keep, kerr_t *err)
{
	struct vm_config c = *cfg;
	int64_t deadline = mono_ns() + (int64_t)cfg->boot_timeout_ms * 1000000;
	int rc;

	c.restore = 1;
	c.mem_shared = 0;
	if (!c.mem_path || c.accel == ACCEL_AUTO)
		return kerr_set(err, EINVAL, "restore `%s`: no template memory or accelerator",
		                vm->id);
	if (vm_setup(vm, &c, run_dir, err) < 0)
		return -1;
	snprintf(vm->accel_why, sizeof(vm->accel_why), "the template's");
	/* A caller may have named it already ("fork"). */
	if (!strcmp(vm->boot_mode, "cold"))
		snprintf(vm->boot_mode, sizeof(vm->boot_mode), "template");
	rc = vm_spawn(vm, &c, c.accel, keep, err);
	if (rc == 0 && restore_steps(vm, state_path, deadline, err) < 0)
		rc = vm_step_failed(vm, cfg->boot_timeout_ms, err);
	if (rc == 0)
		rc = vm_write_state(vm, &c, err);
	if (rc < 0) {
		vm_destroy(vm);
		snprintf(vm->boot_mode, sizeof(vm->boot_mode), "cold");
		return kerr_wrap(err, "restore sandbox `%s` (accel %s)", vm->id,
		                 accel_name(c.accel));
	}
	return 0;
}

int vm_floor(struct vm *vm, const struct vm_config *cfg, const char *run_dir, kerr_t *err)
{
	struct vm_config c = *cfg;
	int64_t deadline = mono_ns() + (int64_t)cfg->boot_timeout_ms * 1000000;
	int rc;

	c.restore = c.no_guest = 1;
	c.mem_shared = 0;
	if (vm_setup(vm, &c, run_dir, err) < 0)
		return -1;
	rc = vm_spawn(vm, &c, c.accel == ACCEL_AUTO ? ACCEL_TCG : c.accel, 0, err);
	if (rc == 0 && vm_open_qmp(vm, deadline, err) < 0)
		rc = vm_step_failed(vm, cfg->boot_timeout_ms, err);
	vm_destroy(vm);
	return rc;
}

int vm_migration_status(json_object *r, kerr_t *err)
{
	/* The VMM's answer is checked for type like any input: a status that is not a string
	 * is no status. */
	const char *st = jget_str(r, "status", "");

	if (!strcmp(st, "completed"))
		return 0;
	if (!strcmp(st, "failed") || !strcmp(st, "cancelled"))
		return kerr_set(err, EIO, "migration %s: %s", st,
		                jget_str(r, "error-desc", "(no reason given)"));
	return 1;
}

int vm_migration_done(struct vm *vm, int64_t deadline, kerr_t *err)
{
	for (;;) {
		json_object *r = NULL;
		int rc;

		if (qmp_call(&vm->qmp, "query-migrate", NULL, &r, deadline, err) < 0)
			return -1;
		rc = vm_migration_status(r, err);
		json_object_put(r);
		if (rc <= 0)
			return rc;
		if (mono_ns() > deadline)
			return kerr_set(err, ETIMEDOUT, "migration did not complete in time");
		if (vm_wait_for(vm, -1, 0, mono_ns() + 2000000, err) < 0 &&
		    err->errnum != ETIMEDOUT)
			return -1;
	}
}

int vm_save_template(struct vm *vm, const char *state_path, kerr_t *err)
{
	int64_t deadline = mono_ns() + 30000000000LL;
	_cleanup_close_ int fd =
	    open(state_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	kerr_t e;

	if (fd < 0)
		return kerr_sys(err, "create %s", state_path);
	/* Migrating a running VM: QEMU stops it for the final device state, and the state
	 * records "running", so clones run as soon as they are loaded. */
	if (vm_set_ignore_shared(vm, 1, deadline, err) < 0 ||
	    vm_pass_fd(vm, fd, "state", deadline, err) < 0 ||
	    vm_migrate_cmd(vm, "migrate", "fd:state", deadline, err) < 0 ||
	    vm_migration_done(vm, deadline, err) < 0)
		return kerr_wrap(err, "save the device state");
	if (fsync(fd) < 0)
		return kerr_sys(err, "fsync %s", state_path);
	qmp_call(&vm->qmp, "quit", NULL, NULL, deadline, &e);
	if (vm_wait_exit(vm, mono_ns() + 5000000000LL) < 0)
		return kerr_set(err, ETIMEDOUT, "the template's VMM did not exit after saving");
	return 0;
}
