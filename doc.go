// Package flamingo is an embeddable engine for anonymous one-to-one stranger chat:
// strangers connect, say what they are and whom they want to meet, are paired fairly,
// chat in real time over WebSocket, and leave.
//
// # Getting started
//
// Create an [Engine] with [New], mount [NewWebSocketHandler] on your mux, and call
// [Engine.Shutdown] on exit:
//
//	engine, err := flamingo.New(flamingo.Config{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	http.Handle("/ws", flamingo.NewWebSocketHandler(engine, nil))
//
// A zero [Config] is ready to use; each field documents its default, and [New] refuses
// an invalid value (a negative duration, say) with an error that names the field.
// Browsers and other clients then speak the JSON protocol described in
// FRONTEND_GUIDE.md.
//
// # Shutting down
//
// Call [http.Server.Shutdown] first, so that no new connection arrives, then
// [Engine.Shutdown]: net/http does not wait for WebSocket connections (they are
// hijacked), and Engine.Shutdown closes them, stops the matcher and waits for every
// goroutine the engine started. Give it a context with a deadline: once it is done,
// connections whose peers do not answer the close handshake are closed at once.
//
// # Protocol
//
// Every frame is one JSON text message, {"type": "...", "payload": {...}}. A client
// sends init first and gets ready with its user_id; then join_queue, and match_found
// when paired; send_message and leave_chat in the chat; message_received and
// chat_ended arrive from the server. Bad input is answered with an error event that
// carries an [ErrorCode]; the connection stays usable. The event types are the
// [EventType] constants and the payloads are the *Payload types.
//
// # Identity and resume
//
// The user_id in ready is a secret: 128 random bits, sent only to its owner, never to a
// partner. Internally, in hooks and logs, users are known by a handle derived from a
// hash of it. A client that disconnects keeps its session for [Config.ResumeGrace]:
// sending init with the same user_id on a new connection resumes it, and events held
// meanwhile are delivered in order. A second live connection with the same user_id takes
// the session over, and the old one is closed with [CloseSessionReplaced].
//
// # Conversation and video
//
// Besides messages, a chat carries typing indicators (typing in, partner_typing out;
// the engine turns an indicator off itself when the message is sent, after 6 seconds
// without a refresh, when the typer drops and when the chat ends), the partner's
// presence (partner_away when their connection drops and the chat is kept,
// partner_back when they resume) and WebRTC signaling: match_found names exactly one
// initiator and gives each user its ICE servers ([Config.ICEServers]; [TURNServers]
// issues short-lived TURN credentials), and signal relays an offer, answer or
// candidate to the partner as it is. A send_message with a client_msg_id is
// acknowledged with message_sent; the client re-sends what was not acknowledged after
// a resume, and the engine delivers a repeat once and acknowledges it again with the
// same message_id.
//
// # Matching
//
// A [Matcher] pairs waiting users. The default, [MemoryMatcher], pairs a user with the
// longest-waiting compatible user: each one's preference must accept the other's
// gender. Implement [Matcher] to share the queue between nodes or to match on more;
// package flamingotest has a conformance suite for implementations.
//
// # Operating it
//
// [Engine.Metrics] is a snapshot of the engine's counters (package
// github.com/flamingochat/flamingo/flamingoprom, its own module, exports them to
// Prometheus). [Engine.Ready] suits a readiness probe. [Engine.Drain], before a
// restart, sends every client away with [CloseServiceRestart]; on a cluster their
// sessions and chats move to the nodes they reconnect to. [Engine.Kick] ends a user's
// session, on whichever node holds it.
//
// # Several nodes
//
// Set [Config.Broker] to join the engine to a cluster: package
// github.com/flamingochat/flamingo/flamingoredis (its own module) provides a Broker and
// a shared Matcher on Redis. Strangers on different nodes then meet and chat, a user
// may resume on any node, and [Engine.Stats] counts the whole cluster. Without a
// Broker, none of this costs anything.
//
// # Transports
//
// [Engine.Serve] runs the protocol over any [Transport], a connection that reads and
// writes whole messages, so other transports plug in the way handlers plug into
// net/http. The WebSocket adapter is built on github.com/coder/websocket, the maintained
// home of nhooyr.io/websocket (whose every symbol is now deprecated). Package
// flamingotest has an in-memory [Transport] for tests.
//
// # Hooks
//
// [Config.OnMatch], [Config.OnMessage] and [Config.OnChatEnd] let an embedder log,
// moderate and measure. OnMessage may refuse a message with an [*Error] of its own code.
// Hooks run on engine goroutines with no lock held and must return quickly.
//
// # Slow clients and limits
//
// Each connection has a bounded queue of outgoing events ([Config.MaxQueuedEvents],
// [Config.MaxQueuedBytes]) and its own writer, so a client that does not read cannot
// hold up its partner or the engine: when its queue is full it is closed with
// [CloseSlowConsumer] and its session enters the resume grace, with the events not yet
// written held for it.
//
// Every connection also has token buckets for its events ([Config.EventRate],
// [Config.MessageRate], [Config.JoinRate]) and for the errors it earns
// ([Config.ErrorBudget]); each client address has buckets for init and for guessing
// user_ids ([Config.InitRate], [Config.ResumeGuessRate]); and the WebSocket handler caps
// connections per address and in all ([WebSocketOptions]). SECURITY.md lists every
// limit with its default.
package flamingo
