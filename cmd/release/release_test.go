//go:build e2e

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"whoami/internal/command"
	"whoami/internal/dockercli"
	"whoami/internal/facts"
	"whoami/internal/platforms"
	"whoami/internal/probe"
	"whoami/internal/registry"
)

// The tests push real releases, built by the real buildkitd, to the
// project's real registry, under repositories of their own, and read them
// back over the registry's HTTP API.

const root = "../.." // the repository

var (
	env     = mustFacts()
	reg     = &registry.Client{Host: env["REGISTRY"]}
	repo    = "whoami-test-" + dockercli.RandomName()
	version = "test"
	built   *release // the release that TestMain pushes
)

// mustFacts reads .env, where the Makefile takes the registry, the builder
// and the SBOM generator from.
func mustFacts() map[string]string {
	f, err := facts.Load(root)
	if err != nil {
		panic(err)
	}
	return f
}

// withFacts adds to args the flags that make release passes from .env; a
// later flag in args wins.
func withFacts(args ...string) []string {
	return append([]string{"-registry", env["REGISTRY"], "-builder", env["RELEASE_BUILDER"], "-sbom-generator", env["SBOM_GENERATOR"],
		"-platforms", env["PLATFORMS"], "-key", env["SIGNING_KEY"]}, args...)
}

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	ctx := context.Background()
	var out bytes.Buffer
	// The working tree, as it is: what the tests test.
	err := run(ctx, withFacts("-C", root, "-image", repo, "-version", version, "-allow-dirty"), &out, &out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the release could not be built: %v\n%s\n"+
			"Run `make docker-ready` as root: it starts the registry on 127.0.0.1:5000 and buildkitd, and creates the builder.\n",
			err, command.LastLines(out.String(), 30))
		return 1
	}
	defer deleteRepo(ctx, repo, version)
	if built, err = pushed(ctx, reg, repo, version); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: reading the release back: %v\n", err)
		return 1
	}
	return m.Run()
}

func TestIndexHoldsEveryPlatformAndTheirAttestations(t *testing.T) {
	var platforms []string
	for _, img := range built.images {
		platforms = append(platforms, img.platform)
	}
	want := strings.Split(env["PLATFORMS"], ",")
	if len(want) != 6 {
		t.Errorf(".env's PLATFORMS %v: want the six platforms a release is for", want)
	}
	slices.Sort(platforms)
	slices.Sort(want)
	if !slices.Equal(platforms, want) {
		t.Errorf("platforms %v, want %v", platforms, want)
	}
	if len(built.attestations) != len(built.images) {
		t.Errorf("%d attestation manifests for %d images", len(built.attestations), len(built.images))
	}
	for _, a := range built.attestations {
		if !slices.ContainsFunc(built.images, func(img image) bool { return img.digest == a.subject }) {
			t.Errorf("attestation %s is about %s, which is none of the images", a.digest, a.subject)
		}
		var types []string
		for _, l := range a.manifest.Layers {
			types = append(types, l.Annotations["in-toto.io/predicate-type"])
		}
		slices.Sort(types)
		if want := []string{"https://slsa.dev/provenance/v1", "https://spdx.dev/Document"}; !slices.Equal(types, want) {
			t.Errorf("attestation %s holds %v, want %v", a.digest, types, want)
		}
	}
}

func TestEachPlatformImageIsOneFileRunByNobody(t *testing.T) {
	revision := labelledRevision(t)
	for _, img := range built.images {
		t.Run(img.platform, func(t *testing.T) {
			var cfg struct {
				Architecture, Variant string
				Config                struct {
					User        string
					Entrypoint  []string
					Healthcheck struct{ Test []string }
					Labels      map[string]string
				}
			}
			unmarshal(t, blob(t, img.manifest.Config.Digest), &cfg)
			if p := (&registry.Platform{OS: "linux", Architecture: cfg.Architecture, Variant: cfg.Variant}).String(); p != img.platform {
				t.Errorf("config platform %q", p)
			}
			if cfg.Config.User != "65534:65534" {
				t.Errorf("user %q, want 65534:65534", cfg.Config.User)
			}
			if want := []string{"CMD", "/whoami", "-healthcheck"}; !slices.Equal(cfg.Config.Healthcheck.Test, want) {
				t.Errorf("healthcheck %q, want %q", cfg.Config.Healthcheck.Test, want)
			}
			for k, want := range map[string]string{
				"org.opencontainers.image.title":    "whoami",
				"org.opencontainers.image.version":  version,
				"org.opencontainers.image.revision": revision,
				"org.opencontainers.image.source":   "", // differs from clone to clone
			} {
				if got := cfg.Config.Labels[k]; got != want {
					t.Errorf("label %s = %q, want %q", k, got, want)
				}
			}
			bin := onlyFile(t, img)
			f, err := elf.NewFile(bytes.NewReader(bin))
			if err != nil {
				t.Fatalf("/whoami is not an ELF binary: %v", err)
			}
			if want, ok := platforms.ELF[img.platform]; !ok || f.Machine != want {
				t.Errorf("/whoami is for %v, want %v", f.Machine, want)
			}
			info, err := buildinfo.Read(bytes.NewReader(bin))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range info.Settings {
				if s.Key == "GOARM" && img.platform != "linux/arm/v"+s.Value {
					t.Errorf("built with GOARM=%s for %s", s.Value, img.platform)
				}
			}
		})
	}
}

// labelledRevision is the revision a release of the working tree carries:
// the commit's, marked -dirty if there are uncommitted changes.
func labelledRevision(t *testing.T) string {
	revision := git(t, "rev-parse", "HEAD")
	if git(t, "status", "--porcelain") != "" {
		revision += "-dirty"
	}
	return revision
}

func TestProvenanceNamesTheSourceRevision(t *testing.T) {
	revision := git(t, "rev-parse", "HEAD")
	for _, a := range built.attestations {
		p := predicate(t, a, "https://slsa.dev/provenance/v1")
		if !strings.Contains(string(p), revision) {
			t.Errorf("the provenance of %s does not name revision %s", short(a.subject), revision)
		}
	}
}

func TestSBOMNamesTheGoVersionOfTheBinary(t *testing.T) {
	for _, img := range built.images {
		info, err := buildinfo.Read(bytes.NewReader(onlyFile(t, img)))
		if err != nil {
			t.Fatalf("%s: %v", img.platform, err)
		}
		var sbom struct {
			Packages []struct{ Name, VersionInfo string }
		}
		for _, a := range built.attestations {
			if a.subject == img.digest {
				unmarshal(t, predicate(t, a, "https://spdx.dev/Document"), &sbom)
			}
		}
		if !slices.ContainsFunc(sbom.Packages, func(p struct{ Name, VersionInfo string }) bool {
			return p.Name == "stdlib" && p.VersionInfo == info.GoVersion
		}) {
			t.Errorf("%s: the SBOM's packages %v do not name Go %s, the version of the binary", img.platform, sbom.Packages, info.GoVersion)
		}
	}
}

// Every platform's image, pulled from the index by its digest, is started:
// under emulation (qemu, registered with binfmt_misc by provisioning) where
// it is not the machine's own. Each must answer as the machine's own does.
func TestEachPlatformImagePulledBackServes(t *testing.T) {
	native := "linux/" + runtime.GOARCH
	images := slices.Clone(built.images)
	i := slices.IndexFunc(images, func(img image) bool { return img.platform == native })
	if i < 0 {
		t.Fatalf("no image for this machine's platform, %s", native)
	}
	images[0], images[i] = images[i], images[0] // the machine's own first
	answers := map[string][]string{}
	var report strings.Builder
	for _, img := range images {
		t.Run(img.platform, func(t *testing.T) {
			ref := reg.Host + "/" + repo + "@" + img.digest
			docker(t, "pull", "-q", ref)
			t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", ref).Run() })
			start := time.Now()
			// The image's own healthcheck, run every second instead of 30.
			container := docker(t, "run", "-d", "--platform", img.platform, "--health-interval", "1s", "-p", "127.0.0.1::8080", ref)
			t.Cleanup(func() { exec.Command("docker", "rm", "-f", container).Run() })
			port, err := exec.Command("docker", "port", container, "8080/tcp").Output()
			if err != nil { // it stopped at once
				logs, _ := exec.Command("docker", "logs", container).CombinedOutput()
				t.Fatalf("the container stopped at once: %s\nAnother architecture needs its emulator: run provision/provision.sh release (as root), which registers them", bytes.TrimSpace(logs))
			}
			addr, err := dockercli.Published(string(port))
			if err != nil {
				t.Fatal(err)
			}
			hostname := docker(t, "inspect", "-f", "{{.Config.Hostname}}", container)
			body, err := probe.WaitOK(t.Context(), "http://"+addr+"/whoami", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if body != hostname+"\n" {
				t.Errorf("GET /whoami: %q, want the container's name %q", body, hostname+"\n")
			}
			answered := time.Since(start)
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) { // only catches a hang
				health := docker(t, "inspect", "-f", "{{.State.Health.Status}}", container)
				if health == "healthy" {
					break
				}
				if health == "unhealthy" || time.Now().After(deadline) {
					t.Fatalf("healthcheck: %s: %s", health, docker(t, "inspect", "-f", "{{json .State.Health.Log}}", container))
				}
			}
			for _, raw := range badRequests {
				answers[img.platform] = append(answers[img.platform], statusOf(t, addr, raw))
			}
			docker(t, "stop", container) // fails the test unless it exits 0
			if code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", container); code != "0" {
				t.Errorf("after docker stop the service exited %s, want 0", code)
			}
			how := "natively"
			if img.platform != native {
				how = "under emulation"
			}
			fmt.Fprintf(&report, "%-14s %9d bytes to pull, answered %.2f s after docker run, %s\n", img.platform, img.size, answered.Seconds(), how)
		})
	}
	for _, img := range images {
		if got, want := answers[img.platform], answers[native]; got != nil && !slices.Equal(got, want) {
			t.Errorf("%s answers bad requests %q, %s %q", img.platform, got, native, want)
		}
	}
	t.Logf("bad requests: %q each\n%s", answers[native], report.String())
}

// badRequests are sent to every platform's image.
var badRequests = []string{
	"POST /whoami HTTP/1.1\r\nHost: whoami\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	"GET /nope HTTP/1.1\r\nHost: whoami\r\nConnection: close\r\n\r\n",
	"NOT HTTP\r\n\r\n",
}

// statusOf sends raw to addr and returns the answer's status and Allow header.
func statusOf(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	resp.Body.Close()
	return resp.Status + " Allow=" + resp.Header.Get("Allow")
}

// The registry refuses what it is not given the credentials for, which
// provisioning made and gave Docker (docker login): an anonymous upload or
// delete gets 401 and changes nothing, an authenticated upload is stored.
func TestRegistryRefusesAnonymousWrites(t *testing.T) {
	content := []byte("a blob of " + repo)
	sum := sha256.Sum256(content)
	digest, name := "sha256:"+hex.EncodeToString(sum[:]), repo+"-auth"
	blobURL := "http://" + reg.Host + "/v2/" + name + "/blobs/" + digest
	send := func(method, url string, body []byte, authorized bool) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		if authorized {
			registry.Authorize(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	stored := func() bool { return send(http.MethodHead, blobURL, nil, true).StatusCode == http.StatusOK }
	uploads := "http://" + reg.Host + "/v2/" + name + "/blobs/uploads/"

	if resp := send(http.MethodPost, uploads, nil, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous upload: %s, want 401", resp.Status)
	}
	if resp := send(http.MethodPost, uploads+"?digest="+digest, content, false); resp.StatusCode != http.StatusUnauthorized || stored() {
		t.Errorf("anonymous one-request upload: %s, stored %v; want 401, nothing stored", resp.Status, stored())
	}
	index := "http://" + reg.Host + "/v2/" + repo + "/manifests/" + built.digest
	if resp := send(http.MethodDelete, index, nil, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous delete of the release: %s, want 401", resp.Status)
	}
	if _, _, err := reg.Manifest(t.Context(), repo, built.digest); err != nil {
		t.Errorf("the release after an anonymous delete: %v", err)
	}
	if resp := send(http.MethodGet, "http://"+reg.Host+"/v2/", nil, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous GET /v2/: %s, want 401 (Distribution's htpasswd guard covers reads too)", resp.Status)
	}

	// With the credentials: the upload of the distribution spec, POST then PUT.
	resp := send(http.MethodPost, uploads, nil, true)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("authenticated upload: %s, want 202 (provision/provision.sh release logs Docker in)", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	if resp := send(http.MethodPut, loc.String(), content, true); resp.StatusCode != http.StatusCreated || !stored() {
		t.Errorf("authenticated upload: %s, stored %v; want 201, stored", resp.Status, stored())
	}
	send(http.MethodDelete, blobURL, nil, true)
}

// Two clones of this commit, in different folders, released a few seconds
// apart without cache, push the same per-platform images.
func TestTwoClonesPushTheSameImages(t *testing.T) {
	if out, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err != nil || len(out) > 0 {
		t.Logf("the working tree has uncommitted changes; the clones build the last commit")
	}
	var releases []*release
	for i := range 2 {
		dir := t.TempDir() + fmt.Sprintf("/clone-%d", i)
		if out, err := exec.Command("git", "clone", "-q", root, dir).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v: %s", err, out)
		}
		name := fmt.Sprint(repo, "-clone-", i) // one tag, in two repositories
		var out bytes.Buffer
		if err := run(t.Context(), withFacts("-C", dir, "-image", name, "-version", version, "-no-cache"), &out, &out); err != nil {
			t.Fatalf("release of clone %d: %v\n%s", i, err, command.LastLines(out.String(), 20))
		}
		t.Cleanup(func() { deleteRepo(context.Background(), name, version) })
		rel, err := pushed(t.Context(), reg, name, version)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, rel)
		time.Sleep(2 * time.Second) // a later clock: it must not matter
	}
	for _, a := range releases[0].images {
		i := slices.IndexFunc(releases[1].images, func(b image) bool { return b.platform == a.platform })
		if i < 0 || releases[1].images[i].digest != a.digest {
			t.Errorf("%s: clone 0 pushed %s, clone 1 %+v", a.platform, a.digest, releases[1].images)
		}
	}
	if releases[0].digest == releases[1].digest {
		t.Logf("the index digests are the same too: %s", releases[0].digest)
	} else {
		t.Logf("the index digests differ (%s, %s): the attestations do", releases[0].digest, releases[1].digest)
	}
}

func TestBadInputGetsOneLineAndPushesNothing(t *testing.T) {
	const down = "127.0.0.1:1" // tcpmux: a privileged port where nothing listens
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a platform that is not Linux", []string{"-platforms", "linux/amd64,windows/amd64"}, `unsupported platform "windows/amd64"`},
		{"a platform Go does not know", []string{"-platforms", "linux/amd64,linux/z80"}, `unsupported platform "linux/z80"`},
		{"a variant Go does not build", []string{"-platforms", "linux/amd64,linux/arm/v9"}, `unsupported platform "linux/arm/v9"`},
		{"a registry that is down", []string{"-registry", down}, "no registry answers at " + down},
		{"no version", []string{"-version", ""}, "-version is required"},
		{"a work tree with changes", []string{"-C", dirtyClone(t)}, "the work tree has uncommitted changes (git status): commit them, or release them labelled as dirty with make release ALLOW_DIRTY=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			args := []string{"-C", root, "-image", repo + "-bad", "-version", "bad"}
			if tc.name != "a work tree with changes" {
				args = append(args, "-allow-dirty") // the tests run on the working tree
			}
			args = append(args, tc.args...)
			err := run(t.Context(), withFacts(args...), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("run(%q) = %v, want one line with %q", tc.args, err, tc.want)
			}
			if _, _, err := reg.Manifest(t.Context(), repo+"-bad", "bad"); err == nil {
				t.Errorf("something was pushed under %s-bad:bad", repo)
			}
		})
	}
}

// dirtyClone returns a clone of the repository with a changed file.
func dirtyClone(t *testing.T) string {
	dir := t.TempDir() + "/dirty"
	if out, err := exec.Command("git", "clone", "-q", root, dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	if err := os.WriteFile(dir+"/http.go", []byte("package main // changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestANamespacedRegistryGetsTheImageUnderIt(t *testing.T) {
	// REGISTRY=127.0.0.1:5000/someone, as KO_DOCKER_REPO and most Makefiles
	// write it: the image is someone/<name> in that registry.
	ns, name := "ns-"+dockercli.RandomName(), repo+"-ns"
	var out bytes.Buffer
	err := run(t.Context(), withFacts("-C", root, "-registry", env["REGISTRY"]+"/"+ns, "-image", name, "-version", version,
		"-platforms", "linux/amd64", "-allow-dirty"), &out, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, command.LastLines(out.String(), 20))
	}
	t.Cleanup(func() { deleteRepo(context.Background(), ns+"/"+name, version) })
	if want := "pushed " + env["REGISTRY"] + "/" + ns + "/" + name + ":" + version; !strings.Contains(out.String(), want) {
		t.Errorf("output:\n%s\nwant %q", command.LastLines(out.String(), 8), want)
	}
	if _, err := pushed(t.Context(), reg, ns+"/"+name, version); err != nil {
		t.Errorf("reading %s/%s:%s back: %v", ns, name, version, err)
	}
}

// onlyFile checks that img has one layer holding one file, /whoami, and
// returns its content.
func onlyFile(t *testing.T, img image) []byte {
	t.Helper()
	if len(img.manifest.Layers) != 1 {
		t.Fatalf("%s: %d layers, want 1", img.platform, len(img.manifest.Layers))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, img.manifest.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	var content []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "whoami" {
			content, _ = io.ReadAll(tr)
		}
	}
	if !slices.Equal(names, []string{"whoami"}) || content == nil {
		t.Fatalf("%s: the layer holds %v, want only whoami", img.platform, names)
	}
	return content
}

// predicate returns the predicate of the in-toto statement of type
// predicateType in attestation a.
func predicate(t *testing.T, a attestation, predicateType string) json.RawMessage {
	t.Helper()
	for _, l := range a.manifest.Layers {
		if l.Annotations["in-toto.io/predicate-type"] == predicateType {
			var statement struct {
				Predicate json.RawMessage `json:"predicate"`
			}
			unmarshal(t, blob(t, l.Digest), &statement)
			return statement.Predicate
		}
	}
	t.Fatalf("no %s in attestation %s", predicateType, a.digest)
	return nil
}

func blob(t *testing.T, digest string) []byte {
	t.Helper()
	b, _, err := reg.Do(t.Context(), http.MethodGet, "/v2/"+repo+"/blobs/"+digest, "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// deleteRepo removes the index under repo:tag, every manifest it names and
// their signatures from the registry (their blobs wait for the registry's garbage collector).
func deleteRepo(ctx context.Context, repo, tag string) {
	rel, err := pushed(ctx, reg, repo, tag)
	if err != nil {
		return
	}
	digests := []string{rel.digest}
	for _, img := range rel.images {
		digests = append(digests, img.digest)
	}
	for _, a := range rel.attestations {
		digests = append(digests, a.digest)
	}
	// cosign's signatures and attestations, under tags named after what
	// they are about.
	for _, d := range digests[:1+len(rel.images)] {
		for _, suffix := range []string{".sig", ".att"} {
			if _, sig, err := reg.Manifest(ctx, repo, strings.Replace(d, ":", "-", 1)+suffix); err == nil {
				digests = append(digests, sig)
			}
		}
	}
	for _, d := range digests {
		reg.Do(ctx, http.MethodDelete, "/v2/"+repo+"/manifests/"+d, "")
	}
}
