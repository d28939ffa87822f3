package flamingo

import "crypto/sha256"

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
