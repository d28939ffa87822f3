package flamingotest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
)

// This file checks the checks: TestTransport runs on pipes broken on purpose, one flaw
// at a time, and the subtest written for each flaw must fail. A failing subtest fails
// the whole test binary, so each run happens in a child process (this test binary
// again, running TestTransportFlawed) whose output is read. TestPipe_Conformance runs
// the same pipe with no flaw, which must pass.

// transportFlaws names each flaw and the subtest of TestTransport that must catch it.
var transportFlaws = []struct {
	flaw    string
	subtest string
}{
	{"reorder", "Order"},                              // swaps each two messages
	{"truncate", "LargeMessages"},                     // cuts messages to 4 KiB
	{"one-lock", "ReadConcurrentWithWrite"},           // Write waits while a Read is pending
	{"scribble", "WriteLeavesPUnchanged"},             // Write zeroes p once it has sent it
	{"keep", "WriteDoesNotKeepP"},                     // Write sends p itself, not a copy
	{"shared-buffer", "ReadResultValidUntilNextRead"}, // Write uses Read's buffer as scratch
	{"close-no-unblock", "CloseUnblocksRead"},         // Close does nothing
	{"close-one-side", "CloseUnblocksRead"},           // Close ends this end only
	{"write-no-unblock", "CloseUnblocksWrite"},        // a blocked Write ignores Close
	{"write-after-close-ok", "WriteAfterClose"},       // Write after Close drops p, no error
	{"close-panics-twice", "CloseTwiceAndConcurrently"},
	{"ping-fails", "Ping"},          // Ping fails while the peer reads
	{"ping-after-close-ok", "Ping"}, // Ping succeeds after Close
}

// flawEnv, set in a child process, names the flaw that TestTransportFlawed gives its
// pipes.
const flawEnv = "FLAMINGOTEST_TRANSPORT_FLAW"

func TestTransport_CatchesFlaws(t *testing.T) {
	if os.Getenv(flawEnv) != "" {
		t.Skip("in a child process")
	}
	covered := map[string]bool{}
	for _, tt := range transportFlaws {
		covered[tt.subtest] = true
	}
	for _, st := range transportSubtests {
		if !covered[st.name] {
			t.Errorf("no flaw shows that subtest %s can fail", st.name)
		}
	}
	for _, tt := range transportFlaws {
		t.Run(tt.flaw, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTransportFlawed$/^"+tt.subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), flawEnv+"="+tt.flaw)
			out, err := cmd.CombinedOutput()
			if !strings.Contains(string(out), "--- FAIL: TestTransportFlawed/"+tt.subtest+" ") {
				t.Errorf("TestTransport/%s passed a pipe with flaw %q (child process: %v):\n%s", tt.subtest, tt.flaw, err, out)
			}
		})
	}
}

// TestTransportFlawed runs TestTransport on pipes with the flaw named by flawEnv. It
// runs only in a child process of TestTransport_CatchesFlaws, which picks the subtest.
func TestTransportFlawed(t *testing.T) {
	flaw := os.Getenv(flawEnv)
	if flaw == "" {
		t.Skip("runs only in a child process of TestTransport_CatchesFlaws")
	}
	// A flaw that hangs is caught by a bound: a short one keeps the run short.
	transportWait = 500 * time.Millisecond
	TestTransport(t, func(t *testing.T) (a, b flamingo.Transport) {
		server, client := Pipe()
		fa, fb := &flawedEnd{PipeEnd: server, flaw: flaw}, &flawedEnd{PipeEnd: client, flaw: flaw}
		for _, f := range []*flawedEnd{fa, fb} {
			f.own = make(chan struct{})
		}
		fa.peerEnd, fb.peerEnd = fb, fa
		return fa, fb
	})
}

// errFlawClosed is what a flawed end that keeps its own close state returns.
var errFlawClosed = errors.New("flawed end closed")

// flawedEnd is a PipeEnd with one flaw.
type flawedEnd struct {
	*PipeEnd
	flaw    string
	peerEnd *flawedEnd

	mu   sync.Mutex // held by Read and Write, for one-lock
	held []byte     // the message held back, for reorder
	buf  []byte     // Read's result and Write's scratch, for shared-buffer

	own     chan struct{} // closed by this end's Close, for close-one-side and close-panics-twice
	ownOnce sync.Once
	closed  bool // Close was called, for write-after-close-ok and ping-after-close-ok
}

func (f *flawedEnd) Read(ctx context.Context) ([]byte, error) {
	switch f.flaw {
	case "one-lock":
		f.mu.Lock()
		defer f.mu.Unlock()
	case "shared-buffer":
		b, err := f.PipeEnd.Read(ctx)
		f.buf = append(f.buf[:0], b...)
		return f.buf, err
	case "close-one-side":
		select {
		case b := <-f.in:
			return b, nil
		case <-f.own:
			return nil, errFlawClosed
		}
	}
	return f.PipeEnd.Read(ctx)
}

func (f *flawedEnd) Write(ctx context.Context, p []byte) error {
	switch f.flaw {
	case "one-lock":
		f.mu.Lock()
		defer f.mu.Unlock()
	case "reorder":
		if f.held == nil {
			f.held = append([]byte(nil), p...)
			return nil
		}
		held := f.held
		f.held = nil
		if err := f.PipeEnd.Write(ctx, p); err != nil {
			return err
		}
		return f.PipeEnd.Write(ctx, held)
	case "truncate":
		return f.PipeEnd.Write(ctx, p[:min(len(p), 4<<10)])
	case "scribble":
		err := f.PipeEnd.Write(ctx, p)
		clear(p)
		return err
	case "keep":
		select {
		case f.peer.in <- p:
			return nil
		case <-f.state.done:
			return errFlawClosed
		}
	case "shared-buffer":
		f.buf = append(f.buf[:0], p...)
		return f.PipeEnd.Write(ctx, f.buf)
	case "close-one-side":
		select {
		case <-f.own:
			return errFlawClosed
		case f.peer.in <- append([]byte(nil), p...):
			return nil
		}
	case "write-no-unblock":
		select {
		case <-f.state.done:
			return errFlawClosed
		default:
		}
		f.peer.in <- append([]byte(nil), p...)
		return nil
	case "write-after-close-ok":
		f.mu.Lock()
		closed := f.closed
		f.mu.Unlock()
		if closed {
			return nil
		}
	}
	return f.PipeEnd.Write(ctx, p)
}

func (f *flawedEnd) Close(code flamingo.CloseCode, reason string) error {
	switch f.flaw {
	case "close-no-unblock":
		return nil
	case "close-one-side":
		f.ownOnce.Do(func() { close(f.own) })
		return nil
	case "close-panics-twice":
		close(f.own) // panics the second time
	}
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return f.PipeEnd.Close(code, reason)
}

func (f *flawedEnd) Ping(ctx context.Context) error {
	switch f.flaw {
	case "ping-fails":
		return errors.New("no pong")
	case "ping-after-close-ok":
		return nil
	}
	return f.PipeEnd.Ping(ctx)
}
