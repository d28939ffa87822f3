package flamingotest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/flamingochat/flamingo"
)

// PipeBuffer is how many frames each direction of a [Pipe] holds before Write blocks,
// as a socket's buffers would.
const PipeBuffer = 64

// CloseError is the error a [PipeEnd]'s Read returns once the pipe is closed and every
// frame sent before the close has been read. It carries the code and reason given to
// Close.
type CloseError struct {
	Code   flamingo.CloseCode
	Reason string
}

// Error implements the error interface.
func (e *CloseError) Error() string {
	return fmt.Sprintf("flamingotest: pipe closed with %d %q", e.Code, e.Reason)
}

// ErrPingTimeout is returned by [PipeEnd.Ping] when the peer does not answer in time.
var ErrPingTimeout = errors.New("flamingotest: ping not answered")

// pipeState is shared by both ends of a pipe.
type pipeState struct {
	done  chan struct{} // closed by the first Close
	once  sync.Once
	close CloseError // valid once done is closed
	// mu orders sends with the close: a frame is sent only while closed is false,
	// so once done is closed no frame can follow the ones a reader drains.
	mu     sync.Mutex
	closed bool
}

// PipeEnd is one end of an in-memory connection made by [Pipe]. It implements
// [flamingo.Transport] and [flamingo.Pinger].
type PipeEnd struct {
	in    chan []byte   // frames for this end to read
	taken chan struct{} // signalled (capacity 1) when this end reads a frame
	peer  *PipeEnd
	state *pipeState
	mute  atomic.Bool // this end does not answer pings
}

var (
	_ flamingo.Transport = (*PipeEnd)(nil)
	_ flamingo.Pinger    = (*PipeEnd)(nil)
)

// Pipe returns the two ends of a new in-memory connection. Frames written to one end
// are read from the other in order; each direction buffers [PipeBuffer] frames. Closing
// either end closes both: the other end still reads the frames sent before the close,
// then a [*CloseError].
func Pipe() (server, client *PipeEnd) {
	st := &pipeState{done: make(chan struct{})}
	server = &PipeEnd{in: make(chan []byte, PipeBuffer), taken: make(chan struct{}, 1), state: st}
	client = &PipeEnd{in: make(chan []byte, PipeBuffer), taken: make(chan struct{}, 1), state: st}
	server.peer, client.peer = client, server
	return server, client
}

// Read returns the next frame, or a [*CloseError] once the pipe is closed and drained,
// or ctx's error.
func (p *PipeEnd) Read(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.in:
		return p.took(b), nil
	default:
	}
	select {
	case b := <-p.in:
		return p.took(b), nil
	case <-p.state.done:
		select {
		case b := <-p.in:
			return p.took(b), nil
		default:
			ce := p.state.close
			return nil, &ce
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// took tells a writer waiting for room that there is some, and returns b.
func (p *PipeEnd) took(b []byte) []byte {
	select {
	case p.taken <- struct{}{}:
	default:
	}
	return b
}

// errFull is trySend's answer when the other end's buffer is full.
var errFull = errors.New("flamingotest: pipe buffer full")

// Write sends a copy of b to the other end, blocking while its buffer is full. A
// write that meets a close fails, and its frame is not read.
func (p *PipeEnd) Write(ctx context.Context, b []byte) error {
	frame := append([]byte(nil), b...)
	for {
		if err := p.trySend(frame); err != errFull {
			return err
		}
		select {
		case <-p.peer.taken:
		case <-p.state.done:
			ce := p.state.close
			return &ce
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// trySend sends frame if the pipe is open and the other end has room.
func (p *PipeEnd) trySend(frame []byte) error {
	p.state.mu.Lock()
	defer p.state.mu.Unlock()
	if p.state.closed {
		ce := p.state.close
		return &ce
	}
	select {
	case p.peer.in <- frame:
		return nil
	default:
		return errFull
	}
}

// Close closes the pipe with code and reason. Only the first Close counts.
func (p *PipeEnd) Close(code flamingo.CloseCode, reason string) error {
	p.state.once.Do(func() {
		p.state.mu.Lock()
		defer p.state.mu.Unlock()
		p.state.closed = true
		p.state.close = CloseError{Code: code, Reason: reason}
		close(p.state.done)
	})
	return nil
}

// Ping succeeds at once unless the pipe is closed or the other end was muted with
// [PipeEnd.MutePings], in which case it waits for ctx.
func (p *PipeEnd) Ping(ctx context.Context) error {
	select {
	case <-p.state.done:
		ce := p.state.close
		return &ce
	default:
	}
	if !p.peer.mute.Load() {
		return nil
	}
	select {
	case <-p.state.done:
		ce := p.state.close
		return &ce
	case <-ctx.Done():
		return ErrPingTimeout
	}
}

// MutePings makes this end stop answering the other end's pings, as a peer whose
// network died silently would.
func (p *PipeEnd) MutePings() {
	p.mute.Store(true)
}

// Closed returns a channel that is closed once either end has been closed.
func (p *PipeEnd) Closed() <-chan struct{} {
	return p.state.done
}
