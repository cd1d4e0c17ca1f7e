//go:build e2e

package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"whoami/internal/command"
	"whoami/internal/dockercli"
	"whoami/internal/facts"
	"whoami/internal/flood"
	"whoami/internal/platforms"
	"whoami/internal/probe"
)

// The repository root: the build context of both Dockerfiles.
const root = ".."

// port is the service's, .env's SERVICE_PORT.
var port = mustFacts()["SERVICE_PORT"]

func mustFacts() map[string]string {
	f, err := facts.Load(root)
	if err != nil {
		panic(err)
	}
	return f
}

// hang bounds each wait. It only catches a hang: nothing here asserts how
// fast something is.
const hang = 60 * time.Second

// Images built once for all tests, under names no one else uses.
var (
	prefix = "whoami-test-" + dockercli.RandomName()
	multi  = prefix + ":multi"
	single = prefix + ":single"
)

func TestMain(m *testing.M) {
	flood.Main() // when a test's flood.Start runs this binary as the flood
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	if _, err := dockerOutput("info"); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: no Docker engine answers, so the images cannot be tested.\n"+
			"Run `make docker-ready` (as root on Debian it installs and starts one), or start Docker.\n%v\n", err)
		return 1
	}
	defer docker(nil, "image", "rm", "-f", multi, single)
	for _, b := range []struct{ image, dockerfile string }{{multi, "Dockerfile"}, {single, "Dockerfile.single"}} {
		if err := build(b.image, "-f", root+"/"+b.dockerfile); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %v\nIs the golang base image there? `make docker-ready` pulls or rebuilds it.\n", err)
			return 1
		}
	}
	return m.Run()
}

func TestMultistageAnswersWithTheContainerHostname(t *testing.T) {
	t.Parallel()
	id, url := runContainer(t, multi)
	hostname := docker(t, "inspect", "-f", "{{.Config.Hostname}}", id)
	if !strings.HasPrefix(id, hostname) {
		t.Errorf("hostname %q is not the short container ID of %s", hostname, id)
	}
	if got := get(t, url); got != hostname+"\n" {
		t.Errorf("GET /whoami = %q, want %q", got, hostname+"\n")
	}

	_, url = runContainer(t, multi, "--hostname", "web-1")
	if got := get(t, url); got != "web-1\n" {
		t.Errorf("with --hostname web-1, GET /whoami = %q, want %q", got, "web-1\n")
	}
}

func TestSingleStageServesWhoami(t *testing.T) {
	t.Parallel()
	id, url := runContainer(t, single)
	hostname := docker(t, "inspect", "-f", "{{.Config.Hostname}}", id)
	if got := get(t, url); got != hostname+"\n" {
		t.Errorf("GET /whoami = %q, want %q", got, hostname+"\n")
	}
}

func TestMultistageRefusesPOSTAndBecomesHealthy(t *testing.T) {
	t.Parallel()
	id, url := runContainer(t, multi, "--health-interval", "1s", "--health-start-period", "1s")
	resp, err := client.Post(url, "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %s, Allow %q; want 405, Allow %q", resp.Status, resp.Header.Get("Allow"), "GET, HEAD")
	}
	status := eventually(t, "health status healthy", func() (string, bool) {
		s := docker(t, "inspect", "-f", "{{.State.Health.Status}}", id)
		return s, s == "healthy"
	})
	t.Logf("health status: %s", status)
}

func TestMultistageImageHoldsOnlyTheBinaryAndRunsUnprivileged(t *testing.T) {
	t.Parallel()
	if layers := docker(t, "image", "inspect", "-f", "{{len .RootFS.Layers}}", multi); layers != "1" {
		t.Errorf("the image has %s layers, want 1", layers)
	}

	// docker export lists a container's whole filesystem; Docker itself adds
	// a few empty files to every container, whatever its image.
	id := docker(t, "create", multi)
	defer docker(t, "rm", id)
	addedByDocker := map[string]bool{".dockerenv": true, "dev/console": true,
		"etc/hostname": true, "etc/hosts": true, "etc/mtab": true, "etc/resolv.conf": true}
	var files []string
	for name, hdr := range exportList(t, id) {
		if hdr.Typeflag != tar.TypeDir && !addedByDocker[name] {
			files = append(files, name)
		}
	}
	if len(files) != 1 || files[0] != "whoami" {
		t.Errorf("files in the image: %q, want only [whoami]", files)
	}

	if user := docker(t, "image", "inspect", "-f", "{{.Config.User}}", multi); user != "65534:65534" {
		t.Errorf("USER = %q, want 65534:65534", user)
	}
	running, url := runContainer(t, multi, "--read-only", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges", "--user", "65534")
	// docker top runs ps on the engine's host: the real UID of the process.
	if uid := strings.Fields(lastLine(docker(t, "top", running, "-o", "pid,uid")))[1]; uid != "65534" {
		t.Errorf("the process runs as UID %s, want 65534", uid)
	}
	if got := get(t, url); got == "" {
		t.Error("the hardened container answered an empty body")
	}

	// No shell to exec into: the image has nothing but the binary.
	if out, err := dockerOutput("run", "--rm", "--entrypoint", "sh", multi); err == nil {
		t.Errorf("docker run --entrypoint sh succeeded; the image has a shell:\n%s", out)
	}
}

func TestDockerStopExitsZero(t *testing.T) {
	t.Parallel()
	for _, image := range []string{multi, single} {
		id, url := runContainer(t, image)
		get(t, url)
		docker(t, "stop", id)
		if code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
			t.Errorf("%s: exit code after docker stop = %s, want 0 (graceful)", image, code)
		}
		if logs := logs(t, id); !strings.Contains(logs, `msg="whoami stopped"`) {
			t.Errorf("%s: no shutdown line in the logs:\n%s", image, logs)
		}
	}
}

func TestImageSizes(t *testing.T) {
	multiSize := imageSize(t, multi)
	singleSize := imageSize(t, single)
	t.Logf("single stage %d bytes, multistage %d bytes, ratio %.0f", singleSize, multiSize, float64(singleSize)/float64(multiSize))
	if multiSize >= 8_000_000 {
		t.Errorf("the multistage image is %d bytes, want under 8 MB", multiSize)
	}
	if singleSize < 100*multiSize {
		t.Errorf("the single-stage image (%d bytes) is not 100 times the multistage one (%d bytes)", singleSize, multiSize)
	}
}

// make image-multi PLATFORM=... for each platform of a release but the
// machine's own: cross-compiled, no emulation.
func TestCrossBuildForEveryPlatform(t *testing.T) {
	t.Parallel()
	for _, p := range strings.Split(mustFacts()["PLATFORMS"], ",") {
		if p == "linux/"+runtime.GOARCH {
			continue
		}
		t.Run(p, func(t *testing.T) {
			image := prefix + ":" + strings.ReplaceAll(p[len("linux/"):], "/", "-")
			if err := build(image, "--platform", p); err != nil {
				t.Fatal(err)
			}
			defer docker(t, "image", "rm", image)
			if got := strings.TrimSuffix(docker(t, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}/{{.Variant}}", image), "/"); got != p {
				t.Errorf("platform = %s, want %s", got, p)
			}
			f, err := elf.NewFile(bytes.NewReader(binary(t, image)))
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := platforms.ELF[p]; !ok || f.Machine != want {
				t.Errorf("the binary is for %v, want %v", f.Machine, want)
			}
		})
	}
}

func TestMultistageBuildIsReproducible(t *testing.T) {
	t.Parallel()
	again := prefix + ":again"
	// --no-cache reruns every step; anything that depends on the time or the
	// build machine (dates, paths) would change the binary.
	if err := build(again, "--no-cache"); err != nil {
		t.Fatal(err)
	}
	defer docker(t, "image", "rm", again)
	first, second := sha256.Sum256(binary(t, multi)), sha256.Sum256(binary(t, again))
	if first != second {
		t.Errorf("two builds of the same source differ: sha256 %x and %x", first, second)
	}
}

var client = &http.Client{Timeout: hang}

// build builds the multistage Dockerfile (or the one given with -f) as image.
func build(image string, args ...string) error {
	args = append([]string{"build", "-q", "-t", image, "--build-arg", "VERSION=test"}, args...)
	_, err := dockerOutput(append(args, root)...)
	return err
}

// runContainer starts image in the background with its port published on a
// free loopback port, waits until /whoami answers 200, and removes the
// container when the test ends. It returns the container ID and the URL.
func runContainer(t *testing.T, image string, args ...string) (id, url string) {
	t.Helper()
	id, url, err := dockercli.RunContainer(t.Context(), image, port, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker(t, "rm", "-f", id) })
	return id, url
}

// eventually polls check until it reports true, failing the test after hang.
func eventually(t *testing.T, what string, check func() (string, bool)) string {
	t.Helper()
	var last string
	err := probe.Until(t.Context(), hang, what, func(context.Context) (bool, error) {
		var ok bool
		last, ok = check()
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%v; last: %s", err, last)
	}
	return last
}

// get returns the body of a GET that must answer 200.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(body)
}

// binary returns the /whoami file of image.
func binary(t *testing.T, image string) []byte {
	t.Helper()
	id := docker(t, "create", image)
	defer docker(t, "rm", id)
	out, err := dockerOutput("cp", id+":/whoami", "-")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exportList returns the entries of a container's exported filesystem.
func exportList(t *testing.T, id string) map[string]*tar.Header {
	t.Helper()
	out, err := dockerOutput("export", id)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimSuffix(hdr.Name, "/")] = hdr
	}
}

// logs returns what the container wrote to its stdout and stderr.
func logs(t *testing.T, id string) string {
	t.Helper()
	out, err := exec.Command("docker", "logs", id).CombinedOutput()
	if err != nil {
		t.Fatalf("docker logs: %v\n%s", err, out)
	}
	return string(out)
}

func imageSize(t *testing.T, image string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(docker(t, "image", "inspect", "-f", "{{.Size}}", image), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// docker runs the docker CLI and returns its trimmed output. With a nil t
// (in TestMain) it ignores failures.
func docker(t *testing.T, args ...string) string {
	if t != nil {
		t.Helper()
	}
	out, err := dockerOutput(args...)
	if err != nil && t != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// dockerOutput runs the docker CLI with a bound that catches a hang (longer
// for builds) and returns its standard output as it is.
func dockerOutput(args ...string) ([]byte, error) {
	limit := hang
	if args[0] == "build" {
		limit = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return dockercli.Cmd{}.Output(ctx, args...)
}

func lastLine(s string) string { return command.LastLines(s, 1) }
