package flamingo

// This file holds what a chat carries besides messages (DESIGN.md §4.8): typing
// indicators and WebRTC signaling.

func (e *Engine) handleTyping(c *conn, ev clientEvent) {
	e.sendError(c, CodeUnknownEvent, "typing is not supported yet", ev.typ)
}

func (e *Engine) handleSignal(c *conn, ev clientEvent) {
	e.sendError(c, CodeUnknownEvent, "signal is not supported yet", ev.typ)
}
