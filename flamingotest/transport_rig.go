package flamingotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
)

// The machinery of TestTransport (transport.go): a rig of two ends under test, with
// the goroutines that call their methods, so that the test goroutine can bound every
// wait and a panic in the transport fails a subtest rather than the test binary.

// describeMessage shortens a message for a failure report.
func describeMessage(b []byte) string {
	if len(b) <= 80 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q…%q (%d bytes)", b[:40], b[len(b)-20:], len(b))
}

// transportRig is a pair of ends under test with the goroutines that call them.
type transportRig struct {
	t    *testing.T
	a, b *transportEnd
}

// transportEnd is one end of a rig. Its Reads run on one goroutine (readLoop), as the
// engine's do; its other calls on goroutines of their own, so that the test goroutine
// can bound every wait.
type transportEnd struct {
	name string
	tr   flamingo.Transport

	reads   chan struct{}   // one request for the reader to Read
	results chan readResult // the reader's answer to each request
	reader  sync.WaitGroup  // the goroutine that calls Read
	calls   sync.WaitGroup  // every other goroutine the suite starts for this end
	stop    atomic.Bool     // set by the cleanup: loops end
}

// readResult is what one Read returned, or the panic it raised, as an error.
type readResult struct {
	b   []byte
	err error
}

// newTransportRig makes a pair with makePipe and registers the cleanup that closes its
// ends and waits, bounded, for every goroutine the rig started.
func newTransportRig(t *testing.T, makePipe func(t *testing.T) (a, b flamingo.Transport)) *transportRig {
	t.Helper()
	a, b := makePipe(t)
	if a == nil || b == nil {
		t.Fatalf("flamingotest: makePipe returned a nil end (%v, %v)", a, b)
	}
	r := &transportRig{t: t, a: newTransportEnd("a", a), b: newTransportEnd("b", b)}
	t.Cleanup(r.cleanup)
	return r
}

func newTransportEnd(name string, tr flamingo.Transport) *transportEnd {
	e := &transportEnd{
		name:    name,
		tr:      tr,
		reads:   make(chan struct{}, 1),
		results: make(chan readResult, 1),
	}
	e.reader.Add(1)
	go e.readLoop()
	return e
}

// readLoop calls Read once for each request, until the requests end. A test has at
// most one request outstanding, so that the answer never waits for room in results.
func (e *transportEnd) readLoop() {
	defer e.reader.Done()
	for range e.reads {
		b, err := safeRead(e)
		e.results <- readResult{b: b, err: err}
	}
}

// safeRead calls Read on e, turning a panic into a *panicError.
func safeRead(e *transportEnd) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, &panicError{what: "Read on end " + e.name, value: p}
		}
	}()
	return e.tr.Read(context.Background())
}

// panicError is a panic in a method of the transport under test, caught so that it
// fails the subtest instead of crashing the test binary.
type panicError struct {
	what  string
	value any
}

func (e *panicError) Error() string { return fmt.Sprintf("%s panicked: %v", e.what, e.value) }

// safely calls f, turning a panic into a *panicError.
func safely(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{what: what, value: p}
		}
	}()
	return f()
}

// panicked reports whether err is a panic caught by safely.
func panicked(err error) bool {
	var pe *panicError
	return errors.As(err, &pe)
}

func (r *transportRig) cleanup() {
	t := r.t
	// Close both ends: every pending call must return now. Only then do the
	// requests for Reads end, when no goroutine of the suite can make one.
	for _, e := range []*transportEnd{r.a, r.b} {
		e.stop.Store(true)
		e.goCall("Close", func() error { return e.tr.Close(flamingo.CloseNormal, "") })
	}
	for _, e := range []*transportEnd{r.a, r.b} {
		if !waitGroup(&e.calls) {
			t.Errorf("flamingotest: a Write, Close or Ping on end %s had not returned %v after both ends were closed", e.name, transportWait)
			continue
		}
		close(e.reads)
		if !waitGroup(&e.reader) {
			t.Errorf("flamingotest: a Read on end %s had not returned %v after both ends were closed", e.name, transportWait)
		}
	}
}

// waitGroup waits for wg for at most transportWait and reports whether it ended.
func waitGroup(wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return wait(done) == nil
}

// wait waits for ch to be closed or to deliver, for at most transportWait.
func wait[T any](ch <-chan T) error {
	timer := time.NewTimer(transportWait)
	defer timer.Stop()
	select {
	case <-ch:
		return nil
	case <-timer.C:
		return fmt.Errorf("nothing after %v", transportWait)
	}
}

// await returns what ch delivers, failing the test after transportWait.
func await[T any](t *testing.T, ch <-chan T, format string, args ...any) T {
	t.Helper()
	timer := time.NewTimer(transportWait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("flamingotest: %s: did not return within %v", fmt.Sprintf(format, args...), transportWait)
		panic("unreachable")
	}
}

// startRead asks the end's reader for one Read; collect the answer with readResult.
func (e *transportEnd) startRead() {
	e.reads <- struct{}{}
}

// readResult waits for the answer to the oldest pending read request.
func (e *transportEnd) readResult(t *testing.T) readResult {
	t.Helper()
	return await(t, e.results, "Read on end %s", e.name)
}

// read reads one message, failing the test on an error. The slice is the transport's:
// it is valid until the next read.
func (e *transportEnd) read(t *testing.T) []byte {
	t.Helper()
	e.startRead()
	res := e.readResult(t)
	if res.err != nil {
		t.Fatalf("flamingotest: Read on end %s: %v", e.name, res.err)
	}
	return res.b
}

// goCall runs f, which calls what on the end, on a goroutine of its own and returns a
// channel that delivers its error (or its panic, as a *panicError).
func (e *transportEnd) goCall(what string, f func() error) <-chan error {
	done := make(chan error, 1)
	e.calls.Add(1)
	go func() {
		defer e.calls.Done()
		done <- safely(what+" on end "+e.name, f)
	}()
	return done
}

// write writes p, failing the test if Write fails or does not return in time.
func (e *transportEnd) write(t *testing.T, p []byte) {
	t.Helper()
	err := await(t, e.goCall("Write", func() error { return e.tr.Write(context.Background(), p) }), "Write on end %s", e.name)
	if err != nil {
		t.Fatalf("flamingotest: Write on end %s: %v", e.name, err)
	}
}

// closeEnd closes the end and waits for Close to return, whatever it returns.
func (e *transportEnd) closeEnd(t *testing.T) {
	t.Helper()
	err := await(t, e.goCall("Close", func() error { return e.tr.Close(flamingo.CloseNormal, "conformance") }), "Close on end %s", e.name)
	if panicked(err) {
		t.Fatalf("flamingotest: Close on end %s: %v", e.name, err)
	}
}

// writeAll writes msgs in order on a goroutine of its own and returns a channel that
// delivers nil once all were written, or the first error.
func (e *transportEnd) writeAll(msgs [][]byte) <-chan error {
	return e.goCall("Write", func() error {
		for i, m := range msgs {
			if e.stop.Load() {
				return fmt.Errorf("stopped before message %d", i)
			}
			if err := e.tr.Write(context.Background(), m); err != nil {
				return fmt.Errorf("Write of message %d on end %s: %w", i, e.name, err)
			}
		}
		return nil
	})
}

// expectStream reads len(want) messages from e and checks each against want, in order.
func (e *transportEnd) expectStream(t *testing.T, want [][]byte) {
	t.Helper()
	for i, w := range want {
		got := e.read(t)
		if !bytes.Equal(got, w) {
			t.Fatalf("flamingotest: message %d read from end %s is %s, want %s", i, e.name, describeMessage(got), describeMessage(w))
		}
	}
}

// clones returns copies of msgs, for Write, so that the originals stay what is expected
// even if a transport modifies what it is given (WriteLeavesPUnchanged reports that).
func clones(msgs [][]byte) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = bytes.Clone(m)
	}
	return out
}

// sendAndExpect writes msgs from one end while the other reads them, and checks them.
func sendAndExpect(t *testing.T, from, to *transportEnd, msgs [][]byte) {
	t.Helper()
	written := from.writeAll(clones(msgs))
	to.expectStream(t, msgs)
	if err := await(t, written, "the writes on end %s", from.name); err != nil {
		t.Fatalf("flamingotest: %v", err)
	}
}
