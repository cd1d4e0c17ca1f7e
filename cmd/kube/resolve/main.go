// Command resolve looks up each name it is given and prints one line per
// name: the name and its addresses. It is the program of the image that the
// cluster tests run in a pod (FROM scratch, as whoami's) to resolve names
// through the cluster's DNS, with the pod's own /etc/resolv.conf.
//
//	resolve whoami.whoami.svc.cluster.local whoami
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run resolves names and returns the exit code: 0 if every name resolved,
// 1 if one did not, 2 without a name.
func run(names []string, stdout, stderr io.Writer) int {
	if len(names) == 0 {
		fmt.Fprintln(stderr, "usage: resolve NAME...")
		return 2
	}
	code := 0
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "resolve: %v\n", err)
			code = 1
			continue
		}
		fmt.Fprintln(stdout, name, strings.Join(addrs, " "))
	}
	return code
}
