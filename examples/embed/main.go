// Command embed is the README's "Embed it" example: flamingo mounted on a service's own
// mux, with moderation and a graceful shutdown.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flamingochat/flamingo"
)

func main() {
	addr := flag.String("addr", ":8080", "listen on this `host:port`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	engine, err := flamingo.New(flamingo.Config{
		OnMessage: func(m flamingo.Message) error { // optional moderation
			if looksLikeSpam(m.Content) {
				return &flamingo.Error{Code: "spam", Message: "that looks like spam"}
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", flamingo.NewWebSocketHandler(engine, &flamingo.WebSocketOptions{
		OriginPatterns: []string{"chat.example.com"}, // pages from https://chat.example.com
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Print(err)
	case <-ctx.Done(): // SIGINT or SIGTERM
	}
	stop() // a second signal ends the program at once

	// srv.Shutdown stops taking requests, but WebSockets are hijacked connections that
	// it neither closes nor waits for: engine.Shutdown then closes them and waits for
	// the engine's goroutines. Both share one deadline.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Print(err)
	}
	if err := engine.Shutdown(sctx); err != nil {
		log.Print(err)
	}
}

func looksLikeSpam(s string) bool { return false }
