/* kuasar-ctl template: build, list and remove VM templates.
 *
 *   kuasar-ctl template build [--kernel K] [--initrd I] [--memory MiB] [--vcpus N] [--accel A]
 *   kuasar-ctl template list [--json]
 *   kuasar-ctl template rm [--force] KEY... | --all
 *   kuasar-ctl template prune [--unused-for SECONDS] */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "ctl/ctl.h"
#include "vm/template.h"
#include "vm/vm.h"

#define MAX_USERS 64

static int usage(void)
{
	fprintf(stderr,
	        "usage: kuasar-ctl template build [--kernel K] [--initrd I] [--memory MiB]\n"
	        "                                 [--vcpus N] [--accel auto|kvm|tcg]\n"
	        "       kuasar-ctl template list [--json]\n"
	        "       kuasar-ctl template rm [--force] KEY... | --all\n"
	        "       kuasar-ctl template prune [--unused-for SECONDS]\n"
	        "  store: KUASAR_TEMPLATE_DIR (default %s),\n"
	        "         memory in KUASAR_TEMPLATE_MEM_DIR (default %s)\n"
	        "  rm refuses a template whose memory clones still map, unless --force (running\n"
	        "  clones keep their pages either way); prune removes those no clone maps that\n"
	        "  were not restored from for SECONDS (default a day), and broken ones\n",
	        TPL_DIR_DEFAULT, TPL_MEM_DIR_DEFAULT);
	return 2;
}

int ctl_decide_accel(const struct vm_config *cfg, enum accel *accel)
{
	struct vm vm;
	char id[ID_MAX + 1];
	kerr_t err;

	fprintf(stderr, "kuasar-ctl: deciding between KVM and TCG with one probe boot\n");
	ctl_random_id(id, sizeof(id));
	vm_init(&vm, id);
	if (vm_start(&vm, cfg, ctl_run_dir(), 0, &err) < 0)
		return ctl_fail(&err), -1;
	*accel = vm.accel;
	vm_shutdown(&vm, 10000, &err);
	return 0;
}

static int build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, 0, 'k' },    { "initrd", required_argument, 0, 'i' },
		{ "memory", required_argument, 0, 'm' },    { "vcpus", required_argument, 0, 'c' },
		{ "accel", required_argument, 0, 'a' },     { "qemu", required_argument, 0, 'q' },
		{ "log-level", required_argument, 0, 'l' }, { 0, 0, 0, 0 },
	};
	const struct tpl_store *s = ctl_templates();
	struct vm_config cfg;
	struct template t;
	struct tpl_info in;
	enum accel accel;
	kerr_t err;
	int c, built = 0, lock;

	ctl_config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int handled = ctl_vm_option(c, optarg, &cfg);

		if (handled < 0)
			return 2;
		if (c == 'i')
			cfg.initrd = optarg;
		else if (!handled)
			return usage();
	}
	if (optind != argc)
		return usage();
	if (accel_known(cfg.accel, ctl_run_dir(), &accel) < 0 && ctl_decide_accel(&cfg, &accel) < 0)
		return 1;
	lock = tpl_acquire(s, &cfg, accel, 1, &t, &in, &built, &err);
	if (lock < 0)
		return ctl_fail(&err);
	close(lock);
	if (built)
		printf("template %s built in %.0f ms\n", t.key, in.build_ms);
	else
		printf("template %s exists (built %s in %.0f ms)\n", t.key, in.created,
		       in.build_ms);
	printf("  %u MiB, %u vCPU, %s; device state %lld bytes; memory %s\n", in.memory_mib,
	       in.vcpus, in.accel, in.state_bytes, in.mem);
	return 0;
}

struct list_ctx {
	int json;
	json_object *arr;
	int n;
};

static void list_one(const struct template *t, const struct tpl_info *in, const char *problem,
                     void *arg)
{
	struct list_ctx *l = arg;
	pid_t pids[MAX_USERS];
	int users = tpl_users(t, pids, MAX_USERS);

	l->n++;
	if (l->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "key", json_object_new_string(t->key));
		json_object_object_add(o, "dir", json_object_new_string(t->dir));
		json_object_object_add(o, "memory_file", json_object_new_string(t->mem));
		json_object_object_add(o, "ok", json_object_new_boolean(!problem));
		if (problem)
			json_object_object_add(o, "problem", json_object_new_string(problem));
		json_object_object_add(o, "created", json_object_new_string(in->created));
		json_object_object_add(o, "memory_mib", json_object_new_int64(in->memory_mib));
		json_object_object_add(o, "vcpus", json_object_new_int64(in->vcpus));
		json_object_object_add(o, "accel", json_object_new_string(in->accel));
		json_object_object_add(o, "kernel", json_object_new_string(in->kernel));
		json_object_object_add(o, "initrd", json_object_new_string(in->initrd));
		json_object_object_add(o, "qemu", json_object_new_string(in->qemu_version));
		json_object_object_add(o, "state_bytes", json_object_new_int64(in->state_bytes));
		json_object_object_add(o, "clones", json_object_new_int(users));
		json_object_object_add(o, "memory_used_kib",
		                       json_object_new_int64((int64_t)in->mem_used_kib));
		json_object_object_add(o, "last_used", json_object_new_int64(in->last_used));
		json_object_array_add(l->arr, o);
		return;
	}
	if (problem) {
		printf("%s  BROKEN: %s\n", t->key, problem);
		return;
	}
	printf("%s  %4u MiB %2u vCPU %-3s  state %6lld B  memory file holds %5.1f MiB  clones %-3d"
	       "  built %s, used %llds ago\n",
	       t->key, in->memory_mib, in->vcpus, in->accel, in->state_bytes,
	       in->mem_used_kib / 1024.0, users, in->created,
	       (long long)time(NULL) - in->last_used);
}

static int list(int argc, char **argv)
{
	struct list_ctx l = { .json = argc == 2 && !strcmp(argv[1], "--json") };

	if (argc > 2 || (argc == 2 && !l.json))
		return usage();
	if (l.json)
		l.arr = json_object_new_array();
	if (tpl_list(ctl_templates(), list_one, &l) < 0) {
		kerr_t err;

		kerr_sys(&err, "%s", ctl_templates()->dir);
		return ctl_fail(&err);
	}
	if (l.json) {
		printf("%s\n", json_object_to_json_string_ext(l.arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(l.arr);
	} else if (!l.n) {
		printf("no templates in %s\n", ctl_templates()->dir);
	}
	return 0;
}

static int remove_one(const struct template *t, int force, kerr_t *err)
{
	pid_t pids[MAX_USERS];
	char who[256] = "";
	int users, lock = tpl_lock(t, 1, mono_ns() + 30000000000LL, err);

	if (lock < 0)
		return -1;
	/* Under the exclusive lock no clone is between its check and its VMM's start. */
	users = tpl_users(t, pids, MAX_USERS);
	for (int i = 0; i < users && i < MAX_USERS && strlen(who) < sizeof(who) - 16; i++)
		snprintf(who + strlen(who), sizeof(who) - strlen(who), "%s%d", i ? " " : "",
		         pids[i]);
	if (users && !force) {
		close(lock);
		return kerr_set(err, EBUSY,
		                "template %s is in use by %d clone%s (VMM pid %s); stop them "
		                "or use --force (they keep their memory)",
		                t->key, users, users == 1 ? "" : "s", who);
	}
	if (tpl_remove_files(t, err) < 0) {
		close(lock);
		return -1;
	}
	close(lock);
	printf("removed template %s%s%s\n", t->key, users ? "; still mapped by VMM pid " : "", who);
	return 0;
}

struct rm_all {
	int force, failed;
};

static void rm_each(const struct template *t, const struct tpl_info *in, const char *problem,
                    void *arg)
{
	struct rm_all *r = arg;
	kerr_t err;

	if (remove_one(t, r->force, &err) < 0) {
		ctl_fail(&err);
		r->failed = 1;
	}
}

static int rm(int argc, char **argv)
{
	struct rm_all r = { 0 };
	int i = 1, all = 0;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--force"))
			r.force = 1;
		else if (!strcmp(argv[i], "--all"))
			all = 1;
		else
			return usage();
	}
	if (all == (i < argc))
		return usage();
	if (all) {
		tpl_list(ctl_templates(), rm_each, &r);
		return r.failed;
	}
	for (; i < argc; i++) {
		struct template t;
		struct tpl_info in;
		kerr_t err;

		if (strlen(argv[i]) != TPL_KEY_LEN ||
		    strspn(argv[i], "0123456789abcdef") != TPL_KEY_LEN) {
			fprintf(stderr, "kuasar-ctl: error: `%s` is not a template key\n", argv[i]);
			r.failed = 1;
			continue;
		}
		if (tpl_paths(ctl_templates(), argv[i], &t, &err) < 0 ||
		    (tpl_verify(&t, &in, &err) < 0 && err.errnum == ENOENT &&
		     access(t.dir, F_OK) < 0)) {
			ctl_fail(&err);
			r.failed = 1;
			continue;
		}
		if (remove_one(&t, r.force, &err) < 0) {
			ctl_fail(&err);
			r.failed = 1;
		}
	}
	return r.failed;
}

struct prune {
	long long older;
	int failed;
};

static void prune_one(const struct template *t, const struct tpl_info *in, const char *problem,
                      void *arg)
{
	struct prune *p = arg;
	pid_t pids[1];
	kerr_t err;

	if (tpl_users(t, pids, 1) || (!problem && (long long)time(NULL) - in->last_used < p->older))
		return;
	if (remove_one(t, 0, &err) < 0) {
		ctl_fail(&err);
		p->failed = 1;
	}
}

static int prune(int argc, char **argv)
{
	struct prune p = { .older = 86400 };
	unsigned secs;

	if (argc == 3 && !strcmp(argv[1], "--unused-for") &&
	    ctl_parse_uint(argv[2], 0, 100U * 365 * 86400, &secs) == 0)
		p.older = secs;
	else if (argc != 1)
		return usage();
	tpl_list(ctl_templates(), prune_one, &p);
	return p.failed;
}

int ctl_template(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "build"))
		return build(argc - 1, argv + 1);
	if (!strcmp(argv[1], "list"))
		return list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm"))
		return rm(argc - 1, argv + 1);
	if (!strcmp(argv[1], "prune"))
		return prune(argc - 1, argv + 1);
	return usage();
}
