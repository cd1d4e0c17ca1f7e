package registry

import (
	"fmt"
	"strings"
)

// Ref is an image reference in a registry: HOST/REPO:TAG or
// HOST/REPO@DIGEST (or both), as the tools and the Makefile write them.
type Ref struct {
	Host   string // host:port (127.0.0.1:5000)
	Repo   string // the repository in it, namespaces included (team/whoami)
	Tag    string
	Digest string
}

// ParseRef parses s, which must name its registry's host (a name with a
// dot or a port, or localhost) and a tag or a digest.
func ParseRef(s string) (Ref, error) {
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("image %q: %s: want REGISTRY/NAME:TAG or REGISTRY/NAME@DIGEST", s, why)
	}
	host, rest, ok := strings.Cut(s, "/")
	if !ok || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return bad("no registry host")
	}
	var r Ref
	r.Host = host
	rest, r.Digest, _ = strings.Cut(rest, "@")
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		rest, r.Tag = rest[:i], rest[i+1:]
		if r.Tag == "" || strings.Contains(r.Tag, "/") {
			return bad("an empty or bad tag")
		}
	}
	r.Repo = rest
	if r.Repo == "" || strings.HasPrefix(r.Repo, "/") || strings.HasSuffix(r.Repo, "/") || strings.Contains(r.Repo, "//") {
		return bad("no repository")
	}
	if r.Tag == "" && r.Digest == "" {
		return bad("no tag or digest")
	}
	if r.Digest != "" && !strings.HasPrefix(r.Digest, "sha256:") {
		return bad("a digest that is not sha256")
	}
	return r, nil
}

// Reference is what the registry's API names the manifest by: the digest
// if there is one, else the tag.
func (r Ref) Reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

func (r Ref) String() string {
	s := r.Host + "/" + r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}
