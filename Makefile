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
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 30m ./...

clean:
	rm -rf bin
