package flamingo

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/coder/websocket"
)

// WebSocketOptions configures [NewWebSocketHandler]. The zero value is the default.
type WebSocketOptions struct {
	// OriginPatterns lists the host patterns (as in path.Match, for example
	// "example.com" or "*.example.com") whose pages may open a connection besides the
	// server's own host. A browser request from any other Origin is refused with 403
	// before the upgrade. Requests without an Origin header come from programs, not
	// browsers, and are accepted.
	OriginPatterns []string
}

// NewWebSocketHandler returns an http.Handler that upgrades each request to a WebSocket
// and serves it with e until it ends. Per-message compression is off, a frame over
// [Config.MaxFrameBytes] closes the connection with [CloseMessageTooBig], and a binary
// frame closes it with [CloseUnsupportedData]. The engine pings each connection every
// [Config.HeartbeatInterval].
//
// It uses github.com/coder/websocket, the maintained home of the deprecated
// nhooyr.io/websocket.
func NewWebSocketHandler(e *Engine, opts *WebSocketOptions) http.Handler {
	var o WebSocketOptions
	if opts != nil {
		o = *opts
	}
	accept := &websocket.AcceptOptions{
		OriginPatterns:  o.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.isClosed() {
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		c, err := websocket.Accept(w, r, accept)
		if err != nil {
			return // Accept has written the HTTP error
		}
		c.SetReadLimit(int64(e.cfg.MaxFrameBytes))
		// After the upgrade, net/http no longer watches the connection, so the
		// request's context would only end when this handler returns: the engine
		// (Shutdown, the peer, the deadlines) ends the connection instead, and Serve
		// saves a context registration per connection.
		_ = e.Serve(context.WithoutCancel(r.Context()), NewWebSocketTransport(c))
	})
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// NewWebSocketTransport adapts an open coder/websocket connection to [Transport] (and
// [Pinger]), for servers that accept connections themselves, and for Go clients.
// Binary messages are refused: Read closes the connection with [CloseUnsupportedData].
func NewWebSocketTransport(c *websocket.Conn) Transport {
	return &wsTransport{c: c}
}

var (
	_ Transport = (*wsTransport)(nil)
	_ Pinger    = (*wsTransport)(nil)
)

// errBinaryFrame is returned by wsTransport.Read for a binary message.
var errBinaryFrame = errors.New("flamingo: binary frame")

type wsTransport struct {
	c   *websocket.Conn
	buf []byte // reused between reads
}

// bufKeep is the largest read buffer kept between reads; a larger one (after a big
// frame) is dropped so that idle connections stay small.
const bufKeep = 4 << 10

func (t *wsTransport) Read(ctx context.Context) ([]byte, error) {
	typ, r, err := t.c.Reader(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		_ = t.c.Close(websocket.StatusUnsupportedData, "binary frames are not supported")
		return nil, errBinaryFrame
	}
	if cap(t.buf) > bufKeep {
		t.buf = nil
	}
	b := t.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	t.buf = b
	return b, nil
}

func (t *wsTransport) Write(ctx context.Context, p []byte) error {
	return t.c.Write(ctx, websocket.MessageText, p)
}

func (t *wsTransport) Close(code CloseCode, reason string) error {
	return t.c.Close(websocket.StatusCode(code), reason)
}

func (t *wsTransport) Ping(ctx context.Context) error {
	return t.c.Ping(ctx)
}
