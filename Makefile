# maskmesh — read top to bottom.
#
#   make              build every binary into bin/
#   make test         install what is missing (hack/install-deps.sh), build, run every test
#   make test-asan    the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-valgrind unit tests under valgrind (memcheck, leaks are errors)
#   make test-kafka   maskmesh-stream against a real Kafka broker it starts (Java, ~3 min)
#   make test-k8s-live lib/k8s, the controller and the recorded wire samples on the real
#                     kube-apiserver (etcd + apiserver + controller-manager; hack/test-k8s-live.sh)
#   make fuzz         each libFuzzer target for FUZZ_SECONDS (clang)
#   make bench        the benchmarks (prints figures and ratios measured in the same run)
#   make demo         the local system, narrated (README)
#   make cluster-up   a real single-node Kubernetes on this machine (root; hack/k8s/README.md)
#   make e2e-cluster  cluster-up, maskmesh's images into it, the e2e suite, cluster-down
#
# Layout: lib/<m>/*.c is module <m> (lib/<m>/<m>.h its public header, lib/<m>/module.mk says
# `<m>_DEPS := other modules` and `<m>_PKGS := the pkg-config packages its own files use`);
# lib/<m>/test_*.c are its cmocka tests; tests/<m>/check_*.c check it against the API
# stand-in; cmd/<b>/*.c is binary <b> (cmd/<b>/module.mk says `<b>_MODULES := modules it
# links`, and `<b>_PKGS` if its own files use a package); fuzz/fuzz_*.c are libFuzzer targets
# (fuzz/module.mk says `fuzz_<name>_MODULES := ...`). A binary links the packages of the
# modules it links and no others (`ldd bin/*`: only maskmesh-stream has librdkafka).

# The targets people type first install dependencies, then run the real work with the
# pkg-config flags that are only known once the -dev packages are there.
ifndef MM_DEPS_OK
.DEFAULT_GOAL := all
ENTRY := all test test-asan test-valgrind test-unit test-integration test-kafka test-k8s-live fuzz fuzz-build bench demo \
         demo-engine e2e-local e2e e2e-cluster lint format
.PHONY: $(ENTRY) deps clean
$(ENTRY): deps
	@$(MAKE) --no-print-directory MM_DEPS_OK=1 $@
deps:
	@hack/install-deps.sh build
clean:
	rm -rf bin build build-asan build-fuzz
else
.DEFAULT_GOAL := all

BUILD   ?= build
BIN     ?= bin
CC      ?= cc
# every package some module uses: all compile with their include flags; each binary links
# only its modules' (pkg_libs below)
PKGS    := libmicrohttpd libcurl openssl json-c yaml-0.1 libpcre2-8 zlib gnutls rdkafka libnghttp2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
$(foreach p,$(PKGS),$(eval PKG_LIBS_$(p) := $(shell pkg-config --libs $(p))))
CMOCKA_LIBS := $(shell pkg-config --libs cmocka)

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN_FLAGS) -Ilib $(PKG_CFLAGS) -MMD -MP
LDFLAGS ?=
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)

MODULES := $(patsubst lib/%/,%,$(sort $(dir $(wildcard lib/*/*.c))))
CMDS    := $(patsubst cmd/%/,%,$(sort $(dir $(wildcard cmd/*/*.c))))
-include $(wildcard lib/*/module.mk) $(wildcard cmd/*/module.mk) fuzz/module.mk

# module archives: build/lib/libmm_<m>.a
lib_srcs = $(filter-out lib/$(1)/test_%.c,$(wildcard lib/$(1)/*.c))
lib_objs = $(patsubst %.c,$(BUILD)/%.o,$(call lib_srcs,$(1)))
lib_a    = $(BUILD)/lib/libmm_$(1).a
# a module's archive plus, transitively, those it depends on
mods_closure = $(sort $(foreach m,$(1),$(m) $(if $($(m)_DEPS),$(call mods_closure,$($(m)_DEPS)))))
link_libs = -Wl,--start-group $(foreach m,$(call mods_closure,$(1)),$(call lib_a,$(m))) -Wl,--end-group
# the libraries of the packages that modules $(1) (with theirs) and the extra packages $(2) use
pkg_libs = $(foreach p,$(sort $(2) $(foreach m,$(call mods_closure,$(1)),$($(m)_PKGS))),$(PKG_LIBS_$(p))) -lpthread -lm

define MODULE_RULES
$(call lib_a,$(1)): $(call lib_objs,$(1))
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call MODULE_RULES,$(m))))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# binaries
define CMD_RULES
$(BIN)/$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/$(1)/*.c)) $(foreach m,$(call mods_closure,$($(1)_MODULES)),$(call lib_a,$(m)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_LDFLAGS) -o $$@ $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/$(1)/*.c)) $(call link_libs,$($(1)_MODULES)) $(call pkg_libs,$($(1)_MODULES),$($(1)_PKGS))
endef
$(foreach c,$(CMDS),$(eval $(call CMD_RULES,$(c))))

# test tools (servers and clients the integration tests and benches start):
# tests/tools/<t>/*.c -> build/tools/<t>, linking `<t>_MODULES` from tests/tools/<t>/module.mk
TOOLS := $(patsubst tests/tools/%/,%,$(sort $(dir $(wildcard tests/tools/*/*.c))))
-include $(wildcard tests/tools/*/module.mk)
define TOOL_RULES
$(BUILD)/tools/$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/tools/$(1)/*.c)) $(foreach m,$(call mods_closure,$($(1)_MODULES)),$(call lib_a,$(m)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_LDFLAGS) -o $$@ $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/tools/$(1)/*.c)) $(call link_libs,$($(1)_MODULES)) $(call pkg_libs,$($(1)_MODULES),$($(1)_PKGS))
endef
$(foreach t,$(TOOLS),$(eval $(call TOOL_RULES,$(t))))

# unit tests: lib/<m>/test_<x>.c -> build/tests/<m>/test_<x>
UNIT_SRCS := $(wildcard lib/*/test_*.c)
UNIT_BINS := $(patsubst lib/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
define UNIT_RULES
$(BUILD)/tests/$(1)/%: lib/$(1)/%.c $(foreach m,$(call mods_closure,$(1)),$(call lib_a,$(m)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $$@ $$< $(call link_libs,$(1)) $(call pkg_libs,$(1)) $(CMOCKA_LIBS)
endef
$(foreach m,$(MODULES),$(eval $(call UNIT_RULES,$(m))))

# checks against the API stand-in: tests/<m>/check_<x>.c -> build/tests/<m>/check_<x>, linked
# like module <m>'s unit tests. Named check_* (not test_*) so the unit runner leaves them to
# the integration test that starts the stand-in (tests/integration/test_k8s_client).
CHECK_SRCS := $(wildcard tests/*/check_*.c)
CHECK_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(CHECK_SRCS))
define CHECK_RULES
$(BUILD)/tests/$(1)/check_%: tests/$(1)/check_%.c $(foreach m,$(call mods_closure,$(1)),$(call lib_a,$(m)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $$@ $$< $(call link_libs,$(1)) $(call pkg_libs,$(1)) $(CMOCKA_LIBS)
endef
$(foreach m,$(MODULES),$(eval $(call CHECK_RULES,$(m))))
# moved to tests/k8s/check_client.c: a build tree from before still names it in a .d file
lib/k8s/integration/check_client.c:

.PHONY: all build units test test-unit test-integration test-kafka test-k8s-live test-asan test-valgrind fuzz fuzz-build \
        bench demo demo-engine e2e-local e2e e2e-cluster lint format
all: $(addprefix $(BIN)/,$(CMDS))
build: all
units: $(UNIT_BINS) $(CHECK_BINS) $(addprefix $(BUILD)/tools/,$(TOOLS))

# Every test: unit (cmocka), golden, integration, the API stand-in's own suite. The runner
# prints one `N passed, N failed` line at the end and fails if anything failed.
test: all units
	@hack/run-tests.sh --build $(BUILD) --bin $(BIN) all

test-unit: units
	@hack/run-tests.sh --build $(BUILD) --bin $(BIN) unit

test-integration: all
	@hack/run-tests.sh --build $(BUILD) --bin $(BIN) integration

# The stream tests start their own broker (tests/kafka/broker.sh: Kafka's jars from Maven
# Central, cached in ~/.cache/maskmesh/kafka) and read the output with confluent-kafka.
test-kafka: all
	@hack/install-deps.sh kafka
	@hack/run-tests.sh --build $(BUILD) --bin $(BIN) kafka

# The checks the stand-in runs, on the real kube-apiserver of hack/k8s/build.sh's release
# (built into its cache outside the clone when missing: minutes) with Debian's etcd.
test-k8s-live: all units
	@command -v etcd >/dev/null || hack/install-deps.sh cluster
	@hack/test-k8s-live.sh --build $(BUILD) --bin $(BIN)

# Sanitizers: separate build tree so normal and sanitized objects never mix.
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-asan:
	@$(MAKE) --no-print-directory MM_DEPS_OK=1 BUILD=build-asan BIN=build-asan/bin \
	    CFLAGS="-O1 -g" SAN_FLAGS="$(ASAN_FLAGS)" all units
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 MM_SANITIZED=1 \
	    hack/run-tests.sh --build build-asan --bin build-asan/bin unit golden integration

test-valgrind: units
	@MM_VALGRIND=1 hack/run-tests.sh --build $(BUILD) --bin $(BIN) unit

# libFuzzer: clang, its own tree. FUZZ_SECONDS bounds each target.
FUZZ_SECONDS ?= 30
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst fuzz/%.c,build-fuzz/fuzz/%,$(FUZZ_SRCS))
fuzz-build:
	@$(MAKE) --no-print-directory MM_DEPS_OK=1 BUILD=build-fuzz BIN=build-fuzz/bin CC=clang \
	    CFLAGS="-O1 -g -DMM_FUZZING" SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize=fuzzer-no-link" \
	    $(FUZZ_BINS)
fuzz: fuzz-build
	@hack/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

define FUZZ_RULES
build-fuzz/fuzz/$(1): fuzz/$(1).c $(foreach m,$(call mods_closure,$($(1)_MODULES)),$(call lib_a,$(m)))
	@mkdir -p $$(dir $$@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(ALL_LDFLAGS) -o $$@ $$< $(call link_libs,$($(1)_MODULES)) $(call pkg_libs,$($(1)_MODULES))
endef
$(foreach f,$(patsubst fuzz/%.c,%,$(FUZZ_SRCS)),$(eval $(call FUZZ_RULES,$(f))))

bench: all
	@hack/install-deps.sh bench
	@bench/run.sh

# The whole system on this machine (API stand-in, controller, webhook, proxy, an app): told
# for a person (demo) or asserted (e2e-local, run in CI). demo-engine: maskctl on sample data.
demo: all
	@MM_BIN=$(abspath $(BIN)) e2e/local.py --narrate

e2e-local: all
	@MM_BIN=$(abspath $(BIN)) e2e/local.py

demo-engine: all
	@hack/demo.sh

# kind: a real cluster with Docker (hack/kind.env pins kind and the node image)
e2e: all units
	@e2e/kind.sh

# the same suite on a real single-node cluster built here from the Kubernetes release modules
e2e-cluster: all units
	@e2e/cluster.sh

lint: all
	@hack/lint.sh

format:
	clang-format -i $(wildcard lib/*/*.[ch] cmd/*/*.[ch] fuzz/*.c)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

endif

# container images (make images, images-push, image-list): names and tags in hack/images.env
include hack/images.mk

# the local cluster (root): hack/cluster-up.sh prints KUBECONFIG and PATH for kubectl
.PHONY: cluster-up cluster-down images-oci
cluster-up:
	@hack/cluster-up.sh
cluster-down:
	@hack/cluster-down.sh
# maskmesh's images as OCI archives (build/oci/project), for ctr import; no Docker needed
images-oci:
	@$(MAKE) --no-print-directory all units
	@hack/oci/images.sh project
