package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"whoami/internal/dockercli"
)

// imageRow is an image, or the binary alone, by size.
type imageRow struct {
	Name  string
	Bytes int64
	Note  string
}

// sizes measures the images as make compare-sizes does (docker image
// inspect's Size: uncompressed bytes), the multistage image's binary, and
// the binary by build flags.
func (b *bench) sizes(ctx context.Context, r *report) error {
	b.say("image and binary sizes")
	base := "official image"
	if desc, _ := dockercli.Run(ctx, "image", "inspect", "-f", `{{index .Config.Labels "org.opencontainers.image.description"}}`, b.o.golang); strings.Contains(desc, "rebuilt locally") {
		base = "rebuilt locally (no registry): provision/images/golang"
	}
	for _, img := range []imageRow{
		{Name: b.o.golang, Note: base},
		{Name: b.o.single, Note: "Dockerfile.single: one stage on " + b.o.golang},
		{Name: b.o.multi, Note: "Dockerfile: multistage, FROM scratch"},
	} {
		out, err := dockercli.Run(ctx, "image", "inspect", "-f", "{{.Size}}", img.Name)
		if err != nil {
			return err
		}
		if img.Bytes, err = strconv.ParseInt(out, 10, 64); err != nil {
			return fmt.Errorf("the size of %s: %v", img.Name, err)
		}
		r.Images = append(r.Images, img)
	}
	bin, err := b.binarySize(ctx)
	if err != nil {
		return err
	}
	r.Images = append(r.Images, imageRow{Name: "bare binary (/whoami)", Bytes: bin, Note: "the only file in " + b.o.multi})
	r.SizeRatio = float64(r.Images[1].Bytes) / float64(r.Images[2].Bytes)
	for _, v := range []struct {
		flags string
		args  []string
	}{
		{"(no flags)", nil},
		{"`-trimpath -ldflags \"-s -w\"`, as in Dockerfile", []string{"-trimpath", "-ldflags", "-s -w"}},
		{"the same and `-tags nethttpomithttp2` (not used)", []string{"-trimpath", "-ldflags", "-s -w", "-tags", "nethttpomithttp2"}},
	} {
		bin := filepath.Join(b.work, "whoami")
		cmd := exec.CommandContext(ctx, "go", append(append([]string{"build", "-buildvcs=false"}, v.args...), "-o", bin, ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %v: %v: %s", v.args, err, out)
		}
		fi, err := os.Stat(bin)
		if err != nil {
			return err
		}
		r.Binary = append(r.Binary, sizeRow{Flags: v.flags, Bytes: fi.Size()})
	}
	return nil
}

// binarySize is the size of /whoami in the multistage image, from the tar
// stream docker cp gives.
func (b *bench) binarySize(ctx context.Context) (int64, error) {
	id, err := dockercli.Run(ctx, "create", "--label", b.tag, b.o.multi)
	if err != nil {
		return 0, err
	}
	defer dockercli.Run(context.WithoutCancel(ctx), "rm", id)
	out, err := dockercli.Cmd{}.Output(ctx, "cp", id+":/whoami", "-")
	if err != nil {
		return 0, err
	}
	h, err := tar.NewReader(bytes.NewReader(out)).Next()
	if err != nil {
		return 0, fmt.Errorf("docker cp %s:/whoami: %v", id, err)
	}
	return h.Size, nil
}
