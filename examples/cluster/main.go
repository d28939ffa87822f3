// Command cluster is one node of a flamingo cluster on Redis: the demo chat page at /
// and the WebSocket at /ws, with the queue, the sessions and the delivery of events
// shared with every node on the same Redis; Prometheus metrics at /metrics (see
// flamingoprom) and a liveness check at /healthz. Start two and open the page on
// either:
//
//	go run . -addr 127.0.0.1:8081 -redis 127.0.0.1:6379
//	go run . -addr 127.0.0.1:8082 -redis 127.0.0.1:6379
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
	flag.Parse()
	ln, err := net.Listen("tcp", *addr) // before saying where: the port may be taken
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

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
	mux.Handle("/", demo.Handler())
	log.Printf("flamingo node %s on http://%s (WebSocket at /ws, metrics at /metrics), Redis at %s",
		cluster.NodeID(), demo.DisplayAddr(ln.Addr().String()), *redisAddr)
	if err := demo.Serve(ctx, ln, mux, engine); err != nil {
		log.Fatal(err)
	}
}
