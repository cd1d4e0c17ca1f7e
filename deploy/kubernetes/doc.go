// Package kubernetes holds no code: its tests validate the manifests beside
// them offline, with the official Kubernetes libraries (k8s.io/api types,
// strict decoding, k8s.io/pod-security-admission), since no cluster can run
// on the project's machines. It is a Go module of its own so that the
// service's module keeps no dependency.
package kubernetes
