// Command release builds the multistage Dockerfile for several platforms
// with a current BuildKit and pushes one tag, an OCI image index with
// provenance and an SBOM attached, to a registry. It is what `make release`
// runs, and its tests read back what it pushed.
//
//	make release VERSION=v1.2.3   # REGISTRY/whoami:v1.2.3 (.env), the six PLATFORMS of .env
//
// Reproducible: the time of every file, layer and config is the commit's
// (SOURCE_DATE_EPOCH, rewrite-timestamp), and nothing that depends on the
// clone (its path, its remote's URL, the clock) reaches a platform image,
// so two clones of one commit push the same per-platform digests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"whoami/internal/cli"
	"whoami/internal/command"
	"whoami/internal/registry"
)

func main() { cli.Main("release", run) }

// options is what one release is made of.
type options struct {
	registry, image, version string
	platforms                []string
	builder, generator       string
	key                      string // cosign's private key; its public key is beside it, .pub
	noCache, allowDirty      bool
	dirty                    bool   // uncommitted changes, found by run
	dir                      string // the repository to build
}

func (o options) ref() string { return o.registry + "/" + o.image + ":" + o.version }

// hostAndRepo splits the registry (host:port, and maybe a namespace, as in
// KO_DOCKER_REPO: 127.0.0.1:5000/someone) into the host to ask and the
// repository's full name in it (someone/whoami).
func (o options) hostAndRepo() (host, repo string) {
	host, ns, _ := strings.Cut(o.registry, "/")
	if ns == "" {
		return host, o.image
	}
	return host, ns + "/" + o.image
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	var o options
	var platforms string
	fs.StringVar(&o.registry, "registry", "", "the registry to push to: host:port, with a namespace if need be (host:port/team); make release passes .env's REGISTRY")
	fs.StringVar(&o.image, "image", "whoami", "the repository in the registry")
	fs.StringVar(&o.version, "version", "", "the tag (make release: git describe)")
	fs.StringVar(&platforms, "platforms", "", "comma-separated platforms, such as linux/amd64,linux/arm/v7; make release passes .env's PLATFORMS")
	fs.StringVar(&o.builder, "builder", "", "the buildx builder (a current BuildKit); make release passes .env's RELEASE_BUILDER")
	fs.StringVar(&o.generator, "sbom-generator", "", "the SBOM generator image; make release passes .env's SBOM_GENERATOR")
	fs.StringVar(&o.key, "key", "", "the cosign private key that signs the release (KEY.pub beside it verifies); make release passes .env's SIGNING_KEY")
	fs.BoolVar(&o.noCache, "no-cache", false, "build without BuildKit's cache")
	fs.StringVar(&o.dir, "C", ".", "the repository to build (a git work tree)")
	fs.BoolVar(&o.allowDirty, "allow-dirty", false, "release uncommitted changes too, labelled as such (revision <commit>-dirty)")
	args, err := cli.Parse(fs, args, stdout, "Usage: release [flags]\n\nBuilds Dockerfile for several platforms and pushes one attested index.\n\nFlags:\n")
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return cli.Usagef("unexpected argument %q", args[0])
	}
	if o.version == "" {
		return cli.Usagef("-version is required (make release passes git describe)")
	}
	if o.registry == "" || o.builder == "" || o.generator == "" || platforms == "" || o.key == "" {
		return cli.Usagef("-registry, -builder, -sbom-generator, -platforms and -key are required (make release passes them from .env)")
	}
	if host, repo := o.hostAndRepo(); !registry.ValidHost(host) || !registry.ValidRepo(repo) || !registry.ValidTag(o.version) {
		return cli.Usagef("%s is not a reference a registry takes: check -registry (HOST:PORT[/NAMESPACE]), -image and -version", o.ref())
	}
	o.platforms = strings.Split(platforms, ",")
	if err := checkPlatforms(ctx, o.platforms); err != nil {
		return err
	}
	// What is built is the work tree: with uncommitted changes, the image
	// would not be what its revision label says.
	changes, _, err := command.Exec{}.Run(ctx, command.Cmd{Name: "git", Args: []string{"-C", o.dir, "status", "--porcelain"}})
	if err != nil {
		return fmt.Errorf("%v: a release is built from a git work tree", err)
	}
	if o.dirty = len(changes) > 0; o.dirty && !o.allowDirty {
		return errors.New("the work tree has uncommitted changes (git status): commit them, or release them labelled as dirty with make release ALLOW_DIRTY=1")
	}
	host, repo := o.hostAndRepo()
	r := &registry.Client{Host: host}
	if err := r.Ping(ctx); err != nil {
		return fmt.Errorf("no registry answers at %s (%v): run make docker-ready, which starts the project's own, or set REGISTRY", host, err)
	}
	if _, _, err := (command.Exec{}).Run(ctx, command.Cmd{Name: "docker", Args: []string{"buildx", "inspect", o.builder}}); err != nil {
		return fmt.Errorf("no buildx builder %q (%s): run make docker-ready, which starts a current BuildKit and creates it", o.builder, firstLine(err.Error()))
	}
	s := signer{run: command.Exec{Timeout: 5 * time.Minute}, key: o.key}
	for _, f := range []string{s.key, s.pub()} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("no signing key (%v): run make docker-ready as root, which makes one", err)
		}
	}
	if _, _, err := (command.Exec{}).Run(ctx, command.Cmd{Name: "cosign", Args: []string{"version"}}); err != nil {
		return fmt.Errorf("no cosign (%s): run make docker-ready as root, which builds it", firstLine(err.Error()))
	}
	fmt.Fprintf(stdout, "==> building %s for %s\n", o.ref(), strings.Join(o.platforms, ", "))
	digest, err := build(ctx, o, stderr)
	if err != nil {
		return err
	}
	rel, err := pushed(ctx, r, repo, o.version)
	if err != nil {
		return err
	}
	if rel.digest != digest {
		return fmt.Errorf("the registry holds %s under %s, but BuildKit pushed %s", rel.digest, o.ref(), digest)
	}
	repoRef := host + "/" + repo
	fmt.Fprintf(stdout, "==> signing the index, %d images and their attestations with %s\n", len(rel.images), s.key)
	start := time.Now()
	if err := s.sign(ctx, r, repo, repoRef, rel); err != nil {
		return err
	}
	signed := time.Since(start)
	if err := s.verify(ctx, repoRef, rel); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "==> signed in %.1f s, verified in %.1f s\n", signed.Seconds(), (time.Since(start) - signed).Seconds())
	rel.print(stdout, o.ref())
	s.printVerify(stdout, repoRef, rel)
	return nil
}

// checkPlatforms accepts Linux platforms that Go can build for: the image
// holds one static Linux binary, cross-compiled by the build stage. A
// variant is one Go builds for: arm's v5-v7 (GOARM) or arm64's v8.
func checkPlatforms(ctx context.Context, platforms []string) error {
	out, _, err := command.Exec{}.Run(ctx, command.Cmd{Name: "go", Args: []string{"tool", "dist", "list"}})
	if err != nil {
		return err
	}
	goPlatforms := strings.Fields(out)
	for _, p := range platforms {
		parts := strings.Split(p, "/")
		ok := len(parts) >= 2 && parts[0] == "linux" && slices.Contains(goPlatforms, parts[0]+"/"+parts[1])
		if len(parts) == 3 {
			ok = ok && slices.Contains(variants[parts[1]], parts[2])
		}
		if !ok || len(parts) > 3 {
			return cli.Usagef("unsupported platform %q in PLATFORMS: want Linux platforms Go builds for, such as PLATFORMS=linux/amd64,linux/arm64,linux/arm/v7", p)
		}
	}
	return nil
}

// variants are the platform variants Go builds for (Dockerfile: GOARM).
var variants = map[string][]string{"arm": {"v5", "v6", "v7"}, "arm64": {"v8"}}

// build runs docker buildx build and returns the digest of the index it
// pushed. The index is pushed last, after every manifest and blob it names,
// so a build that fails leaves nothing under the tag.
func build(ctx context.Context, o options, stderr io.Writer) (string, error) {
	dir := o.dir
	git := func(args ...string) (string, error) {
		// TZ: the commit's time, in UTC whatever the machine's zone.
		out, _, err := command.Exec{}.Run(ctx, command.Cmd{Name: "git", Args: append([]string{"-C", dir}, args...), Env: []string{"TZ=UTC"}})
		return strings.TrimSpace(out), err
	}
	revision, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", fmt.Errorf("%v: a release is built from a commit", err)
	}
	if o.dirty {
		revision += "-dirty"
	}
	epoch, _ := git("log", "-1", "--format=%ct")
	created, _ := git("log", "-1", "--date=iso-strict-local", "--format=%cd")
	tmp, err := os.MkdirTemp("", "release")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	metadata := filepath.Join(tmp, "metadata.json")
	args := []string{"buildx", "build", "--builder", o.builder,
		"--platform", strings.Join(o.platforms, ","),
		// GO_VERSION: the Dockerfile's default, which a test keeps equal to go.mod's.
		"--build-arg", "VERSION=" + o.version,
		"--build-arg", "REVISION=" + revision,
		"--build-arg", "CREATED=" + created,
		// SOURCE stays empty: the remote's URL differs from clone to clone.
		"--build-arg", "SOURCE_DATE_EPOCH=" + epoch,
		"--provenance", "mode=max",
		"--attest", "type=sbom,generator=" + o.generator,
		"--output", "type=image,name=" + o.ref() + ",push=true,oci-mediatypes=true,rewrite-timestamp=true",
		"--metadata-file", metadata,
	}
	if o.noCache {
		args = append(args, "--no-cache")
	}
	build := command.Cmd{Name: "docker", Args: append(args, dir), Env: []string{"TZ=UTC", "BUILDX_NO_DEFAULT_ATTESTATIONS=1"}, Stream: stderr}
	if _, _, err := (command.Exec{}).Run(ctx, build); err != nil {
		return "", fmt.Errorf("docker buildx build failed (the output above says why; nothing was pushed under %s)", o.ref())
	}
	b, err := os.ReadFile(metadata)
	if err != nil {
		return "", err
	}
	var md struct {
		Digest string `json:"containerimage.digest"`
	}
	if err := json.Unmarshal(b, &md); err != nil || md.Digest == "" {
		return "", fmt.Errorf("no digest in buildx's metadata: %s", b)
	}
	return md.Digest, nil
}

// firstLine is an error's first line, where a command's ends with its
// output's last lines.
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
