// Package imagetest holds the container tests: they build the real whoami
// images (Dockerfile and Dockerfile.single at the repository root) with the
// real Docker engine, run them, and check them from the outside over HTTP
// and through the docker CLI. Every container and image they make has a
// unique name and is removed at the end.
//
// They need a Docker engine with BuildKit and the golang base image;
// `make docker-ready` provides them (as root on Debian it installs them).
// They run under the build tag e2e (make test sets it): go test ./... runs
// the unit tests anywhere. With the tag and without an engine, they fail
// and say so; they never skip.
package imagetest
