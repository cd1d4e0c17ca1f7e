// Command registry asks a registry what provisioning needs to know, with
// the credentials of docker login (internal/registry):
//
//	registry ping HOST     exit 0 if the registry at HOST answers and takes them
//	registry has REF       exit 0 if it holds REF (HOST/NAME:TAG or @DIGEST), 1 if not
//
// As every tool in cmd/ (internal/cli): anything that goes wrong prints one
// line and exits 1 (2 for a wrong command line).
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"time"

	"whoami/internal/cli"
	"whoami/internal/registry"
)

const usage = `Usage: registry ping HOST | registry has HOST/NAME:TAG

  ping  exit 0 if the registry at HOST answers and takes docker login's
        credentials
  has   exit 0 if the registry holds the image, 1 (and nothing printed) if
        not

Flags: none
`

func main() { cli.Main("registry", run) }

func run(ctx context.Context, args []string, stdout, _ io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	args, err := cli.Parse(flag.NewFlagSet("registry", flag.ContinueOnError), args, stdout, usage)
	if err != nil {
		return err
	}
	cmd, rest, err := cli.Command(args, 1, "ping", "has")
	if err != nil {
		return err
	}
	if cmd == "ping" {
		if !registry.ValidHost(rest[0]) {
			return cli.Usagef("ping %q: want HOST or HOST:PORT", rest[0])
		}
		return (&registry.Client{Host: rest[0]}).Ping(ctx)
	}
	ref, err := registry.ParseRef(rest[0])
	if err != nil {
		return cli.Usagef("%v", err)
	}
	_, err = (&registry.Client{Host: ref.Host}).Digest(ctx, ref)
	if errors.Is(err, registry.ErrNotFound) {
		return cli.ErrNo
	}
	return err
}
