// Command etcd is etcd's own server, built from the go.etcd.io/etcd/server/v3
// module: etcd's main package lives in a module of its own whose go.mod
// replaces its siblings with local paths, so it cannot be built as a
// dependency; etcdmain is the whole server behind that main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
