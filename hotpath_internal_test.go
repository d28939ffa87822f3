package flamingo

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

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
	_, err = g.Write([]byte("y"))
	require.NoError(t, err)
	require.NoError(t, g.flush())
	assert.Equal(t, []string{big, "y"}, rc.writes, "a full buffer goes out before the batch ends")
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
