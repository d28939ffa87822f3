package flamingo

import (
	"context"
	"fmt"
	"log/slog"
)

// This file holds what operators do to a running engine: drain it before a restart,
// ask whether it is ready for traffic, and kick a user out.

// Drain prepares the engine to stop without ending chats where it can: it refuses new
// connections ([Engine.Serve] returns [ErrEngineClosed]; the WebSocket handler answers 503)
// and joins, and closes every connection with [CloseServiceRestart], after which
// clients reconnect at once, through the load balancer, to another node.
//
// With a [Broker], the users' sessions, chats and the events held for them move to
// the nodes they reconnect to: Drain returns once every session has moved (or expired),
// or when ctx is done. Without one, no other node can take the chats over: each chat
// ends with [ReasonServerRestart] for both users before their connections close, and
// Drain returns once every connection has ended, or when ctx is done.
//
// Drain does not stop the engine: call [Engine.Shutdown] after it. It returns ctx's
// error if ctx ended first, nil otherwise; calling it again waits again.
func (e *Engine) Drain(ctx context.Context) error {
	ends := e.startDrain()
	e.callOnChatEnd(nil, ends...)
	done := e.drained
	if e.broker == nil {
		served := make(chan struct{})
		go func() {
			e.serving.Wait()
			close(served)
		}()
		done = served
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startDrain marks the engine draining and closes its connections; without a Broker
// it first ends every chat, and returns what OnChatEnd is to be told.
func (e *Engine) startDrain() (ends []ChatEnd) {
	e.mu.Lock()
	defer e.unlock()
	if e.draining {
		return nil
	}
	e.draining = true
	e.log.Info("flamingo: draining", slog.Int("connections", len(e.conns)), slog.Int("sessions", len(e.sessions)))
	if e.broker == nil {
		for ch := range e.chats {
			ends = append(ends, e.endChatLocked(ch, ch.users[0], ReasonServerRestart))
		}
	}
	for c := range e.conns {
		e.closeWhenWrittenLocked(c, CloseServiceRestart, "server restarting")
	}
	e.checkDrainedLocked()
	return ends
}

// checkDrainedLocked closes e.drained once a drain has no session left to hand over.
func (e *Engine) checkDrainedLocked() {
	if e.draining && len(e.sessions) == 0 && len(e.claims) == 0 {
		select {
		case <-e.drained:
		default:
			close(e.drained)
		}
	}
}

// Ready reports whether the engine should get new connections: nil, or an error that
// wraps [ErrEngineClosed] once Shutdown or Drain has begun, or, with a Broker that can
// tell (one with a Ping(ctx) error method, as flamingoredis's Cluster has), the error
// reaching the cluster's store. It suits a readiness probe.
func (e *Engine) Ready(ctx context.Context) error {
	switch {
	case e.isClosed():
		return fmt.Errorf("%w: shutting down", ErrEngineClosed)
	case e.isDraining():
		return fmt.Errorf("%w: draining", ErrEngineClosed)
	}
	if p, ok := e.broker.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Kick ends the session of the user with handle (the name hooks and logs use): their
// chat ends (the partner gets chat_ended with [ReasonPartnerLeft]), their connection is
// closed with [ClosePolicyViolation] and reason, and their user_id resumes nothing any
// more. With a [Broker], a user on another node is kicked there, and the user_id
// resumes nothing once the cluster has recorded the kick, a moment after the
// connection closes. Without one, Kick returns [ErrSessionNotFound] if no session has
// that handle.
func (e *Engine) Kick(handle, reason string) error {
	return e.kick(handle, reason, true)
}

// kick kicks the user with handle if this node holds their session, or else, with
// forward set and a Broker, asks the cluster to kick them where they are.
func (e *Engine) kick(handle, reason string, forward bool) error {
	end, ended, err := e.kickOrForward(handle, reason, forward)
	if ended {
		e.callOnChatEnd(nil, end)
	}
	return err
}

func (e *Engine) kickOrForward(handle, reason string, forward bool) (end ChatEnd, ended bool, err error) {
	e.mu.Lock()
	defer e.unlock()
	if s := e.sessions[handle]; s != nil {
		return e.kickLocked(s, reason)
	}
	if b := e.broker; b != nil {
		if forward {
			e.publishLocked(func() { b.Kick(handle, reason) })
		}
		return ChatEnd{}, false, nil
	}
	return ChatEnd{}, false, ErrSessionNotFound
}

// kickLocked ends session s (see Kick).
func (e *Engine) kickLocked(s *session, reason string) (end ChatEnd, ended bool, err error) {
	e.log.Info("flamingo: kicking a user", slog.String("user", s.handle), slog.String("reason", reason))
	if ch := s.chat; ch != nil {
		end, ended = e.endChatLocked(ch, s, ReasonLeft), true
	}
	if c := s.conn; c != nil {
		// The connection closes once it has written what it has (the chat_ended
		// above); it serves nothing more meanwhile.
		c.sess, s.conn = nil, nil
		c.replaced = true
		e.online--
		e.closeWhenWrittenLocked(c, ClosePolicyViolation, reason)
	}
	e.leaveQueueLocked(s)
	delete(e.sessions, s.handle)
	s.held, s.heldBytes = nil, 0
	if b := e.broker; b != nil {
		e.publishLocked(func() { b.Forget(s.handle) })
	}
	e.checkDrainedLocked()
	return end, ended, nil
}
