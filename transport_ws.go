package flamingo

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// WebSocketOptions configures [NewWebSocketHandler]. The zero value is the default.
type WebSocketOptions struct {
	// OriginPatterns lists the host patterns (as in path.Match, for example
	// "example.com" or "*.example.com") whose pages may open a connection besides the
	// server's own host. A browser request from any other Origin is refused with 403
	// before the upgrade. Requests without an Origin header come from programs, not
	// browsers, and are accepted.
	//
	// The port is part of the host, and a browser leaves only the scheme's default
	// port out of the Origin: "chat.example.com" admits https://chat.example.com but
	// refuses https://chat.example.com:8443. Add "chat.example.com:8443" for that
	// port, or "chat.example.com:*" for every port but the default one. A pattern with
	// a scheme, such as "https://chat.example.com:8443", also pins the scheme. Patterns
	// ignore case, and "*" matches dots too: "*.example.com" admits subdomains at any
	// depth.
	OriginPatterns []string
	// MaxConns caps the connections this handler serves at once; a request over
	// it gets 503 before the upgrade. Zero means 10000; negative means no cap.
	MaxConns int
	// MaxConnsPerIP caps the connections from one client address (for IPv6, one
	// /64 network); a request over it gets 429 before the upgrade. Zero means 256,
	// room for a crowd behind one NAT; negative means no cap.
	MaxConnsPerIP int
	// ClientIPHeader, if set, names a header that a proxy in front of this server
	// sets to the client's address, such as "X-Forwarded-For" or "X-Real-IP". The
	// last address in it is used (the one the nearest proxy added). Set it only
	// behind a proxy that sets it, or clients can claim any address.
	ClientIPHeader string
}

// NewWebSocketHandler returns an http.Handler that upgrades each request to a WebSocket
// and serves it with e ([Engine.Serve]) on a goroutine of its own: the handler returns
// once the connection is upgraded, so middleware around it sees the request end then,
// and [Engine.Shutdown] waits for the connection as for any Serve. The context Serve
// gets, and [Config.OnJoin] with it, keeps the request's values but not its
// cancellation. Per-message compression is off, a frame over
// [Config.MaxFrameBytes] closes the connection with [CloseMessageTooBig], and a binary
// frame closes it with [CloseUnsupportedData]. The engine pings a connection that
// has been silent (see [Config.HeartbeatInterval]). A client that ends its TCP
// connection without a close frame (a killed process, a reset) is let go at once,
// without a close handshake: a close frame would go into a socket nobody reads. (A
// client whose network is lost sends nothing at all; the heartbeat finds it.)
//
// It uses github.com/coder/websocket, the maintained home of the deprecated
// nhooyr.io/websocket.
func NewWebSocketHandler(e *Engine, opts *WebSocketOptions) http.Handler {
	var o WebSocketOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxConns == 0 {
		o.MaxConns = 10000
	}
	if o.MaxConnsPerIP == 0 {
		o.MaxConnsPerIP = 256
	}
	return &wsHandler{
		e:    e,
		opts: o,
		accept: &websocket.AcceptOptions{
			OriginPatterns:  o.OriginPatterns,
			CompressionMode: websocket.CompressionDisabled,
		},
		perIP: make(map[netip.Addr]int),
	}
}

type wsHandler struct {
	e      *Engine
	opts   WebSocketOptions
	accept *websocket.AcceptOptions

	mu    sync.Mutex
	conns int
	perIP map[netip.Addr]int
}

func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.e.isClosed() || h.e.isDraining() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	addr := h.clientAddr(r)
	if status := h.admit(addrKey(addr)); status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	hw := &hijackWatcher{ResponseWriter: w}
	c, err := websocket.Accept(hw, r, h.accept)
	if err != nil {
		h.release(addrKey(addr))
		return // Accept has written the HTTP error (403 for a foreign Origin)
	}
	c.SetReadLimit(int64(h.e.cfg.MaxFrameBytes))
	// After the upgrade, net/http no longer watches the connection: the engine
	// (Shutdown, the peer, the deadlines) ends it, so the request's context is
	// not needed to, and Serve saves a context registration per connection. The
	// connection is served on a goroutine of its own and this handler returns, so
	// that net/http lets go of what it kept for the HTTP request: its connection
	// state, its 4 KiB write buffer, the parsed request and a goroutine stack grown
	// by the handshake, several KiB per connection. Shutdown waits for Serve.
	ctx := context.WithoutCancel(r.Context())
	t := &wsTransport{c: c, addr: addr, out: hw.out}
	go h.serve(ctx, t, addr)
}

// serve runs Serve for an upgraded connection. A panic is logged and ends the
// connection, as net/http does for a handler's.
func (h *wsHandler) serve(ctx context.Context, t *wsTransport, addr netip.Addr) {
	defer h.release(addrKey(addr))
	defer func() {
		if r := recover(); r != nil {
			h.e.log.Error("flamingo: panic serving a connection", slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			_ = t.CloseNow()
		}
	}()
	_ = h.e.Serve(ctx, t)
}

// admit counts a new connection from addr, or returns the HTTP status that refuses it.
func (h *wsHandler) admit(addr netip.Addr) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.opts.MaxConns > 0 && h.conns >= h.opts.MaxConns {
		return http.StatusServiceUnavailable
	}
	if h.opts.MaxConnsPerIP > 0 && addr.IsValid() && h.perIP[addr] >= h.opts.MaxConnsPerIP {
		return http.StatusTooManyRequests
	}
	h.conns++
	if addr.IsValid() {
		h.perIP[addr]++
	}
	return 0
}

func (h *wsHandler) release(addr netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns--
	if addr.IsValid() {
		if h.perIP[addr]--; h.perIP[addr] <= 0 {
			delete(h.perIP, addr)
		}
	}
}

// clientAddr is the client's address: from the trusted proxy header if one is set
// and present, otherwise the connection's peer. IPv4-mapped IPv6 addresses are
// unmapped, so that one client has one address.
func (h *wsHandler) clientAddr(r *http.Request) netip.Addr {
	if name := h.opts.ClientIPHeader; name != "" {
		if v := r.Header.Values(name); len(v) > 0 {
			last := v[len(v)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a.Unmap()
			}
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
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
	c    *websocket.Conn
	addr netip.Addr  // the client's address, when the handler knows it
	out  *gatherConn // over the hijacked connection, when the handler made it
	buf  []byte      // reused between reads
	// peerGone is set once a read found the TCP connection ended by the peer
	// without a close frame (see Close).
	peerGone atomic.Bool
}

var _ gatherer = (*wsTransport)(nil)

func (t *wsTransport) gather() {
	if t.out != nil {
		t.out.gather()
	}
}

func (t *wsTransport) flush() error {
	if t.out != nil {
		return t.out.flush()
	}
	return nil
}

func (t *wsTransport) gathered() int {
	if t.out != nil {
		return t.out.gathered()
	}
	return 0
}

var _ Addresser = (*wsTransport)(nil)

// RemoteAddr implements [Addresser]. It is the zero Addr for a transport made by
// [NewWebSocketTransport], which does not know where the connection came from.
func (t *wsTransport) RemoteAddr() netip.Addr { return t.addr }

// bufKeep is the largest read buffer kept between reads; a larger one (after a big
// frame) is dropped so that idle connections stay small.
const bufKeep = 4 << 10

func (t *wsTransport) Read(ctx context.Context) ([]byte, error) {
	typ, r, err := t.c.Reader(ctx)
	if err != nil {
		t.noteReadErr(err)
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
			t.noteReadErr(err)
			return nil, err
		}
	}
	t.buf = b
	return b, nil
}

// noteReadErr sets peerGone if err says that the peer ended the TCP connection (or
// reset it) without a close frame.
func (t *wsTransport) noteReadErr(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		t.peerGone.Store(true)
	}
}

func (t *wsTransport) Write(ctx context.Context, p []byte) error {
	return t.c.Write(ctx, websocket.MessageText, p)
}

// Close closes the connection with a close handshake, unless the peer has already
// ended the TCP connection without a close frame (RFC 6455 calls that a lost
// connection, 1006): then no close frame is owed, nobody would answer one, and Close
// only lets go of the connection (what was gathered for it is still written out if it
// can be at once, see gatherConn.Close).
func (t *wsTransport) Close(code CloseCode, reason string) error {
	if t.peerGone.Load() {
		return t.c.CloseNow()
	}
	return t.c.Close(websocket.StatusCode(code), reason)
}

func (t *wsTransport) Ping(ctx context.Context) error {
	return t.c.Ping(ctx)
}

// CloseNow closes the connection without waiting for the peer; Shutdown uses it once
// its context is done (see closeNower). coder/websocket's own CloseNow does not end a
// close handshake already under way, which waits up to 5 s for a peer that does not
// read: closing the hijacked connection does.
func (t *wsTransport) CloseNow() error {
	if t.out != nil {
		return t.out.Conn.Close() // the hijacked connection itself, not gatherConn.Close
	}
	return t.c.CloseNow()
}

// hijackWatcher hands coder/websocket a gatherConn over the connection that
// websocket.Accept hijacks, with a write buffer just large enough for a control frame
// (see gatherConn), and keeps it for the transport, which can close the connection
// underneath at once.
type hijackWatcher struct {
	http.ResponseWriter
	out *gatherConn
}

// controlFrameMax is the largest control frame a server writes: a 2-byte header and
// at most 125 bytes of payload. coder/websocket's write buffer is this size, so that
// a ping, a pong or a close goes out in one write without a buffer of 4 KiB kept for
// every connection; the engine's own frames are gathered (see gatherConn).
const controlFrameMax = 127

func (h *hijackWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return c, rw, err
	}
	// net/http has flushed the handshake's response, so rw.Writer is empty: it is
	// replaced, and dropped with the rest of net/http's state for the request once
	// the handler returns. The reader, which may hold the client's first frame, is
	// kept.
	h.out = &gatherConn{Conn: c}
	return h.out, bufio.NewReadWriter(rw.Reader, bufio.NewWriterSize(h.out, controlFrameMax)), nil
}

// Unwrap lets http.ResponseController reach the ResponseWriter underneath.
func (h *hijackWatcher) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// gatherConn is a hijacked connection as coder/websocket writes to it. Between
// gather and flush (the engine's writer writing a batch), writes are gathered in a
// pooled buffer and sent with one write at flush (the writer flushes a long batch
// in parts): a frame, or a burst of frames, costs one system call, and an idle
// connection keeps no write buffer. Otherwise
// (pings, pongs and close frames from other goroutines) writes go straight through.
// Writes never interleave: coder/websocket writes one frame at a time, and a write
// made while gathering joins the buffer behind what is there.
type gatherConn struct {
	net.Conn

	mu        sync.Mutex // held across writes to Conn, so that they keep their order
	gathering bool
	buf       *[]byte // from gatherPool while gathering; nil otherwise
	err       error   // of a failed write of gathered bytes: they are lost
}

// gatherKeep is the largest gather buffer returned to the pool; gatherFlushAt is the
// size at which the writer writes out a batch being gathered before the batch ends;
// closeFlushWait bounds the write of what is gathered when the connection closes.
const (
	gatherKeep     = 64 << 10
	gatherFlushAt  = 32 << 10
	closeFlushWait = 100 * time.Millisecond
)

var gatherPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func (g *gatherConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.gathering {
		return g.Conn.Write(p)
	}
	if g.buf == nil {
		g.buf = gatherPool.Get().(*[]byte)
	}
	*g.buf = append(*g.buf, p...)
	return len(p), nil
}

// gathered returns how many bytes are gathered: the writer flushes a long batch in
// parts (gatherFlushAt), so that it knows which frames went out with each part.
func (g *gatherConn) gathered() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.buf == nil {
		return 0
	}
	return len(*g.buf)
}

// Close writes out what was gathered, if it can at once, and closes the connection.
// coder/websocket answers a peer's close frame and then closes: if the writer was
// gathering a batch, the answer is in the buffer, with frames before it.
func (g *gatherConn) Close() error {
	if g.mu.TryLock() {
		if g.buf != nil {
			_ = g.Conn.SetWriteDeadline(time.Now().Add(closeFlushWait))
			_ = g.writeLocked() // a failure sticks: the writer holds its frames
		}
		g.gathering = false
		g.mu.Unlock()
	}
	return g.Conn.Close()
}

func (g *gatherConn) gather() {
	g.mu.Lock()
	g.gathering = true
	g.mu.Unlock()
}

// flush ends the gathering and writes what was gathered.
func (g *gatherConn) flush() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gathering = false
	return g.writeLocked()
}

// writeLocked writes the gathered bytes and gives the buffer back. Once it has
// failed, it fails from then on: some gathered bytes did not go out.
func (g *gatherConn) writeLocked() error {
	if g.err != nil || g.buf == nil {
		return g.err
	}
	b := g.buf
	g.buf = nil
	_, g.err = g.Conn.Write(*b)
	if cap(*b) <= gatherKeep {
		*b = (*b)[:0]
		gatherPool.Put(b)
	}
	return g.err
}
