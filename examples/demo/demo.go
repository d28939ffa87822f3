// Package demo holds the pieces of the flamingo demo server that are not the library:
// the embedded browser page and a graceful HTTP server loop.
package demo

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/flamingochat/flamingo"
)

//go:embed static
var static embed.FS

// Handler serves the demo chat page and its scripts, embedded in the binary.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}

// ListenAndServe listens on addr and serves h there with [Serve]. If it cannot listen,
// it shuts the engine down and returns the error.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, e *flamingo.Engine) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = e.Shutdown(context.Background())
		return err
	}
	return Serve(ctx, ln, h, e)
}

// Serve serves h on ln until ctx is done, then shuts down the HTTP server and then the
// engine, giving connections up to ten seconds to close. The HTTP server goes first:
// it stops taking requests but does not close upgraded connections, which the engine's
// Shutdown closes. A caller that listens first can report a taken port before it says
// that it serves.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, e *flamingo.Engine) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		_ = e.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := errors.Join(srv.Shutdown(sctx), e.Shutdown(sctx))
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Usage returns a function for [flag.Usage] that says what the command does (about),
// then lists the flags of set.
func Usage(set *flag.FlagSet, about string) func() {
	return func() {
		fmt.Fprintf(set.Output(), "%s\n\nUsage: %s [flags]\n\n", about, filepath.Base(set.Name()))
		set.PrintDefaults()
	}
}

// DisplayAddr turns a listen address such as ":8080" into one a person can open.
func DisplayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		return net.JoinHostPort("localhost", port)
	}
	return addr
}
