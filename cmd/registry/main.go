// Command registry asks a registry what provisioning needs to know, with
// the credentials of docker login (internal/registry):
//
//	registry ping HOST     exit 0 if the registry at HOST answers and takes them
//	registry has REF       exit 0 if it holds REF (HOST/NAME:TAG or @DIGEST), 1 if not
//
// Anything else that goes wrong prints one line and exits 2.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"whoami/internal/registry"
)

const usage = "usage: registry ping HOST | registry has HOST/NAME:TAG"

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "registry: %v\n", err)
		return 2
	}
	if len(args) != 2 {
		return fail(errors.New(usage))
	}
	switch args[0] {
	case "ping":
		if err := (&registry.Client{Host: args[1]}).Ping(ctx); err != nil {
			return fail(err)
		}
	case "has":
		ref, err := registry.ParseRef(args[1])
		if err != nil {
			return fail(err)
		}
		_, err = (&registry.Client{Host: ref.Host}).Digest(ctx, ref)
		if errors.Is(err, registry.ErrNotFound) {
			return 1
		}
		if err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("unknown command %q: %s", args[0], usage))
	}
	return 0
}
