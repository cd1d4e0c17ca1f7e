// Package kubernetes holds no code: its tests validate the manifests beside
// them offline, with the official Kubernetes libraries (k8s.io/api types,
// strict decoding, k8s.io/pod-security-admission), before the tests of
// ../../cmd/kube run them on the project's real cluster (cluster/). It is a Go
// module of its own so that the service's module keeps no dependency.
package kubernetes
