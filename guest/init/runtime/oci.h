/* The part of an OCI runtime-spec 1.x config.json that kuasar-init acts on, parsed into
 * bounded tables. Strings live in the spec's own pool: nothing is allocated, and a spec
 * that does not fit is refused with the field that overflowed. */
#ifndef KUASAR_OCI_H
#define KUASAR_OCI_H

#include <stddef.h>
#include <stdint.h>

#define OCI_MAX_BYTES (1u << 20) /* config.json size limit */
#define OCI_MAX_ARGS 128
#define OCI_MAX_ENV 256
#define OCI_MAX_GIDS 32
#define OCI_MAX_RLIMITS 16
#define OCI_MAX_MOUNTS 128 /* GUEST_MAX_MOUNTS on the host (proxy/bundle.h) */
#define OCI_MAX_PATHS 64
#define OCI_MAX_SYSCTL 32
#define OCI_MAX_RULES 256
#define OCI_MAX_RULE_NAMES 512
#define OCI_MAX_ARCHES 4
#define OCI_POOL 65536

struct oci_mount {
	const char *dest, *type, *source;
	unsigned long flags;       /* MS_* from the options */
	unsigned long propagation; /* MS_PRIVATE, MS_SLAVE... (0: none) */
	const char *data;          /* the options that are not flags, comma separated */
	int bind;                  /* bind or rbind */
	unsigned rattr_set;        /* MOUNT_ATTR_* for the whole tree (rro, rnosuid...) */
	unsigned rattr_clr;        /* and those cleared on it (rrw, rsuid...) */
};

struct oci_rlimit {
	int resource;
	uint64_t soft, hard;
};

struct oci_arg_cmp {
	unsigned index;
	uint64_t value, value_two;
	int op; /* SCMP_CMP_* order: NE, LT, LE, EQ, GE, GT, MASKED_EQ = 1..7 */
};

struct oci_syscall_rule {
	unsigned first_name, n_names; /* into seccomp.names */
	uint32_t action;              /* SECCOMP_RET_* with errno in the low bits */
	unsigned n_args;
	struct oci_arg_cmp args[6];
};

struct oci_seccomp {
	int present;
	uint32_t default_action;
	unsigned n_arches;
	uint32_t arches[OCI_MAX_ARCHES]; /* AUDIT_ARCH_* */
	unsigned n_rules, n_names;
	struct oci_syscall_rule rules[OCI_MAX_RULES];
	const char *names[OCI_MAX_RULE_NAMES];
};

struct oci_process {
	const char *args[OCI_MAX_ARGS + 1];
	const char *env[OCI_MAX_ENV + 1];
	unsigned n_args, n_env;
	const char *cwd;
	uint32_t uid, gid;
	uint32_t gids[OCI_MAX_GIDS];
	unsigned n_gids;
	int terminal;
	struct oci_rlimit rlimits[OCI_MAX_RLIMITS];
	unsigned n_rlimits;
	/* bounding, effective, permitted, inheritable, ambient; has_caps 0: keep root's set */
	uint64_t caps[5];
	int has_caps;
	int no_new_privs;
	int has_oom_score_adj;
	int oom_score_adj;
};

enum oci_cap_set { CAP_BOUNDING, CAP_EFFECTIVE, CAP_PERMITTED, CAP_INHERITABLE, CAP_AMBIENT };

struct oci_resources {
	int64_t memory_limit; /* bytes, -1: none */
	uint64_t cpu_shares, cpu_period;
	int64_t cpu_quota;  /* -1: none */
	int64_t pids_limit; /* -1: none */
};

struct oci_spec {
	const char *root;
	int root_readonly;
	const char *hostname;
	struct oci_process process;
	struct oci_mount mounts[OCI_MAX_MOUNTS];
	unsigned n_mounts;
	int namespaces; /* CLONE_NEW* flags requested (network is always the VM's) */
	int pod_pid;    /* joins the pod's pid namespace (podns.h) instead */
	int pod_shm;    /* binds the pod's /dev/shm (podns.h) */
	const char *masked[OCI_MAX_PATHS], *readonly[OCI_MAX_PATHS];
	unsigned n_masked, n_readonly;
	const char *sysctl_keys[OCI_MAX_SYSCTL], *sysctl_values[OCI_MAX_SYSCTL];
	unsigned n_sysctl;
	struct oci_resources resources;
	struct oci_seccomp seccomp;
	char pool[OCI_POOL];
	size_t pool_used;
};

/* Parses config.json text. Returns 0, or -1 with a message naming the bad field. */
int oci_parse(struct oci_spec *spec, const char *text, size_t len, char *err, size_t errlen);
/* Parses a bare "process" object (Exec's spec) into p, strings in spec's pool. */
int oci_parse_process(struct oci_spec *spec, const char *text, size_t len, char *err,
                      size_t errlen);
/* Parses LinuxResources JSON (Update's resources). */
int oci_parse_resources(struct oci_resources *r, const char *text, size_t len, char *err,
                        size_t errlen);
int oci_cap_number(const char *name);

#endif
