# The "after" picture: a multistage build. The first stage compiles with the
# official golang image; the final image starts FROM scratch (empty) and gets
# only the static binary: a few MB instead of about 900 MB.
#
#   docker build -t whoami:2.0 .
#
# Needs BuildKit (the default builder since Docker 23) for --platform and
# RUN --mount. No "# syntax=" line: the built-in frontend is enough, and that
# line would make BuildKit pull a frontend image.

# The Go release line, the same as go.mod's; -bookworm pins the Debian release.
ARG GO_VERSION=1.26

# The build stage runs on the build machine's own platform and cross-compiles
# for the target, so --platform linux/arm64 (or arm/v7, ppc64le, s390x,
# riscv64) needs no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod *.go ./
ARG TARGETOS TARGETARCH TARGETVARIANT
ARG VERSION=dev
# CGO_ENABLED=0: a static binary that needs no libc, so it runs in scratch.
# -trimpath: no build-machine paths in the binary, so builds are reproducible.
# -ldflags "-s -w": no symbol table or DWARF (about 30% smaller); -X sets the version.
# GOARM: the variant of linux/arm/v7 (or v6), 7; empty elsewhere, Go's default.
# The cache mount keeps Go's build cache between builds: after a one-line
# edit only this package is recompiled, not the standard library.
RUN --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOARM=${TARGETVARIANT#v} \
	go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/whoami .

FROM scratch
# The binary is all there is: no shell, no libc, no certificates (the
# service makes no outbound TLS calls), no time zone data.
COPY --from=build /out/whoami /whoami
# scratch has no /etc/passwd, so a user name cannot be resolved: use numbers.
# 65534 is "nobody". Port 8080 needs no privilege, unlike 80.
USER 65534:65534
EXPOSE 8080
# No shell or curl for CMD-SHELL: the binary probes its own /whoami. It reads
# PORT like the server does; change the port with PORT, not -addr.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
	CMD ["/whoami", "-healthcheck"]
ENTRYPOINT ["/whoami"]

# OCI annotations; the Makefile passes the values.
ARG VERSION=dev REVISION="" CREATED="" SOURCE=""
LABEL org.opencontainers.image.title="whoami" \
	org.opencontainers.image.description="Answers GET /whoami with the container's hostname" \
	org.opencontainers.image.source="${SOURCE}" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}" \
	org.opencontainers.image.created="${CREATED}"
