package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pages returns README.md and the pages of docs/, by their paths from the
// repository's root, with their text.
func pages(t *testing.T) map[string]string {
	t.Helper()
	names, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for _, name := range append(names, "../README.md") {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		texts[filepath.Clean(filepath.Join("docs", name))] = string(b)
	}
	return texts
}

// code returns what a page holds in backticks, inline or fenced.
func code(page string) []string {
	var spans []string
	fenced := regexp.MustCompile("(?ms)^```[^\n]*\n(.*?)^```")
	for _, m := range fenced.FindAllStringSubmatch(page, -1) {
		spans = append(spans, m[1])
	}
	page = fenced.ReplaceAllString(page, "")
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(page, -1) {
		spans = append(spans, m[1])
	}
	return spans
}

// targets returns the Makefile's targets, and those it documents with ##.
func targets(t *testing.T) (all, documented []string) {
	t.Helper()
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z0-9_. -]+):([^=]|$)(.*)`).FindAllStringSubmatch(string(b), -1) {
		names := strings.Fields(m[1])
		all = append(all, names...)
		if strings.Contains(m[3], "## ") {
			documented = append(documented, names...)
		}
	}
	return all, documented
}

func TestEveryMakeTargetTheDocsNameExists(t *testing.T) {
	all, _ := targets(t)
	makeCmd := regexp.MustCompile(`(?:^|[\s(;&|])make (?:-[a-zA-Z]+ )*([a-z][a-z0-9-]*)(\*?)`)
	for path, page := range pages(t) {
		for _, span := range code(page) {
			for _, m := range makeCmd.FindAllStringSubmatch(span, -1) {
				if m[2] == "" && !slices.Contains(all, m[1]) { // k8s-* is every k8s- target
					t.Errorf("%s names make %s: the Makefile has no such target", path, m[1])
				}
			}
		}
	}
}

func TestEveryPathTheDocsNameExists(t *testing.T) {
	// Links to a page of the repository, and, in backticks, what looks
	// like a path under one of the repository's top folders.
	link := regexp.MustCompile(`\]\(([^)\s#]+)(?:#[^)\s]*)?\)`)
	path := regexp.MustCompile(`^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+/?$`)
	for page, text := range pages(t) {
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", filepath.Dir(page), target)); err != nil {
				t.Errorf("%s links to %s, which is not in the repository", page, target)
			}
		}
		for _, span := range code(text) {
			if !path.MatchString(span) {
				continue
			}
			top, _, _ := strings.Cut(span, "/")
			if st, err := os.Stat(filepath.Join("..", top)); err != nil || !st.IsDir() {
				continue // not a path of the repository: /etc/..., a module path, an image name
			}
			if _, err := os.Stat(filepath.Join("..", span)); err != nil {
				t.Errorf("%s names %s, which is not in the repository", page, span)
			}
		}
	}
}

func TestMakeHelpListsEveryDocumentedTarget(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make help needs make: apt-get install make")
	}
	out, err := exec.Command("make", "-s", "-C", "..", "help").Output()
	if err != nil {
		t.Fatalf("make help: %v", err)
	}
	var listed []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			listed = append(listed, f[0])
		}
	}
	_, documented := targets(t)
	for _, target := range documented {
		if !slices.Contains(listed, target) {
			t.Errorf("make help does not list %s, which the Makefile documents with ##", target)
		}
	}
	if len(documented) < 20 {
		t.Errorf("found %d documented targets in the Makefile, want 20 or more: is the pattern still right?", len(documented))
	}
}
