package flamingo

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordConn is a net.Conn that records each Write, or fails them all once err is set.
type recordConn struct {
	net.Conn
	writes []string
	err    error
}

func (r *recordConn) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

// Outside a batch, writes go straight through; within one, they are gathered into
// one write at flush, in order, and a batch too large is written in parts.
func TestGatherConn_OneWritePerBatch(t *testing.T) {
	rc := &recordConn{}
	g := &gatherConn{Conn: rc}
	_, err := g.Write([]byte("ping"))
	require.NoError(t, err)
	assert.Equal(t, []string{"ping"}, rc.writes, "not gathering: written at once")

	g.gather()
	for _, p := range []string{"a", "b", "c"} {
		n, err := g.Write([]byte(p))
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	}
	assert.Len(t, rc.writes, 1, "nothing written while gathering")
	require.NoError(t, g.flush())
	assert.Equal(t, []string{"ping", "abc"}, rc.writes)
	require.NoError(t, g.flush(), "a flush with nothing gathered")
	assert.Len(t, rc.writes, 2)

	rc.writes = nil
	g.gather()
	big := strings.Repeat("x", gatherFlushAt)
	_, err = g.Write([]byte(big))
	require.NoError(t, err)
	assert.Equal(t, gatherFlushAt, g.gathered(), "the writer, not the connection, decides when a long batch goes out")
	assert.Empty(t, rc.writes)
	require.NoError(t, g.flush())
	assert.Equal(t, []string{big}, rc.writes)
}

// Once a gathered write fails, every flush fails: what was gathered is lost, and the
// writer must not take a later empty flush for success.
func TestGatherConn_FailureSticks(t *testing.T) {
	rc := &recordConn{err: errors.New("broken pipe")}
	g := &gatherConn{Conn: rc}
	g.gather()
	_, err := g.Write([]byte("a"))
	require.NoError(t, err, "gathered, not yet written")
	require.Error(t, g.flush())
	rc.err = nil
	require.Error(t, g.flush(), "the failure sticks")
}

// Frames come from the smallest class that holds them; a larger one is not pooled.
func TestNewFrame_Classes(t *testing.T) {
	f := newFrame(100)
	assert.Equal(t, 256, cap(f.b))
	assert.Empty(t, f.b)
	f.free()
	assert.Equal(t, 2048, cap(newFrame(2000).b))
	big := newFrame(5000)
	assert.Equal(t, int8(-1), big.class)
	big.free() // not pooled: a no-op
	var none *frame
	none.free()
}

// A chat's record keeps its last messages, oldest first, and reuses their buffers
// once full: a snapshot shares nothing with the record.
func TestChatRecord_AddLocalRing(t *testing.T) {
	var r chatRecord
	at := time.Unix(1700000000, 0)
	for i, m := range []string{"one", "two", "three", "four", "five"} {
		r.addLocal(3, "u", []byte{byte('0' + i)}, []byte(m), at)
	}
	contents := func(ms []recordedMessage) []string {
		var out []string
		for _, m := range ms {
			out = append(out, string(m.content))
		}
		return out
	}
	snap := r.snapshot()
	assert.Equal(t, []string{"three", "four", "five"}, contents(snap))
	r.addLocal(3, "u", []byte("9"), []byte("SIX!!"), at)
	assert.Equal(t, []string{"three", "four", "five"}, contents(snap), "the snapshot is a copy")
	assert.Equal(t, []string{"four", "five", "SIX!!"}, contents(r.snapshot()))

	content := []byte("seven")
	allocs := testing.AllocsPerRun(100, func() { r.addLocal(3, "u", []byte("7"), content, at) })
	assert.Zero(t, allocs, "a full record reuses its buffers")
}

// failAfterConn accepts ok writes, then fails every write.
type failAfterConn struct {
	net.Conn
	ok     int
	writes [][]byte
}

func (f *failAfterConn) Write(p []byte) (int, error) {
	if f.ok == 0 {
		return 0, errors.New("broken pipe")
	}
	f.ok--
	f.writes = append(f.writes, append([]byte(nil), p...))
	return len(p), nil
}

// gatherTransport is a Transport over a real gatherConn, without WebSocket framing.
type gatherTransport struct{ g *gatherConn }

func (t *gatherTransport) Read(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (t *gatherTransport) Write(_ context.Context, p []byte) error {
	_, err := t.g.Write(p)
	return err
}

func (t *gatherTransport) Close(CloseCode, string) error { return nil }
func (t *gatherTransport) gather()                       { t.g.gather() }
func (t *gatherTransport) flush() error                  { return t.g.flush() }
func (t *gatherTransport) gathered() int                 { return t.g.gathered() }

// A batch longer than gatherFlushAt goes out in parts; when a later part fails, only
// the frames not yet written are held for the resume: none is both written and held.
func TestWriteLoop_LongBatchInParts(t *testing.T) {
	e, err := New(Config{})
	require.NoError(t, err)
	defer func() { _ = e.Shutdown(context.Background()) }()
	fc := &failAfterConn{ok: 1}
	c := &conn{e: e, t: &gatherTransport{g: &gatherConn{Conn: fc}}}
	s := &session{handle: "x"}
	c.owner = s // away: writeFailed puts what failed in front of s.held
	const n, size = 12, 4 << 10
	for i := range n {
		c.queue = append(c.queue, outFrame{b: bytes.Repeat([]byte{byte('a' + i)}, size), keep: true})
	}
	c.writing = true
	e.workers.Add(1)
	c.writeLoop()
	e.mu.Lock()
	held := s.held
	e.unlock()
	written := 0
	for _, w := range fc.writes {
		written += len(w) / size
	}
	assert.Equal(t, gatherFlushAt/size, written, "the first part went out")
	require.Len(t, held, n-written, "the rest is held, once")
	assert.Equal(t, byte('a'+written), held[0][0], "from the first frame not written")
}

// The peer closes while the writer is gathering a batch: the answer to its close
// frame, which coder/websocket writes and then closes the connection, still goes out
// (after the frames gathered before it), so the peer sees a clean close.
func TestGatherConn_CloseEchoWhileGathering(t *testing.T) {
	ts := make(chan *wsTransport, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hijackWatcher{ResponseWriter: w}
		c, err := websocket.Accept(hw, r, nil)
		if err != nil {
			return
		}
		ts <- &wsTransport{c: c, out: hw.out}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.NoError(t, err)
	st := <-ts
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Read(context.Background()); err != nil {
				readErr <- err
				return
			}
		}
	}()
	st.gather()
	require.NoError(t, st.Write(ctx, []byte("hello")))
	require.NoError(t, cl.Close(websocket.StatusNormalClosure, "bye"), "a clean close")
	<-readErr
}

// The frame lengths are exact, so that a pooled frame is built without growing out
// of its buffer: escapes in any field, and the time formatted to the millisecond.
func TestFrameLengths(t *testing.T) {
	at := time.Date(2026, 12, 7, 23, 0, 0, 123456789, time.UTC)
	for _, content := range []string{"", "hi", `a "quoted" \\ line` + "\n\t\x01 é 😀"} {
		f := messageReceivedFrame("c\"1", "m\n2", content, at)
		assert.Len(t, f.b, messageReceivedLen("c\"1", "m\n2", content), content)
		m := AckedMessage{ClientMsgID: "id-" + content, MessageID: "9f", SentAt: at}
		ack := messageSentFrame("c\"1", m)
		assert.Len(t, ack.b, messageSentLen("c\"1", m.ClientMsgID, m.MessageID), content)
	}
}
