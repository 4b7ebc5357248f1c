# riskd. `make run` runs the server on its embedded defaults; `make test` runs
# every test with the race detector.
GO       ?= go
BUF      := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
BIN      := bin

.PHONY: all build run test test-short generate checkgenerate lint vet tidy-check bench bench-redis quality fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	./$(BIN)/riskd

test:
	$(GO) test -race -count=1 -timeout 15m ./...

test-short:
	$(GO) test -short -count=1 ./...

generate:
	$(BUF) generate
	$(BUF) lint

# Fails when the committed generated code differs from what `make generate` writes.
checkgenerate: generate
	@git diff --exit-code -- api/gen || (echo "api/gen is stale: run make generate and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- api/gen)" || (echo "api/gen has untracked files: run make generate and commit" >&2; git status --porcelain -- api/gen; exit 1)

lint: vet
	$(BUF) lint
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

vet:
	$(GO) vet ./...

tidy-check:
	$(GO) mod tidy -diff

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

# riskd's feature engine against the same features on Redis (its own module,
# bench/redisbench): starts and stops a throwaway redis-server.
bench-redis:
	bench/redisbench/run.sh

# Detection quality on a larger labelled stream than CI's (bench/quality.sh:
# SEEDS, RATES, ACCOUNTS, DURATION); fails when a target is missed.
quality:
	bench/quality.sh

fuzz:
	./.ci/fuzz

clean:
	rm -rf $(BIN)
