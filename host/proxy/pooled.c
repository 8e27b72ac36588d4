#include "proxy/pooled.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/json.h"
#include "base/log.h"

char *pool_take_format(const struct pool_take *t)
{
	json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "id", json_object_new_string(t->id));
	json_object_object_add(o, "hostname", json_object_new_string(t->hostname));
	json_object_object_add(o, "netns", json_object_new_string(t->netns));
	json_object_object_add(o, "sysctls", json_object_new_string(t->sysctls ? t->sysctls : ""));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static int copy_field(json_object *o, const char *key, char *out, size_t n, kerr_t *err)
{
	const char *v = jget_str(o, key, NULL);

	if (!v || strlen(v) >= n)
		return kerr_set(err, EINVAL, "take message: %s missing or too long", key);
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

int pool_take_parse(const char *msg, size_t len, struct pool_take *t, kerr_t *err)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = tok ? json_tokener_parse_ex(tok, msg, (int)len) : NULL;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	if (tok)
		json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object))
		rc = kerr_set(err, EINVAL, "take message: not a JSON object");
	else if (copy_field(o, "id", t->id, sizeof(t->id), err) < 0 || id_valid(t->id, err) < 0 ||
	         copy_field(o, "hostname", t->hostname, sizeof(t->hostname), err) < 0 ||
	         copy_field(o, "netns", t->netns, sizeof(t->netns), err) < 0)
		rc = -1;
	else if (!(t->sysctls = strdup(jget_str(o, "sysctls", ""))))
		rc = kerr_set(err, ENOMEM, "take message: out of memory");
	json_object_put(o);
	return rc;
}

/* One wake-up of the wait: 1 when the message is in, 0 to go on, -1 with err to stop. */
static int wait_step(struct vm *vm, struct pollfd *p, char *buf, size_t n, ssize_t *got,
                     kerr_t *err)
{
	if (p[1].revents)
		return kerr_set(err, ESRCH, "the pooled VM's VMM exited");
	if (p[2].revents)
		return kerr_set(err, EINTR, "asked to stop while pooled");
	if (p[3].revents & (POLLIN | POLLHUP))
		vm_console_pump(vm);
	if (!p[0].revents)
		return 0;
	*got = read(p[0].fd, buf, n);
	if (*got < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (*got <= 0) {
		/* The daemon died: the VM waits for the next one, which discards it. */
		log_warn("the daemon went away; waiting to be discarded");
		p[0].fd = -1;
		return 0;
	}
	return 1;
}

int pooled_wait(struct vm *vm, int ctl_fd, char *buf, size_t n, kerr_t *err)
{
	static const int sigs[] = { SIGTERM, SIGINT, 0 };
	_cleanup_close_ int sigfd = signalfd_for(sigs);
	struct pollfd p[4] = {
		{ .fd = ctl_fd, .events = POLLIN },
		{ .fd = vm->pidfd, .events = POLLIN },
		{ .fd = sigfd, .events = POLLIN },
		{ .fd = vm->con_fd, .events = POLLIN },
	};
	ssize_t got = 0;
	int rc = 0;

	if (sigfd < 0)
		return kerr_sys(err, "signalfd");
	while (rc == 0) {
		p[3].fd = vm->con_fd; /* -1 once the console is gone: poll skips it */
		if (poll(p, 4, -1) < 0) {
			if (errno != EINTR)
				return kerr_sys(err, "poll");
			continue;
		}
		rc = wait_step(vm, p, buf, n, &got, err);
	}
	return rc < 0 ? -1 : (int)got;
}

/* Every entry of from moves into to under its name; none replaces one there. */
static int move_all(int from, int to, const char *what, kerr_t *err)
{
	DIR *d = fdopendir(dup(from));
	struct dirent *de;
	int rc = 0;

	if (!d)
		return kerr_sys(err, "list %s", what);
	while (rc == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    renameat2(from, de->d_name, to, de->d_name, RENAME_NOREPLACE) < 0)
			rc = kerr_sys(err, "move %s/%s into the pooled VM's", what, de->d_name);
	closedir(d);
	return rc;
}

/* Create's files (old) into the VM's directory (vm): its share's entries (the pod's files)
 * into the VM's share, everything else beside it. */
static int move_created(int old, int vm, kerr_t *err)
{
	_cleanup_close_ int old_share = -1, vm_share = -1;

	old_share = openat(old, "shared", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	vm_share = openat(vm, "shared", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (vm_share < 0)
		return kerr_sys(err, "the pooled VM's share");
	if (old_share >= 0 && move_all(old_share, vm_share, "shared", err) < 0)
		return -1;
	if (old_share >= 0 && unlinkat(old, "shared", AT_REMOVEDIR) < 0)
		return kerr_sys(err, "remove the sandbox's first share");
	return move_all(old, vm, "the sandbox's directory", err);
}

int pool_dir_swap(const char *run_dir, const char *name, const char *id, kerr_t *err)
{
	_cleanup_close_ int run = -1, pool = -1, old = -1, vm = -1;

	run = open(run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (run < 0)
		return kerr_sys(err, "open %s", run_dir);
	pool = openat(run, POOL_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (pool < 0)
		return kerr_sys(err, "open %s/" POOL_DIR, run_dir);
	if (renameat2(pool, name, run, id, RENAME_EXCHANGE) < 0)
		return kerr_sys(err, "exchange %s/" POOL_DIR "/%s and %s/%s", run_dir, name,
		                run_dir, id);
	old = openat(pool, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	vm = openat(run, id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (old < 0 || vm < 0)
		return kerr_sys(err, "open the exchanged directories of %s", id);
	if (move_created(old, vm, err) < 0)
		return kerr_wrap(err, "sandbox %s", id);
	if (rm_tree_at(pool, name) < 0)
		log_warn("remove %s/" POOL_DIR "/%s: %s", run_dir, name, strerror(errno));
	return 0;
}
