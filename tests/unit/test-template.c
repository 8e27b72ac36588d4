/* The template store without VMs: what the key depends on, integrity checks on the saved
 * files, locking, and who maps a template's memory. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fsat.h"
#include "base/sha256.h"
#include "base/util.h"
#include "tap.h"
#include "vm/template.h"
#include "vm/vmsnap.h"

static char dir[64];
static struct tpl_store store;

static void put(const char *name, const char *text, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", dir, name);
	ok(write_file_atomic(path, text, strlen(text), NULL) == 0, "write %s", name);
}

static void key_of(const struct vm_config *c, char *key)
{
	kerr_t err;

	if (tpl_key(&store, c, ACCEL_TCG, key, &err) < 0) {
		printf("# tpl_key: %s\n", err.msg);
		key[0] = '\0';
	}
}

/* qemu_argv for c, joined by spaces (each argument followed by one). */
static void cmdline_of(const struct vm_config *c, char *line, size_t n)
{
	struct vm_paths p;
	char **argv;
	kerr_t err;

	vm_paths_init(&p, "/run", "T", &err);
	argv = qemu_argv(c, &p, "T", ACCEL_TCG);
	line[0] = '\0';
	for (char **a = argv; *a; a++)
		snprintf(line + strlen(line), n - strlen(line), "%s ", *a);
	argv_free(argv);
}

/* NICs: their number is in the key, a pod's MAC, MTU and tap fd are not. */
static void test_key_nics(struct vm_config *c, const char *k1)
{
	struct vm_nic nics[2] = { { .fd = 7, .mac = { 2, 0, 0, 0, 0, 1 }, .mtu = 1500 },
		                  { .fd = 9, .mac = { 2, 0, 0, 0, 0, 2 }, .mtu = 9000 } };
	char k3[TPL_KEY_LEN + 1], k4[TPL_KEY_LEN + 1];

	c->nics = nics;
	c->n_nics = 1;
	key_of(c, k3);
	ok(strcmp(k3, k1) != 0, "a NIC changes the key (networked pods get their own template)");
	nics[0].mac[5] = 9;
	nics[0].mtu = 1400;
	nics[0].fd = 11;
	key_of(c, k4);
	is_str(k4, k3, "the pod's MAC, MTU and tap fd do not");
	c->n_nics = 2;
	key_of(c, k4);
	ok(strcmp(k4, k3) != 0, "a second NIC does");
	c->nics = NULL;
	c->n_nics = 0;
}

/* The command line: a cold boot's device has the pod's MAC and MTU, a template's (and so
 * its clones') the template MAC and no MTU. */
static void test_nic_cmdline(void)
{
	struct vm_nic nics[2] = { { .fd = 11, .mac = { 2, 0, 0, 0, 0, 9 }, .mtu = 1400 },
		                  { .fd = 9, .mac = { 2, 0, 0, 0, 0, 2 }, .mtu = 9000 } };
	struct vm_config c;
	char line[4096];

	vm_config_defaults(&c);
	c.qemu = "/bin/true";
	c.kernel = "/k/vmlinux";
	c.nics = nics;
	c.n_nics = 2;
	cmdline_of(&c, line, sizeof(line));
	ok(strstr(line, "tap,id=net0,fd=3 ") && strstr(line, "tap,id=net1,fd=4 ") &&
	       strstr(line, "netdev=net0,mac=02:00:00:00:00:09,host_mtu=1400 "),
	   "cold boot: taps as fds 3 and 4, the pod's MAC and MTU");
	c.mem_path = "/dev/shm/x";
	cmdline_of(&c, line, sizeof(line));
	ok(strstr(line, "netdev=net0,mac=02:4b:51:00:00:00 ") &&
	       strstr(line, "netdev=net1,mac=02:4b:51:00:00:01 ") && !strstr(line, "host_mtu"),
	   "template shape: template MACs, no MTU");
}

static void test_key(void)
{
	char kernel[128], initrd[128], k1[40], k2[40], k3[40];
	struct vm_config c;
	kerr_t err;

	put("vmlinux", "kernel one", kernel, sizeof(kernel));
	put("initrd", "initrd one", initrd, sizeof(initrd));
	vm_config_defaults(&c);
	c.qemu = "/bin/true"; /* any executable: its contents are part of the key */
	c.kernel = kernel;
	c.initrd = initrd;
	c.link = LINK_SERIAL;
	key_of(&c, k1);
	is_int((int)strlen(k1), TPL_KEY_LEN, "a key is 32 hex digits");
	key_of(&c, k2);
	is_str(k2, k1, "the same inputs give the same key (the second time from the digest memo)");

	put("initrd", "initrd two", initrd, sizeof(initrd));
	key_of(&c, k2);
	ok(strcmp(k2, k1) != 0, "a changed initrd changes the key");
	put("initrd", "initrd one", initrd, sizeof(initrd));
	key_of(&c, k2);
	is_str(k2, k1, "the original initrd gives the original key again");

	c.memory_mib = 512;
	key_of(&c, k3);
	ok(strcmp(k3, k1) != 0, "memory changes the key");
	c.memory_mib = 256;
	c.vcpus = 2;
	key_of(&c, k3);
	ok(strcmp(k3, k1) != 0, "vCPUs change the key");
	c.vcpus = 1;
	test_key_nics(&c, k1);
	c.kernel_params = "quiet2";
	key_of(&c, k3);
	ok(strcmp(k3, k1) != 0, "the kernel command line changes the key");
	c.kernel_params = "";
	c.guest_cid = 1234;
	key_of(&c, k3);
	is_str(k3, k1, "a per-VM value (the vsock CID) does not");
	c.qemu = "/bin/false";
	key_of(&c, k3);
	ok(strcmp(k3, k1) != 0, "another VMM binary changes the key");
	c.qemu = "/bin/true";
	c.kernel = "/nonexistent/vmlinux";
	ok(tpl_key(&store, &c, ACCEL_TCG, k3, &err) < 0 && err.errnum == ENOENT,
	   "a missing kernel is an error: %s", err.msg);
}

/* A template's files by hand, as tpl_build leaves them. */
static void fake_template(struct template *t, const char *state)
{
	char meta[1024], sha[65] = "", cmd[KPATH_SIZE + 32];
	FILE *p;
	int fd;

	tpl_paths(&store, "0123456789abcdef0123456789abcdef", t, NULL);
	mkdir_p(t->dir, 0700, NULL);
	mkdir_p(store.mem_dir, 0700, NULL);
	write_file_atomic(t->state, state, strlen(state), NULL);
	snprintf(cmd, sizeof(cmd), "sha256sum %s", t->state);
	p = popen(cmd, "r");
	if (p && fscanf(p, "%64s", sha) != 1)
		sha[0] = '\0';
	if (p)
		pclose(p);
	snprintf(meta, sizeof(meta),
	         "{\"key\":\"%s\",\"memory_mib\":1,\"vcpus\":1,\"state_bytes\":%zu,"
	         "\"state_sha256\":\"%s\",\"accel\":\"tcg\"}",
	         t->key, strlen(state), sha);
	write_file_atomic(t->meta, meta, strlen(meta), NULL);
	fd = open(t->mem, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		if (ftruncate(fd, 1 << 20) < 0)
			printf("# ftruncate: %s\n", strerror(errno));
		close(fd);
	}
}

static void test_verify(void)
{
	struct template t;
	struct tpl_info in;
	kerr_t err;

	tpl_paths(&store, "ffffffffffffffffffffffffffffffff", &t, NULL);
	ok(tpl_verify(&t, &in, &err) < 0 && err.errnum == ENOENT, "no template: ENOENT (%s)",
	   err.msg);
	fake_template(&t, "device state bytes");
	ok(tpl_verify(&t, &in, &err) == 0, "an intact template verifies");
	is_int(in.memory_mib, 1, "meta.json read back");
	ok(truncate(t.state, 5) == 0, "truncate the state file");
	ok(tpl_verify(&t, &in, &err) < 0 && err.errnum == EBADMSG && strstr(err.msg, "truncated"),
	   "a truncated state file: %s", err.msg);
	write_file_atomic(t.state, "device state bytez", 18, NULL);
	ok(tpl_verify(&t, &in, &err) < 0 && err.errnum == EBADMSG && strstr(err.msg, "corrupted"),
	   "a changed state file of the same size: %s", err.msg);
	fake_template(&t, "device state bytes");
	ok(truncate(t.mem, 4096) == 0, "shrink the memory file");
	ok(tpl_verify(&t, &in, &err) < 0 && err.errnum == EBADMSG && strstr(err.msg, "not 1 MiB"),
	   "a memory file of the wrong size: %s", err.msg);
	unlink(t.mem);
	ok(tpl_verify(&t, &in, &err) < 0 && err.errnum == EBADMSG && strstr(err.msg, "memory file"),
	   "a missing memory file: %s", err.msg);
	fake_template(&t, "device state bytes");
	write_file_atomic(t.meta, "{not json", 9, NULL);
	ok(tpl_verify(&t, &in, &err) < 0 && err.errnum == EBADMSG, "malformed meta.json: %s",
	   err.msg);
	ok(tpl_remove_files(&t, &err) == 0 && access(t.dir, F_OK) < 0 && access(t.mem, F_OK) < 0,
	   "remove takes the directory and the memory file");
}

static void test_lock_and_users(void)
{
	struct template t;
	int ex, sh, pfd[2];
	pid_t child;
	pid_t pids[4];
	kerr_t err;
	char c;

	fake_template(&t, "state");
	ex = tpl_lock(&t, 1, mono_ns() + 1000000000LL, &err);
	ok(ex >= 0, "exclusive lock");
	child = fork();
	if (child == 0) {
		/* Another process cannot share it while it is held. */
		_exit(tpl_lock(&t, 0, mono_ns() + 100000000LL, &err) < 0 && err.errnum == ETIMEDOUT
		          ? 0
		          : 1);
	}
	{
		int st = -1;

		waitpid(child, &st, 0);
		ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a shared lock waits, then times out");
	}
	close(ex);
	sh = tpl_lock(&t, 0, mono_ns() + 1000000000LL, &err);
	ok(sh >= 0, "shared lock once released");
	close(sh);

	is_int(tpl_users(&t, pids, 4), 0, "nobody maps the memory");
	if (pipe(pfd) < 0)
		return;
	child = fork();
	if (child == 0) {
		int fd = open(t.mem, O_RDONLY);
		void *m = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);

		if (write(pfd[1], m == MAP_FAILED ? "n" : "y", 1) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	if (read(pfd[0], &c, 1) == 1 && c == 'y') {
		ok(tpl_users(&t, pids, 4) == 1 && pids[0] == child,
		   "a process mapping it is a user");
	} else {
		ok(0, "the child mapped the memory file");
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(pfd[0]);
	close(pfd[1]);
	tpl_remove_files(&t, NULL);
}

/* FIPS 180-4 example vectors, and the same digest however the input is split. */
static void test_sha256(void)
{
	static char million[1000000];
	char hex[65], hex2[65];
	struct sha256 c;
	uint8_t d[32];

	sha256_hex("", 0, hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "sha256 of ''");
	sha256_hex("abc", 3, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "sha256 of abc");
	sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	is_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	       "sha256 of the 56-byte vector (padding spills into a second block)");
	memset(million, 'a', sizeof(million));
	sha256_hex(million, sizeof(million), hex);
	is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	       "sha256 of a million a");
	sha256_init(&c);
	for (size_t off = 0, step = 1; off < sizeof(million);
	     off += step, step = step * 3 % 997 + 1)
		sha256_update(&c, million + off,
		              off + step > sizeof(million) ? sizeof(million) - off : step);
	sha256_final(&c, d);
	sha256_to_hex(d, hex2);
	is_str(hex2, hex, "the same, fed in uneven pieces");
}

/* A snapshot's shape: written and read back, hostile values refused, and the short-lived
 * VMM's command line (held paused, shared memory filled first, no run state saved). */
static void test_shape(void)
{
	struct vm_config c;
	struct vm_shape sh;
	json_object *o = json_object_new_object();
	char line[4096];
	kerr_t err;

	vm_config_defaults(&c);
	c.qemu = "qemu-system-x86_64";
	c.kernel = "/k/vmlinux";
	c.initrd = "/k/initrd";
	c.app_disk = "/a/app.erofs";
	c.mem_path = "/dev/shm/t.mem";
	c.memory_mib = 256;
	c.vcpus = 2;
	c.n_nics = 1;
	vm_shape_write(o, &c);
	json_object_object_add(o, "accel", json_object_new_string("tcg"));
	json_object_object_add(o, "link", json_object_new_string("virtio-serial"));
	ok(vm_shape_read(o, &sh, &err) == 0, "a shape reads back");
	ok(!strcmp(sh.cfg.kernel, "/k/vmlinux") && !strcmp(sh.cfg.app_disk, "/a/app.erofs") &&
	       sh.cfg.memory_mib == 256 && sh.cfg.vcpus == 2 && sh.cfg.n_nics == 1 &&
	       sh.cfg.accel == ACCEL_TCG && sh.cfg.link == LINK_SERIAL && !sh.cfg.image[0],
	   "with every field");
	sh.cfg.restore = sh.cfg.hold = sh.cfg.mem_shared = 1;
	cmdline_of(&sh.cfg, line, sizeof(line));
	ok(strstr(line, "-incoming defer -S -global migration.store-global-state=off ") &&
	       strstr(line, "mem-path=/dev/shm/t.mem,share=on,prealloc=on ") &&
	       !strstr(line, "-kernel") && !strstr(line, "virtio-balloon"),
	   "the holder: held paused, its memory shared and filled, no balloon");
	json_object_object_add(o, "kernel", json_object_new_string("../k"));
	ok(vm_shape_read(o, &sh, &err) < 0, "a relative kernel path is refused");
	json_object_object_add(o, "kernel", json_object_new_string("/k/vmlinux"));
	json_object_object_add(o, "memory_mib", json_object_new_int(1 << 30));
	ok(vm_shape_read(o, &sh, &err) < 0, "a memory size out of range is refused");
	json_object_object_add(o, "memory_mib", json_object_new_int(256));
	json_object_object_add(o, "nics", json_object_new_int(99));
	ok(vm_shape_read(o, &sh, &err) < 0, "too many NICs are refused");
	json_object_object_add(o, "nics", json_object_new_int(1));
	json_object_object_add(o, "accel", json_object_new_string("auto"));
	ok(vm_shape_read(o, &sh, &err) < 0, "an accelerator not decided is refused");
	json_object_object_add(o, "accel", json_object_new_int(3));
	ok(vm_shape_read(o, &sh, &err) < 0, "an accelerator that is not a string is refused");
	json_object_put(o);
}

/* A disk entry for o's "disks": node, target, path. */
static json_object *disk_json(const char *node, int target, const char *path)
{
	json_object *d = json_object_new_object();

	json_object_object_add(d, "node", json_object_new_string(node));
	json_object_object_add(d, "target", json_object_new_int(target));
	json_object_object_add(d, "path", json_object_new_string(path));
	return d;
}

/* o with one disk (node, target, path) in place of its disks: whether it reads. */
static int reads_with_disk(json_object *o, const char *node, int target, const char *path)
{
	static struct vm_shape sh;
	json_object *a = json_object_new_array();
	kerr_t err;

	json_object_array_add(a, disk_json(node, target, path));
	json_object_object_add(o, "disks", a);
	return vm_shape_read(o, &sh, &err) == 0;
}

/* A pod's snapshot: its containers' root disks are on the bus from the start, as the
 * hot-plug named them; what a command line could not carry is refused. */
static void test_shape_disks(void)
{
	static struct vm_shape sh, back;
	json_object *o = json_object_new_object();
	char line[4096];
	kerr_t err;

	vm_config_defaults(&sh.cfg);
	sh.cfg.qemu = "qemu-system-x86_64";
	sh.cfg.kernel = "/k/vmlinux";
	sh.cfg.memory_mib = 128;
	sh.cfg.vcpus = 1;
	sh.cfg.disk_bus = 1;
	ok(vm_shape_add_disk(&sh, "rootfs0.1", 0, "/s/disk-0.img", &err) == 0 &&
	       vm_shape_add_disk(&sh, "rootfs2.5", 2, "/s/disk-2.img", &err) == 0,
	   "two disks are added");
	ok(vm_shape_add_disk(&sh, "rootfs2.6", 2, "/s/x.img", &err) < 0,
	   "a target taken twice is refused");
	sh.cfg.accel = ACCEL_TCG;
	sh.cfg.link = LINK_SERIAL;
	vm_shape_write(o, &sh.cfg);
	ok(vm_shape_read(o, &back, &err) == 0 && back.cfg.n_disks == 2 &&
	       back.cfg.disks[1].target == 2 && !strcmp(back.cfg.disks[1].node, "rootfs2.5") &&
	       !strcmp(back.cfg.disks[1].path, "/s/disk-2.img"),
	   "they read back");
	back.cfg.restore = 1;
	cmdline_of(&back.cfg, line, sizeof(line));
	ok(strstr(line, "-blockdev driver=raw,node-name=rootfs2.5,read-only=on,file.driver=file,"
	                "file.filename=/s/disk-2.img ") &&
	       strstr(line, "-device scsi-hd,id=rootfs2.5,drive=rootfs2.5,bus=scsi.0,scsi-id=2,"
	                    "lun=0 "),
	   "each is on the SCSI bus as the hot-plug put it");
	ok(!reads_with_disk(o, "x,file=/etc/shadow", 0, "/s/d"), "a node with a comma is refused");
	ok(!reads_with_disk(o, "r0", 0, "/s/d,file.filename=/etc/shadow"),
	   "a path with a comma is refused");
	ok(!reads_with_disk(o, "r0", 0, "s/d"), "a relative path is refused");
	ok(!reads_with_disk(o, "r0", 256, "/s/d"), "a target past 255 is refused");
	ok(!reads_with_disk(o, "0r", 0, "/s/d"), "a node not starting with a letter is refused");
	json_object_object_add(o, "disk_bus", json_object_new_boolean(0));
	ok(!reads_with_disk(o, "r0", 0, "/s/d"), "disks without a disk bus are refused");
	json_object_put(o);
}

int main(void)
{
	char mem[96];

	snprintf(dir, sizeof(dir), "/tmp/kuasar-unit-tpl.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	if (tpl_store_init(&store, dir, mem, NULL) < 0)
		return 1;
	test_sha256();
	test_key();
	test_nic_cmdline();
	test_verify();
	test_lock_and_users();
	test_shape();
	test_shape_disks();
	rm_tree(dir);
	return done_testing();
}
