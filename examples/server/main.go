// Command server is the flamingo demo: the chat page at / and the WebSocket at /ws.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/examples/demo"
)

func main() {
	addr := flag.String("addr", ":8080", "listen on `host:port`; no host means every interface")
	flag.Usage = demo.Usage(flag.CommandLine, "server runs the flamingo demo: the chat page at / and its WebSocket at /ws.")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr) // before saying where: the port may be taken
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	engine, err := flamingo.New(flamingo.Config{})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", flamingo.NewWebSocketHandler(engine, nil))
	mux.Handle("/", demo.Handler())
	log.Printf("flamingo demo on http://%s (WebSocket at /ws)", demo.DisplayAddr(ln.Addr().String()))
	if err := demo.Serve(ctx, ln, mux, engine); err != nil {
		log.Fatal(err)
	}
}
