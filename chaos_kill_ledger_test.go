package flamingo_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flamingochat/flamingo"
)

// The ledger of TestChaos_KillConnections, every message sent and what became of it,
// and the checks run on it after the chaos.

// chaosMsg is one send_message in the ledger.
type chaosMsg struct {
	seq    int
	from   *chaosUser
	connNo int // which of the sender's connections sent it
	chatID string

	outcome  chaosOutcome
	code     flamingo.ErrorCode // the error, for chaosErrored
	errIndex int                // the sender's event index of the error
	reads    []chaosRead
}

type chaosOutcome int

const (
	chaosOpen       chaosOutcome = iota // no answer yet
	chaosAccepted                       // the pong after it came with no error before
	chaosErrored                        // answered with an error
	chaosUnanswered                     // the sender's connection was killed before the answer
)

// chaosRead is one message_received frame a client read.
type chaosRead struct {
	by     *chaosUser
	connNo int
	chatID string
}

// chaosLedger records every message sent and what became of it.
type chaosLedger struct {
	mu   sync.Mutex
	msgs []*chaosMsg
}

func (l *chaosLedger) add(from *chaosUser, chatID string) *chaosMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := &chaosMsg{seq: len(l.msgs), from: from, connNo: from.connNo, chatID: chatID}
	l.msgs = append(l.msgs, m)
	return m
}

func (l *chaosLedger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

func (l *chaosLedger) settle(m *chaosMsg, outcome chaosOutcome, code flamingo.ErrorCode, errIndex int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m.outcome, m.code, m.errIndex = outcome, code, errIndex
}

func (l *chaosLedger) read(seq int, rd chaosRead) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < 0 || seq >= len(l.msgs) {
		return false
	}
	m := l.msgs[seq]
	m.reads = append(m.reads, rd)
	return true
}

const chaosContentPrefix = "chaos message #"

func chaosContent(seq int) string { return chaosContentPrefix + strconv.Itoa(seq) }

func chaosSeqOf(content string) (int, bool) {
	s, ok := strings.CutPrefix(content, chaosContentPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// chaosCheckMessages checks the ledger: each message was delivered at most once, only
// to its sender's partner, in order; each that the engine accepted reached the partner
// unless the partner never came back or it was on its way into a connection as that
// connection was killed; each error is one that the situation explains.
func chaosCheckMessages(t *testing.T, r *chaosRun) {
	t.Helper()
	r.ledger.mu.Lock()
	defer r.ledger.mu.Unlock()
	var (
		counts   = map[string]int{}
		codes    = map[flamingo.ErrorCode]int{}
		problems []string
	)
	fail := func(m *chaosMsg, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("message %d (user %d, connection %d, chat %s): %s",
			m.seq, m.from.idx, m.connNo, m.chatID, fmt.Sprintf(format, args...)))
	}
	readers := map[*chaosUser]bool{}
	for _, m := range r.ledger.msgs {
		s, p := m.from, m.from.partner
		if m.chatID != s.chatID || p == nil {
			fail(m, "sent into a chat that is not the sender's")
			continue
		}
		readers[p] = true
		perConn := map[int]int{}
		for _, rd := range m.reads {
			if rd.by != p {
				fail(m, "delivered to user %d, who is not the partner", rd.by.idx)
			}
			if rd.chatID != m.chatID {
				fail(m, "delivered with chat_id %s", rd.chatID)
			}
			perConn[rd.connNo]++
		}
		for connNo, n := range perConn {
			if n > 1 {
				fail(m, "delivered %d times to connection %d of the partner", n, connNo)
			}
		}
		if len(perConn) > 1 {
			// A resumed connection replays only what the old one had not been
			// given: a message the old connection read must not come again.
			fail(m, "delivered to %d connections of the partner", len(perConn))
		}
		switch m.outcome {
		case chaosOpen:
			fail(m, "never answered though its sender's connection lived")
		case chaosUnanswered:
			if len(m.reads) > 0 {
				counts["unanswered (sender killed), delivered"]++
			} else {
				counts["unanswered (sender killed), not delivered"]++
			}
		case chaosErrored:
			codes[m.code]++
			if len(m.reads) > 0 {
				fail(m, "delivered although the sender got error %s", m.code)
			}
			switch m.code {
			case flamingo.CodeNotInChat:
				// Only after the chat ended, which the sender was told first.
				told := slices.ContainsFunc(s.ends, func(e chaosEnd) bool { return e.chatID == m.chatID && e.index < m.errIndex })
				if !told {
					fail(m, "not_in_chat although the sender had not been told that the chat ended")
				}
			case flamingo.CodeRateLimited:
				// Only when the partner is away with their held events full.
				if !p.fate.kill {
					fail(m, "rate_limited although the partner never went away")
				}
			default:
				fail(m, "unexpected error %s", m.code)
			}
		case chaosAccepted:
			switch {
			case len(m.reads) > 0:
				counts["accepted, delivered"]++
			case chaosGone(p):
				// Held for a partner who never came back, who is then told the
				// chat ended (checked in chaosCheckEnds).
				counts["accepted, partner never came back"]++
			case p.fate.kill && m.seq < p.noticeSeq:
				// Sent before the engine had seen the partner's connection die,
				// so possibly written into the dead socket: no protocol without
				// acknowledgements can recover those bytes.
				counts["accepted, lost in the partner's killed socket"]++
			default:
				fail(m, "accepted, never delivered (partner user %d: killed %v, resumed %v)", p.idx, p.fate.kill, p.fate.resume)
			}
		}
	}
	// A sender's messages arrive in the order sent, over a resume too, but for one
	// case the engine documents: a frame whose write to the old connection fails
	// after the user is back on a new one goes there late, after the replay.
	for u := range readers {
		last, late := -1, map[int]int{}
		for _, rd := range u.reads {
			seq, connNo := rd[0], rd[1]
			switch {
			case seq > last:
				last = seq
			case connNo > 0 && late[connNo] == 0:
				late[connNo]++
				counts["delivered late after a resume, its write having failed"]++
			default:
				problems = append(problems, fmt.Sprintf("user %d read message %d after message %d", u.idx, seq, last))
			}
		}
	}
	t.Logf("%d messages sent: %v; errors %v", len(r.ledger.msgs), counts, codes)
	if len(problems) > 0 {
		t.Errorf("%d ledger problems, the first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"))
	}
}

// chaosGone reports whether u was killed and did not come back within the grace.
func chaosGone(u *chaosUser) bool { return u.fate.kill && (!u.fate.resume || u.late) }

// chaosCheckEnds checks chat_ended: at most one per user and chat, ever; exactly one,
// with reason partner_disconnected, within grace + 1 s of the kill, for every user
// who was there when their partner's grace ran out; none for the partner of a user
// who resumed; one each, with the right reasons, when users leave. It also checks that
// every resume the engine refused, or that found the chat over, came after the grace.
func chaosCheckEnds(t *testing.T, r *chaosRun, chats []*chaosChat, waiters []*chaosUser) {
	t.Helper()
	var (
		problems []string
		raced    = map[flamingo.EndReason]int{}
		told     int
		onReturn int
		slowest  time.Duration
		fastest  = time.Hour
	)
	for _, u := range waiters {
		if len(u.ends) > 0 || len(u.reads) > 0 {
			problems = append(problems, fmt.Sprintf("waiter %d read %d chat_ended and %d messages", u.idx, len(u.ends), len(u.reads)))
		}
		if u.late && u.resumedAt.Sub(u.killedAt) < r.grace {
			problems = append(problems, fmt.Sprintf("waiter %d got a new identity %v after the kill, within the grace", u.idx, u.resumedAt.Sub(u.killedAt)))
		}
	}
	for _, ch := range chats {
		name := chaosScenarioNames[ch.scenario]
		fail := func(format string, args ...any) {
			problems = append(problems, fmt.Sprintf("chat %s (%s): %s", ch.id, name, fmt.Sprintf(format, args...)))
		}
		none := func(u *chaosUser) {
			if len(u.ends) > 0 {
				fail("user %d was told the chat ended (%s)", u.idx, u.ends[0].reason)
			}
		}
		one := func(u *chaosUser, reasons ...flamingo.EndReason) (chaosEnd, bool) {
			if len(u.ends) != 1 {
				fail("user %d got %d chat_ended, want 1", u.idx, len(u.ends))
				return chaosEnd{}, false
			}
			if !slices.Contains(reasons, u.ends[0].reason) {
				fail("user %d got reason %s, want one of %v", u.idx, u.ends[0].reason, reasons)
				return chaosEnd{}, false
			}
			return u.ends[0], true
		}
		var reasons []flamingo.EndReason
		for _, pair := range [][2]*chaosUser{{ch.a, ch.b}, {ch.b, ch.a}} {
			u, p := pair[0], pair[1]
			for _, end := range u.ends {
				if end.chatID != ch.id {
					fail("user %d was told that chat %s ended, not theirs", u.idx, end.chatID)
				}
			}
			if u.late && u.resumedAt.Sub(u.killedAt) < r.grace {
				fail("user %d got a new identity %v after the kill, within the grace", u.idx, u.resumedAt.Sub(u.killedAt))
			}
			if u.chatGone && (!chaosGone(p) || u.resumedAt.Sub(p.killedAt) < r.grace) {
				fail("user %d resumed %v after the partner's kill and found the chat over", u.idx, u.resumedAt.Sub(p.killedAt))
			}
			switch {
			case chaosGone(u):
				none(u) // nothing had ended before the kill
			case ch.scenario == chaosBothLeave:
				if end, ok := one(u, flamingo.ReasonLeft, flamingo.ReasonPartnerLeft); ok {
					reasons = append(reasons, end.reason)
				}
			case ch.scenario == chaosOneLeaves && u == ch.a:
				one(u, flamingo.ReasonLeft)
			case ch.scenario == chaosOneLeaves:
				one(u, flamingo.ReasonPartnerLeft)
			case ch.scenario == chaosOneGoneRace && u == ch.b:
				if end, ok := one(u, flamingo.ReasonLeft, flamingo.ReasonPartnerDisconnected); ok {
					raced[end.reason]++
				}
			case chaosGone(p):
				end, ok := one(u, flamingo.ReasonPartnerDisconnected)
				if !ok {
					break
				}
				d := end.at.Sub(p.killedAt)
				if d < r.grace {
					fail("user %d was told %v after the kill, before the grace had passed", u.idx, d)
				}
				if u.fate.kill && !u.resumedAt.Before(p.killedAt.Add(r.grace)) {
					onReturn++ // away when the partner's grace ran out: told on return
					break
				}
				// Within grace + 1 s, and the time the test process itself was
				// not running meanwhile (see chaosStalls).
				if stalled := r.stalls.within(p.killedAt, end.at); d > r.grace+time.Second+stalled {
					fail("user %d was told %v after the kill, want within grace + 1 s + %v that the test process stalled meanwhile; the engine saw the kill after %v, the frame came %v after that",
						u.idx, d, stalled, p.noticedAt.Sub(p.killedAt), end.at.Sub(p.noticedAt))
				}
				told++
				slowest, fastest = max(slowest, d), min(fastest, d)
			default:
				none(u)
			}
		}
		if len(reasons) == 2 && reasons[0] == reasons[1] {
			fail("both users got reason %s", reasons[0])
		}
	}
	if told > 0 {
		t.Logf("%d users told of their partner's disconnect, %v to %v after the kill (grace %v); %d more told on their own return; leave raced expiry: %v",
			told, fastest.Round(time.Millisecond), slowest.Round(time.Millisecond), r.grace, onReturn, raced)
	}
	if len(problems) > 0 {
		t.Errorf("%d chat_ended problems, the first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"))
	}
}
