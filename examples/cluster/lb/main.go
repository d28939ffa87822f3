// Command lb is a round-robin reverse proxy for trying a flamingo cluster in a
// browser: each request, WebSocket upgrades included, goes to the next node in turn,
// so a page reload lands on another node and resumes its chat there. Browsers keep the
// user_id per origin, which is why the nodes must be reached through one address.
//
//	go run ./lb -addr 127.0.0.1:8080 -nodes 127.0.0.1:8081,127.0.0.1:8082
//
// It is a demo, not a load balancer for production.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	nodes := flag.String("nodes", "127.0.0.1:8081,127.0.0.1:8082", "comma-separated addresses of the nodes")
	flag.Parse()

	handler, err := roundRobin(strings.Split(*nodes, ","))
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("round-robin over %s on http://%s", *nodes, *addr)
	log.Fatal(http.ListenAndServe(*addr, handler))
}

// roundRobin returns a handler that passes each request to the next of nodes (host:port
// addresses) in turn.
func roundRobin(nodes []string) (http.Handler, error) {
	var proxies []*httputil.ReverseProxy
	for _, n := range nodes {
		n = strings.TrimSpace(n)
		if _, _, err := net.SplitHostPort(n); err != nil {
			return nil, fmt.Errorf("node %q: not a host:port address: %w", n, err)
		}
		proxies = append(proxies, httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: n}))
	}
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[(next.Add(1)-1)%uint64(len(proxies))].ServeHTTP(w, r)
	}), nil
}
