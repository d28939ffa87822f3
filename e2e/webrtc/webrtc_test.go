package webrtc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingoredis"
	"github.com/flamingochat/flamingo/internal/redistest"
)

// TestDataChannelOneNode matches two pion peers on one flamingo node: they negotiate
// through the relayed signals (offer, answer, trickled candidates) and exchange
// data-channel messages both ways.
func TestDataChannelOneNode(t *testing.T) {
	url := startNode(t, flamingo.Config{})
	a, b := call(t, loopbackAPI(), url, url)
	exchange(t, a, b, "one node")
	requireSignalsRelayed(t, a, b)
}

// TestDataChannelAcrossNodes is TestDataChannelOneNode with each peer on its own node
// of a cluster on a real Redis: every signal crosses from one node to the other.
func TestDataChannelAcrossNodes(t *testing.T) {
	urls := startCluster(t, 2)
	a, b := call(t, loopbackAPI(), urls[0], urls[1])
	exchange(t, a, b, "across nodes")
	requireSignalsRelayed(t, a, b)
}

// TestReloadMidCall has one page of a call reload: its WebSocket closes (1001) and a
// new one resumes the session with init{user_id}. The pair renegotiates with an ICE
// restart, the initiator offering again (at once if it is the one that reloaded, since
// it kept match_found; on partner_back otherwise), and the data channel carries
// messages both ways again.
//
// The "reload" keeps the page's RTCPeerConnection, as a page does when only its
// WebSocket drops (a network change, a node's restart or drain). A browser reload
// proper loses the RTCPeerConnection too; its page starts a new one, and so must its
// partner's, with a fresh offer: an ICE restart cannot revive DTLS state that one side
// no longer has.
//
// Across nodes, the page comes back on its partner's node, as it may behind a load
// balancer.
func TestReloadMidCall(t *testing.T) {
	for _, where := range []string{"one node", "across nodes"} {
		for _, who := range []string{"initiator", "answerer"} {
			t.Run(where+"/"+who+" reloads", func(t *testing.T) {
				var urls [2]string
				if where == "one node" {
					urls[0] = startNode(t, flamingo.Config{})
					urls[1] = urls[0]
				} else {
					urls = [2]string(startCluster(t, 2))
				}
				a, b := call(t, loopbackAPI(), urls[0], urls[1])
				exchange(t, a, b, "before")
				reloads, stays := a, b
				reloadTo := urls[1] // b's node
				if a.isInitiator() != (who == "initiator") {
					reloads, stays, reloadTo = b, a, urls[0]
				}
				reloadAndRestart(t, reloads, stays, reloadTo)
				exchange(t, a, b, "after the reload")
				requireSignalsRelayed(t, a, b)
			})
		}
	}
}

// reloadAndRestart reloads page reloads onto url and waits until the ICE restart that
// follows has connected both sides again with new credentials.
func reloadAndRestart(t *testing.T, reloads, stays *page, url string) {
	t.Helper()
	initiator := reloads
	if !initiator.isInitiator() {
		initiator = stays
	}
	reloadsLocal, reloadsRemote := reloads.iceUfrags()
	staysLocal, staysRemote := stays.iceUfrags()
	require.NotEmpty(t, reloadsLocal)
	require.Equal(t, reloadsLocal, staysRemote)
	require.Equal(t, reloadsRemote, staysLocal)
	reloadsPair, staysPair := reloads.selectedPair(), stays.selectedPair()
	reloads.drainPairs()
	stays.drainPairs()

	userID, chatID := reloads.identity()
	reloads.reload(url)
	var away flamingo.PartnerAwayPayload
	stays.expect(flamingo.EventPartnerAway, &away)
	assert.Equal(t, chatID, away.ChatID)
	assert.Positive(t, away.GraceMs)

	r := reloads.init(userID)
	require.True(t, r.Resumed, "the reloaded page resumes its session")
	require.Equal(t, chatID, r.ChatID, "and its chat")
	var back flamingo.ChatPayload
	stays.expect(flamingo.EventPartnerBack, &back)
	assert.Equal(t, chatID, back.ChatID)

	// Both ICE agents select a pair again: the checks with the new credentials went
	// through. pion gathers on new sockets for a restart, so the new pair is made of
	// new ports, and the data below goes over it.
	reloads.waitPair()
	stays.waitPair()
	assert.NotEqual(t, reloadsPair, reloads.selectedPair(), "the reloaded page's candidate pair after the ICE restart")
	assert.NotEqual(t, staysPair, stays.selectedPair(), "its partner's candidate pair after the ICE restart")
	rl, rr := reloads.iceUfrags()
	sl, sr := stays.iceUfrags()
	assert.NotEqual(t, reloadsLocal, rl, "the ICE restart gave the reloaded page new credentials")
	assert.NotEqual(t, staysLocal, sl, "and its partner")
	assert.Equal(t, rl, sr)
	assert.Equal(t, rr, sl)
	assert.Equal(t, 2, initiator.offerCount(), "the initiator made both offers")
	other := stays
	if initiator == stays {
		other = reloads
	}
	assert.Zero(t, other.offerCount(), "the answerer made none")
}

// call connects two new pages, a to urlA and b to urlB, matches them and waits until
// their data channel is open on both sides. It checks that exactly one is the
// initiator, and that ice_servers is [] since none are configured.
func call(t *testing.T, api *webrtc.API, urlA, urlB string) (a, b *page) {
	t.Helper()
	a, b = newPage(t, "a", api), newPage(t, "b", api)
	connectPair(t, a, b, urlA, urlB)
	for _, p := range []*page{a, b} {
		assert.Contains(t, string(p.matchPayload()), `"ice_servers":[]`, "%s's match_found", p.name)
	}
	return a, b
}

// connectPair connects pages a to urlA and b to urlB, matches them and waits until
// their data channel is open on both sides. It checks that both have the same chat
// and that exactly one is the initiator.
func connectPair(t *testing.T, a, b *page, urlA, urlB string) {
	t.Helper()
	a.connect(urlA)
	b.connect(urlB)
	a.init("")
	b.init("")
	a.join(flamingo.GenderFemale, flamingo.PreferAny)
	b.join(flamingo.GenderMale, flamingo.PreferFemale)
	var ma, mb flamingo.MatchFoundPayload
	a.expect(flamingo.EventMatchFound, &ma)
	b.expect(flamingo.EventMatchFound, &mb)
	require.NotEmpty(t, ma.ChatID)
	require.Equal(t, ma.ChatID, mb.ChatID)
	require.NotEqual(t, ma.Initiator, mb.Initiator, "exactly one side is the initiator")
	a.waitOpen()
	b.waitOpen()
}

// exchange sends messages over the data channel both ways at once, text and binary
// (up to 16 KiB), and checks that each side receives the other's in order and
// intact. round names the exchange in the messages and in failures.
func exchange(t *testing.T, a, b *page, round string) {
	t.Helper()
	const n = 12
	want := map[*page][]dcMessage{a: messages(a.name, round, n), b: messages(b.name, round, n)}
	for _, p := range []*page{a, b} {
		dc := p.channel()
		for _, m := range want[p] {
			var err error
			if m.text {
				err = dc.SendText(string(m.data))
			} else {
				err = dc.Send(m.data)
			}
			require.NoError(t, err, "%s: sending %s", p.name, round)
		}
	}
	for from, to := range map[*page]*page{a: b, b: a} {
		for i, m := range want[from] {
			got := to.nextMessage()
			require.Equal(t, m.text, got.text, "%s: message %d from %s (%s): text or binary", to.name, i, from.name, round)
			require.True(t, bytes.Equal(m.data, got.data), "%s: message %d from %s (%s) arrived changed: %d bytes, want %d",
				to.name, i, from.name, round, len(got.data), len(m.data))
		}
	}
}

// messages returns n data-channel messages from name: texts with characters of
// several UTF-8 lengths, and binary ones of pseudo-random bytes up to 16 KiB.
func messages(name, round string, n int) []dcMessage {
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(len(round))))
	out := make([]dcMessage, n)
	for i := range out {
		if i%2 == 0 {
			out[i] = dcMessage{text: true, data: fmt.Appendf(nil, "%s, %s, #%d: héllo 🦩 ĉu vi aŭdas min?", name, round, i)}
			continue
		}
		b := make([]byte, 1+rng.IntN(16<<10))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		out[i] = dcMessage{data: b}
	}
	return out
}

// requireSignalsRelayed checks that every signal each page sent reached the other,
// in order and intact. The last candidates may still be on their way when the data
// channel already works, so it waits for them.
func requireSignalsRelayed(t *testing.T, a, b *page) {
	t.Helper()
	for _, pair := range [][2]*page{{a, b}, {b, a}} {
		var err error
		ok := assert.Eventually(t, func() bool {
			err = signalsMatch(pair[0], pair[1])
			return err == nil
		}, waitTimeout, 10*time.Millisecond)
		require.True(t, ok, "signals from %s to %s: %v", pair[0].name, pair[1].name, err)
	}
}

// startNode starts a flamingo node on one Engine with cfg (its in-memory matcher
// unless cfg says otherwise), serving WebSockets on 127.0.0.1, and returns its ws://
// URL. The test's cleanup stops it.
func startNode(t *testing.T, cfg flamingo.Config) string {
	t.Helper()
	e, err := flamingo.New(cfg)
	require.NoError(t, err)
	return serve(t, e)
}

// serve serves e over WebSocket on 127.0.0.1 and returns the URL; the test's cleanup
// closes the connections and shuts e down.
func serve(t *testing.T, e *flamingo.Engine) string {
	t.Helper()
	srv := httptest.NewServer(flamingo.NewWebSocketHandler(e, nil))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		assert.NoError(t, e.Shutdown(ctx))
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// startCluster starts a redis-server of the test's own and n flamingo nodes on it,
// each with its own Redis client, a Cluster broker and the Redis matcher, and returns
// their URLs. Without redis-server the test skips, or fails when $CI is "true".
func startCluster(t *testing.T, n int) []string {
	t.Helper()
	addr := redistest.Start(t).Addr()
	log := testLogger(t)
	urls := make([]string, n)
	for i := range urls {
		client := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
		t.Cleanup(func() { _ = client.Close() })
		// The default heartbeat timings (1 s, dead after 3 s): with quicker ones, as
		// in flamingoredis's tests, the race detector and the peers' DTLS handshakes
		// on two cores now and then held a node's heartbeat past its deadline, the
		// node took itself for dropped from the cluster and ended its chats.
		cl := flamingoredis.NewCluster(client, flamingoredis.ClusterOptions{
			Options: flamingoredis.Options{Prefix: "webrtc-test", NodeID: fmt.Sprint("node", i), Logger: log},
		})
		e, err := flamingo.New(flamingo.Config{Matcher: cl.Matcher(), Broker: cl, Logger: log.With("node", i)})
		require.NoError(t, err)
		urls[i] = serve(t, e)
	}
	return urls
}

// testLogger returns a logger whose records (Info and up) the test prints if it
// fails.
func testLogger(t *testing.T) *slog.Logger {
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
