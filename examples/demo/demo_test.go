package demo

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

func TestHandler_ServesTheEmbeddedPage(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		path string
		want string // Content-Type prefix
	}{
		{"/", "text/html"},
		{"/flamingo.js", "text/javascript"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("Content-Type"), tt.want)
		})
	}
}

func TestDisplayAddr(t *testing.T) {
	tests := []struct{ give, want string }{
		{":8080", "localhost:8080"},
		{"0.0.0.0:9000", "localhost:9000"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, DisplayAddr(tt.give))
	}
}

func TestListenAndServe_StopsWithContext(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, addr, Handler(), e) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	cancel()
	assert.NoError(t, <-done)
	assert.ErrorIs(t, e.Serve(context.Background(), nopTransport{}), flamingo.ErrEngineClosed, "the engine was shut down too")
}

type nopTransport struct{}

func (nopTransport) Read(context.Context) ([]byte, error)   { return nil, context.Canceled }
func (nopTransport) Write(context.Context, []byte) error    { return nil }
func (nopTransport) Close(flamingo.CloseCode, string) error { return nil }
