#include "net/sklookup.h"

#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/podnet.h"

#define INSN(c, d, s, o, i)                                                                        \
	((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV_X(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)

static int sys_bpf(int cmd, union bpf_attr *a)
{
	return (int)syscall(SYS_bpf, cmd, a, sizeof(*a));
}

static int map_create(kerr_t *err)
{
	union bpf_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_SOCKMAP;
	a.key_size = 4;
	a.value_size = 8;
	a.max_entries = 1;
	fd = sys_bpf(BPF_MAP_CREATE, &a);
	return fd < 0 ? kerr_sys(err, "bpf: a socket map") : fd;
}

/* For a TCP lookup: the socket at key 0 of the map takes the connection (if the map holds
 * one); anything else goes on to the netns's own sockets. */
static int prog_load(int map_fd, kerr_t *err)
{
	const int pass = 17; /* index of the SK_PASS return */
	struct bpf_insn p[] = {
		INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1,
		     offsetof(struct bpf_sk_lookup, protocol), 0),
		INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, pass - 2, IPPROTO_TCP),
		MOV_X(BPF_REG_6, BPF_REG_1),
		INSN(BPF_ST | BPF_W | BPF_MEM, BPF_REG_10, 0, -4, 0), /* key 0 */
		INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd),
		INSN(0, 0, 0, 0, 0),
		MOV_X(BPF_REG_2, BPF_REG_10),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
		CALL(BPF_FUNC_map_lookup_elem),
		INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, pass - 10, 0),
		MOV_X(BPF_REG_7, BPF_REG_0),
		MOV_X(BPF_REG_1, BPF_REG_6),
		MOV_X(BPF_REG_2, BPF_REG_7),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, 0),
		CALL(BPF_FUNC_sk_assign),
		MOV_X(BPF_REG_1, BPF_REG_7),
		CALL(BPF_FUNC_sk_release),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, SK_PASS),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	union bpf_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SK_LOOKUP;
	a.expected_attach_type = BPF_SK_LOOKUP;
	a.insns = (uintptr_t)p;
	a.insn_cnt = sizeof(p) / sizeof(p[0]);
	a.license = (uintptr_t) "GPL";
	fd = sys_bpf(BPF_PROG_LOAD, &a);
	return fd < 0 ? kerr_sys(err, "bpf: load the sk_lookup program") : fd;
}

static int map_put(int map_fd, int sock_fd, kerr_t *err)
{
	union bpf_attr a;
	uint32_t key = 0;
	uint64_t value = (uint64_t)sock_fd;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)map_fd;
	a.key = (uintptr_t)&key;
	a.value = (uintptr_t)&value;
	a.flags = BPF_ANY;
	return sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0
	           ? kerr_sys(err, "bpf: put the listener in its map")
	           : 0;
}

static int link_netns(int prog_fd, int netns_fd, kerr_t *err)
{
	union bpf_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = (uint32_t)prog_fd;
	a.link_create.target_fd = (uint32_t)netns_fd;
	a.link_create.attach_type = BPF_SK_LOOKUP;
	fd = sys_bpf(BPF_LINK_CREATE, &a);
	return fd < 0 ? kerr_sys(err, "bpf: attach the sk_lookup program to the netns") : fd;
}

/* A dual-stack TCP listener on [::]:0 in the netns: bound to the any-address, so that it is
 * not IPv6-only and IPv4 connections can be steered to it too. */
static int listen_in(int netns_fd, kerr_t *err)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	int zero = 0, fd = podnet_socket_at(netns_fd, AF_INET6,
	                                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, err);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		kerr_sys(err, "listen on [::]:0");
		close(fd);
		return -1;
	}
	return fd;
}

int sklookup_start(struct sklookup *s, const char *netns_path, kerr_t *err)
{
	int netns_fd;

	s->listen_fd = s->map_fd = s->prog_fd = s->link_fd = -1;
	netns_fd = podnet_netns_open(netns_path, err);
	if (netns_fd < 0)
		return -1;
	if ((s->listen_fd = listen_in(netns_fd, err)) < 0 || (s->map_fd = map_create(err)) < 0 ||
	    (s->prog_fd = prog_load(s->map_fd, err)) < 0 ||
	    map_put(s->map_fd, s->listen_fd, err) < 0 ||
	    (s->link_fd = link_netns(s->prog_fd, netns_fd, err)) < 0) {
		close(netns_fd);
		sklookup_stop(s);
		return -1;
	}
	close(netns_fd);
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void sklookup_stop(struct sklookup *s)
{
	close_fd(&s->link_fd); /* first: no connection is steered to a closed listener */
	close_fd(&s->prog_fd);
	close_fd(&s->map_fd);
	close_fd(&s->listen_fd);
}

unsigned sklookup_port(int conn_fd)
{
	struct sockaddr_storage ss;
	socklen_t n = sizeof(ss);

	if (getsockname(conn_fd, (struct sockaddr *)&ss, &n) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}
