#include "services/disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fmt.h"

const char *disk_overlay(const char *dev, const char *dir, const char *lower, const char *root)
{
	const char *what = NULL;
	char opts[96];
	int e;

	/* Relative paths keep the overlay's options short. */
	if (chdir(dir) < 0)
		return "enter the disk's directory";
	mkdir("lower", 0755);
	mkdir("rw", 0755);
	kfmt(opts, sizeof(opts), "lowerdir=%s,upperdir=rw/upper,workdir=rw/work", lower);
	/* nodev on every layer and on the overlay itself (a lower's nodev does not carry
	 * through it): an image's device nodes, or ones a container with CAP_MKNOD makes in
	 * the upper, open nothing, as on the 9p share. */
	if (mount(dev, "lower", "erofs", MS_RDONLY | MS_NODEV, NULL) < 0)
		what = "mount the disk (erofs)";
	else if (mount("tmpfs", "rw", "tmpfs", MS_NODEV, "mode=0755") < 0 ||
	         mkdir("rw/upper", 0755) < 0 || mkdir("rw/work", 0755) < 0)
		what = "make the writable layer";
	else if (mount("overlay", root, "overlay", MS_NODEV, opts) < 0)
		what = "mount the root overlay";
	e = errno;
	if (chdir("/") < 0 && !what)
		return "leave the disk's directory";
	errno = e;
	return what;
}

void disk_overlay_undo(const char *dir, const char *root)
{
	static const char *const order[] = { "rw", "lower" };

	if (chdir(dir) < 0)
		return;
	umount2(root, MNT_DETACH);
	rmdir(root);
	for (int i = 0; i < 2; i++) {
		umount2(order[i], MNT_DETACH);
		rmdir(order[i]);
	}
	if (chdir("/") == 0)
		rmdir(dir);
}

int disk_scsi_find(unsigned target, char *dev, size_t n)
{
	char want[24], path[300], link[160];
	struct dirent *e;
	size_t wl;
	DIR *d;
	int fd = open("/sys/class/scsi_host/host0/scan", O_WRONLY | O_CLOEXEC);

	/* Probe it now: the hotplug event has the kernel scan it too, but later. A scan of a
	 * disk already there changes nothing. */
	wl = kfmt(want, sizeof(want), "0 %u 0", target);
	if (fd >= 0 && write(fd, want, wl) < 0) { /* no such target (yet) */
	}
	close(fd);
	/* /sys/block/sdX/device links to .../H:C:T:L. */
	wl = kfmt(want, sizeof(want), ":0:%u:0", target);
	d = opendir("/sys/block");
	while (d && (e = readdir(d))) {
		ssize_t len;

		kfmt(path, sizeof(path), "/sys/block/%s/device", e->d_name);
		len = readlink(path, link, sizeof(link));
		if (!strncmp(e->d_name, "sd", 2) && len > (ssize_t)wl &&
		    !memcmp(link + len - wl, want, wl)) {
			kfmt(dev, n, "/dev/%s", e->d_name);
			break;
		}
	}
	if (d)
		closedir(d);
	errno = ENOENT;
	return d && e ? 0 : -1;
}
