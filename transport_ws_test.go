package flamingo_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// wsServer serves e over a real WebSocket on loopback and returns its ws:// URL.
func wsServer(t *testing.T, e *flamingo.Engine, opts *flamingo.WebSocketOptions) string {
	t.Helper()
	srv := httptest.NewServer(flamingo.NewWebSocketHandler(e, opts))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestWebSocket_WholeFlow(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	url := wsServer(t, e, nil)
	a, b := flamingotest.Dial(t, url, nil), flamingotest.Dial(t, url, nil)
	flamingotest.Match(t, a, b)

	a.Say("hello over the wire 🦩")
	assert.Equal(t, "hello over the wire 🦩", b.ExpectMessage().Content)
	b.Send(flamingo.EventGetStats, nil)
	var st flamingo.Stats
	b.ExpectPayload(flamingo.EventStats, &st)
	assert.Equal(t, flamingo.Stats{Online: 2, InChat: 2}, st)

	b.Send(flamingo.EventLeaveChat, nil)
	b.Expect(flamingo.EventChatEnded)
	a.Expect(flamingo.EventChatEnded)
}

func TestWebSocket_ResumeAfterReload(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	url := wsServer(t, e, nil)
	a, b := flamingotest.Dial(t, url, nil), flamingotest.Dial(t, url, nil)
	flamingotest.Match(t, a, b)

	a.Close() // the page reloads
	require.Eventually(t, func() bool { return e.Stats().Online == 1 }, 5*time.Second, time.Millisecond)
	b.Expect(flamingo.EventPartnerAway)
	b.Say("sent during the reload")
	b.Sync()

	a2 := flamingotest.Dial(t, url, nil)
	ready := a2.Init(a.UserID)
	assert.True(t, ready.Resumed)
	assert.Equal(t, b.ChatID, ready.ChatID)
	assert.Equal(t, "sent during the reload", a2.ExpectMessage().Content)
}

// rawDial opens a bare coder/websocket connection for sending frames flamingo's client
// would not send.
func rawDial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func TestWebSocket_FrameRules(t *testing.T) {
	tests := []struct {
		name string
		typ  websocket.MessageType
		give []byte
		want websocket.StatusCode
	}{
		{"binary frame", websocket.MessageBinary, []byte(`{"type":"ping"}`), websocket.StatusUnsupportedData},
		{"invalid utf-8", websocket.MessageText, []byte("{\"type\":\"ping\",\"x\":\"\xc3\x28\"}"), websocket.StatusInvalidFramePayloadData},
		{"over the read limit", websocket.MessageText, []byte(`{"type":"ping","pad":"` + strings.Repeat("a", 2000) + `"}`), websocket.StatusMessageTooBig},
	}
	e := newEngine(t, flamingo.Config{MaxFrameBytes: 1024})
	url := wsServer(t, e, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawDial(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, c.Write(ctx, tt.typ, tt.give))
			_, _, err := c.Read(ctx)
			assert.Equal(t, tt.want, websocket.CloseStatus(err), "got %v", err)
		})
	}
}

func TestWebSocket_Origins(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	url := wsServer(t, e, &flamingo.WebSocketOptions{OriginPatterns: []string{"chat.example"}})
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	tests := []struct {
		origin string
		want   int
	}{
		{"https://evil.example", http.StatusForbidden},
		{"https://chat.example", http.StatusSwitchingProtocols},
		{httpURL, http.StatusSwitchingProtocols}, // the server's own host
		{"", http.StatusSwitchingProtocols},      // not a browser
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
			if c != nil {
				defer c.CloseNow()
			}
			require.NotNil(t, resp, "dial error: %v", err)
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
}

func TestWebSocket_ShutdownClosesWith1001(t *testing.T) {
	e, err := flamingo.New(flamingo.Config{})
	require.NoError(t, err)
	url := wsServer(t, e, nil)
	a := flamingotest.Dial(t, url, nil)
	a.Init("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- e.Shutdown(ctx) }()
	a.ExpectClosed(flamingo.CloseGoingAway) // a answers the close handshake while reading
	require.NoError(t, <-shut)

	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "refused after shutdown")
}

// The port is part of an Origin's host: a page served on another port than the
// scheme's default needs a pattern that names the port, or allows any.
func TestWebSocket_OriginPorts(t *testing.T) {
	tests := []struct {
		name   string
		give   []string // OriginPatterns
		origin string
		want   int
	}{
		{"no port in the pattern: another port is refused", []string{"chat.example.com"}, "https://chat.example.com:8443", http.StatusForbidden},
		{"no port in the pattern: the default port is admitted", []string{"chat.example.com"}, "https://chat.example.com", http.StatusSwitchingProtocols},
		{"the port named", []string{"chat.example.com:8443"}, "https://chat.example.com:8443", http.StatusSwitchingProtocols},
		{"the port named: another port is refused", []string{"chat.example.com:8443"}, "https://chat.example.com:9443", http.StatusForbidden},
		{"any port", []string{"chat.example.com:*"}, "https://chat.example.com:8443", http.StatusSwitchingProtocols},
		{"any port: the default port needs its own pattern", []string{"chat.example.com:*"}, "https://chat.example.com", http.StatusForbidden},
		{"the default port and any other", []string{"chat.example.com", "chat.example.com:*"}, "https://chat.example.com", http.StatusSwitchingProtocols},
		{"with a scheme", []string{"https://chat.example.com:8443"}, "https://chat.example.com:8443", http.StatusSwitchingProtocols},
		{"with a scheme: another scheme is refused", []string{"https://chat.example.com:8443"}, "http://chat.example.com:8443", http.StatusForbidden},
	}
	e := newEngine(t, flamingo.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := wsServer(t, e, &flamingo.WebSocketOptions{OriginPatterns: tt.give})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {tt.origin}}})
			if c != nil {
				defer c.CloseNow()
			}
			require.NotNil(t, resp, "dial error: %v", err)
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
}

// httpGetUpgrade makes a WebSocket upgrade request to url (ws://) and returns the
// HTTP status of the answer.
func httpGetUpgrade(url string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(url, "ws"), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A peer that ends the TCP connection without a close frame gets no close frame
// back: nobody is left to read it, and the server lets go of the connection at once.
func TestWebSocket_PeerGoneGetsNoCloseFrame(t *testing.T) {
	e := newEngine(t, flamingo.Config{})
	url := wsServer(t, e, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", c.RemoteAddr())
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	require.NoError(t, c.(*net.TCPConn).CloseWrite()) // gone, without a close frame
	rest, err := io.ReadAll(br)
	require.NoError(t, err, "the server closes the connection")
	assert.Empty(t, rest, "nothing after the handshake, no close frame either")
}

// BenchmarkWebSocketConnectDrop measures users who connect, init and drop their
// connection without a close frame (a killed process), with 32 dialers per CPU so
// that the loop is bound by CPU: client and server share it. On Linux the dialers
// spread over 64 loopback source addresses (all of 127.0.0.0/8 is loopback there),
// so that the sockets the runs leave in TIME_WAIT do not slow the search for a free
// port.
func BenchmarkWebSocketConnectDrop(b *testing.B) {
	e, err := flamingo.New(flamingo.Config{InitRate: unlimited, EventRate: unlimited})
	require.NoError(b, err)
	srv := httptest.NewServer(flamingo.NewWebSocketHandler(e, &flamingo.WebSocketOptions{MaxConns: -1, MaxConnsPerIP: -1}))
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	tr := &http.Transport{}
	if runtime.GOOS == "linux" {
		var src atomic.Uint32
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ip := net.IPv4(127, 0, 0, byte(1+src.Add(1)%64))
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
			return d.DialContext(ctx, network, addr)
		}
	}
	hc := &http.Client{Transport: tr}
	init := []byte(`{"type":"init"}`)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
			if err != nil {
				b.Error(err)
				return
			}
			err = c.Write(ctx, websocket.MessageText, init)
			if err == nil {
				_, _, err = c.Read(ctx) // ready
			}
			_ = c.CloseNow()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(b, e.Shutdown(ctx))
}
