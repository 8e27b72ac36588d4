/* config.json parsing into the init's bounded tables: a realistic spec, and the errors a
 * bad one gets (naming the field). */
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "runtime/oci.h"
#include "runtime/podns.h"
#include "tap.h"

static const char spec_json[] =
    "{\"ociVersion\":\"1.1.0\",\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
    "\"hostname\":\"box\","
    "\"process\":{\"terminal\":false,\"user\":{\"uid\":1000,\"gid\":1000,"
    "\"additionalGids\":[10,20]},\"args\":[\"sh\",\"-c\",\"echo \\\"hi\\\"\"],"
    "\"env\":[\"PATH=/bin\",\"TERM=xterm\"],\"cwd\":\"/tmp\","
    "\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\",\"CAP_NOT_A_THING\"],"
    "\"effective\":[\"CAP_KILL\"]},"
    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":512}],"
    "\"noNewPrivileges\":true,\"oomScoreAdj\":-500},"
    "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
    "\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]},"
    "{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/srv\","
    "\"options\":[\"rbind\",\"ro\",\"rprivate\"]},"
    "{\"destination\":\"/dev/shm\",\"type\":\"bind\",\"source\":\"/run/kuasar/pod/shm\","
    "\"options\":[\"rbind\",\"rro\",\"rnosuid\",\"rdev\",\"rsuid\"]}],"
    "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"},{\"type\":\"network\"},"
    "{\"type\":\"uts\"}],\"maskedPaths\":[\"/proc/kcore\"],\"readonlyPaths\":[\"/proc/sys\"],"
    "\"sysctl\":{\"kernel.msgmax\":\"8192\"},"
    "\"resources\":{\"memory\":{\"limit\":67108864},\"cpu\":{\"shares\":512,"
    "\"quota\":50000,\"period\":100000},\"pids\":{\"limit\":32}},"
    "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
    "\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\","
    "\"errnoRet\":1},{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\","
    "\"args\":[{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]}]}}}";

static struct oci_spec spec;

static void test_full(void)
{
	char err[256] = "";
	struct oci_process *p = &spec.process;

	ok(oci_parse(&spec, spec_json, sizeof(spec_json) - 1, err, sizeof(err)) == 0,
	   "parses a full spec (%s)", err);
	is_str(spec.root, "rootfs", "root.path");
	ok(spec.root_readonly, "root.readonly");
	is_str(spec.hostname, "box", "hostname");
	ok(p->n_args == 3 && !strcmp(p->args[2], "echo \"hi\"") && !p->args[3], "args, unescaped");
	ok(p->n_env == 2 && !strcmp(p->env[1], "TERM=xterm"), "env");
	is_str(p->cwd, "/tmp", "cwd");
	ok(p->uid == 1000 && p->gid == 1000 && p->n_gids == 2 && p->gids[1] == 20, "user");
	ok(p->has_caps && p->caps[CAP_BOUNDING] == ((1ull << 0) | (1ull << 5)) &&
	       p->caps[CAP_EFFECTIVE] == 1ull << 5 && p->caps[CAP_AMBIENT] == 0,
	   "capabilities, unknown names skipped");
	ok(p->n_rlimits == 1 && p->rlimits[0].resource == RLIMIT_NOFILE &&
	       p->rlimits[0].soft == 512 && p->rlimits[0].hard == 1024,
	   "rlimits");
	ok(p->no_new_privs && p->has_oom_score_adj && p->oom_score_adj == -500,
	   "noNewPrivileges and oomScoreAdj");
	is_int(spec.n_mounts, 4, "mounts");
	ok(spec.mounts[1].flags == (MS_NOSUID | MS_STRICTATIME) &&
	       !strcmp(spec.mounts[1].data, "mode=755,size=65536k"),
	   "mount flags and data split");
	ok(spec.mounts[2].bind && spec.mounts[2].flags == (MS_BIND | MS_REC | MS_RDONLY) &&
	       spec.mounts[2].propagation == (MS_PRIVATE | MS_REC),
	   "rbind, ro and propagation");
	ok(spec.mounts[3].rattr_set == MOUNT_ATTR_RDONLY &&
	       spec.mounts[3].rattr_clr == (MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID) &&
	       !(spec.mounts[3].flags & MS_RDONLY) && !spec.mounts[2].rattr_set,
	   "recursive attributes (rro...), the last word on each winning");
	ok(spec.pod_shm, "a bind of the pod's shm is seen");
	is_int(spec.namespaces, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS,
	       "namespaces (network stays the VM's)");
	ok(spec.n_masked == 1 && spec.n_readonly == 1, "masked and readonly paths");
	ok(spec.n_sysctl == 1 && !strcmp(spec.sysctl_values[0], "8192"), "sysctl");
	ok(spec.resources.memory_limit == 67108864 && spec.resources.cpu_shares == 512 &&
	       spec.resources.cpu_quota == 50000 && spec.resources.cpu_period == 100000 &&
	       spec.resources.pids_limit == 32,
	   "resources");
	ok(spec.seccomp.present && spec.seccomp.default_action == SECCOMP_RET_ALLOW &&
	       spec.seccomp.n_rules == 2 && spec.seccomp.rules[0].n_names == 2 &&
	       spec.seccomp.rules[0].action == (SECCOMP_RET_ERRNO | 1) &&
	       !strcmp(spec.seccomp.names[2], "personality") && spec.seccomp.rules[1].n_args == 1 &&
	       spec.seccomp.rules[1].args[0].op == 4,
	   "seccomp rules");
}

static void refuses(const char *doc, const char *want, const char *name)
{
	char err[256] = "";

	ok(oci_parse(&spec, doc, strlen(doc), err, sizeof(err)) < 0 && strstr(err, want), "%s: %s",
	   name, err);
}

static void test_errors(void)
{
	char *big;

	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[]}}", "process.args",
	        "no program");
	refuses("{\"root\":{\"path\":\"r\"}}", "process", "no process");
	refuses("{\"process\":{\"args\":[\"sh\"]}}", "root.path", "no root");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"cwd\":\"rel\"}}",
	        "process.cwd", "relative cwd");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"linux\":"
	        "{\"namespaces\":[{\"type\":\"bogus\"}]}}",
	        "linux.namespaces", "unknown namespace");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"linux\":"
	        "{\"namespaces\":[{\"type\":\"mount\",\"path\":\"/proc/1/ns/mnt\"}]}}",
	        "linux.namespaces.path", "joining the init's mount namespace");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"linux\":"
	        "{\"namespaces\":[{\"type\":\"pid\",\"path\":\"/proc/1/ns/pid\"}]}}",
	        "linux.namespaces.path", "a pid namespace other than the pod's");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"rlimits\":"
	        "[{\"type\":\"RLIMIT_BOGUS\",\"soft\":1,\"hard\":1}]}}",
	        "rlimits", "unknown rlimit");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"mounts\":"
	        "[{\"destination\":\"rel\"}]}",
	        "mounts.destination", "relative mount destination");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"linux\":{\"seccomp\":"
	        "{\"defaultAction\":\"SCMP_ACT_NOPE\"}}}",
	        "seccomp", "unknown seccomp action");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"linux\":{\"sysctl\":"
	        "{\"../../x\":\"1\"}}}",
	        "linux.sysctl", "sysctl key escaping /proc/sys");
	refuses("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]}", "malformed JSON",
	        "truncated document");
	refuses("[1,2]", "document", "not an object");
	big = malloc(OCI_MAX_BYTES + 2);
	memset(big, ' ', OCI_MAX_BYTES + 1);
	big[0] = '{';
	big[OCI_MAX_BYTES] = '}';
	big[OCI_MAX_BYTES + 1] = '\0';
	refuses(big, "larger than 1 MiB", "oversized document");
	free(big);
}

static void test_parts(void)
{
	char err[256] = "";
	struct oci_resources r;
	static const char res[] = "{\"memory\":{\"limit\":1048576},\"pids\":{\"limit\":5}}";
	static const char proc[] = "{\"args\":[\"ls\",\"-l\"],\"env\":[\"A=1\"],\"terminal\":true}";

	ok(oci_parse_process(&spec, proc, sizeof(proc) - 1, err, sizeof(err)) == 0 &&
	       spec.process.n_args == 2 && spec.process.terminal,
	   "an exec process object (%s)", err);
	ok(oci_parse_resources(&r, res, sizeof(res) - 1, err, sizeof(err)) == 0 &&
	       r.memory_limit == 1048576 && r.pids_limit == 5 && r.cpu_quota == -1,
	   "LinuxResources for Update (%s)", err);
	is_int(oci_cap_number("CAP_SYS_ADMIN"), 21, "capability numbers");
	is_int(oci_cap_number("SYS_ADMIN"), -1, "capability names need the CAP_ prefix");
}

static void test_pod_pid(void)
{
	static const char doc[] =
	    "{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},"
	    "\"linux\":{\"namespaces\":[{\"type\":\"pid\",\"path\":\"" PODNS_PID_PATH
	    "\"},{\"type\":\"mount\"}]}}";
	char err[256] = "";

	ok(oci_parse(&spec, doc, sizeof(doc) - 1, err, sizeof(err)) == 0 && spec.pod_pid &&
	       spec.namespaces == CLONE_NEWNS,
	   "the pod's pid namespace is joined, not made (%s)", err);
}

/* A spec of n tmpfs mounts: the limit is the host's GUEST_MAX_MOUNTS. */
static int parse_mounts_n(unsigned n, char *err, size_t errn)
{
	static char doc[16384];
	size_t len = (size_t)snprintf(doc, sizeof(doc),
	                              "{\"ociVersion\":\"1.1.0\",\"root\":{\"path\":\"r\"},"
	                              "\"process\":{\"args\":[\"sh\"]},\"mounts\":[");

	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(doc + len, sizeof(doc) - len,
		                        "%s{\"destination\":\"/m%u\",\"type\":\"tmpfs\"}",
		                        i ? "," : "", i);
	len += (size_t)snprintf(doc + len, sizeof(doc) - len, "]}");
	return oci_parse(&spec, doc, len, err, errn);
}

static void test_mount_count(void)
{
	char err[256] = "";

	ok(parse_mounts_n(OCI_MAX_MOUNTS, err, sizeof(err)) == 0 && spec.n_mounts == 128,
	   "128 mounts parse (%s)", err);
	ok(parse_mounts_n(OCI_MAX_MOUNTS + 1, err, sizeof(err)) < 0 && strstr(err, "too many"),
	   "129 are refused: %s", err);
}

int main(void)
{
	test_full();
	test_errors();
	test_parts();
	test_pod_pid();
	test_mount_count();
	return done_testing();
}
