// Command cluster is one node of a flamingo cluster on Redis: the demo chat page at /
// and the WebSocket at /ws, with the queue, the sessions and the delivery of events
// shared with every node on the same Redis; Prometheus metrics at /metrics (see
// flamingoprom), a liveness check at /healthz and a readiness check at /readyz. Start
// two and open the page on either:
//
//	go run . -addr 127.0.0.1:8081 -redis 127.0.0.1:6379
//	go run . -addr 127.0.0.1:8082 -redis 127.0.0.1:6379
//
// On SIGTERM, what a deploy sends, the node drains before it stops: its users are told
// to reconnect at once (close code 1012) and move to the other nodes with their chats,
// for up to -drain. SIGINT (Ctrl-C) stops it without waiting for them, also during a
// drain; they resume elsewhere within the grace all the same. /readyz answers 200 while
// the node should get new connections, and 503 with the reason (draining, stopping,
// Redis unreachable) otherwise.
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/examples/demo"
	"github.com/flamingochat/flamingo/flamingoprom"
	"github.com/flamingochat/flamingo/flamingoredis"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "address to listen on")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "address of the Redis server the nodes share")
	drainFor := flag.Duration("drain", 30*time.Second, "how long to wait on SIGTERM for the users to move to other nodes before stopping")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr) // before saying where: the port may be taken
	if err != nil {
		log.Fatal(err)
	}
	interrupted, stopInt := signal.NotifyContext(context.Background(), syscall.SIGINT)
	defer stopInt()
	terminated, stopTerm := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stopTerm()

	client := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer client.Close()
	cluster := flamingoredis.NewCluster(client, flamingoredis.ClusterOptions{})
	engine, err := flamingo.New(flamingo.Config{Matcher: cluster.Matcher(), Broker: cluster})
	if err != nil {
		log.Fatalf("joining the cluster on Redis at %s: %v", *redisAddr, err)
	}
	prometheus.MustRegister(flamingoprom.NewCollector(engine, flamingoprom.Options{}))
	mux := http.NewServeMux()
	mux.Handle("/ws", flamingo.NewWebSocketHandler(engine, nil))
	mux.Handle("/metrics", promhttp.Handler()) // with the Go runtime's and the process's metrics
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok") // alive while it serves
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := engine.Ready(r.Context()); err != nil { // draining, stopping, no Redis
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.Handle("/", demo.Handler())
	log.Printf("flamingo node %s on http://%s (WebSocket at /ws, metrics at /metrics), Redis at %s",
		cluster.NodeID(), demo.DisplayAddr(ln.Addr().String()), *redisAddr)
	// SIGTERM drains first, while the HTTP server still answers /readyz (503 from then
	// on); SIGINT ends the drain or skips it. Then demo.Serve shuts the server and the
	// engine down.
	ctx, drained := context.WithCancel(interrupted)
	context.AfterFunc(terminated, func() {
		stopTerm() // a second SIGTERM kills the process
		log.Printf("draining: users move to the other nodes (up to %v; SIGINT stops now)", *drainFor)
		dctx, cancel := context.WithTimeout(ctx, *drainFor)
		defer cancel()
		began := time.Now()
		if err := engine.Drain(dctx); err != nil {
			log.Printf("drain: %v after %v; stopping", err, time.Since(began).Round(time.Millisecond))
		} else {
			log.Printf("drained in %v", time.Since(began).Round(time.Millisecond))
		}
		drained()
	})
	if err := demo.Serve(ctx, ln, mux, engine); err != nil {
		log.Fatal(err)
	}
}
