// Command tutorial is the program of the tutorial this project grew
// from, as it was, but for its address: the baseline that `make bench`
// measures whoami against, side by side. It has none of whoami's
// protections (no timeouts, no header limit, no graceful shutdown) and
// writes no extra header. It is not part of any image.
//
//	go run ./cmd/bench/tutorial 127.0.0.1:9000
package main

import (
	"io"
	"log"
	"net/http"
	"os"
)

func handler(w http.ResponseWriter, req *http.Request) {
	host, err := os.Hostname()
	if err != nil {
		io.WriteString(w, "unknown")
	} else {
		io.WriteString(w, host)
	}
}

func main() {
	addr := ":8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	http.HandleFunc("/whoami", handler)
	log.Fatal(http.ListenAndServe(addr, nil))
}
