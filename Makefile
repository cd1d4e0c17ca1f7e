# whoami: a tiny Go web service and the two Dockerfiles that show why
# multistage builds matter. Run `make` for the list of targets.

# Everything below can be overridden: make build VERSION=v1.0.0
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO       ?= go
BIN      ?= bin/whoami
# The same build flags as the image: static, no local paths, no symbol table.
GOFLAGS_BUILD = -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build ./bin/whoami with the image's flags
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) .

.PHONY: run
run: build ## Build and run the service on :8080 (Ctrl-C stops it)
	./$(BIN)

.PHONY: test
test: lint ## Run vet, the gofmt check and every test (unit and container)
	$(GO) test -race -count=1 ./...

.PHONY: lint
lint: ## Run go vet and fail if gofmt would change a file
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

.PHONY: bench-go
bench-go: ## Benchmark the handler (go test -bench)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 .
