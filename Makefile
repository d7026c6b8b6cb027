# lb: build, test, demo and benchmark entry points. Every target works on a fresh Debian 12 machine
# as root: `make setup` installs what the others need and is safe to run again.

SHELL := /bin/bash
CLANG ?= clang
ARCH_INCLUDE := /usr/include/$(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
BPF_CFLAGS := -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I bpf/include -I bpf/lib -I $(ARCH_INCLUDE)
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,build/bpf/%.bpf.o,$(BPF_SRCS))
BPF_DEPS := $(wildcard bpf/include/*.h bpf/lib/*.h)
# The native SNI front door (native/: lb_door.c and the files it is split into): a user-space program, built with the same clang.
DOOR_CFLAGS := -O2 -g -Wall -Wextra -Werror -std=gnu11 -I native -I bpf/include -I bpf/lib
APT_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool iproute2 ethtool curl netcat-openbsd openssl git \
	netsniff-ng wrk nftables procps psmisc gcc make gnupg zsh jq util-linux traceroute prometheus haproxy

.PHONY: all setup build bpf native ts check lint test test-unit test-privileged demo demo-clean bench clean errors-doc

all: build

# Idempotent: apt only when something is missing, npm ci only when the lock file changed.
setup:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

build: bpf native ts

bpf: $(BPF_OBJS)

native: build/native/lb-door

DOOR_SRCS := $(wildcard native/*.c)
build/native/lb-door: $(DOOR_SRCS) $(wildcard native/*.h) bpf/lib/hash.h bpf/include/lb_abi.h
	@mkdir -p build/native
	$(CLANG) $(DOOR_CFLAGS) -o $@ $(DOOR_SRCS)

build/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_DEPS)
	@mkdir -p build/bpf
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# dist/commit: the commit `lb version` reports when it runs outside a git checkout.
# The config schema is precompiled to ajv standalone code next to dist/src/core/config/schema.js,
# so no run compiles it (src/core/config/schema.ts; without it the schema is compiled at run time).
ts:
	npx tsc -p tsconfig.build.json
	node scripts/precompile-schema.mjs
	@git rev-parse HEAD > dist/commit 2>/dev/null || rm -f dist/commit

# The lint (fast rules) first: CI runs this target, so the tree stays lint-clean.
test: setup build
	LB_LINT_TYPED=0 npx eslint .
	npx vitest run

# Without root and without built objects: the type check, the lint and the pure unit tests. The lint
# here skips the type-aware rules (`make lint` runs them) and runs beside tsc on the other CPU.
check:
	@echo 'npx tsc -p tsconfig.json --noEmit & LB_LINT_TYPED=0 npx eslint .'; \
	npx tsc -p tsconfig.json --noEmit & tsc=$$!; \
	LB_LINT_TYPED=0 npx eslint .; lint=$$?; \
	wait $$tsc && [ $$lint -eq 0 ]
	npx vitest run --project unit

# Every rule, the type-aware ones included. Rules and why: docs/testing.md, "Lint".
lint:
	npx eslint .

test-unit:
	npx vitest run --project unit

test-privileged: setup build
	npx vitest run --project privileged

demo: setup build
	node dist/src/demo/main.js $(DEMO_ARGS)

# Takes down a demo left running with DEMO_ARGS=--keep (or by a crash).
demo-clean:
	node dist/src/demo/main.js --clean

bench: setup build
	node dist/bench/main.js $(BENCH_ARGS)

clean:
	rm -rf build dist

errors-doc: ts
	node scripts/errors-doc.mjs
