/* The cache of container root images ([sandboxer] rootfs = "block"): one EROFS image per
 * set of overlay layers, built from their merged view (a read-only overlay of them, so
 * whiteouts apply) and shared by every sandbox on the host.
 *
 * Locks (flock): the cache's .lock, held briefly to take or let go of an image, to sweep,
 * and to move a new image into place; an image's shared lock, held by each user for as
 * long as it uses it (the last one out removes it); a key's <key>.lock, held by whoever
 * builds that image, so one image is built once while builds of other images go on. A build
 * runs in a child in a mount namespace of its own, so a build that dies leaves no mount. */
#ifndef KUASAR_ROOTIMG_H
#define KUASAR_ROOTIMG_H

#include <stddef.h>
#include <sys/types.h>

#include "base/err.h"
#include "base/util.h"

/* Overlay takes its options in one page: containerd's lowerdir fits about 50 layers. */
#define ROOTIMG_OPTS_MAX 4000

struct rootimg {
	int fd; /* held (shared lock) while >= 0 */
	char key[40];
	char path[KPATH_SIZE];
	int built;       /* this user built it */
	double build_ms; /* how long that took, from the first look */
	int64_t t0_ns;
};

/* Names the image of these layers (lowerdir's order, top first); holds nothing yet. */
int rootimg_init(const char *cache, char *const *lowers, size_t n, struct rootimg *img,
                 kerr_t *err);
/* Takes the image if the cache has it: 1 held, 0 not there, -1 on error. */
int rootimg_hold(const char *cache, struct rootimg *img, kerr_t *err);
/* Builds the image unless it is there, waiting for another builder of it first. */
int rootimg_build(const char *cache, char *const *lowers, size_t n, const struct rootimg *img,
                  kerr_t *err);
/* rootimg_build in a child: its pid, a pidfd that turns readable when it exits, and the read
 * end of a non-blocking pipe with its error message (empty on success). The child leads its
 * own process group, dies with its parent, and moves itself into cgroup (a cgroup
 * directory; NULL or "" to stay). */
pid_t rootimg_build_child(const char *cache, char *const *lowers, size_t n,
                          const struct rootimg *img, const char *cgroup, int *pidfd, int *errfd,
                          kerr_t *err);
/* Kills a builder and its tools (its process group); the caller still reaps it. */
void rootimg_build_kill(pid_t pid);
/* init, hold, else build and hold: all in this process. */
int rootimg_get(const char *cache, char *const *lowers, size_t n, struct rootimg *img, kerr_t *err);
/* Lets go of img; removes it when nobody else holds it. */
void rootimg_put(const char *cache, struct rootimg *img);
/* Removes what nobody uses: images (older than a minute: a new one is not yet held), and
 * what builds that died left. */
void rootimg_sweep(const char *cache);

/* In a child of the proxy: out of the sandbox's cgroup into cgroup (the daemon's), so that
 * work shared by pods (an image build) or kept beyond the pod (a snapshot's memory) is
 * charged as containerd charges image unpacking, and cannot drive the pod's VMM into the
 * OOM killer. "" or NULL: stays. A failure is said on stderr (what names the work). */
void rootimg_leave_cgroup(const char *cgroup, const char *what);

#endif
