# whoami: a tiny Go web service and the two Dockerfiles that show why
# multistage builds matter. Run `make` for the list of targets.

# The facts shared with Compose and provisioning: image names and tags, the
# port, the registry, the versions of what is provisioned.
include .env

# Everything can be overridden: make image-multi VERSION=v1.0.0 PLATFORM=linux/arm/v7
GO_VERSION   ?= $(shell sed -n 's/^go //p' go.mod)
GOLANG_IMAGE ?= golang:$(GO_VERSION)-bookworm
PLATFORM     ?=
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION     ?= $(shell git rev-parse HEAD 2>/dev/null)
# The remote's URL without its user information: a CI job's token must not
# end up in an image's label.
SOURCE       ?= $(shell git remote get-url origin 2>/dev/null | sed -E 's|^([a-z+]+://)[^/@]*@|\1|')
# The commit's time, not the clock's: rebuilding a commit gives the same image.
CREATED      ?= $(shell TZ=UTC git log -1 --date=iso-strict-local --format=%cd 2>/dev/null)
DOCKER       ?= docker
COMPOSE      ?= $(DOCKER) compose
GO           ?= go
BIN          ?= bin/whoami
FUZZTIME     ?= 15s
# make release: PLATFORMS (.env's six by default), with or without BuildKit's cache.
NO_CACHE     ?=
ALLOW_DIRTY  ?=
# The project's Kubernetes cluster (make k8s-up).
CLUSTER      ?= deploy/kubernetes/cluster/cluster.sh

SINGLE = $(IMAGE):$(SINGLE_TAG)
MULTI  = $(IMAGE):$(MULTI_TAG)
# The same build flags as the image: static, no local paths, no symbol table.
GO_BUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {gsub(/\$$\$$/, "$$", $$2); printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: compare-sizes
compare-sizes: image-single image-multi ## Build both images and print their sizes side by side
	@scripts/compare-sizes.sh $(GOLANG_IMAGE) $(SINGLE) $(MULTI)

.PHONY: test
test: lint docker-ready ## Run the linters and every test: unit, container (e2e), load balancer, release, manifests, cluster; a short fuzz
	$(GO) test -race -count=1 -p 1 -tags e2e -timeout 30m ./...
	cd deploy/kubernetes && $(GO) test -count=1 ./...
	$(CLUSTER) run $(GO) test -tags cluster -count=1 -timeout 30m -v ./cmd/kube
	$(MAKE) --no-print-directory fuzz

.PHONY: fuzz
fuzz: ## Fuzz the real server with raw requests for FUZZTIME (default 15s): every answer bounded
	$(GO) test -run '^$$' -fuzz FuzzWhoami -fuzztime $(FUZZTIME) .

.PHONY: mutate
mutate: ## Mutation testing of http.go, conns.go and memory.go (gremlins, then the reviews' one-line mutants): every mutant must be killed
	@scripts/mutate.sh

.PHONY: test-unit
test-unit: ## Run the unit tests only: go test ./..., no Docker needed
	$(GO) test -race -count=1 ./...

# The Go modules: the service's (with the tools), the manifests' tests, the
# cluster's build.
MODULES = . deploy/kubernetes deploy/kubernetes/cluster/build
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: lint
lint: provision-lint ## go vet and staticcheck on every Go module (with all build tags, and without), shellcheck on every script, gofmt, nothing built committed
	@scripts/check-tracked.sh
	@for m in $(MODULES); do echo "go vet, staticcheck: $$m"; \
		(cd $$m && $(GO) vet -tags e2e,cluster ./... && $(STATICCHECK) -tags e2e,cluster ./... && $(STATICCHECK) ./...) || exit 1; done
	shellcheck -x -P SCRIPTDIR $$(git ls-files '*.sh') .ci/run
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

.PHONY: build
build: ## Build ./bin/whoami with the image's flags
	$(GO_BUILD) -o $(BIN) .

.PHONY: run
run: build ## Build and run the service on :8080 (Ctrl-C stops it)
	./$(BIN)

.PHONY: image-single
image-single: provision-images ## Build whoami:1.0 from Dockerfile.single (one stage, ~900 MB)
	$(DOCKER) build -f Dockerfile.single --build-arg GO_VERSION=$(GO_VERSION) -t $(SINGLE) .

.PHONY: image-multi
image-multi: provision-images ## Build whoami:2.0 from Dockerfile (multistage, a few MB); PLATFORM=linux/arm64 (any of PLATFORMS) cross-builds
	$(DOCKER) build $(if $(PLATFORM),--platform $(PLATFORM)) \
		--build-arg GO_VERSION=$(GO_VERSION) --build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(REVISION) --build-arg CREATED=$(CREATED) --build-arg SOURCE=$(SOURCE) \
		-t $(MULTI) .

.PHONY: lb-demo
lb-demo: provision-lb image-multi ## Run 3 replicas behind HAProxy on :8080 (compose.yaml) and show which replica answers
	WHOAMI_IMAGE=$(MULTI) LB_IMAGE=$(LB_IMAGE) $(GO) run ./cmd/replicas demo

.PHONY: rolling-restart
rolling-restart: ## Replace every replica of the lb-demo stack, one at a time, under load: 0 failed requests
	WHOAMI_IMAGE=$(MULTI) LB_IMAGE=$(LB_IMAGE) $(GO) run ./cmd/replicas rolling-restart

.PHONY: lb-down
lb-down: ## Stop and remove the lb-demo stack (containers and network)
	$(COMPOSE) down --remove-orphans

.PHONY: release
release: provision-release ## Build Dockerfile for PLATFORMS (six) with a current BuildKit, push one attested index to REGISTRY, sign it with cosign and verify
	$(GO) run ./cmd/release -registry $(REGISTRY) -builder $(RELEASE_BUILDER) -sbom-generator $(SBOM_GENERATOR) \
		-image $(IMAGE) -version $(VERSION) -platforms $(PLATFORMS) -key $(SIGNING_KEY) $(if $(NO_CACHE),-no-cache) $(if $(ALLOW_DIRTY),-allow-dirty)

.PHONY: run-container
run-container: image-multi ## Run whoami:2.0 with its port (8080) published (Ctrl-C stops it)
	$(DOCKER) run --rm -p $(SERVICE_PORT):$(SERVICE_PORT) $(MULTI)

.PHONY: clean
clean: ## Remove bin/ and the two images this Makefile builds
	rm -rf bin
	-$(DOCKER) image rm $(SINGLE) $(MULTI) 2>/dev/null

.PHONY: docker-ready
docker-ready: ## Check (and as root on Debian, provision) everything: Docker, BuildKit, Compose, base images, release tools, cluster
	@$(PROVISION) all

# What each target needs, and nothing more (provision/provision.sh says what
# each name covers).
PROVISION = GOLANG_IMAGE=$(GOLANG_IMAGE) LB_IMAGE=$(LB_IMAGE) provision/provision.sh
.PHONY: provision-images provision-lb provision-bench provision-release provision-kubernetes provision-lint
provision-images provision-lb provision-bench provision-release provision-kubernetes provision-lint:
	@$(PROVISION) $(@:provision-%=%)

.PHONY: k8s-up
k8s-up: provision-kubernetes ## Start the project's two-node Kubernetes cluster, its DNS and front door (built from source the first time; root)
	@$(CLUSTER) up

.PHONY: k8s-env
k8s-env: ## Print the lines that point kubectl at the cluster, and WHOAMI_URL: eval "$$(make -s k8s-env)"
	@$(CLUSTER) env

.PHONY: k8s-demo
k8s-demo: k8s-running release ## Deploy the released image by digest on the cluster, 30 requests through the front door, who answered
	@$(CLUSTER) exec $(GO) run ./cmd/kube demo -image $(REGISTRY)/$(IMAGE):$(VERSION)

.PHONY: k8s-rollout
k8s-rollout: k8s-running ## kubectl rollout restart under load (the Service and the front door): 0 failed requests
	@$(CLUSTER) exec $(GO) run ./cmd/kube rollout

.PHONY: k8s-drain
k8s-drain: k8s-running ## Drain a node under load (the budget holds), uncordon, spread again: 0 failed requests
	@$(CLUSTER) exec $(GO) run ./cmd/kube drain

.PHONY: k8s-autoscale
k8s-autoscale: k8s-running ## Load whoami until the autoscaler adds pods, then stop until it removes them: a timeline, docs/autoscale.svg, 0 failed requests
	@$(CLUSTER) exec $(GO) run ./cmd/kube autoscale

.PHONY: k8s-admission
k8s-admission: k8s-running release ## Time the admission of a pod of the release with the image policy on and off (dry runs)
	@$(CLUSTER) exec $(GO) run ./cmd/kube admission -image $(REGISTRY)/$(IMAGE):$(VERSION)

.PHONY: k8s-down
k8s-down: ## Stop the cluster, remove everything k8s-up made, put back the kernel parameters it changed
	@$(CLUSTER) down

.PHONY: k8s-running
k8s-running:
	@$(CLUSTER) status -q || { echo "whoami: the Kubernetes cluster is not running: make k8s-up" >&2; exit 1; }

.PHONY: bench
bench: provision-bench build image-single image-multi ## Measure sizes, build/start/stop times, memory and load: docs/benchmarks.md
	$(GO) run ./cmd/bench -golang $(GOLANG_IMAGE) -single $(SINGLE) -multi $(MULTI) -binary $(BIN) -port $(SERVICE_PORT)

.PHONY: bench-go
bench-go: ## Benchmark the handler alone (go test -bench)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 .

.PHONY: bench-compare
bench-compare: ## Compare the handler benchmark of BASE (default HEAD) and the working tree with benchstat
	@scripts/bench-compare.sh $(or $(BASE),HEAD)
