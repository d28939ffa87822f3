package flamingo

import (
	"net/netip"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// RateLimit is a token bucket: up to Burst events at once, refilled at Rate events per
// second. The zero value means the default of the field that holds it; a negative Rate
// means no limit.
type RateLimit struct {
	Rate  float64
	Burst int
}

func (l RateLimit) or(r float64, burst int) RateLimit {
	if l.Rate == 0 && l.Burst == 0 {
		return RateLimit{Rate: r, Burst: burst}
	}
	return l
}

// set makes lim, a zero Limiter, enforce l. Both settings are made at the zero time,
// so that the first use finds the bucket full, as rate.NewLimiter's would be.
func (l RateLimit) set(lim *rate.Limiter) {
	if l.Rate < 0 {
		lim.SetLimitAt(time.Time{}, rate.Inf)
		return
	}
	lim.SetBurstAt(time.Time{}, max(l.Burst, 1))
	lim.SetLimitAt(time.Time{}, rate.Limit(l.Rate))
}

// take takes one token from l, or reports how long until one is free.
func take(l *rate.Limiter, now time.Time) (ok bool, retry time.Duration) {
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// connLimits are one connection's buckets, held in the conn itself: no allocation.
type connLimits struct {
	events, messages, joins, errors, signals rate.Limiter
}

func (l *connLimits) init(cfg *Config) {
	cfg.EventRate.set(&l.events)
	cfg.MessageRate.set(&l.messages)
	cfg.JoinRate.set(&l.joins)
	cfg.ErrorBudget.set(&l.errors)
	cfg.SignalRate.set(&l.signals)
}

// ipLimits are the buckets of one remote address.
type ipLimits struct {
	inits, guesses rate.Limiter
}

// addrKey is the key under which per-address limits count addr: the address itself for
// IPv4, its /64 network for IPv6, since one IPv6 client commonly holds a whole /64.
func addrKey(addr netip.Addr) netip.Addr {
	if addr.Is6() && !addr.Is4In6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return addr
}

// ipLimitsLocked returns the buckets for addr's key, making them if needed.
func (e *Engine) ipLimitsLocked(addr netip.Addr) *ipLimits {
	addr = addrKey(addr)
	l := e.ips[addr]
	if l == nil {
		l = new(ipLimits)
		e.cfg.InitRate.set(&l.inits)
		e.cfg.ResumeGuessRate.set(&l.guesses)
		e.ips[addr] = l
	}
	return l
}

// forgetIdleIPsLocked drops the buckets of addresses whose buckets are full again:
// keeping them would change nothing.
func (e *Engine) forgetIdleIPsLocked(now time.Time) {
	for addr, l := range e.ips {
		if l.inits.TokensAt(now) >= float64(l.inits.Burst()) && l.guesses.TokensAt(now) >= float64(l.guesses.Burst()) {
			delete(e.ips, addr)
		}
	}
}

// checkContent applies the content rules of send_message, returning a code and a
// message for the sender if content breaks one.
func (e *Engine) checkContent(content []byte) (ErrorCode, string) {
	if len(content) > e.cfg.MaxMessageBytes {
		return CodeMessageTooLong, "the message is longer than the limit in bytes"
	}
	blank := true
	runes := 0
	for i := 0; i < len(content); {
		r, size := utf8.DecodeRune(content[i:])
		i += size
		runes++
		switch {
		case r == '\n' || r == '\t':
		case unicode.IsControl(r):
			return CodeInvalidPayload, "the message has control characters (only newline and tab are allowed)"
		case isBidiControl(r):
			return CodeInvalidPayload, "the message has bidirectional control characters"
		case !unicode.IsSpace(r):
			blank = false
		}
	}
	if blank {
		return CodeEmptyMessage, "the message is empty"
	}
	if runes > e.cfg.MaxMessageRunes {
		return CodeMessageTooLong, "the message is longer than the limit in characters"
	}
	return "", ""
}

// isBidiControl reports whether r is one of the explicit bidirectional formatting
// characters (embeddings, overrides and isolates), which can make a message display
// differently from what it says.
func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}
