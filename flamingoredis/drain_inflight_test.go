package flamingoredis

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// TestClusterDrainInFlightMessage: a message that reaches a draining node after the
// node's 1012 close frame went out, and before the client's close frame, reaches the
// partner once, when the client sends it again after resuming on another node with
// the same client_msg_id, as flamingo.js does with every message not acknowledged.
// The client here is a raw WebSocket client, so the test can put the message on the
// wire exactly there: a browser that sent the message a moment before the close frame
// reached it puts it in the same place, and has no way to know that it was not taken.
//
// The node itself discards such a message in nearly every run (76 in 80 when this
// was measured): coder/websocket's Conn.Close writes the close frame, then takes the
// read lock as soon as Serve's read loop lets go of it (between a frame's header and
// its payload) and discards every data frame until the peer's close frame ("All data
// messages received from the peer during the close handshake will be discarded").
// The re-send delivers it then. In the other runs the node took it before it let the
// session go: its ack was held and is replayed on the other node, and the re-send is
// acknowledged again with the same message_id and not delivered twice.
func TestClusterDrainInFlightMessage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, client redis.UniversalClient) {
		n := startNodes(t, client, 2)
		n1, n2 := n[0], n[1]
		alice := rawDial(t, n1.url)
		alice.send(t, `{"type":"init"}`)
		var ready flamingo.ReadyPayload
		alice.expect(t, flamingo.EventReady, &ready)
		alice.send(t, `{"type":"join_queue","payload":{"gender":"female"}}`)
		alice.expect(t, flamingo.EventQueueJoined, nil)
		bob := n2.dial()
		bob.Init("")
		bob.Join(flamingo.GenderMale, flamingo.PreferFemale)
		bob.Expect(flamingo.EventMatchFound)
		var m flamingo.MatchFoundPayload
		alice.expect(t, flamingo.EventMatchFound, &m)

		alice.send(t, fmt.Sprintf(`{"type":"send_message","payload":{"chat_id":%q,"content":"before"}}`, m.ChatID))
		assert.Equal(t, "before", bob.ExpectMessage().Content)

		drained := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			drained <- n1.e.Drain(ctx)
		}()
		code := alice.readClose(t)
		require.Equal(t, uint16(flamingo.CloseServiceRestart), code)
		// In flight: after the server's close frame, before the client's.
		inFlight := flamingo.SendMessagePayload{ChatID: m.ChatID, Content: "in flight", ClientMsgID: "m-1"}
		b, err := json.Marshal(map[string]any{"type": flamingo.EventSendMessage, "payload": inFlight})
		require.NoError(t, err)
		alice.send(t, string(b))
		alice.writeFrame(t, 0x8, binary.BigEndian.AppendUint16(nil, code))
		alice.waitEOF(t)

		alice2 := n2.dial()
		r2 := alice2.Init(ready.UserID)
		require.True(t, r2.Resumed)
		require.Equal(t, m.ChatID, r2.ChatID)
		require.NoError(t, <-drained)
		// No ack came on the old connection: send it again, then a new one.
		alice2.Send(flamingo.EventSendMessage, inFlight)
		alice2.Say("after")
		var ids []string
		for {
			ev := alice2.Next()
			if ev.Type == flamingo.EventPong {
				break
			}
			require.Equal(t, flamingo.EventMessageSent, ev.Type, "%s", ev.Raw)
			var ack flamingo.MessageSentPayload
			require.NoError(t, ev.Decode(&ack))
			assert.Equal(t, "m-1", ack.ClientMsgID)
			ids = append(ids, ack.MessageID)
			if len(ids) == 1 {
				alice2.Send(flamingo.EventPing, nil) // the replay (a held ack) is over by then
			}
		}
		require.NotEmpty(t, ids, "the message in flight is acknowledged")
		for _, id := range ids {
			assert.Equal(t, ids[0], id, "acknowledged with one message_id")
		}

		evs := readUntil(t, bob, "after")
		var got []string
		for _, ev := range evs {
			if ev.Type == flamingo.EventMessageReceived {
				var mr flamingo.MessageReceivedPayload
				require.NoError(t, ev.Decode(&mr))
				got = append(got, mr.Content)
				if mr.Content == "in flight" {
					assert.Equal(t, ids[0], mr.MessageID)
				}
			}
		}
		assert.Equal(t, []string{"in flight", "after"}, got, "the message in flight, once, in order")
		assert.Equal(t, []flamingo.EventType{flamingo.EventPartnerAway, flamingo.EventPartnerBack}, presence(evs))
		bob.Sync()
	})
}

// rawWS is a minimal WebSocket client on a plain TCP connection.
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

func rawDial(t *testing.T, url string) *rawWS {
	t.Helper()
	host := strings.TrimPrefix(url, "ws://")
	host, path, _ := strings.Cut(host, "/")
	c, err := net.Dial("tcp", host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host, base64.StdEncoding.EncodeToString(key))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawWS{c: c, br: br}
}

func (w *rawWS) writeFrame(t *testing.T, op byte, p []byte) {
	t.Helper()
	b := []byte{0x80 | op}
	switch {
	case len(p) < 126:
		b = append(b, 0x80|byte(len(p)))
	default:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	b = append(b, mask...)
	for i, x := range p {
		b = append(b, x^mask[i%4])
	}
	_, err := w.c.Write(b)
	require.NoError(t, err)
}

func (w *rawWS) send(t *testing.T, s string) {
	t.Helper()
	w.writeFrame(t, 0x1, []byte(s))
}

// readFrame reads one unmasked frame from the server.
func (w *rawWS) readFrame(t *testing.T) (byte, []byte) {
	t.Helper()
	var h [2]byte
	_, err := io.ReadFull(w.br, h[:])
	require.NoError(t, err)
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(w.br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(w.br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	require.NoError(t, err)
	p := make([]byte, n)
	_, err = io.ReadFull(w.br, p)
	require.NoError(t, err)
	return h[0] & 0x0f, p
}

func (w *rawWS) expect(t *testing.T, typ flamingo.EventType, v any) {
	t.Helper()
	op, p := w.readFrame(t)
	require.Equal(t, byte(0x1), op, "frame %q", p)
	var env flamingo.Envelope
	require.NoError(t, json.Unmarshal(p, &env))
	require.Equal(t, typ, env.Type, "frame %s", p)
	if v != nil {
		require.NoError(t, json.Unmarshal(env.Payload, v))
	}
}

// readClose reads frames until a close frame and returns its code.
func (w *rawWS) readClose(t *testing.T) uint16 {
	t.Helper()
	for {
		op, p := w.readFrame(t)
		if op == 0x8 {
			require.GreaterOrEqual(t, len(p), 2)
			return binary.BigEndian.Uint16(p)
		}
	}
}

// waitEOF waits until the server closes the TCP connection.
func (w *rawWS) waitEOF(t *testing.T) {
	t.Helper()
	_, err := io.Copy(io.Discard, w.br)
	require.NoError(t, err)
}
