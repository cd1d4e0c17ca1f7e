// Command registry-proxy forwards each TCP connection it accepts to a Unix
// socket, as it is, both ways:
//
//	registry-proxy -socket PATH [-listen 127.0.0.1:5000]
//
// In the project's cluster it runs beside the image policy's webhook
// (deploy/kubernetes/cluster/policy-controller/webhook.yaml): the images'
// names say 127.0.0.1:5000, the registry on the loopback of the machine
// that runs the cluster, and in the webhook's pod that address is this
// proxy, which forwards to the socket cluster.sh's bridge offers the
// registry on. Only root and the proxy's user can open that socket, so no
// pod reaches the registry through the network.
//
// It runs until SIGINT or SIGTERM. As every tool in cmd/ (internal/cli), a
// wrong command line prints one line and exits 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"whoami/internal/cli"
)

const usage = `Usage: registry-proxy -socket PATH [-listen ADDRESS]

Forwards each TCP connection accepted on ADDRESS to the Unix socket PATH.

Flags:
  -listen ADDRESS  where to accept connections (default 127.0.0.1:5000)
  -socket PATH     the Unix socket to forward them to (required)
`

func main() { cli.Main("registry-proxy", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("registry-proxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5000", "")
	socket := fs.String("socket", "", "")
	args, err := cli.Parse(fs, args, stdout, usage)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return cli.Usagef("no arguments, only flags: %q", args)
	}
	if *socket == "" {
		return cli.Usagef("-socket PATH is required")
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "registry-proxy: %s -> %s\n", l.Addr(), *socket)
	return serve(ctx, l, *socket, stderr)
}

// serve forwards each connection l accepts to socket, until ctx ends.
func serve(ctx context.Context, l net.Listener, socket string, log io.Writer) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		switch {
		case ctx.Err() != nil:
			if c != nil {
				c.Close()
			}
			return nil
		case errors.Is(err, net.ErrClosed):
			return err
		case err != nil: // out of file descriptors, a connection aborted: wait, go on
			fmt.Fprintf(log, "registry-proxy: %v\n", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go forward(c, socket, log)
	}
}

// forward copies c to a new connection to socket and back. When the
// client is done sending, the socket's side hears it (a half close), and
// may still answer; when the socket's side is done, both connections close,
// whatever the client still holds open.
func forward(c net.Conn, socket string, log io.Writer) {
	defer c.Close()
	u, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintf(log, "registry-proxy: %v\n", err)
		return
	}
	defer u.Close()
	go func() {
		io.Copy(u, c) // ends with c's end, or when both are closed
		closeWrite(u)
	}()
	io.Copy(c, u)
}

func closeWrite(c net.Conn) {
	if hc, ok := c.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
	}
}
