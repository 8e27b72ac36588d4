/* Compiles an OCI seccomp profile to classic BPF for SECCOMP_MODE_FILTER.
 *
 * Layout: check the architecture (anything not listed is killed, as libseccomp does for
 * unknown architectures), load the syscall number, then one block per rule and name:
 * without argument conditions a jeq/ret pair, with conditions a block that falls through
 * to the next rule on the first condition that does not hold. Last, the default action.
 * Rules match in profile order. 64-bit argument comparisons are done on both halves. */
#include "runtime/seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/fmt.h"
#include "syscalls.h"

#define MAX_INSNS 4096
#define X32_BIT 0x40000000u

struct prog {
	struct sock_filter *f;
	unsigned n;
	int overflow;
};

static void emit(struct prog *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	if (p->n >= MAX_INSNS) {
		p->overflow = 1;
		return;
	}
	p->f[p->n++] = (struct sock_filter){ code, jt, jf, k };
}

/* The names are 6-bit symbols (tools/gen-syscalls.sh): 0 ends a name, then a-z, 0-9, _. */
static char symbol_char(unsigned v)
{
	return (char)(v <= 26 ? 'a' + v - 1 : v <= 36 ? '0' + v - 27 : '_');
}

int seccomp_syscall_nr(const char *name)
{
	size_t bit = 0;

	for (int nr = 0; nr <= SYSCALL_MAX; nr++) {
		size_t i = 0;
		int same = 1;

		for (;; bit += 6) {
			unsigned v = (syscall_names[bit / 8] | syscall_names[bit / 8 + 1] << 8) >>
			                 (bit % 8) &
			             63;

			if (!v)
				break;
			same = same && name[i] == symbol_char(v);
			i++;
		}
		bit += 6;
		if (same && i && !name[i])
			return nr;
	}
	return -1;
}

#define LD_ABS(off) (BPF_LD | BPF_W | BPF_ABS), 0, 0, (off)
#define ARG_LO(i) (uint32_t)(offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)

static void emit_arch_check(struct prog *p, const struct oci_seccomp *sc)
{
	int x86_64 = sc->n_arches == 0;

	for (unsigned i = 0; i < sc->n_arches; i++)
		x86_64 |= sc->arches[i] == AUDIT_ARCH_X86_64;
	emit(p, LD_ABS(offsetof(struct seccomp_data, arch)));
	/* Only x86_64 runs in this guest; i386 entry (int 0x80) and x32 are refused unless the
	 * profile names them, and then they still have no rules of their own here. */
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, x86_64 ? AUDIT_ARCH_X86_64 : 0xffffffffu);
	emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_KILL_PROCESS);
	emit(p, LD_ABS(offsetof(struct seccomp_data, nr)));
	emit(p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, X32_BIT);
	emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_KILL_PROCESS);
}

/* A jump whose failure branch is patched once the block's end is known. */
struct fix {
	unsigned at;
	char branch; /* 't' or 'f' */
};

struct block {
	struct fix fixes[64];
	unsigned n;
};

static void jump(struct prog *p, struct block *b, uint16_t op, uint8_t jt, uint8_t jf, uint32_t k,
                 char fail_branch)
{
	if (b->n < 64)
		b->fixes[b->n++] = (struct fix){ p->n, fail_branch };
	emit(p, BPF_JMP | op | BPF_K, jt, jf, k);
}

/* One condition on a 64-bit argument, compared half by half (unsigned). Falls through
 * when it holds; its failure branches are patched to the end of the rule's block. */
static void emit_cond(struct prog *p, struct block *b, const struct oci_arg_cmp *c)
{
	uint64_t v = c->op == 7 ? c->value_two : c->value;
	uint32_t vh = (uint32_t)(v >> 32), vl = (uint32_t)v;

	emit(p, LD_ABS(ARG_HI(c->index)));
	switch (c->op) {
	case 1: /* NE */
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 2, vh);
		emit(p, LD_ABS(ARG_LO(c->index)));
		jump(p, b, BPF_JEQ, 0, 0, vl, 't');
		break;
	case 4: /* EQ */
	case 7: /* MASKED_EQ: (arg & value) == valueTwo */
		if (c->op == 7)
			emit(p, BPF_ALU | BPF_AND | BPF_K, 0, 0, (uint32_t)(c->value >> 32));
		jump(p, b, BPF_JEQ, 0, 0, vh, 'f');
		emit(p, LD_ABS(ARG_LO(c->index)));
		if (c->op == 7)
			emit(p, BPF_ALU | BPF_AND | BPF_K, 0, 0, (uint32_t)c->value);
		jump(p, b, BPF_JEQ, 0, 0, vl, 'f');
		break;
	case 5: /* GE */
	case 6: /* GT */
		emit(p, BPF_JMP | BPF_JGT | BPF_K, 3, 0, vh);
		jump(p, b, BPF_JEQ, 0, 0, vh, 'f');
		emit(p, LD_ABS(ARG_LO(c->index)));
		jump(p, b, c->op == 5 ? BPF_JGE : BPF_JGT, 0, 0, vl, 'f');
		break;
	default: /* 2 LT, 3 LE */
		jump(p, b, BPF_JGT, 0, 0, vh, 't');
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 2, vh);
		emit(p, LD_ABS(ARG_LO(c->index)));
		jump(p, b, c->op == 2 ? BPF_JGE : BPF_JGT, 0, 0, vl, 't');
		break;
	}
}

/* Points every failure branch of a block at `target`. */
static int patch(struct prog *p, const struct block *b, unsigned target)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct sock_filter *ins = &p->f[b->fixes[i].at];
		unsigned dist = target - b->fixes[i].at - 1;

		if (dist > 255)
			return -1;
		if (b->fixes[i].branch == 't')
			ins->jt = (uint8_t)dist;
		else
			ins->jf = (uint8_t)dist;
	}
	return 0;
}

static int emit_rule(struct prog *p, const struct oci_syscall_rule *r, int nr)
{
	struct block b = { .n = 0 };

	if (!r->n_args) {
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, (uint32_t)nr);
		emit(p, BPF_RET | BPF_K, 0, 0, r->action);
		return 0;
	}
	jump(p, &b, BPF_JEQ, 0, 0, (uint32_t)nr, 'f');
	for (unsigned i = 0; i < r->n_args; i++)
		emit_cond(p, &b, &r->args[i]);
	emit(p, BPF_RET | BPF_K, 0, 0, r->action);
	if (p->overflow || patch(p, &b, p->n) < 0)
		return -1;
	/* The next block expects the syscall number in the accumulator. */
	emit(p, LD_ABS(offsetof(struct seccomp_data, nr)));
	return 0;
}

int seccomp_compile(const struct oci_seccomp *sc, struct sock_fprog *out, char *err, size_t n)
{
	struct prog p = { calloc(MAX_INSNS, sizeof(struct sock_filter)), 0, 0 };

	if (!p.f)
		return kfmt(err, n, "seccomp: out of memory"), -1;
	emit_arch_check(&p, sc);
	for (unsigned i = 0; i < sc->n_rules; i++) {
		const struct oci_syscall_rule *r = &sc->rules[i];

		for (unsigned k = 0; k < r->n_names; k++) {
			int nr = seccomp_syscall_nr(sc->names[r->first_name + k]);

			/* Names this kernel does not have are skipped, as runc does. */
			if (nr >= 0 && emit_rule(&p, r, nr) < 0) {
				free(p.f);
				return kfmt(err, n,
				            "seccomp: profile too large or conditions too far"),
				       -1;
			}
		}
	}
	emit(&p, BPF_RET | BPF_K, 0, 0, sc->default_action);
	if (p.overflow) {
		free(p.f);
		return kfmt(err, n, "seccomp: more than %d instructions", MAX_INSNS), -1;
	}
	out->len = (unsigned short)p.n;
	out->filter = p.f;
	return 0;
}
