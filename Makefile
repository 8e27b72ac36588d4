# kuasar: a microVM sandboxer for containerd. `make help` lists the targets.
#
# Everything built lands in bin/ (ignored by git). Downloaded sources and the kernel build
# are cached outside the repo in $(CACHE), keyed so that a stale cache is never used.

CACHE ?= $(or $(KUASAR_CACHE),$(HOME)/.cache/kuasar)
export KUASAR_CACHE := $(CACHE)

V ?= 0
ifeq ($(V),0)
Q := @
msg = @printf '  %-8s %s\n' '$(1)' '$(2)';
else
Q :=
msg =
endif

BIN := bin
GEN := $(BIN)/gen
OBJ := $(BIN)/obj

# ---------------------------------------------------------------------------------------
# Host side: glibc, Debian's libraries.
CC := gcc
HOST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Wpedantic -Werror -Wshadow -Wformat=2 -Wmissing-prototypes \
	-Wno-unused-parameter -D_GNU_SOURCE -Ihost -I$(GEN)/host -I.
HOST_LIBS := -lprotobuf-c -ljson-c -lnghttp2 -lmnl -lm

# ---------------------------------------------------------------------------------------
# Guest side: musl only, built for size. Kernel UAPI headers (headers only, no code) come
# from Debian's linux-libc-dev through a private include dir.
MUSL_CC := musl-gcc
NANOPB_VER := 0.4.7
NANOPB := $(CACHE)/src/nanopb-$(NANOPB_VER)
GUEST_INC := $(BIN)/musl-include
# -Oz: the 100 KB budget is tight and nothing in PID 1 is hot enough to care.
# -fmerge-all-constants: identical read-only tables (nanopb's field descriptors above all) are
# stored once; nothing in the init compares the addresses of two constants. -fno-jump-tables:
# a switch is a chain of compares, smaller than its table.
GUEST_OPT := -Oz -flto=auto -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables \
	-fmerge-all-constants -fno-jump-tables
GUEST_CFLAGS := -std=gnu11 $(GUEST_OPT) -Wall -Wextra -Wpedantic -Werror -Wshadow -Wmissing-prototypes -Wno-unused-parameter \
	-fno-stack-protector -fno-pie -D_GNU_SOURCE -DPB_NO_ERRMSG -DPB_BUFFER_ONLY \
	-isystem $(GUEST_INC) -I$(GEN)/guest -I$(NANOPB) -Iguest/init -I.
# noseparate-code and norelro drop page-alignment padding a static PID 1 does not need; a
# small common-page-size keeps ld from page-aligning the data segment in the file (up to
# 4 KB of padding, depending on where the text ends).
GUEST_LDFLAGS := $(GUEST_OPT) -static -no-pie -Wl,--gc-sections -s -Wl,-z,noseparate-code -Wl,-z,norelro \
	-Wl,-z,common-page-size=64 \
	-Wl,--build-id=none
INIT_MAX_BYTES := 102400

PROTOS := ttrpc.proto sandbox.proto task.proto containerd/types.proto google/rpc/status.proto \
	google/protobuf/any.proto google/protobuf/empty.proto google/protobuf/timestamp.proto \
	cgroups_v2.proto events.proto streaming.proto transfer.proto

GUEST_SRCS := $(wildcard guest/init/*/*.c)
GUEST_PB := $(addprefix $(GEN)/guest/,$(PROTOS:.proto=.pb.c))
NANOPB_SRCS := $(addprefix $(NANOPB)/,pb_common.c pb_encode.c pb_decode.c)
GUEST_OBJS := $(patsubst %.c,$(OBJ)/guest/%.o,$(GUEST_SRCS)) \
	$(patsubst $(GEN)/guest/%.c,$(OBJ)/guest/pb/%.o,$(GUEST_PB)) \
	$(patsubst $(NANOPB)/%.c,$(OBJ)/guest/nanopb/%.o,$(NANOPB_SRCS))

# Host-only protos: containerd's sandbox Controller and event service, and the CRI subset
# the test client speaks.
HOST_PROTOS := host/sandbox_controller.proto host/events_ttrpc.proto host/cri.proto \
	host/introspection.proto host/proxy.proto
HOST_PB := $(addprefix $(GEN)/host/,$(PROTOS:.proto=.pb-c.c) $(HOST_PROTOS:.proto=.pb-c.c))

# Code in layers, lowest first: a folder may use only the folders before it ("a/b" are side
# by side and use neither the other). This is the one copy of each order: tools/check-layers.sh
# enforces it by includes and by symbols, and the host's archives come from it. Each host
# library folder is an archive, linked in the reverse order; the last group (sandboxer/ctl) is
# the two programs' own folders, each linked whole into its binary. The generated protobuf-c
# code is an archive of its own that any layer above base may use.
HOST_LAYER_ORDER := base rpc vm/net proxy sandboxer/ctl
GUEST_LAYER_ORDER := core wire runtime services main
reverse = $(if $(1),$(call reverse,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
HOST_LIB_LAYERS := $(subst /, ,$(filter-out $(lastword $(HOST_LAYER_ORDER)),$(HOST_LAYER_ORDER)))
# SAN=1: host code and unit tests with ASan and UBSan, in their own object and test dirs.
# FUZZ=1: the same code built by clang for libFuzzer (tests/fuzz), in bin/obj-fuzz and bin/fuzz.
ifeq ($(FUZZ),1)
CC := clang
SAN_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
HOBJ := $(BIN)/obj-fuzz
TESTBIN := $(BIN)/fuzz
else ifeq ($(SAN),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
HOBJ := $(BIN)/obj-san
TESTBIN := $(BIN)/tests-san
else
SAN_FLAGS :=
HOBJ := $(OBJ)
TESTBIN := $(BIN)/tests
endif
host_objs = $(patsubst %.c,$(HOBJ)/%.o,$(wildcard host/$(1)/*.c))
HOST_ARCHIVES := $(foreach l,$(call reverse,$(HOST_LIB_LAYERS)),$(HOBJ)/lib$(l).a) $(HOBJ)/libpb.a
CTL_OBJS := $(call host_objs,ctl)
SANDBOXER_OBJS := $(call host_objs,sandboxer)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(TESTBIN)/%,$(wildcard tests/unit/test-*.c))

.PHONY: all help deps guest host kernel image test test-unit test-bats check check-layers demo bench bench-boot \
	fuzz fuzz-build fuzz-regress fuzz-targets stress \
	bench-container bench-pod bench-pool bench-fork bench-pod-fork bench-density bench-net bench-startup bench-appliance demo-cri install critest \
	check-size check-kernel-config clean distclean format
.DEFAULT_GOAL := all
# Generated sources are kept, not deleted as intermediates.
.SECONDARY:

all: $(BIN)/kuasar-init $(BIN)/kuasar.initrd $(BIN)/kuasar-ctl $(BIN)/kuasar-sandboxer ## build the guest init, initrd and host tools

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_/.-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{ printf "  %-22s %s\n", $$1, $$2 }'

deps: ## install every Debian package the build, tests and demo need (idempotent)
	$(Q)tools/deps.sh

# ---------------------------------------------------------------------------------------
# Generated protobuf code.
$(NANOPB)/pb.h:
	$(call msg,FETCH,nanopb $(NANOPB_VER) (Debian source package))
	$(Q)tools/fetch-nanopb.sh $(NANOPB_VER) $(CACHE)/src

# The runtime files appear with the fetch; make must know they can be made.
$(NANOPB_SRCS): $(NANOPB)/pb.h
	@:

$(GEN)/guest/%.pb.c $(GEN)/guest/%.pb.h: proto/%.proto $(wildcard proto/*.options proto/*/*.options \
		proto/*/*/*.options)
	$(call msg,NANOPB,$<)
	$(Q)mkdir -p $(GEN)/guest
	$(Q)cd proto && protoc --plugin=protoc-gen-nanopb=/usr/bin/protoc-gen-nanopb -I. \
		--nanopb_out=$(abspath $(GEN)/guest) $*.proto

$(GEN)/host/%.pb-c.c $(GEN)/host/%.pb-c.h: proto/%.proto
	$(call msg,PROTOC-C,$<)
	$(Q)mkdir -p $(GEN)/host
	$(Q)cd proto && protoc-c -I. --c_out=$(abspath $(GEN)/host) $*.proto

# The syscall table seccomp resolves names with, from the kernel's UAPI header.
$(GEN)/guest/syscalls.h: tools/gen-syscalls.sh
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)tools/gen-syscalls.sh > $@.tmp && mv $@.tmp $@

$(GUEST_INC)/.stamp:
	$(Q)mkdir -p $(GUEST_INC)
	$(Q)ln -sfn /usr/include/linux $(GUEST_INC)/linux
	$(Q)ln -sfn /usr/include/asm-generic $(GUEST_INC)/asm-generic
	$(Q)ln -sfn /usr/include/x86_64-linux-gnu/asm $(GUEST_INC)/asm
	$(Q)touch $@

# ---------------------------------------------------------------------------------------
# Guest init.
GUEST_PB_H := $(GUEST_PB:.c=.h) $(GEN)/guest/syscalls.h

$(OBJ)/guest/%.o: %.c Makefile $(GUEST_PB_H) $(NANOPB)/pb.h $(GUEST_INC)/.stamp
	$(call msg,MUSL-CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(MUSL_CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(OBJ)/guest/pb/%.o: $(GEN)/guest/%.c Makefile $(NANOPB)/pb.h $(GUEST_INC)/.stamp
	$(call msg,MUSL-CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(MUSL_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(OBJ)/guest/nanopb/%.o: $(NANOPB)/%.c Makefile $(GUEST_INC)/.stamp
	$(call msg,MUSL-CC,$(notdir $<))
	$(Q)mkdir -p $(dir $@)
	$(Q)$(MUSL_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BIN)/kuasar-init: $(GUEST_OBJS) ## the guest PID 1 (static musl, stripped)
	$(call msg,LINK,$@)
	$(Q)$(MUSL_CC) $(GUEST_LDFLAGS) -o $@ $^
	$(Q)strip -R .comment $@
	@printf '  %-8s %s: %s bytes (budget %s)\n' SIZE $@ $$(stat -c %s $@) $(INIT_MAX_BYTES)

guest: $(BIN)/kuasar-init

check-size: $(BIN)/kuasar-init ## fail if the init exceeds its size budget
	@size=$$(stat -c %s $<); [ $$size -le $(INIT_MAX_BYTES) ] || \
		{ echo "kuasar-init is $$size bytes, over the $(INIT_MAX_BYTES) byte budget"; exit 1; }

# ---------------------------------------------------------------------------------------
# initrd: a gzip newc cpio written by our own tool, no root needed, reproducible.
$(BIN)/mkcpio: tools/mkcpio.c
	$(call msg,CC,$<)
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $<

$(BIN)/kuasar.initrd: $(BIN)/kuasar-init $(BIN)/mkcpio guest/rootfs/initrd.list ## the initrd (kuasar-init as /init)
	$(call msg,CPIO,$@)
	$(Q)$(BIN)/mkcpio -C $(BIN) guest/rootfs/initrd.list | gzip -9 -n > $@.tmp && mv $@.tmp $@

# ---------------------------------------------------------------------------------------
# Kernel (cached outside the repo by a hash of its inputs).
KERNEL_INPUTS := $(wildcard kernel/configs/*.conf kernel/patches/*.patch) tools/build-kernel.sh

$(BIN)/vmlinux.bin $(BIN)/bzImage: $(KERNEL_INPUTS) ## the guest kernel (PVH vmlinux and bzImage)
	$(call msg,KERNEL,$(BIN)/vmlinux.bin $(BIN)/bzImage)
	$(Q)tools/build-kernel.sh $(BIN)
	$(Q)touch $(BIN)/vmlinux.bin $(BIN)/bzImage

kernel: $(BIN)/vmlinux.bin

check-kernel-config: $(BIN)/vmlinux.bin ## every requested kernel option is in the final config
	$(Q)tools/build-kernel.sh --check $(BIN)/kernel.config

# ---------------------------------------------------------------------------------------
# Disk image for hosts that boot from a disk.
$(BIN)/kuasar.img: $(BIN)/kuasar-init tools/mkimage.sh ## raw ext4 disk image with the same guest
	$(call msg,IMAGE,$@)
	$(Q)tools/mkimage.sh --init $(BIN)/kuasar-init --out $@

image: $(BIN)/kuasar.img

# ---------------------------------------------------------------------------------------
# Host tools: one archive per library layer folder (see HOST_LAYER_ORDER).
$(HOBJ)/host/%.o: host/%.c Makefile $(HOST_PB:.c=.h)
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(HOBJ)/host/pb/%.o: $(GEN)/host/%.c Makefile $(HOST_PB:.c=.h)
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out -Wshadow -Wmissing-prototypes,$(HOST_CFLAGS)) $(SAN_FLAGS) -c -o $@ $<

$(HOBJ)/libpb.a: $(patsubst $(GEN)/host/%.c,$(HOBJ)/host/pb/%.o,$(HOST_PB))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

.SECONDEXPANSION:
$(HOBJ)/lib%.a: $$(call host_objs,$$*)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/kuasar-ctl: $(CTL_OBJS) $(HOST_ARCHIVES) ## the host CLI
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(HOST_LIBS)

$(BIN)/kuasar-sandboxer: $(SANDBOXER_OBJS) $(HOST_ARCHIVES) ## the sandbox daemon for containerd
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(HOST_LIBS)
	$(Q)ln -sf kuasar-sandboxer $(BIN)/containerd-shim-kuasar-v1

host: $(BIN)/kuasar-ctl $(BIN)/kuasar-sandboxer

# ---------------------------------------------------------------------------------------
# Tests. Unit tests are built for the host; guest sources they test are compiled for the
# host too (glibc, the host's flags) into $(HOBJ)/hg. Every object tracks its headers.
TEST_CFLAGS := $(filter-out -Wshadow,$(HOST_CFLAGS)) $(SAN_FLAGS) -I$(GEN)/guest -I$(NANOPB) \
	-Iguest/init -Itests/unit
hg = $(patsubst guest/init/%.c,$(HOBJ)/hg/%.o,$(addprefix guest/init/,$(1)))

$(HOBJ)/hg/%.o: guest/init/%.c Makefile $(GUEST_PB_H) $(NANOPB)/pb.h
	$(call msg,CC,$< (host))
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

$(HOBJ)/hg/pb/%.o: $(GEN)/guest/%.c Makefile $(GUEST_PB_H) $(NANOPB)/pb.h
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out -Wmissing-prototypes,$(TEST_CFLAGS)) -c -o $@ $<

$(HOBJ)/hg/nanopb/%.o: $(NANOPB)/%.c Makefile $(NANOPB)/pb.h
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out -Wmissing-prototypes,$(TEST_CFLAGS)) -c -o $@ $<

# alloc.c replaces musl's malloc in PID 1; in a host test its functions get their own names.
$(HOBJ)/hg/alloc-renamed.o: guest/init/core/alloc.c Makefile
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) -fno-builtin -Dmalloc=k_malloc -Dfree=k_free -Dcalloc=k_calloc \
		-Drealloc=k_realloc -MMD -MP -c -o $@ $<

$(HOBJ)/tests/%.o: tests/%.c Makefile $(HOST_PB:.c=.h) $(GUEST_PB_H) $(NANOPB)/pb.h
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

# What each unit test links besides its own object; the host's tests link the archives.
OCI_TEST_OBJS := $(call hg,runtime/oci.c core/json.c core/fmt.c)
# The guest's server in one process with the host's client, over a socketpair.
LINK_TEST_GUEST := $(filter-out $(addprefix guest/init/,main/main.c main/boot.c wire/link.c \
	core/alloc.c),$(GUEST_SRCS))
$(TESTBIN)/test-fmt: $(call hg,core/fmt.c)
$(TESTBIN)/test-match: $(call hg,core/match.c)
$(TESTBIN)/test-json: $(call hg,core/json.c core/fmt.c)
$(TESTBIN)/test-alloc: $(HOBJ)/hg/alloc-renamed.o
$(TESTBIN)/test-seccomp: $(call hg,runtime/seccomp.c) $(OCI_TEST_OBJS)
$(TESTBIN)/test-oci: $(OCI_TEST_OBJS)
$(TESTBIN)/test-link: $(patsubst guest/init/%.c,$(HOBJ)/hg/%.o,$(LINK_TEST_GUEST)) \
	$(patsubst $(GEN)/guest/%.c,$(HOBJ)/hg/pb/%.o,$(GUEST_PB)) \
	$(patsubst $(NANOPB)/%.c,$(HOBJ)/hg/nanopb/%.o,$(NANOPB_SRCS)) $(HOST_ARCHIVES)
$(TESTBIN)/test-host $(TESTBIN)/test-sandboxer $(TESTBIN)/test-template $(TESTBIN)/test-proxy \
	$(TESTBIN)/test-qmp: \
	$(HOST_ARCHIVES)
$(TESTBIN)/test-sandboxer: $(HOBJ)/host/sandboxer/sb_cgroup.o $(HOBJ)/host/sandboxer/pod_resources.o
$(TESTBIN)/test-net: $(call hg,core/netlink.c core/fmt.c) $(HOST_ARCHIVES)
$(TESTBIN)/linkpoke $(TESTBIN)/grpcpoke: $(HOST_ARCHIVES)

$(TESTBIN)/test-%: $(HOBJ)/tests/unit/test-%.o
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(HOST_LIBS)

$(TESTBIN)/%: $(HOBJ)/tests/tools/%.o
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(HOST_LIBS)

# Fuzz targets (FUZZ=1 builds: clang, libFuzzer, ASan+UBSan). Each parses bytes from
# outside with the real code; tests/fuzz/corpus/<target>/ holds its seeds and regressions.
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz-*.c))
$(TESTBIN)/fuzz-guest-frames: $(patsubst guest/init/%.c,$(HOBJ)/hg/%.o,$(LINK_TEST_GUEST)) \
	$(patsubst $(GEN)/guest/%.c,$(HOBJ)/hg/pb/%.o,$(GUEST_PB)) \
	$(patsubst $(NANOPB)/%.c,$(HOBJ)/hg/nanopb/%.o,$(NANOPB_SRCS))
$(TESTBIN)/fuzz-guest-frames: FUZZ_LDFLAGS := -Wl,--wrap=adjtimex,--wrap=ioctl
$(TESTBIN)/fuzz-guest-oci: $(call hg,runtime/oci.c core/json.c core/fmt.c runtime/seccomp.c)
$(TESTBIN)/fuzz-guest-match: $(call hg,core/match.c)
# (before the archives: they are searched for what the objects before them need)
$(TESTBIN)/fuzz-pod-resize: $(HOBJ)/host/sandboxer/pod_resources.o
$(addprefix $(TESTBIN)/,fuzz-host-frames fuzz-proxy-result fuzz-config fuzz-bundle fuzz-qmp \
	fuzz-task-gone fuzz-grpc fuzz-taskproxy fuzz-rootdisk fuzz-pod-resize fuzz-shape): \
	$(HOST_ARCHIVES)

$(TESTBIN)/fuzz-%: $(HOBJ)/tests/fuzz/fuzz-%.o
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(subst fuzzer-no-link,fuzzer,$(SAN_FLAGS)) $(FUZZ_LDFLAGS) -o $@ $^ $(HOST_LIBS)

fuzz-build: ## build every fuzz target (clang + libFuzzer) into bin/fuzz
	$(Q)$(MAKE) --no-print-directory FUZZ=1 fuzz-targets

fuzz-targets: $(addprefix $(TESTBIN)/,$(FUZZ_TARGETS))

fuzz: fuzz-build ## run each fuzz target for FUZZ_SECONDS (default 300), growing bin/fuzz/corpus
	$(Q)tools/fuzz.sh run $(or $(FUZZ_SECONDS),300) $(FUZZ_TARGETS)

fuzz-regress: fuzz-build ## every fuzz target over its committed corpus (part of make check)
	$(Q)tools/fuzz.sh regress 0 $(FUZZ_TARGETS)

test-unit: $(UNIT_TESTS) ## C unit tests (TAP); SAN=1 for ASan+UBSan builds
	$(Q)TESTBIN=$(TESTBIN) tools/test.sh unit

# Static analysis. Suppressed checks, and why:
#   unreadVariable  protobuf-c messages are filled field by field, then passed by their base
#                   (&msg.base), which cppcheck does not follow;
#   variableScope   declarations at the top of a block are the house style;
#   constParameter  handlers and callbacks take the signature their table or hook fixes;
#   missingInclude* system, musl and generated headers are not cppcheck's to find.
CPPCHECK_FLAGS := --quiet --error-exitcode=1 --enable=warning,style,portability,performance \
	--inline-suppr --std=c11 -D_GNU_SOURCE -Ihost -I. --suppress=missingIncludeSystem \
	--suppress=missingInclude --suppress=unreadVariable --suppress=variableScope \
	--suppress=constParameter

# Functions of host/ and guest/ stay under FUNC_MAX_LINES (tests are sequences of checks
# and are not held to it). Exceptions would be listed here, FILE:FUNCTION, with the reason;
# there are none.
FUNC_MAX_LINES := 60
FUNC_LONG_OK :=

check-layers: $(HOST_ARCHIVES) $(CTL_OBJS) $(SANDBOXER_OBJS) $(BIN)/kuasar-init ## the layers, by includes and by symbols, host and guest
	$(call msg,LAYERS,host: $(HOST_LAYER_ORDER); guest: $(GUEST_LAYER_ORDER))
	$(Q)tools/check-layers.sh "$(HOST_LAYER_ORDER)" "$(GUEST_LAYER_ORDER)" $(OBJ) >/dev/null

check: ## format, cppcheck, the layer check, function sizes, unit tests under ASan+UBSan, the fuzz corpora
	$(call msg,FORMAT,clang-format --dry-run)
	$(Q)clang-format --dry-run --Werror $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')
	$(call msg,CPPCHECK,host guest/init)
	$(Q)cppcheck $(CPPCHECK_FLAGS) -j2 host guest/init
	$(Q)$(MAKE) --no-print-directory check-layers
	$(call msg,FUNCTIONS,at most $(FUNC_MAX_LINES) lines)
	$(Q)tools/check-functions.sh $(FUNC_MAX_LINES) $(FUNC_LONG_OK)
	$(Q)ASAN_OPTIONS=detect_stack_use_after_return=1 $(MAKE) --no-print-directory SAN=1 test-unit
	$(Q)$(MAKE) --no-print-directory fuzz-regress

test-bats: all $(BIN)/vmlinux.bin $(BIN)/tests/linkpoke $(BIN)/tests/grpcpoke $(BIN)/kuasar.img ## end-to-end tests against real QEMU VMs
	$(Q)tools/test.sh bats

TEST_DEPS := all $(BIN)/vmlinux.bin $(BIN)/kuasar.img $(BIN)/tests/linkpoke $(BIN)/tests/grpcpoke \
	$(UNIT_TESTS)

test: ## everything: deps, make check, build, unit and bats tests, one closing tally
	$(Q)$(MAKE) --no-print-directory deps
	$(Q)$(MAKE) --no-print-directory check
	$(Q)$(MAKE) --no-print-directory $(TEST_DEPS)
	$(Q)tools/test.sh

demo: ## boot a sandbox VM, print its timings, then run a busybox container in a sandbox
	$(Q)$(MAKE) -s --no-print-directory deps
	$(Q)$(MAKE) -s --no-print-directory all $(BIN)/vmlinux.bin
	$(Q)$(BIN)/kuasar-ctl boot --kernel $(BIN)/vmlinux.bin --initrd $(BIN)/kuasar.initrd
	$(Q)tests/make-bundle.sh $(BIN)/demo-bundle --hostname demo >/dev/null
	@echo '$$ kuasar-ctl run bin/demo-bundle -- sh -c "echo hello from $$(hostname), a container in its own VM; uname -r; id"'
	$(Q)t0=$$(date +%s%N); $(BIN)/kuasar-ctl run $(BIN)/demo-bundle -- \
		sh -c 'echo hello from $$(hostname), a container in its own VM; uname -r; id' && \
		echo "(sandbox boot, container run and shutdown: $$((($$(date +%s%N) - t0) / 1000000)) ms)"
	@echo '$$ kuasar-ctl template build; kuasar-ctl run --template ... (a sandbox restored from a VM template)'
	$(Q)export KUASAR_TEMPLATE_DIR=$(abspath $(BIN))/demo-templates KUASAR_TEMPLATE_MEM_DIR=/dev/shm/kuasar-demo; \
		$(BIN)/kuasar-ctl template build && \
		t0=$$(date +%s%N); $(BIN)/kuasar-ctl run --template $(BIN)/demo-bundle -- \
		sh -c 'echo hello again from $$(hostname), restored from a template' && \
		echo "(restore, container run and shutdown: $$((($$(date +%s%N) - t0) / 1000000)) ms)"; \
		rc=$$?; $(BIN)/kuasar-ctl template rm --all >/dev/null; rmdir "$$KUASAR_TEMPLATE_MEM_DIR"; exit $$rc

demo-cri: ## the same through stock containerd's CRI: a pod in its own VM via kuasar-sandboxer
	$(Q)$(MAKE) -s --no-print-directory deps
	$(Q)$(MAKE) -s --no-print-directory all $(BIN)/vmlinux.bin
	$(Q)tools/demo-cri.sh

PREFIX ?= /usr/local
install: all $(BIN)/vmlinux.bin ## install the binaries, kernel, initrd, systemd unit and configs
	install -D -m 0755 $(BIN)/kuasar-sandboxer $(DESTDIR)$(PREFIX)/bin/kuasar-sandboxer
	install -D -m 0755 $(BIN)/kuasar-ctl $(DESTDIR)$(PREFIX)/bin/kuasar-ctl
	ln -sf kuasar-sandboxer $(DESTDIR)$(PREFIX)/bin/containerd-shim-kuasar-v1
	install -D -m 0644 $(BIN)/vmlinux.bin $(DESTDIR)/var/lib/kuasar/vmlinux.bin
	install -D -m 0644 $(BIN)/kuasar.initrd $(DESTDIR)/var/lib/kuasar/kuasar.initrd
	[ -e $(DESTDIR)/var/lib/kuasar/config.toml ] || \
		install -D -m 0644 image/config.toml $(DESTDIR)/var/lib/kuasar/config.toml
	install -D -m 0644 image/systemd/kuasar-sandboxer.service \
		$(DESTDIR)/etc/systemd/system/kuasar-sandboxer.service
	install -D -m 0644 image/containerd/kuasar.toml $(DESTDIR)$(PREFIX)/share/kuasar/containerd-kuasar.toml
	install -D -m 0644 image/kubernetes/runtimeclass.yaml $(DESTDIR)$(PREFIX)/share/kuasar/runtimeclass.yaml
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/kuasar/README.md

bench-boot: all $(BIN)/vmlinux.bin ## cold boot: our kernel vs Debian's distro kernel
	$(Q)tools/bench-boot.sh

bench-container: all $(BIN)/vmlinux.bin ## container start in a running sandbox vs exec; rootfs over 9p vs as a disk
	$(Q)tests/make-bundle.sh $(BIN)/bench-bundle -- echo started >/dev/null
	$(Q)$(BIN)/kuasar-ctl bench container $(BIN)/bench-bundle -n 21
	$(Q)tools/bench-rootfs.sh 9

bench-pod: all $(BIN)/vmlinux.bin ## pod start via containerd's CRI: kuasar vs runc; sandboxer memory
	$(Q)tools/bench-pod.sh

bench-fork: all $(BIN)/vmlinux.bin ## fork of a running appliance: snapshot pause, 1 and 10 forks to their first answer vs restore vs cold; USS per fork
	$(Q)tools/bench-appliance.sh fork

bench-pod-fork: all $(BIN)/vmlinux.bin ## fork of a running pod via containerd: snapshot pause; pods from its snapshot vs from the template, to the first answer; USS
	$(Q)tools/bench-pod-fork.sh

bench-pool: all $(BIN)/vmlinux.bin ## pod start with the warm pool on vs off vs runc (CNI); a burst of 10; USS per pooled VM
	$(Q)tools/bench-pool.sh

stress: all $(BIN)/vmlinux.bin $(BIN)/tests/grpcpoke ## the long hardening run (not in CI): 200 churn cycles, flat fds and RSS
	$(Q)STRESS_CYCLES=$(or $(STRESS_CYCLES),200) bats --tap tests/bats/100-hardening.bats

bench-density: all $(BIN)/vmlinux.bin ## idle pods at 10, 30, 60: CPU and PSS per idle pod, pod start at that density; kuasar vs runc
	$(Q)tools/bench-density.sh

bench-net: all $(BIN)/vmlinux.bin ## pod network: VM pod vs runc pod data path; pod start with vs without CNI
	$(Q)tools/bench-net.sh

bench-startup: all $(BIN)/vmlinux.bin ## sandbox start: template restore vs bare VMM floor vs cold boot; memory
	$(Q)mkdir -p $(BIN)/bench
	$(Q)export KUASAR_TEMPLATE_DIR=$(abspath $(BIN))/bench/templates \
		KUASAR_TEMPLATE_MEM_DIR=/dev/shm/kuasar-bench; \
		$(BIN)/kuasar-ctl bench startup -n 30 -k 5 --json $(BIN)/bench/startup.json \
		--svg $(BIN)/bench/startup.svg; rc=$$?; \
		$(BIN)/kuasar-ctl template rm --all >/dev/null; rmdir "$$KUASAR_TEMPLATE_MEM_DIR"; exit $$rc

bench-appliance: all $(BIN)/vmlinux.bin ## appliances: restore vs cold boot to the first HTTP answer, vs the VMM floor; memory
	$(Q)tools/bench-appliance.sh

critest: all $(BIN)/vmlinux.bin ## the CRI validation suite, runc vs kuasar (CRITOOLS_SRC=cri-tools tree; not in CI)
	$(Q)tools/critest.sh

bench: bench-startup bench-boot bench-container bench-pod bench-pool bench-density bench-net bench-appliance bench-fork bench-pod-fork ## every benchmark (ratios against a baseline in the same run)

format: ## clang-format every C source
	$(Q)clang-format -i $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

clean: ## remove bin/
	rm -rf $(BIN)

distclean: clean ## also remove the cache (kernel builds, sources)
	rm -rf $(CACHE)

-include $(shell find $(BIN) -name '*.d' 2>/dev/null)
