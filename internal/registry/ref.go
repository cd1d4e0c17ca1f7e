package registry

import (
	"fmt"
	"regexp"
	"strings"
)

// The grammar of the distribution spec: a repository's path components,
// a tag, a sha256 digest; and a registry's host[:port].
var (
	repoPattern   = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	hostPattern   = regexp.MustCompile(`^[A-Za-z0-9.-]+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$`)
)

// ValidHost reports whether host is a registry's host[:port], nothing more
// (no scheme, no path).
func ValidHost(host string) bool { return hostPattern.MatchString(host) }

// ValidRepo and ValidTag report whether a repository's name and a tag are
// ones a registry takes.
func ValidRepo(repo string) bool { return repoPattern.MatchString(repo) }
func ValidTag(tag string) bool   { return tagPattern.MatchString(tag) }

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
	switch {
	case !ValidHost(r.Host):
		return bad("a bad registry host")
	case r.Repo == "":
		return bad("no repository")
	case !ValidRepo(r.Repo):
		return bad("a bad repository name")
	case r.Tag == "" && r.Digest == "":
		return bad("no tag or digest")
	case r.Tag != "" && !ValidTag(r.Tag):
		return bad("a bad tag")
	case r.Digest != "" && !digestPattern.MatchString(r.Digest):
		return bad("a digest that is not sha256 and 64 hex digits")
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
