package flamingo

import (
	"context"
	"net/netip"
)

// This file holds the transport seam: what the Engine needs of a connection, the
// optional capabilities it looks for, and the close codes it uses.

// Transport is one client connection's message pipe: whole text messages in, whole
// text messages out. It knows nothing of chat; [Engine.Serve] runs the protocol over it.
//
// The Engine calls Read from one goroutine only (the one running Serve). Write is
// called from one goroutine at a time, but concurrently with Read. Close may be called
// at any time from any goroutine, more than once; it must unblock a pending Read and
// Write, and calls after the first may do nothing.
//
// The Engine never cancels the context it passes to Read; it unblocks a Read by calling
// Close, which is cheaper for most transports. It bounds each Write with a timer that
// calls Close rather than with a context deadline, for the same reason.
type Transport interface {
	// Read blocks until the next message arrives and returns it. The returned slice
	// may be reused by the next Read call. Any error ends the connection.
	Read(ctx context.Context) ([]byte, error)
	// Write sends one message. It must not modify p, nor keep it once it returns;
	// the Engine does not modify p either, and may send its bytes again after a
	// failed Write (to a resumed connection).
	Write(ctx context.Context, p []byte) error
	// Close ends the connection, telling the peer code and reason where the
	// transport can.
	Close(code CloseCode, reason string) error
}

// Pinger is a [Transport] that can check that its peer is alive. When a Transport
// implements it, the Engine calls Ping once the connection has been silent for up to
// [Config.HeartbeatInterval] (a frame read is a sign of life too, for up to four
// intervals) and closes the connection if no answer comes within
// [Config.HeartbeatTimeout]. Ping is called
// concurrently with Read, never with another Ping.
type Pinger interface {
	Ping(ctx context.Context) error
}

// CloseCode is a WebSocket close status code, as the engine uses them.
type CloseCode int

// Close codes the engine uses. A client should reconnect (and resume) after
// CloseGoingAway, CloseSlowConsumer and abnormal closes, at once after
// CloseServiceRestart, and not after CloseSessionReplaced, which means the user opened
// the chat elsewhere.
const (
	CloseNormal          CloseCode = 1000 // the connection ended normally
	CloseGoingAway       CloseCode = 1001 // the server is shutting down or lost the peer's heartbeat
	CloseUnsupportedData CloseCode = 1003 // a binary frame arrived
	CloseInvalidPayload  CloseCode = 1007 // a text frame was not valid UTF-8
	ClosePolicyViolation CloseCode = 1008 // no init within Config.InitTimeout, or abuse
	CloseMessageTooBig   CloseCode = 1009 // a frame over Config.MaxFrameBytes
	CloseInternalError   CloseCode = 1011 // a hook panicked while handling this connection's event
	CloseServiceRestart  CloseCode = 1012 // the server is draining (Engine.Drain): reconnect at once
	CloseSessionReplaced CloseCode = 4001 // another connection took the session over
	CloseSlowConsumer    CloseCode = 4002 // the client did not read its events fast enough
)

// Addresser is a [Transport] that knows its peer's network address. The Engine applies
// [Config.InitRate] and [Config.ResumeGuessRate] per address to transports that
// implement it (the WebSocket adapter does) and not at all to others.
type Addresser interface {
	RemoteAddr() netip.Addr
}
