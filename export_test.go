package flamingo

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
)

// Test-only views of an Engine's internals, for the external tests (package
// flamingo_test) that check the engine returns to empty after chaos.

// SessionCount returns how many sessions e keeps: live users and users within their
// resume grace.
func SessionCount(e *Engine) int {
	e.mu.Lock()
	defer e.unlock()
	return len(e.sessions)
}

// ChatCount returns how many chats e keeps.
func ChatCount(e *Engine) int {
	e.mu.Lock()
	defer e.unlock()
	return len(e.chats)
}

// ConnCount returns how many connections e is serving.
func ConnCount(e *Engine) int {
	e.mu.Lock()
	defer e.unlock()
	return len(e.conns)
}

// SessionAway reports whether the session of userID exists and has no connection:
// the engine has seen its user leave and the resume grace is running.
func SessionAway(e *Engine, userID string) bool {
	e.mu.Lock()
	defer e.unlock()
	s := e.sessions[handleOf(sha256.Sum256([]byte(userID)))]
	return s != nil && s.conn == nil
}

// GatheringTransport wraps a Transport as one that gathers, as the WebSocket transport
// does: what the writer writes between gather and flush reaches the inner transport
// at flush, or, once FailFlushes is set, is lost and flush fails.
type GatheringTransport struct {
	Transport

	mu        sync.Mutex
	fail      bool
	gathering bool
	pending   [][]byte
}

// FailFlushes makes every flush from now on fail, losing what was gathered.
func (g *GatheringTransport) FailFlushes() {
	g.mu.Lock()
	g.fail = true
	g.mu.Unlock()
}

func (g *GatheringTransport) Write(ctx context.Context, b []byte) error {
	g.mu.Lock()
	if g.gathering {
		g.pending = append(g.pending, append([]byte(nil), b...))
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	return g.Transport.Write(ctx, b)
}

func (g *GatheringTransport) gathered() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, b := range g.pending {
		n += len(b)
	}
	return n
}

func (g *GatheringTransport) gather() {
	g.mu.Lock()
	g.gathering = true
	g.mu.Unlock()
}

func (g *GatheringTransport) flush() error {
	g.mu.Lock()
	pending, fail := g.pending, g.fail
	g.pending, g.gathering = nil, false
	g.mu.Unlock()
	if fail {
		return errors.New("flush failed")
	}
	for _, b := range pending {
		if err := g.Transport.Write(context.Background(), b); err != nil {
			return err
		}
	}
	return nil
}
