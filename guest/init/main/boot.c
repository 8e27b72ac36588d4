#include "main/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "core/fmt.h"
#include "core/klog.h"
#include "core/netlink.h"
#include "core/sys.h"
#include "services/net.h"

struct mnt {
	const char *src, *dst, *type;
	unsigned long flags;
	const char *data;
};

/* Order matters: /dev before /dev/pts and /dev/shm, /sys before its cgroup2 mount. */
static const struct mnt basics[] = {
	{ "devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755" },
	{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620,gid=5" },
	{ "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
	{ "cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
};

static int mount_basics(void)
{
	for (size_t i = 0; i < sizeof(basics) / sizeof(basics[0]); i++) {
		const struct mnt *m = &basics[i];

		mkdir(m->dst, 0755);
		if (mount(m->src, m->dst, m->type, m->flags, m->data) < 0 && errno != EBUSY) {
			err("mount %s on %s: errno %d", m->type, m->dst, errno);
			return -1;
		}
	}
	return 0;
}

/* stdin/stdout/stderr on /dev/console: the kernel may have given us none. */
static void open_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
	klog_set_fd(2);
}

/* kuasar.log=LEVEL sets the console log level; unknown kuasar.* words are reported. */
static void parse_cmdline(void)
{
	char buf[2048], *next;

	if (boot_read_file("/proc/cmdline", buf, sizeof(buf)) < 0)
		return;
	for (char *w = buf; *w; w = next) {
		/* Words split at spaces and newlines, in place. */
		for (next = w; *next && *next != ' ' && *next != '\n'; next++)
			;
		if (*next)
			*next++ = '\0';
		if (strncmp(w, "kuasar.", 7))
			continue;
		if (!strncmp(w, "kuasar.log=", 11)) {
			int l = klog_parse_level(w + 11);

			if (l >= 0)
				klog_level = l;
			else
				warn("kuasar.log: unknown level '%s'", w + 11);
		} else {
			warn("unknown kernel parameter '%s'", w);
		}
	}
}

#define RAMFS_MAGIC_ 0x858458f6
#define TMPFS_MAGIC_ 0x01021994
#define ROOT_ENV "KUASAR_ROOT=tmpfs"
#define INIT_NS_ENV "KUASAR_INIT_NS="

static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[16384];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			goto out;
	rc = out >= 0 && n == 0 ? 0 : -1;
out:
	close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* pivot_root(2) refuses to move away from the initramfs (rootfs is not a mount we can
 * detach), and containers need it. So an init started from the initramfs moves onto a
 * tmpfs mounted over / and executes itself again there; the copy finds ROOT_ENV set. */
void boot_leave_initramfs(char **argv, char **envp)
{
	static const char *const dirs[] = { "dev", "proc", "sys", "run", "tmp" };
	char *env[64], t0[48];
	struct statfs st;
	size_t n = 0;

	if (sys_statfs("/", &st) < 0 || (st.f_type != RAMFS_MAGIC_ && st.f_type != TMPFS_MAGIC_))
		return; /* a real root filesystem (disk image): nothing to do */
	for (; n < 61 && envp[n]; n++) {
		if (!strcmp(envp[n], ROOT_ENV)) {
			boot.moved_root = 1;
			return; /* we are the copy */
		}
		/* The copy keeps the original's start time: kernel start to the first exec. */
		if (!strncmp(envp[n], INIT_NS_ENV, sizeof(INIT_NS_ENV) - 1))
			boot.init_ns = parse_u64(envp[n] + sizeof(INIT_NS_ENV) - 1, NULL);
	}
	if (mkdir("/.root", 0755) < 0 && errno != EEXIST)
		boot_fatal("create /.root", errno);
	if (mount("tmpfs", "/.root", "tmpfs", 0, "mode=0755") < 0)
		boot_fatal("mount a tmpfs root", errno);
	if (copy_file("/init", "/.root/init", 0755) < 0)
		boot_fatal("copy /init to the tmpfs root", errno);
	if (chdir("/.root") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		boot_fatal("move onto the tmpfs root", errno);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		mkdir(dirs[i], 0755);
	chmod("/tmp", 01777);
	memcpy(env, envp, n * sizeof(*env));
	kfmt(t0, sizeof(t0), "%s%llu", INIT_NS_ENV, (unsigned long long)boot.init_ns);
	env[n++] = ROOT_ENV;
	env[n++] = t0;
	env[n] = NULL;
	execve("/init", argv, env);
	boot_fatal("execute /init on the tmpfs root", errno);
}

void boot_early(void)
{
	/* Before /dev is mounted the kernel's console (if any) is on fds 0-2 already. */
	if (mount_basics() < 0)
		boot_fatal("mount the basic filesystems", errno);
	open_console();
	parse_cmdline();
	if (nl_link_up("lo") < 0)
		warn("bring up lo: errno %d", errno);
	net_boot();
	if (sethostname("kuasar", 6) < 0)
		warn("sethostname: errno %d", errno);
	/* Ctrl-Alt-Del becomes SIGINT to us, handled as a clean shutdown. */
	reboot(RB_DISABLE_CAD);
}

__attribute__((noreturn)) void boot_poweroff(void)
{
	struct stat st;

	info("powering off");
	sync();
	/* Without ACPI (QEMU microvm here) the kernel cannot power off; a reset, which the
	 * VMM is started to treat as exit (-no-reboot, reboot=t), ends the VM instead. */
	if (sys_stat("/sys/firmware/acpi", &st) == 0)
		reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

__attribute__((noreturn)) void boot_fatal(const char *what, int errnum)
{
	err("fatal: unable to %s: errno %d", what, errnum);
	boot_poweroff();
}
