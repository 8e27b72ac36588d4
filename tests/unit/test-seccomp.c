/* The seccomp compiler's filters, installed for real in forked children on the host (same
 * architecture and syscall numbers): rule actions, errno values, and every argument
 * comparison on 64-bit values. */
#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/oci.h"
#include "runtime/seccomp.h"
#include "tap.h"

static struct oci_spec spec;

/* Compiles a profile around `rules` (a JSON array) and returns the filter. */
static int compile(const char *rules, const char *def, struct sock_fprog *out)
{
	char doc[4096], err[256] = "";

	snprintf(doc, sizeof(doc),
	         "{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"x\"]},\"linux\":{\"seccomp\":"
	         "{\"defaultAction\":\"%s\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
	         "\"syscalls\":%s}}}",
	         def, rules);
	if (oci_parse(&spec, doc, strlen(doc), err, sizeof(err)) < 0 ||
	    seccomp_compile(&spec.seccomp, out, err, sizeof(err)) < 0) {
		printf("# %s\n", err);
		return -1;
	}
	return 0;
}

/* Runs umask(arg) under the filter in a child; returns the errno it got, 0 if allowed. */
static int try_umask(const struct sock_fprog *f, unsigned long arg)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, f) < 0)
			_exit(200);
		/* exit_group itself, not _exit(): a sanitizer build's _exit runs the leak
		 * checker, whose own system calls the filter may deny. */
		syscall(SYS_exit_group, syscall(SYS_umask, arg) == -1 ? errno : 0);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static void cond(const char *op, const char *value, unsigned long yes, unsigned long no)
{
	char rules[512];
	struct sock_fprog f;

	snprintf(rules, sizeof(rules),
	         "[{\"names\":[\"umask\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1,"
	         "\"args\":[{\"index\":0,\"value\":%s,\"valueTwo\":%s,\"op\":\"%s\"}]}]",
	         value, !strcmp(op, "SCMP_CMP_MASKED_EQ") ? "4" : "0", op);
	if (compile(rules, "SCMP_ACT_ALLOW", &f) < 0) {
		ok(0, "%s compiles", op);
		return;
	}
	ok(try_umask(&f, yes) == EPERM && try_umask(&f, no) == 0,
	   "%s %s: %#lx denied, %#lx allowed", op, value, yes, no);
	free(f.filter);
}

int main(void)
{
	struct sock_fprog f;

	ok(seccomp_syscall_nr("read") == 0 && seccomp_syscall_nr("umask") == SYS_umask &&
	       seccomp_syscall_nr("no_such_call") == -1,
	   "names resolve from the generated table");
	/* The packed table (6 bits a symbol): digits, underscores, the last number, and names
	 * that are a prefix of another or longer than one. */
	ok(seccomp_syscall_nr("pread64") == SYS_pread64 &&
	       seccomp_syscall_nr("epoll_pwait2") == SYS_epoll_pwait2 &&
	       seccomp_syscall_nr("set_mempolicy_home_node") == SYS_set_mempolicy_home_node &&
	       seccomp_syscall_nr("clone3") == SYS_clone3 &&
	       seccomp_syscall_nr("clone") == SYS_clone && seccomp_syscall_nr("clon") == -1 &&
	       seccomp_syscall_nr("clone33") == -1 && seccomp_syscall_nr("") == -1 &&
	       seccomp_syscall_nr("READ") == -1,
	   "packed names: digits, underscores, the last one, prefixes, empty and upper case");
	ok(compile("[{\"names\":[\"umask\",\"not_a_syscall\"],\"action\":\"SCMP_ACT_ERRNO\","
	           "\"errnoRet\":13}]",
	           "SCMP_ACT_ALLOW", &f) == 0,
	   "a deny rule compiles (unknown names skipped)");
	is_int(try_umask(&f, 022), EACCES, "the rule's errnoRet comes back");
	free(f.filter);
	ok(compile("[{\"names\":[\"umask\",\"exit\",\"exit_group\",\"prctl\",\"seccomp\"],"
	           "\"action\":\"SCMP_ACT_ALLOW\"}]",
	           "SCMP_ACT_ERRNO", &f) == 0,
	   "an allow list compiles");
	is_int(try_umask(&f, 022), 0, "an allowed call passes the default-deny filter");
	free(f.filter);
	ok(compile("[]", "SCMP_ACT_KILL_PROCESS", &f) == 0, "kill by default");
	is_int(try_umask(&f, 022), 100 + SIGSYS, "the default action kills with SIGSYS");
	free(f.filter);
	cond("SCMP_CMP_EQ", "511", 0777, 0700);
	cond("SCMP_CMP_NE", "511", 0700, 0777);
	cond("SCMP_CMP_GT", "448", 0777, 0700);
	cond("SCMP_CMP_GE", "448", 0700, 0677);
	cond("SCMP_CMP_LT", "2", 1, 2);
	cond("SCMP_CMP_LE", "2", 2, 3);
	cond("SCMP_CMP_MASKED_EQ", "6", 4, 2);
	cond("SCMP_CMP_GT", "4294967295", 0x100000000UL, 0xffffffffUL);
	cond("SCMP_CMP_LT", "4294967296", 0xffffffffUL, 0x100000000UL);
	cond("SCMP_CMP_EQ", "4294967301", 0x100000005UL, 5);
	return done_testing();
}
