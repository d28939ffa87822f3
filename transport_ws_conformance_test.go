package flamingo_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// TestWebSocketTransport_Conformance runs the transport suite over a real WebSocket on
// loopback: a is the server's end, made from the connection an HTTP handler accepted,
// b the client's, made from the dialed connection. Both are NewWebSocketTransport with
// coder/websocket's defaults, as a server that accepts connections itself has them.
func TestWebSocketTransport_Conformance(t *testing.T) {
	flamingotest.TestTransport(t, func(t *testing.T) (a, b flamingo.Transport) {
		accepted := make(chan *websocket.Conn, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return // Accept has answered the request
			}
			accepted <- c // the connection outlives the handler: it was hijacked
		}))
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		require.NoError(t, err)
		var server *websocket.Conn
		select {
		case server = <-accepted:
		case <-ctx.Done():
			t.Fatal("the server did not accept the connection")
		}
		// The suite closes both ends; this only frees what a failed subtest left.
		t.Cleanup(func() {
			_ = client.CloseNow()
			_ = server.CloseNow()
		})
		return flamingo.NewWebSocketTransport(server), flamingo.NewWebSocketTransport(client)
	})
}
