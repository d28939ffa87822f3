package flamingo_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// TestChaos_KillConnections: the scenarios each chat is given, the fates of the users,
// and the run that moves them through the chaos. The users are in
// chaos_kill_user_test.go, the ledger and the checks in chaos_kill_ledger_test.go.

// chaosScenario is what happens to one chat during the chaos run. The "a" side of the
// chat is the one killed or leaving first.
type chaosScenario int

const (
	chaosUntouched      chaosScenario = iota // both chat all along
	chaosOneGone                             // a is killed and does not come back
	chaosOneGoneRace                         // as chaosOneGone, and b leaves about when the grace ends
	chaosOneResumed                          // a is killed and resumes within the grace
	chaosBothGone                            // both are killed, neither comes back
	chaosBothOneResumed                      // both are killed, b resumes
	chaosBothResumed                         // both are killed, both resume
	chaosBothLeave                           // both send leave_chat at once
	chaosOneLeaves                           // a sends leave_chat
)

var chaosScenarioNames = map[chaosScenario]string{
	chaosUntouched: "untouched", chaosOneGone: "one gone", chaosOneGoneRace: "one gone, leave races expiry",
	chaosOneResumed: "one resumed", chaosBothGone: "both gone", chaosBothOneResumed: "both killed, one resumed",
	chaosBothResumed: "both resumed", chaosBothLeave: "both leave at once", chaosOneLeaves: "one leaves",
}

// chaosRole is what a user does before the chaos: chat, or wait in the queue (with a
// preference that no one else in the run meets).
type chaosRole int

const (
	chaosChatter chaosRole = iota
	chaosWaiter
)

// chaosFate is what the test does with one user, set before the chaos starts.
type chaosFate struct {
	wave        int  // which wave of the chaos acts on the user
	kill        bool // the connection is killed, with no close handshake
	resume      bool // after a kill, the user comes back with init(user_id) ...
	resumeDelay time.Duration
	// ... this long after the engine has seen them go (under a quarter of the grace)
	leave      bool          // the user sends leave_chat
	raceLeave  bool          // the user sends leave_chat grace+raceOffset after the wave
	raceOffset time.Duration // within ±60 ms: either the leave or the expiry wins
}

// chaosChat is one chat of the run: its users (a first) and its scenario.
type chaosChat struct {
	id       string
	a, b     *chaosUser
	scenario chaosScenario
}

// TestChaos_KillConnections kills hundreds of connections, mid-chat and mid-queue,
// while the others chat, and checks with a ledger of every message that nothing was
// lost, repeated or misdelivered, that every partner was told exactly once and in
// time, and that the engine returns to empty.
func TestChaos_KillConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run over loopback WebSockets: skipped with -short")
	}
	seed := chaosSeed(t)
	const grace = 3 * time.Second
	e := newEngine(t, flamingo.Config{
		// A short grace, so that the users who do not come back expire within the
		// test. The resumes come within its first quarter: on a loaded machine
		// (and under -race) a reconnection can take a while.
		ResumeGrace: grace,
		// Every chatter follows each message with a ping: its pong tells that the
		// message was handled, so that each error is tied to its message. A
		// rate-limited ping would get no pong, so events are not limited; the
		// users send about 2 messages a second.
		EventRate:   unlimited,
		MessageRate: flamingo.RateLimit{Rate: 50, Burst: 50},
		// Hundreds of users init from one loopback address, and a resume that
		// comes too late counts as a guess.
		InitRate:        unlimited,
		ResumeGuessRate: unlimited,
	})
	d := newChaosDialer(t, e, &flamingo.WebSocketOptions{MaxConnsPerIP: -1}, 1)

	goroutines, heap := runtime.NumGoroutine(), chaosHeap()
	chaosKillRun(t, e, d, seed, grace)
	if t.Failed() {
		return
	}
	// Every client has closed: once their grace has passed, nothing is left.
	chaosRequireEmpty(t, e, grace+chaosLimit)
	chaosRequireBaseline(t, goroutines, heap)
}

func chaosKillRun(t *testing.T, e *flamingo.Engine, d *chaosDialer, seed uint64, grace time.Duration) {
	const (
		chatters  = 320
		waiters   = 80
		waves     = 4
		waveEvery = 250 * time.Millisecond
		warmUp    = time.Second
	)
	// How many chats end up in each scenario; the rest are untouched.
	scenarioCounts := []struct {
		scenario chaosScenario
		chats    int
	}{
		{chaosOneGone, 30}, {chaosOneGoneRace, 10}, {chaosOneResumed, 30}, {chaosBothGone, 15},
		{chaosBothOneResumed, 15}, {chaosBothResumed, 10}, {chaosBothLeave, 5}, {chaosOneLeaves, 5},
	}
	const waitersGone, waitersResumed = 40, 20

	ctl := &chaosControl{abort: make(chan struct{})}
	t.Cleanup(ctl.stop)
	r := &chaosRun{
		e: e, dialer: d, grace: grace, period: 500 * time.Millisecond, ctl: ctl, stalls: startChaosStalls(),
		start: make(chan struct{}), stop: make(chan struct{}), syncNow: make(chan struct{}), closeAll: make(chan struct{}),
	}
	defer r.stalls.close()
	for range waves {
		r.waves = append(r.waves, make(chan struct{}))
	}
	rng := rand.New(rand.NewPCG(seed, 0))

	// Everyone connects, inits and queues; the chatters are matched in pairs.
	users := make([]*chaosUser, chatters+waiters)
	for i := range chaosPhases {
		r.phase(i).Add(len(users))
	}
	ctl.actors.Add(len(users))
	for i := range users {
		u := &chaosUser{r: r, idx: i, role: chaosChatter, rng: rand.New(rand.NewPCG(seed, uint64(i)+1))}
		if i >= chatters {
			u.role = chaosWaiter
		}
		users[i] = u
		go u.run()
	}
	chaosWait(t, &r.ready, 2*chaosLimit, "every chatter to be matched and every waiter queued")
	r.requireNoProblems(t)
	require.Equal(t, flamingo.Stats{Online: chatters + waiters, InQueue: waiters, InChat: chatters}, e.Stats())

	// Each chat gets a scenario, each user a fate.
	byID := map[string]*chaosChat{}
	var chats []*chaosChat
	for _, u := range users[:chatters] {
		ch := byID[u.chatID]
		if ch == nil {
			ch = &chaosChat{id: u.chatID, a: u}
			byID[u.chatID] = ch
			chats = append(chats, ch)
			continue
		}
		require.Nil(t, ch.b, "three users in chat %s", u.chatID)
		ch.b, ch.a.partner, u.partner = u, u, ch.a
	}
	require.Len(t, chats, chatters/2)
	rng.Shuffle(len(chats), func(i, j int) { chats[i], chats[j] = chats[j], chats[i] })
	next := 0
	for _, sc := range scenarioCounts {
		for _, ch := range chats[next : next+sc.chats] {
			ch.scenario = sc.scenario
		}
		next += sc.chats
	}
	resumeDelay := func() time.Duration { return time.Duration(rng.Int64N(int64(grace / 4))) }
	for _, ch := range chats {
		if rng.IntN(2) == 0 {
			ch.a, ch.b = ch.b, ch.a
		}
		w := rng.IntN(waves)
		ch.a.fate.wave, ch.b.fate.wave = w, w
		a, b := &ch.a.fate, &ch.b.fate
		switch ch.scenario {
		case chaosOneGone:
			a.kill = true
		case chaosOneGoneRace:
			a.kill = true
			b.raceLeave, b.raceOffset = true, time.Duration(rng.Int64N(int64(120*time.Millisecond)))-60*time.Millisecond
		case chaosOneResumed:
			a.kill, a.resume, a.resumeDelay = true, true, resumeDelay()
		case chaosBothGone:
			a.kill, b.kill = true, true
		case chaosBothOneResumed:
			a.kill, b.kill = true, true
			b.resume, b.resumeDelay = true, resumeDelay()
		case chaosBothResumed:
			a.kill, a.resume, a.resumeDelay = true, true, resumeDelay()
			b.kill, b.resume, b.resumeDelay = true, true, resumeDelay()
		case chaosBothLeave:
			a.leave, b.leave = true, true
		case chaosOneLeaves:
			a.leave = true
		}
	}
	waiting := slices.Clone(users[chatters:])
	rng.Shuffle(len(waiting), func(i, j int) { waiting[i], waiting[j] = waiting[j], waiting[i] })
	for i, u := range waiting[:waitersGone+waitersResumed] {
		u.fate = chaosFate{wave: rng.IntN(waves), kill: true, resume: i >= waitersGone, resumeDelay: resumeDelay()}
	}

	var kills, resumes int
	for _, u := range users {
		if u.fate.kill {
			kills++
		}
		if u.fate.resume {
			resumes++
		}
	}
	// What the engine holds once the chaos is over and the grace has passed: every
	// user who was not killed for good is online (with a new identity if they came
	// back too late), the waiters who came back in time are queued again, and the
	// chats whose killed users all came back in time go on.
	expect := func(late []*chaosUser) (want flamingo.Stats, ongoing int) {
		for _, u := range users {
			if u.fate.kill && !u.fate.resume {
				continue
			}
			want.Online++
			if u.role == chaosWaiter && !slices.Contains(late, u) {
				want.InQueue++
			}
		}
		for _, ch := range chats {
			switch ch.scenario {
			case chaosUntouched, chaosOneResumed, chaosBothResumed:
				if !slices.Contains(late, ch.a) && !slices.Contains(late, ch.b) {
					ongoing++
				}
			}
		}
		want.InChat = 2 * ongoing
		return want, ongoing
	}

	// The chaos: everyone chats for a while, then the waves of kills and leaves come
	// while the others keep chatting. The timers pace the run; they synchronise
	// nothing.
	began := time.Now()
	close(r.start)
	<-time.After(warmUp)
	tick := time.NewTicker(waveEvery)
	for i, w := range r.waves {
		if i > 0 {
			<-tick.C
		}
		close(w)
	}
	tick.Stop()
	var late []*chaosUser
	chaosEventually(t, grace+chaosLimit, "the chaos to settle", func() (bool, string) {
		if r.hasProblems() {
			return true, "" // reported just below
		}
		if n := int(r.resumesDone.Load()); n < resumes {
			return false, fmt.Sprintf("%d of %d resumes done", n, resumes)
		}
		r.mu.Lock()
		late = slices.Clone(r.late)
		r.mu.Unlock()
		want, ongoing := expect(late)
		st, sessions, chatCount := e.Stats(), flamingo.SessionCount(e), flamingo.ChatCount(e)
		return st == want && sessions == want.Online && chatCount == ongoing,
			fmt.Sprintf("stats %+v (want %+v), %d sessions (want %d), %d chats (want %d)", st, want, sessions, want.Online, chatCount, ongoing)
	})
	r.requireNoProblems(t)

	// Stop sending; once every message has its answer, one more ping from everyone
	// proves that every message handled so far has been written to its reader.
	close(r.stop)
	chaosWait(t, &r.drained, chaosLimit, "every message to be answered")
	close(r.syncNow)
	chaosWait(t, &r.synced, chaosLimit, "the last pings to be answered")
	close(r.closeAll)
	chaosWait(t, &ctl.actors, chaosLimit, "every user to close")
	r.requireNoProblems(t)
	t.Logf("%d users (%d chatters in %d chats, %d waiters), %d connections opened, %d killed, %d resumed (%d of them too late), in %v; %s",
		len(users), chatters, len(chats), waiters, r.dials, kills, resumes, len(late), time.Since(began).Round(time.Millisecond), r.stalls.summary())

	chaosCheckMessages(t, r)
	chaosCheckEnds(t, r, chats, users[chatters:])
}
