// Command server is the flamingo demo: the chat page at / and the WebSocket at /ws.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os/signal"
	"syscall"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/examples/demo"
)

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	engine, err := flamingo.New(flamingo.Config{})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", flamingo.NewWebSocketHandler(engine, nil))
	mux.Handle("/", demo.Handler())
	log.Printf("flamingo demo on http://%s (WebSocket at /ws)", demo.DisplayAddr(*addr))
	if err := demo.ListenAndServe(ctx, *addr, mux, engine); err != nil {
		log.Fatal(err)
	}
}
