package flamingo

// ReportedMessages returns how many messages e keeps for reports, over every chat
// record its sessions and its list of ended chats refer to.
func ReportedMessages(e *Engine) int {
	e.mu.Lock()
	defer e.unlock()
	seen := make(map[*chatRecord]bool)
	n := 0
	count := func(r *chatRecord) {
		if r != nil && !seen[r] {
			seen[r] = true
			n += len(r.msgs)
		}
	}
	for _, s := range e.sessions {
		count(s.talk)
		for _, r := range s.ended {
			count(r)
		}
	}
	for _, r := range e.endedChats {
		count(r)
	}
	return n
}
