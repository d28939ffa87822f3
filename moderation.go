package flamingo

// This file holds next, block and report (DESIGN.md §4.7): the moderation a user does
// on their own chats.

func (e *Engine) handleNext(c *conn, ev clientEvent) {
	e.sendError(c, CodeUnknownEvent, "next is not supported yet", ev.typ)
}

func (e *Engine) handleBlock(c *conn, ev clientEvent) {
	e.sendError(c, CodeUnknownEvent, "block is not supported yet", ev.typ)
}

func (e *Engine) handleReport(c *conn, ev clientEvent) {
	e.sendError(c, CodeUnknownEvent, "report is not supported yet", ev.typ)
}
