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
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: resolve NAME...")
		os.Exit(2)
	}
	failed := false
	for _, name := range os.Args[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "resolve: %v\n", err)
			failed = true
			continue
		}
		fmt.Println(name, strings.Join(addrs, " "))
	}
	if failed {
		os.Exit(1)
	}
}
