// Package demo holds the pieces of the flamingo demo server that are not the library:
// the embedded browser page and a graceful HTTP server loop.
package demo

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"net"
	"net/http"
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

// ListenAndServe serves h on addr until ctx is done, then shuts down the HTTP server
// and the engine, giving connections up to ten seconds to close.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, e *flamingo.Engine) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
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

// DisplayAddr turns a listen address such as ":8080" into one a person can open.
func DisplayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		return net.JoinHostPort("localhost", port)
	}
	return addr
}
