# prune-tokens: see README.md. `make test` is what CI runs (via .ci/run).
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

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
test: fmt-check vet duckdb
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

clean:
	rm -rf bin
