package flamingotest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
)

// transportWait bounds each wait of [TestTransport]: generous, since it is reached only
// by a test about to fail. It is a variable so that this package's tests of the suite
// itself can shorten it.
var transportWait = 10 * time.Second

// transportLarge is the size of the large messages [TestTransport] sends: half the
// engine's default frame limit, the size of a video signal at its limit.
const transportLarge = 16 << 10

// TestTransport checks that the [flamingo.Transport] pairs made by makePipe keep the
// contract documented on that interface and on [flamingo.Pinger]. A transport runs it
// from its own tests:
//
//	func TestMyTransport_Conformance(t *testing.T) {
//		flamingotest.TestTransport(t, func(t *testing.T) (a, b flamingo.Transport) {
//			server, client := newConnectedPair(t)
//			return server, client
//		})
//	}
//
// makePipe is called once or twice per subtest and must return the two ends of a new
// open connection: a message written to a is read from b, and one written to b is
// read from a. Both ends must be ready to use (any handshake done) and share nothing
// with another pair. The suite closes both ends when the subtest ends; makePipe may
// register cleanups with t for anything else it started, such as a server: they run
// after the ends are closed.
//
// The subtests check that:
//   - Order: messages written to one end are read from the other whole, unchanged and
//     in order, in each direction;
//   - LargeMessages: so are messages of 16 KiB;
//   - ReadConcurrentWithWrite: both ends read and write at once, as the engine does,
//     and every message still arrives whole and in order (run the suite with -race);
//   - WriteLeavesPUnchanged: Write does not modify the slice it is given;
//   - WriteDoesNotKeepP: once Write has returned, the caller may overwrite the slice
//     it gave, as with io.Writer, and the message sent stays as it was;
//   - ReadResultValidUntilNextRead: the slice Read returns keeps its contents until the
//     next Read on that end, while that end writes and the peer writes more;
//   - CloseUnblocksRead: Close on one end, from another goroutine, makes a pending Read
//     on that end and one on the peer return an error, with no message;
//   - CloseUnblocksWrite: Close on an end whose Write is blocked, because the peer
//     does not read, makes that Write return an error (an end that buffers without
//     bound is closed after 32 MiB instead, and its next Write must fail);
//   - WriteAfterClose: Write on an end that was closed returns an error, and the peer
//     reads an error, not a message;
//   - CloseTwiceAndConcurrently: Close may be called on both ends at once, from several
//     goroutines, and again afterwards; it always returns, and pending Reads on both
//     ends return an error;
//   - Ping: when an end implements [flamingo.Pinger], Ping succeeds while both ends
//     are reading and adds nothing to the messages read; once one end is closed, Ping
//     fails on both. The subtest is skipped when neither end is a Pinger.
//
// The suite uses the ends as [flamingo.Engine] does: Read from one goroutine per end,
// Write from one goroutine at a time, concurrently with Read, and Close and Ping from
// any goroutine; it never cancels the context of a Read or a Write. Its messages are
// non-empty UTF-8 text of at most 16 KiB. Every wait is bounded (ten seconds): a call
// that does not return in time, or that panics, fails the subtest instead of hanging
// or crashing the test binary.
func TestTransport(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	t.Helper()
	for _, st := range transportSubtests {
		t.Run(st.name, func(t *testing.T) { st.run(t, makePipe) })
	}
}

// transportSubtests are the subtests of [TestTransport], in the order they run.
var transportSubtests = []struct {
	name string
	run  func(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport))
}{
	{"Order", testTransportOrder},
	{"LargeMessages", testTransportLarge},
	{"ReadConcurrentWithWrite", testTransportConcurrent},
	{"WriteLeavesPUnchanged", testTransportWriteLeavesP},
	{"WriteDoesNotKeepP", testTransportWriteKeepsP},
	{"ReadResultValidUntilNextRead", testTransportReadResult},
	{"CloseUnblocksRead", testTransportCloseRead},
	{"CloseUnblocksWrite", testTransportCloseWrite},
	{"WriteAfterClose", testTransportWriteAfterClose},
	{"CloseTwiceAndConcurrently", testTransportCloseTwice},
	{"Ping", testTransportPing},
}

// transportMessage is the i-th message of a stream named dir: valid UTF-8 text whose
// length varies with i, from a few bytes to about 1.5 KiB.
func transportMessage(dir string, i int) []byte {
	return fmt.Appendf(nil, `{"dir":%q,"seq":%d,"text":%q}`, dir, i, strings.Repeat("flamingo 🦩 ", i%97))
}

// transportLargeMessage is the i-th large message of a stream named by the letter
// dir: exactly transportLarge bytes, each 16-byte block naming the stream, the message
// and its own offset, so that a lost, repeated or reordered chunk shows.
func transportLargeMessage(dir byte, i int) []byte {
	b := make([]byte, 0, transportLarge)
	for off := 0; off < transportLarge; off += 16 {
		b = fmt.Appendf(b, "%c%d@%012d|", dir, i%10, off)
	}
	return b
}

// stream returns n messages named dir, made by mk.
func stream(dir string, n int, mk func(string, int) []byte) [][]byte {
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = mk(dir, i)
	}
	return msgs
}

func testTransportOrder(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	sendAndExpect(t, r.a, r.b, stream("a to b", 200, transportMessage))
	sendAndExpect(t, r.b, r.a, stream("b to a", 200, transportMessage))
}

func testTransportLarge(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	for _, pair := range [][2]*transportEnd{{r.a, r.b}, {r.b, r.a}} {
		msgs := make([][]byte, 4)
		for i := range msgs {
			msgs[i] = transportLargeMessage(pair[0].name[0], i)
		}
		sendAndExpect(t, pair[0], pair[1], msgs)
	}
}

func testTransportConcurrent(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	const n = 500
	toB, toA := stream("a to b", n, transportMessage), stream("b to a", n, transportMessage)
	// Each end writes while it reads: the reads are on this goroutine (b) and on
	// another (a), the writes on two more.
	wa, wb := r.a.writeAll(clones(toB)), r.b.writeAll(clones(toA))
	var aProblem atomic.Pointer[string]
	readA := r.a.goCall("Read", func() error {
		for i, w := range toA {
			if r.a.stop.Load() {
				return nil
			}
			r.a.startRead()
			res := <-r.a.results
			if res.err != nil || !bytes.Equal(res.b, w) {
				s := fmt.Sprintf("message %d read from end a is %s (error %v), want %s", i, describeMessage(res.b), res.err, describeMessage(w))
				aProblem.Store(&s)
				return nil
			}
		}
		return nil
	})
	r.b.expectStream(t, toB)
	if err := wait(readA); err != nil {
		t.Fatalf("flamingotest: reading %d messages on end a while it writes: %v", n, err)
	}
	if p := aProblem.Load(); p != nil {
		t.Fatalf("flamingotest: %s", *p)
	}
	for _, w := range []<-chan error{wa, wb} {
		if err := await(t, w, "the writes"); err != nil {
			t.Fatalf("flamingotest: %v", err)
		}
	}
}

func testTransportWriteLeavesP(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	for _, pair := range [][2]*transportEnd{{r.a, r.b}, {r.b, r.a}} {
		from, to := pair[0], pair[1]
		for i, want := range [][]byte{transportMessage(from.name, 42), transportLargeMessage(from.name[0], 1)} {
			p := bytes.Clone(want)
			written := from.writeAll([][]byte{p})
			got := to.read(t)
			if err := await(t, written, "Write on end %s", from.name); err != nil {
				t.Fatalf("flamingotest: %v", err)
			}
			if !bytes.Equal(p, want) {
				t.Errorf("flamingotest: Write on end %s changed the slice it was given (message %d): now %s, was %s", from.name, i, describeMessage(p), describeMessage(want))
			}
			if !bytes.Equal(got, want) {
				t.Errorf("flamingotest: end %s read %s, want %s", to.name, describeMessage(got), describeMessage(want))
			}
		}
	}
}

func testTransportWriteKeepsP(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	for _, pair := range [][2]*transportEnd{{r.a, r.b}, {r.b, r.a}} {
		from, to := pair[0], pair[1]
		want := stream(from.name+" reused", 20, transportMessage)
		buf := make([]byte, 0, 4<<10)
		for i, w := range want {
			// One buffer for every message, as a caller that reuses its buffer has.
			p := append(buf[:0], w...)
			written := make(chan error, 1)
			from.calls.Add(1)
			go func() {
				defer from.calls.Done()
				err := safely("Write on end "+from.name, func() error { return from.tr.Write(context.Background(), p) })
				// Write has returned: the caller may reuse p at once.
				for j := range p {
					p[j] = '#'
				}
				written <- err
			}()
			got := to.read(t)
			// Compared only once the buffer has been overwritten: a transport that
			// kept p would now show the overwrite.
			if err := await(t, written, "Write on end %s", from.name); err != nil {
				t.Fatalf("flamingotest: Write on end %s: %v", from.name, err)
			}
			if !bytes.Equal(got, w) {
				t.Fatalf("flamingotest: message %d read from end %s is %s, want %s: Write on end %s kept the caller's buffer after it returned",
					i, to.name, describeMessage(got), describeMessage(w), from.name)
			}
		}
	}
}

func testTransportReadResult(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	const n = 100
	want := stream("held", n, func(dir string, i int) []byte {
		// One length for all, so that an overwrite in place stays the same length.
		return fmt.Appendf(nil, `{"dir":%q,"seq":%04d,"text":"%s"}`, dir, i, strings.Repeat(string(rune('a'+i%26)), 200))
	})
	// a writes ahead all along, so that further messages arrive while a result is held.
	written := r.a.writeAll(clones(want))
	for i, w := range want {
		got := r.b.read(t)
		if !bytes.Equal(got, w) {
			t.Fatalf("flamingotest: message %d read from end b is %s, want %s", i, describeMessage(got), describeMessage(w))
		}
		// While got is held, b writes and a reads that: a round trip in which
		// more of a's messages reach b.
		echo := fmt.Appendf(nil, `{"echo":%d}`, i)
		r.b.write(t, echo)
		if back := r.a.read(t); !bytes.Equal(back, echo) {
			t.Fatalf("flamingotest: end a read %s, want %s", describeMessage(back), describeMessage(echo))
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("flamingotest: the result of Read %d on end b changed before the next Read: now %s, was %s", i, describeMessage(got), describeMessage(w))
		}
	}
	if err := await(t, written, "the writes on end a"); err != nil {
		t.Fatalf("flamingotest: %v", err)
	}
}

// onEachEnd runs f twice, on a new rig each time: once with c its end a and peer its
// end b, once the other way round (subtests CloseOn_a and CloseOn_b).
func onEachEnd(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport), f func(t *testing.T, c, peer *transportEnd)) {
	for _, name := range []string{"a", "b"} {
		t.Run("CloseOn_"+name, func(t *testing.T) {
			r := newTransportRig(t, makePipe)
			c, peer := r.a, r.b
			if name == "b" {
				c, peer = r.b, r.a
			}
			f(t, c, peer)
		})
	}
}

func testTransportCloseRead(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	onEachEnd(t, makePipe, func(t *testing.T, c, peer *transportEnd) {
		// A message first: both ends are known to work before the Reads that
		// Close must end.
		sendAndExpect(t, c, peer, [][]byte{[]byte(`{"before":"close"}`)})
		c.startRead()
		peer.startRead()
		c.closeEnd(t)
		for _, e := range []*transportEnd{c, peer} {
			res := e.readResult(t)
			if res.err == nil {
				t.Errorf("flamingotest: a Read pending on end %s when end %s was closed returned %s and no error", e.name, c.name, describeMessage(res.b))
			}
		}
	})
}

// Bounds of the write loop of CloseUnblocksWrite: Close comes once the loop has made
// no progress for closeWriteStall (a Write is blocked on the peer), after closeWriteMax
// writes (the buffers have no bound), or after transportWait (the writes are slow).
const (
	closeWriteStall = 50 * time.Millisecond
	closeWriteMax   = 2048 // 32 MiB of large messages
)

func testTransportCloseWrite(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	// a writes large messages to b, which does not read, until a Write blocks on the
	// peer: Close must end that Write. Nothing can tell that a Write is blocked, so
	// the loop is watched: Close comes once it has stalled. If it comes early, while
	// Writes still return, a correct transport passes all the same; only a flawed one
	// may go unnoticed in that run.
	big := transportLargeMessage('w', 0)
	var writes atomic.Int64
	done := r.a.goCall("Write", func() error {
		for {
			if r.a.stop.Load() {
				return nil
			}
			if err := r.a.tr.Write(context.Background(), big); err != nil {
				return err
			}
			writes.Add(1)
		}
	})
	tick := time.NewTicker(closeWriteStall / 5)
	defer tick.Stop()
	deadline := time.Now().Add(transportWait)
	for last, still := int64(-1), 0; still < 5 && last < closeWriteMax && time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Fatalf("flamingotest: Write %d on end a, whose peer does not read, failed before Close: %v", writes.Load()+1, err)
		case <-tick.C:
		}
		if n := writes.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	n := writes.Load()
	r.a.closeEnd(t)
	err := await(t, done, "a Write on end a after %d writes and Close (is it blocked, or still succeeding after Close?)", n)
	if err == nil {
		t.Error("flamingotest: the write loop stopped with no error")
	}
}

func testTransportWriteAfterClose(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	onEachEnd(t, makePipe, func(t *testing.T, c, peer *transportEnd) {
		sendAndExpect(t, c, peer, [][]byte{[]byte(`{"before":"close"}`)})
		// The peer reads, as it always does, so that a close handshake can finish.
		peer.startRead()
		c.closeEnd(t)
		err := await(t, c.goCall("Write", func() error { return c.tr.Write(context.Background(), []byte(`{"after":"close"}`)) }), "Write on end %s after Close", c.name)
		if err == nil {
			t.Errorf("flamingotest: Write on end %s after Close returned no error", c.name)
		}
		if res := peer.readResult(t); res.err == nil {
			t.Errorf("flamingotest: end %s read %s after end %s was closed", peer.name, describeMessage(res.b), c.name)
		}
	})
}

func testTransportCloseTwice(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	sendAndExpect(t, r.a, r.b, [][]byte{[]byte(`{"before":"close"}`)})
	r.a.startRead()
	r.b.startRead()
	var closes []<-chan error
	for range 4 {
		for _, e := range []*transportEnd{r.a, r.b} {
			closes = append(closes, e.goCall("Close", func() error { return e.tr.Close(flamingo.CloseNormal, "at once") }))
		}
	}
	for i, c := range closes {
		if err := await(t, c, "concurrent Close %d", i); panicked(err) {
			t.Errorf("flamingotest: %v", err)
		}
	}
	for _, e := range []*transportEnd{r.a, r.b} {
		e.closeEnd(t) // once more, after the others returned
		if res := e.readResult(t); res.err == nil {
			t.Errorf("flamingotest: end %s read %s after both ends were closed", e.name, describeMessage(res.b))
		}
	}
}

func testTransportPing(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) {
	r := newTransportRig(t, makePipe)
	var pingers int
	for _, pair := range [][2]*transportEnd{{r.a, r.b}, {r.b, r.a}} {
		from, to := pair[0], pair[1]
		p, ok := from.tr.(flamingo.Pinger)
		if !ok {
			continue
		}
		pingers++
		// Both ends read, as the engine's do all along: a transport may need its own
		// reader to see the answer.
		from.startRead()
		to.startRead()
		for i := range 3 {
			err := await(t, from.goCall("Ping", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), transportWait)
				defer cancel()
				return p.Ping(ctx)
			}), "Ping %d on end %s", i, from.name)
			if err != nil {
				t.Fatalf("flamingotest: Ping %d on end %s while both ends read: %v", i, from.name, err)
			}
		}
		// The pings added nothing to the messages: the next each end reads is the
		// one its peer writes.
		for _, e := range [][2]*transportEnd{{from, to}, {to, from}} {
			w := fmt.Appendf(nil, `{"after":"pings from %s"}`, from.name)
			e[0].write(t, w)
			res := e[1].readResult(t)
			if res.err != nil || !bytes.Equal(res.b, w) {
				t.Fatalf("flamingotest: after pings from end %s, end %s read %s (error %v), want %s", from.name, e[1].name, describeMessage(res.b), res.err, describeMessage(w))
			}
		}
	}
	if pingers == 0 {
		t.Skip("neither end implements flamingo.Pinger")
	}
	// Once closed, a Pinger's Ping fails: a heartbeat must not report a closed
	// connection alive.
	r.a.startRead()
	r.b.startRead()
	r.a.closeEnd(t)
	for _, e := range []*transportEnd{r.a, r.b} {
		if res := e.readResult(t); res.err == nil {
			t.Fatalf("flamingotest: end %s read %s after end a was closed", e.name, describeMessage(res.b))
		}
	}
	for _, e := range []*transportEnd{r.a, r.b} {
		p, ok := e.tr.(flamingo.Pinger)
		if !ok {
			continue
		}
		err := await(t, e.goCall("Ping", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), transportWait/2)
			defer cancel()
			return p.Ping(ctx)
		}), "Ping on end %s after Close", e.name)
		if err == nil {
			t.Errorf("flamingotest: Ping on end %s succeeded after end a was closed", e.name)
		}
	}
}
