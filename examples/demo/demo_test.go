package demo

import (
	"context"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

func TestServe_StopsWithContext(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Handler(), e) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/") // the listener queues it until Serve accepts
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	assert.NoError(t, <-done)
	assert.ErrorIs(t, e.Serve(context.Background(), nopTransport{}), flamingo.ErrEngineClosed, "the engine was shut down too")
}

func TestListenAndServe_TakenPort(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{})
	require.NoError(t, err)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	err = ListenAndServe(context.Background(), taken.Addr().String(), Handler(), e)
	var opErr *net.OpError
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, "listen", opErr.Op)
	assert.ErrorIs(t, e.Serve(context.Background(), nopTransport{}), flamingo.ErrEngineClosed, "the engine was shut down")
}

func TestUsage(t *testing.T) {
	var out strings.Builder
	set := flag.NewFlagSet("/usr/local/bin/server", flag.ContinueOnError)
	set.SetOutput(&out)
	set.String("addr", ":8080", "listen on `host:port`")
	set.Usage = Usage(set, "server runs the demo.")
	require.ErrorIs(t, set.Parse([]string{"-h"}), flag.ErrHelp)
	assert.Equal(t, "server runs the demo.\n\nUsage: server [flags]\n\n  -addr host:port\n    \tlisten on host:port (default \":8080\")\n", out.String())
}

type nopTransport struct{}

func (nopTransport) Read(context.Context) ([]byte, error)   { return nil, context.Canceled }
func (nopTransport) Write(context.Context, []byte) error    { return nil }
func (nopTransport) Close(flamingo.CloseCode, string) error { return nil }
