#include "vm/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <stdlib.h>

#include "base/json.h"
#include "base/syscalls.h"
#include "base/util.h"

#define PROBE_TIMEOUT_MS 1500
#define PROBE_PORT 0x3f0
#define PROBE_VALUE 0x4b

enum probe_exit {
	PROBE_OK = 0,
	PROBE_NO_DEVICE = 10,
	PROBE_API,
	PROBE_VM,
	PROBE_VCPU,
	PROBE_RUN,
	PROBE_WRONG_EXIT,
};

static const char *const probe_reasons[] = {
	[PROBE_NO_DEVICE] = "cannot open /dev/kvm",
	[PROBE_API] = "unexpected KVM API version",
	[PROBE_VM] = "KVM_CREATE_VM or guest memory setup failed",
	[PROBE_VCPU] = "vCPU setup failed",
	[PROBE_RUN] = "KVM_RUN failed",
	[PROBE_WRONG_EXIT] = "the probe guest did not reach its I/O instruction",
};

int accel_parse(const char *s, enum accel *out)
{
	if (!strcmp(s, "auto"))
		*out = ACCEL_AUTO;
	else if (!strcmp(s, "kvm"))
		*out = ACCEL_KVM;
	else if (!strcmp(s, "tcg"))
		*out = ACCEL_TCG;
	else
		return -1;
	return 0;
}

const char *accel_name(enum accel a)
{
	return a == ACCEL_KVM ? "kvm" : a == ACCEL_TCG ? "tcg" : "auto";
}

static int probe_vcpu(int kvm, int vm, void *mem)
{
	/* Real mode at 0x1000: mov $0x4b,%al; mov $0x3f0,%dx; out %al,(%dx); hlt */
	static const unsigned char code[] = { 0xb0, PROBE_VALUE, 0xba, 0xf0, 0x03, 0xee, 0xf4 };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 0x2 };
	struct kvm_run *run;
	int vcpu, size;

	memcpy(mem, code, sizeof(code));
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return PROBE_VCPU;
	size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = size > 0 ? mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)
	               : MAP_FAILED;
	if (run == MAP_FAILED || ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return PROBE_VCPU;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return PROBE_VCPU;
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return PROBE_RUN;
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != PROBE_PORT ||
	    *((unsigned char *)run + run->io.data_offset) != PROBE_VALUE)
		return PROBE_WRONG_EXIT;
	return PROBE_OK;
}

/* Runs in the child: exits with a probe_exit code. */
static int probe_child(void)
{
	struct kvm_userspace_memory_region region = { .slot = 0,
		                                      .guest_phys_addr = 0x1000,
		                                      .memory_size = 0x1000 };
	void *mem;
	int kvm, vm;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return PROBE_NO_DEVICE;
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return PROBE_API;
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (vm < 0 || mem == MAP_FAILED)
		return PROBE_VM;
	region.userspace_addr = (unsigned long)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return PROBE_VM;
	return probe_vcpu(kvm, vm, mem);
}

static int wait_probe(pid_t pid, int *status)
{
	int pidfd = sys_pidfd_open(pid);
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int ready = pidfd >= 0 && poll(&p, 1, PROBE_TIMEOUT_MS) == 1;

	if (pidfd >= 0)
		close(pidfd);
	if (!ready)
		kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return ready ? 0 : -1;
}

int kvm_probe(char *why, size_t n)
{
	int status = 0, code;
	pid_t pid;

	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		snprintf(why, n, "/dev/kvm is not usable: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, n, "fork for the KVM probe: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		_exit(probe_child());
	if (wait_probe(pid, &status) < 0) {
		snprintf(why, n, "the KVM probe guest hung for %d ms (nested or broken KVM)",
		         PROBE_TIMEOUT_MS);
		return -1;
	}
	code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (code == PROBE_OK) {
		snprintf(why, n, "the KVM probe ran guest code");
		return 0;
	}
	snprintf(why, n, "KVM probe failed: %s",
	         code >= PROBE_NO_DEVICE && code <= PROBE_WRONG_EXIT ? probe_reasons[code]
	                                                             : "the probe crashed");
	return -1;
}

enum accel accel_resolve(enum accel want, char *why, size_t n)
{
	if (want == ACCEL_KVM) {
		snprintf(why, n, "requested");
		return ACCEL_KVM;
	}
	if (want == ACCEL_TCG) {
		snprintf(why, n, "requested");
		return ACCEL_TCG;
	}
	return kvm_probe(why, n) == 0 ? ACCEL_KVM : ACCEL_TCG;
}

/* ---- the verdict of auto, remembered per host boot (in the run directory) ---- */

static void boot_id(char *buf, size_t n)
{
	char *s = NULL;

	if (read_file("/proc/sys/kernel/random/boot_id", &s, NULL, 64, NULL) == 0) {
		s[strcspn(s, "\n")] = '\0';
		snprintf(buf, n, "%s", s);
		free(s);
	} else {
		snprintf(buf, n, "unknown");
	}
}

static void accel_cache_path(const char *run_dir, char *buf, size_t n)
{
	snprintf(buf, n, "%s/accel.json", run_dir);
}

/* The KVM verdict is remembered per host boot (the cache lives in the run dir). */
int accel_cache_get(const char *run_dir, enum accel *a, char *why, size_t n)
{
	char path[512], bid[64], *s = NULL;
	json_object *o;
	int rc = -1;

	accel_cache_path(run_dir, path, sizeof(path));
	if (read_file(path, &s, NULL, 4096, NULL) < 0)
		return -1;
	boot_id(bid, sizeof(bid));
	o = json_tokener_parse(s);
	free(s);
	/* Our own file, but read as untrusted: any field may be missing or of another type. */
	if (o && !strcmp(jget_str(o, "boot_id", ""), bid) &&
	    accel_parse(jget_str(o, "accel", ""), a) == 0 && *a != ACCEL_AUTO) {
		snprintf(why, n, "%s (remembered for this host boot)", jget_str(o, "why", "?"));
		rc = 0;
	}
	json_object_put(o);
	return rc;
}

void accel_cache_put(const char *run_dir, enum accel a, const char *why)
{
	char path[512], bid[64];
	json_object *o = json_object_new_object();
	const char *s;

	boot_id(bid, sizeof(bid));
	json_object_object_add(o, "boot_id", json_object_new_string(bid));
	json_object_object_add(o, "accel", json_object_new_string(accel_name(a)));
	json_object_object_add(o, "why", json_object_new_string(why));
	s = json_object_to_json_string(o);
	accel_cache_path(run_dir, path, sizeof(path));
	write_file_atomic(path, s, strlen(s), NULL);
	json_object_put(o);
}

int accel_known(enum accel want, const char *run_dir, enum accel *out)
{
	char why[256];

	if (want != ACCEL_AUTO) {
		*out = want;
		return 0;
	}
	if (accel_cache_get(run_dir, out, why, sizeof(why)) == 0)
		return 0;
	if (kvm_probe(why, sizeof(why)) < 0) {
		accel_cache_put(run_dir, ACCEL_TCG, why);
		*out = ACCEL_TCG;
		return 0;
	}
	return -1;
}
