package flamingo

import (
	"context"
	"errors"
	"time"
)

// Gender is what a user says they are. The zero value is not valid.
type Gender string

// The genders a user may give in join_queue.
const (
	GenderMale   Gender = "male"
	GenderFemale Gender = "female"
	GenderOther  Gender = "other"
)

// Valid reports whether g is one of the defined genders.
func (g Gender) Valid() bool {
	return g.index() >= 0
}

func (g Gender) index() int {
	switch g {
	case GenderMale:
		return 0
	case GenderFemale:
		return 1
	case GenderOther:
		return 2
	}
	return -1
}

// Preference is whom a user wants to meet: one gender, or anyone.
type Preference string

// The preferences a user may give in join_queue. [PreferAny] is the default.
const (
	PreferAny    Preference = "any"
	PreferMale   Preference = "male"
	PreferFemale Preference = "female"
	PreferOther  Preference = "other"
)

// Valid reports whether p is one of the defined preferences.
func (p Preference) Valid() bool {
	return p.index() >= 0
}

func (p Preference) index() int {
	switch p {
	case PreferAny:
		return 0
	case PreferMale:
		return 1
	case PreferFemale:
		return 2
	case PreferOther:
		return 3
	}
	return -1
}

// Accepts reports whether a user with preference p is willing to meet a user of gender g.
func (p Preference) Accepts(g Gender) bool {
	return p == PreferAny || string(p) == string(g)
}

var (
	allGenders     = [...]Gender{GenderMale, GenderFemale, GenderOther}
	allPreferences = [...]Preference{PreferAny, PreferMale, PreferFemale, PreferOther}
)

// Ticket is one user's place in the waiting queue.
//
// New fields may be added in later versions; matchers must carry fields they do not
// know unchanged into the Pair.
type Ticket struct {
	// User identifies the waiting user. It is the engine's opaque handle for the user,
	// never the secret user_id, and a matcher holds at most one ticket per User.
	User string
	// Gender is what the user says they are.
	Gender Gender
	// Preference is whom the user wants to meet.
	Preference Preference
	// JoinedAt is when the user started waiting. Fairness is measured by it: among
	// compatible waiters the one with the earliest JoinedAt is paired first.
	JoinedAt time.Time
	// Node is the [Broker.NodeID] of the node that enqueued the ticket, or empty on
	// an Engine without a Broker. A matcher shared by several nodes returns it
	// unchanged in the Pair, so that each node knows which tickets are its own.
	Node string
	// Interests are what the user would like to talk about: trimmed, lower-cased,
	// without duplicates, sorted, at most 10. Empty means none given.
	Interests []string
	// RelaxAt is when the ticket becomes relaxed: from then on it may be paired with
	// a waiter that shares none of its interests (if that waiter is relaxed too). A
	// ticket without interests is always relaxed, and so is one whose RelaxAt is zero.
	// The engine sets RelaxAt to JoinedAt + [Config.InterestWait].
	RelaxAt time.Time
	// Pool is the group the user meets strangers in (a language, a region, "verified
	// adults"): two tickets are paired only if their Pools are equal. The engine
	// leaves it empty unless [Config.OnJoin] sets it.
	Pool string
	// Labels are the embedder's own, set by [Config.OnJoin]. Matchers carry them
	// unchanged into the Pair and do not look at them.
	Labels map[string]string
	// Avoid lists the users this one must not be paired with: those it has blocked
	// or been blocked by, and its partners of the last [Config.RepeatWindow] (as of
	// JoinedAt). A pair is refused if either ticket avoids the other's User.
	Avoid []string
}

// Relaxed reports whether t is relaxed at time now: it has no interests, or its
// RelaxAt has come.
func (t Ticket) Relaxed(now time.Time) bool {
	return len(t.Interests) == 0 || !now.Before(t.RelaxAt)
}

// CommonInterests returns the interests t and u both have, sorted (both lists are
// sorted, as in a Ticket), or nil if they share none.
func (t Ticket) CommonInterests(u Ticket) []string {
	var common []string
	i, j := 0, 0
	for i < len(t.Interests) && j < len(u.Interests) {
		switch a, b := t.Interests[i], u.Interests[j]; {
		case a == b:
			common = append(common, a)
			i++
			j++
		case a < b:
			i++
		default:
			j++
		}
	}
	return common
}

// Acceptable reports whether t and u may be paired at time now: they are
// [Ticket.Compatible], in the same Pool, neither avoids the other, and they share an
// interest or are both relaxed.
func (t Ticket) Acceptable(u Ticket, now time.Time) bool {
	if !t.Compatible(u) || t.Pool != u.Pool || t.avoids(u.User) || u.avoids(t.User) {
		return false
	}
	return (t.Relaxed(now) && u.Relaxed(now)) || t.sharesInterest(u)
}

func (t Ticket) avoids(user string) bool {
	for _, a := range t.Avoid {
		if a == user {
			return true
		}
	}
	return false
}

func (t Ticket) sharesInterest(u Ticket) bool {
	for _, a := range t.Interests {
		for _, b := range u.Interests {
			if a == b {
				return true
			}
		}
	}
	return false
}

// Compatible reports whether t and u may be paired: they are different users and each
// one's preference accepts the other's gender.
func (t Ticket) Compatible(u Ticket) bool {
	return t.User != u.User && t.Preference.Accepts(u.Gender) && u.Preference.Accepts(t.Gender)
}

func (t Ticket) valid() bool {
	return t.User != "" && t.Gender.Valid() && t.Preference.Valid()
}

// Pair is two compatible tickets that a [Matcher] has taken out of the queue together.
// A is the one that waited longer.
type Pair struct {
	A, B Ticket
	// ChatID, if set, is the id of the chat the pair starts. A matcher shared by
	// several nodes sets it, so that the nodes of A and B agree on it; if it is
	// empty, the Engine makes one.
	ChatID string
}

// Matcher decides who meets whom. The [Engine] gives it the tickets of users who join
// the queue, cancels the tickets of users who leave it, and is told of each pair
// through the report function it installs with Start.
//
// # Contract
//
// The Engine calls Start once, from [New], before any other method, and Stop once, from
// [Engine.Shutdown]. Enqueue and Cancel may be called from many goroutines at once, and
// so may race with Stop. A Matcher serves one Engine: Stop is final, so that a stopped
// matcher given to a second New fails there instead of serving a queue it has dropped.
// Every Matcher answers calls out of turn the same way:
//   - Enqueue and Cancel before Start, or after Stop, change nothing and return
//     [ErrMatcherNotStarted] (Cancel with false);
//   - Start after Stop returns [ErrMatcherStopped];
//   - a second Start while the matcher runs returns an error and keeps the report
//     function of the first.
//
// A Matcher must be:
//   - atomic: a ticket is in at most one reported Pair, ever; a ticket whose Cancel
//     returned true is never reported;
//   - mutual: the tickets of a Pair are [Ticket.Acceptable] to each other at the
//     moment they are paired: compatible genders and preferences, one Pool, neither
//     avoiding the other, and a shared interest or both relaxed;
//   - fair: a ticket is paired with the acceptable waiter that shares an interest
//     with it and whose JoinedAt is earliest; if none shares one, with the acceptable
//     waiter whose JoinedAt is earliest;
//   - complete: no two acceptable tickets are left waiting together, for longer than
//     the matcher's tick once one of them becomes relaxed (a matcher looks again when
//     a waiter's RelaxAt comes, without waiting for a new arrival).
//
// Pairs may be reported from any goroutine, including from within Enqueue before it
// returns, and later (a pair made on another node, or after a waiting rule relaxes).
// The Matcher must not hold a lock that Enqueue or Cancel need while it calls report,
// and report may call Enqueue (the Engine does so to put back a ticket whose partner
// disconnected before the pair arrived, with its original JoinedAt).
//
// The context passed to Enqueue and Cancel bounds that call only. The conformance
// suite in package flamingotest checks all of the above for any implementation.
type Matcher interface {
	// Start installs the function through which the matcher reports pairs and
	// prepares the matcher for use. It returns [ErrMatcherStopped] after Stop, and
	// an error if the matcher has been started already.
	Start(report func(Pair)) error
	// Enqueue adds a waiting ticket, or pairs it at once with a waiter. It returns
	// [ErrAlreadyQueued] if t.User already has a ticket waiting, [ErrInvalidTicket]
	// if t's fields are not valid, and [ErrMatcherNotStarted] before Start or after
	// Stop.
	Enqueue(ctx context.Context, t Ticket) error
	// Cancel takes user's ticket out of the queue. It reports true if the ticket was
	// waiting and is now gone for good, false if there was no ticket or it has already
	// been paired (its Pair has been or will be reported). Before Start or after Stop
	// it returns false and [ErrMatcherNotStarted].
	Cancel(ctx context.Context, user string) (bool, error)
	// Stop releases the matcher's resources; waiting tickets are dropped. The
	// matcher cannot be started again.
	Stop(ctx context.Context) error
}

// Errors returned by matchers: by [MemoryMatcher], and by any other [Matcher], which
// may wrap them (test with [errors.Is]). The conformance suite in package flamingotest
// checks that an implementation returns each where the contract says.
var (
	// ErrAlreadyQueued is returned by [Matcher.Enqueue] for a user whose ticket is
	// already waiting.
	ErrAlreadyQueued = errors.New("flamingo: user already queued")
	// ErrInvalidTicket is returned by [Matcher.Enqueue] for a ticket without a user or
	// with an unknown gender or preference.
	ErrInvalidTicket = errors.New("flamingo: invalid ticket")
	// ErrMatcherNotStarted is returned by [Matcher.Enqueue] and [Matcher.Cancel]
	// when they are called before [Matcher.Start] or after [Matcher.Stop].
	ErrMatcherNotStarted = errors.New("flamingo: matcher not started")
	// ErrMatcherStopped is returned by [Matcher.Start] once the matcher has been
	// stopped, and so by [New] for a [Config.Matcher] that an earlier Engine's
	// [Engine.Shutdown] stopped: give each Engine a new matcher.
	ErrMatcherStopped = errors.New("flamingo: matcher stopped; a stopped matcher cannot be started again, make a new one")
)
