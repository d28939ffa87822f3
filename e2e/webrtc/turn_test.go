package webrtc

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// TestDataChannelThroughTURN gives the peers only a TURN server, through
// Config.ICEServers and flamingo.TURNServers, and lets them use relayed candidates
// only: the data channel opens only if the TURN server, which checks credentials in
// the TURN REST scheme (coturn's use-auth-secret; here pion/turn's implementation of
// it), accepted the credentials flamingo issued in match_found.
func TestDataChannelThroughTURN(t *testing.T) {
	const secret = "a secret the TURN server and flamingo share"
	turnURL, auths := startTURN(t, secret)
	const ttl = 10 * time.Minute
	url := startNode(t, flamingo.Config{ICEServers: flamingo.TURNServers(secret, ttl, turnURL)})

	// pion waits ICERelayAcceptanceMinWait (2 s by default) for a better pair before
	// it takes a relayed one; here relayed pairs are all there is.
	api := loopbackAPI(func(se *webrtc.SettingEngine) { se.SetRelayAcceptanceMinWait(50 * time.Millisecond) })
	a, b := newPage(t, "a", api), newPage(t, "b", api)
	for _, p := range []*page{a, b} {
		p.policy = webrtc.ICETransportPolicyRelay
	}
	connectPair(t, a, b, url, url)
	for _, p := range []*page{a, b} {
		local, remote := p.selectedTypes()
		assert.Equal(t, webrtc.ICECandidateTypeRelay, local, "%s sends through the TURN server", p.name)
		assert.Equal(t, webrtc.ICECandidateTypeRelay, remote, "%s sends to its partner's relay", p.name)
	}
	exchange(t, a, b, "through TURN")
	requireSignalsRelayed(t, a, b)

	// What the TURN server saw: every request authenticated, by the two users, with
	// usernames "<expiry>:<handle>" that expire ttl after the match and do not give
	// away a user_id (the handle is derived from it).
	names := map[string]bool{}
	for _, au := range auths.all() {
		assert.True(t, au.ok, "the TURN server refused %s (%s)", au.username, au.method)
		names[au.username] = true
	}
	assert.Len(t, names, 2, "one TURN username per user")
	for _, p := range []*page{a, b} {
		userID, _ := p.identity()
		m := p.matchFound()
		require.Len(t, m.ICEServers, 1)
		s := m.ICEServers[0]
		assert.Equal(t, []string{turnURL}, s.URLs)
		assert.True(t, names[s.Username], "%s's username %q was used", p.name, s.Username)
		expiry, handle, ok := strings.Cut(s.Username, ":")
		require.True(t, ok, "username %q is <expiry>:<handle>", s.Username)
		exp, err := strconv.ParseInt(expiry, 10, 64)
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(ttl), time.Unix(exp, 0), time.Minute)
		assert.NotEmpty(t, handle)
		assert.NotContains(t, s.Username, userID, "the TURN username gives away no user_id")
	}
}

// authResult is one authentication the TURN server made.
type authResult struct {
	username, method string
	ok               bool
}

// authLog records the TURN server's authentications.
type authLog struct {
	mu  sync.Mutex
	log []authResult
}

func (l *authLog) add(r authResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = append(l.log, r)
}

func (l *authLog) all() []authResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]authResult(nil), l.log...)
}

// startTURN starts a pion/turn server on a free UDP port of 127.0.0.1 that relays
// from 127.0.0.1 and checks credentials in the TURN REST scheme under secret. It
// returns its turn: URL and the log of its authentications; the test's cleanup stops
// it.
func startTURN(t *testing.T, secret string) (string, *authLog) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	auths := &authLog{}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:       "flamingo.test",
		AuthHandler: turn.LongTermTURNRESTAuthHandler(secret, nil),
		EventHandler: turn.EventHandler{
			OnAuth: func(_, _ net.Addr, _, username, _, method string, ok bool) {
				auths.add(authResult{username: username, method: method, ok: ok})
			},
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IPv4(127, 0, 0, 1),
				Address:      "127.0.0.1",
			},
		}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	return "turn:" + pc.LocalAddr().String() + "?transport=udp", auths
}
