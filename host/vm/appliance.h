/* Appliances: an OCI image made bootable (tools/mkimage.sh --app). The directory holds
 * app.json (the image's name and digest, the readiness spec, the VM size, the file names),
 * the kernel, the initrd and app.erofs, the app's bundle that kuasar-init runs at boot;
 * <dir>/templates is its snapshot store. */
#ifndef KUASAR_APPLIANCE_H
#define KUASAR_APPLIANCE_H

#include "base/err.h"
#include "vm/template.h"
#include "vm/vmm.h"

#define APP_TIMEOUT_MS 120000

struct appliance {
	char dir[KPATH_SIZE / 2];
	char kernel[KPATH_SIZE], initrd[KPATH_SIZE], disk[KPATH_SIZE];
	char name[256], digest[80], ready[300];
	unsigned port; /* tcp: or http: readiness, 0 if none */
	struct vm_config cfg;
	struct tpl_store store;
};

/* Reads <dir>/app.json: cfg is base with the appliance's kernel, initrd, disk, size and
 * readiness timeout; store is <dir>/templates with its memory in mem_dir (NULL: the
 * default). The caller sets the NICs and the store's scratch taps. */
int appliance_open(const char *dir, const struct vm_config *base, const char *mem_dir,
                   struct appliance *a, kerr_t *err);

#endif
