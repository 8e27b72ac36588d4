/* Read-only disks as writable roots: an EROFS disk mounted as the lower layer of an overlay
 * whose upper layer is a tmpfs, so writes stay in the guest's memory and never reach the
 * disk (appliances, and containers whose root filesystem the host attaches as a disk). */
#ifndef KUASAR_DISK_H
#define KUASAR_DISK_H

#include <stddef.h>

/* In dir (which exists): dev on dir/lower (read-only), a tmpfs on dir/rw, and the overlay of
 * dir/<lower> on dir/<root> (which exists). Returns NULL, or what failed with errno set. */
const char *disk_overlay(const char *dev, const char *dir, const char *lower, const char *root);
/* Undoes disk_overlay (what of it is there) and removes dir. */
void disk_overlay_undo(const char *dir, const char *root);
/* The disk at SCSI target (channel 0, LUN 0) as /dev/sdX in dev: asks the SCSI hosts to
 * probe it first. -1 with ENOENT while its block device is not there yet. */
int disk_scsi_find(unsigned target, char *dev, size_t n);

#endif
