# stella — Export Center CLI. `make demo` runs the main job; `make test` runs the tests.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/stellaops/stella/internal/cli.Version=$(VERSION)
BIN := bin/stella
DEMO_DIR ?= $(CURDIR)/.demo

.PHONY: build demo test test-short tools vet fmt bench fuzz clean

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/stella

# Build a json:raw bundle from the bundled sample evidence, watch it, verify it.
demo: build
	@scripts/demo.sh $(BIN) $(DEMO_DIR)

# Installs the pinned third-party test clients (cosign, trivy, age, registry) into
# a cache outside the tree (~/.cache/stella-tools) and links them into ./bin.
tools:
	tools/install.sh

# The whole test suite, with the real third-party clients as oracles.
test: tools build
	STELLA_REQUIRE_ORACLES=1 $(GO) test -count=1 -timeout 40m ./...

# Unit tests only (no oracles required; oracle tests skip when absent).
test-short:
	$(GO) test -short -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	@if [ -x bin/staticcheck ]; then bin/staticcheck ./...; else echo "staticcheck not installed (tools/install.sh staticcheck)"; fi

bench: build
	@scripts/bench.sh

fuzz:
	$(GO) test ./internal/evidence/ -run '^$$' -fuzz FuzzParse -fuzztime 30s
	$(GO) test ./internal/bundle/ -run '^$$' -fuzz FuzzWalkArchive -fuzztime 30s
	$(GO) test ./internal/evidence/ -run '^$$' -fuzz FuzzFastDecode -fuzztime 30s
	$(GO) test ./internal/canon/ -run '^$$' -fuzz FuzzAppendString -fuzztime 30s
	$(GO) test ./internal/mirror/ -run '^$$' -fuzz FuzzRecordState -fuzztime 30s
	$(GO) test ./internal/mirror/ -run '^$$' -fuzz FuzzIndexReader -fuzztime 30s
	$(GO) test ./internal/statcache/ -run '^$$' -fuzz FuzzDocList -fuzztime 30s
	$(GO) test ./internal/mirror/ -run '^$$' -fuzz FuzzTopString -fuzztime 30s
	$(GO) test ./internal/evidence/ -run '^$$' -fuzz FuzzRawLine -fuzztime 30s

clean:
	rm -rf bin/stella dist .demo .bench
