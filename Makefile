# prune-tokens: see README.md. `make test` is what CI runs (via .ci/run).
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The commit too, for builds where Go records no VCS stamp (-buildvcs=false,
# git worktrees); `prune-tokens version` prints it.
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
COMMIT_TIME ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
COMMIT_MODIFIED ?= $(shell git rev-parse -q --verify HEAD >/dev/null 2>&1 && { git diff --quiet HEAD || echo true; })
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.commitTime=$(COMMIT_TIME) -X main.commitModified=$(COMMIT_MODIFIED)

.PHONY: all build test vet fmt-check bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/prune-tokens ./cmd/prune-tokens

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# Integration tests run against the MariaDB in PRUNE_TOKENS_TEST_DSN
# (default root@tcp(127.0.0.1:3306)/); with CI set they fail if it is down.
test: fmt-check vet docs-check duckdb
	$(GO) test -race -count=1 -timeout 30m ./...

# DuckDB (npm @duckdb/node-api, pinned in testdata/duckdb/package-lock.json)
# reads a manifest in the tests, to prove other Parquet readers can. The stamp
# is node_modules' own lock copy, so npm ci runs again only when the lock changes.
DUCKDB_STAMP := testdata/duckdb/node_modules/.package-lock.json
.PHONY: duckdb
duckdb: $(DUCKDB_STAMP)
$(DUCKDB_STAMP): testdata/duckdb/package.json testdata/duckdb/package-lock.json
	npm ci --prefix testdata/duckdb --no-audit --no-fund
	@touch $@

# Fuzzing: the manifest reader, the checkpoint reader, the duration parser and
# the session cache's JSON member cutter must turn any input into a clean
# error, never a panic. make test replays the seeds and every kept find (plain
# go test does), which is deterministic; exploring is random, so it is not in
# make test, where a new find would fail an unrelated change: make fuzz
# explores (FUZZTIME each) and keeps finds in testdata/fuzz to commit.
FUZZ_TARGETS := ./manifest:FuzzManifest ./manifest:FuzzManifestRows ./applier:FuzzCheckpoint ./internal/duration:FuzzParse ./internal/sessioncache:FuzzCut
FUZZTIME ?= 5m
# Go minimizes every new interesting input for up to 60 s by default, which
# can take a whole 10 s smoke run (each run re-snapshots the coverage of a
# large test binary); a bounded number of tries keeps the time for fuzzing.
FUZZMINIMIZE ?= 100x
# Go 1.26's fuzzing coordinator can fail a target with "context deadline
# exceeded", and no failing input, when the -fuzztime deadline meets a worker
# mid-run (golang/go#75804, fixed in Go 1.27); it failed CI once so. Such a
# run, and only such a run, is tried once more: any other failure, or one
# that wrote a failing input, fails at once. (An execution count instead of
# a duration avoids the race but let a manifest target run 30 s and more.)
.PHONY: fuzz fuzz-smoke test-faults
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=10s
fuzz:
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn ($$pkg, $(FUZZTIME))"; \
		for try in 1 2; do \
			if $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) $$pkg >$$log 2>&1; then break; fi; \
			if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
				echo "fuzz $$fn: the fuzzing deadline race (golang/go#75804), no failing input; once more"; continue; fi; \
			grep -v '^parquet: warning' $$log | tail -40; exit 1; \
		done; \
	done

# Slow process-level fault tests (private MariaDB servers killed mid-apply,
# connections cut, disk full, least privilege, secrets); .ci/run runs them too.
test-faults:
	$(GO) test -race -count=1 -tags faults -timeout 40m ./internal/test/faults/

clean:
	rm -rf bin dist

# make install [PREFIX=/usr/local] [DESTDIR=staging dir for a package]: the
# binary, its man page and its bash and zsh completion, all from the binary
# just built (so they match it even if docs/ is stale).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR   = $(DESTDIR)$(PREFIX)/bin
MAN1DIR  = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR  = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR   = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
.PHONY: install
install: build
	install -d "$(BINDIR)" "$(MAN1DIR)" "$(BASHDIR)" "$(ZSHDIR)"
	install -m 0755 bin/prune-tokens "$(BINDIR)/prune-tokens"
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	bin/prune-tokens docs --dir $$tmp && \
	bin/prune-tokens completion bash >$$tmp/bash && \
	bin/prune-tokens completion zsh >$$tmp/zsh && \
	install -m 0644 $$tmp/prune-tokens.1 "$(MAN1DIR)/prune-tokens.1" && \
	install -m 0644 $$tmp/bash "$(BASHDIR)/prune-tokens" && \
	install -m 0644 $$tmp/zsh "$(ZSHDIR)/_prune-tokens"
	@echo "installed prune-tokens, its man page and bash and zsh completion under $(DESTDIR)$(PREFIX)"

# make release: static binaries (no cgo, -trimpath) for each platform,
# dist/prune-tokens-VERSION-OS-ARCH, and dist/SHA256SUMS (check them with
# `cd dist && sha256sum -c SHA256SUMS`). dist/ is emptied first. Release
# from a clean checkout: a VERSION ending in -dirty names no commit.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
.PHONY: release
release:
	rm -rf dist && mkdir dist
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%%/*}; arch=$${p##*/}; out=dist/prune-tokens-$(VERSION)-$$os-$$arch; \
		echo "$$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $$out ./cmd/prune-tokens; \
	done
	cd dist && sha256sum prune-tokens-* >SHA256SUMS
	@case "$(VERSION)" in *-dirty) echo "warning: VERSION $(VERSION): built from uncommitted changes";; esac

# docs/flags.md and the man page docs/prune-tokens.1, generated from the
# command definitions (the hidden command `prune-tokens docs`); docs-check,
# part of make test, fails when the checked-in copies are stale.
DOCS := flags.md prune-tokens.1
.PHONY: docs docs-check
docs:
	$(GO) run ./cmd/prune-tokens docs --dir docs
docs-check:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(GO) run ./cmd/prune-tokens docs --dir $$tmp || exit 1; \
	for f in $(DOCS); do \
		if ! diff -u docs/$$f $$tmp/$$f; then echo "docs/$$f is stale: run make docs"; exit 1; fi; \
	done

# The README's story (plan → review → apply, interrupted, resumed) on the
# embedded go-mysql-server sandbox: needs no MySQL. DEMO_DSN='user:pass@tcp(host:3306)/'
# runs it on a real MySQL/MariaDB instead, in a database it creates and drops.
.PHONY: demo sandbox build-sandbox
build-sandbox:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/prune-tokens-sandbox ./cmd/prune-tokens-sandbox
demo: build build-sandbox
	bin/prune-tokens-sandbox demo --bin bin/prune-tokens

# A seeded sandbox to try commands by hand, until Ctrl-C.
SANDBOX_LISTEN ?= 127.0.0.1:3307
sandbox: build build-sandbox
	bin/prune-tokens-sandbox --listen $(SANDBOX_LISTEN)

# Benchmarks (outside make test): plan at two sizes and apply at batch sizes
# 1, 100 and 1000 against baselines measured in the same run. Takes ~20 min.
# BENCH_FLAGS narrows it, e.g. BENCH_FLAGS="--plan-sessions 100000 --skip-apply".
BENCH_FLAGS ?=
bench: build
	$(GO) run ./cmd/prune-tokens-bench --bin bin/prune-tokens $(BENCH_FLAGS)
