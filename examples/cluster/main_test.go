package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/flamingotest"
	"github.com/flamingochat/flamingo/internal/redistest"
)

// Timings of the test. The nodes run with the library's defaults, as main.go keeps
// them: heartbeat 1 s, dead after 3 s, resume grace 30 s.
const (
	// buildTimeout bounds building the command.
	buildTimeout = 3 * time.Minute
	// startTimeout bounds how long a node may take to answer GET / after its start.
	startTimeout = 20 * time.Second
	// stopTimeout bounds how long a node may take to exit on SIGINT: the demo server
	// gives its connections ten seconds.
	stopTimeout = 15 * time.Second
	// resumeGrace is flamingo.Config.ResumeGrace's default, which main.go keeps.
	resumeGrace = 30 * time.Second
	// killNoticeBound is how soon after a node is killed the partners of its users
	// must be told partner_disconnected: within the grace plus 2 s.
	killNoticeBound = resumeGrace + 2*time.Second
	// sessionKeyBase is where flamingoredis keeps sessions with the default prefix
	// "flamingo:" (see flamingoredis/keys.go); the test only reads it.
	sessionKeyBase = "flamingo:{match}:sess:"
)

// TestMain fails the tests if they leave goroutines running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestTwoNodes runs the command as an operator would, twice on one Redis, and chats
// across the two nodes: a match, messages both ways, a resume on the other node, and
// a node killed with SIGKILL whose users' partners are told in time.
func TestTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: waits out the 30 s resume grace after killing a node")
	}
	start := time.Now()
	rdb := redisClient(t)
	raddr := rdb.Options().Addr
	bin := buildNode(t)
	t.Logf("built the node (race detector %v) in %v", raceEnabled(), since(start))

	n1 := startNode(t, bin, "node1", raddr)
	n2 := startNode(t, bin, "node2", raddr)

	// 1. alice on node 1 and bob on node 2 are matched.
	alice, bob := n1.dial(), n2.dial()
	alice.Init("")
	bob.Init("")
	alice.Join(flamingo.GenderFemale, flamingo.PreferAny)
	bob.Join(flamingo.GenderMale, flamingo.PreferFemale)
	alice.Expect(flamingo.EventMatchFound)
	bob.Expect(flamingo.EventMatchFound)
	require.NotEmpty(t, alice.ChatID)
	require.Equal(t, alice.ChatID, bob.ChatID, "alice and bob are matched with each other")
	t.Logf("alice (node 1) and bob (node 2) matched at %v", since(start))

	// 2. They chat both ways, in order.
	const n = 5
	for i := range n {
		alice.Say(fmt.Sprintf("alice %d", i))
		bob.Say(fmt.Sprintf("bob %d", i))
	}
	for i := range n {
		assert.Equal(t, fmt.Sprintf("alice %d", i), bob.ExpectMessage().Content)
		assert.Equal(t, fmt.Sprintf("bob %d", i), alice.ExpectMessage().Content)
	}
	alice.Sync()
	bob.Sync()

	// 3. alice drops (bob is told she is away) and comes back on node 2 (bob is told
	// she is back); what bob sent meanwhile reaches her.
	chat := alice.ChatID
	alice.Close()
	bob.Expect(flamingo.EventPartnerAway)
	bob.Say("while away 1")
	bob.Say("while away 2")
	bob.Sync()
	alice2 := n2.dial()
	ready := alice2.Init(alice.UserID)
	assert.True(t, ready.Resumed, "alice resumes her session on node 2")
	assert.Equal(t, chat, ready.ChatID)
	assert.Equal(t, "while away 1", alice2.ExpectMessage().Content)
	assert.Equal(t, "while away 2", alice2.ExpectMessage().Content)
	alice2.Say("back")
	bob.Expect(flamingo.EventPartnerBack)
	assert.Equal(t, "back", bob.ExpectMessage().Content)
	bob.Say("welcome back")
	assert.Equal(t, "welcome back", alice2.ExpectMessage().Content)
	alice2.Sync()
	bob.Sync()
	t.Logf("alice resumed on node 2 at %v", since(start))

	// 4. carol on node 1 and dave on node 2 are matched (alice and bob are in a chat,
	// not in the queue; their genders would not match these choices anyway).
	carol, dave := n1.dial(), n2.dial()
	carol.Init("")
	dave.Init("")
	carol.Join(flamingo.GenderOther, flamingo.PreferMale)
	dave.Join(flamingo.GenderMale, flamingo.PreferOther)
	carol.Expect(flamingo.EventMatchFound)
	dave.Expect(flamingo.EventMatchFound)
	require.NotEmpty(t, carol.ChatID)
	require.Equal(t, carol.ChatID, dave.ChatID, "carol and dave are matched with each other")
	carol.Say("hi dave")
	assert.Equal(t, "hi dave", dave.ExpectMessage().Content)
	dave.Say("hi carol")
	assert.Equal(t, "hi carol", carol.ExpectMessage().Content)
	// The kill comes in a steady state: node 1 has written carol's chat to Redis (what
	// a node has not written when it dies is lost with it).
	waitSessionChat(t, rdb, carol)
	t.Logf("carol (node 1) and dave (node 2) matched at %v", since(start))

	// 5. node 1 dies. The chat between node 2's users goes on; dave is told that carol
	// is gone once her grace is over.
	killed := n1.kill()
	alice2.Say("still here")
	assert.Equal(t, "still here", bob.ExpectMessage().Content)
	bob.Say("me too")
	assert.Equal(t, "me too", alice2.ExpectMessage().Content)

	ev := nextWithin(t, dave, killNoticeBound+5*time.Second)
	took := time.Since(killed)
	require.Equal(t, flamingo.EventChatEnded, ev.Type, "dave's next event after the kill: %s", ev.Raw)
	var end flamingo.ChatEndedPayload
	require.NoError(t, ev.Decode(&end))
	assert.Equal(t, flamingo.ReasonPartnerDisconnected, end.Reason)
	assert.Equal(t, carol.ChatID, end.ChatID)
	assert.Less(t, took, killNoticeBound, "dave told %v after the kill", took)
	t.Logf("partner told %v after the kill (grace %v, bound %v)", took.Round(time.Millisecond), resumeGrace, killNoticeBound)
	dave.Sync() // once: nothing else came before the pong

	// 6. node 2 stops on SIGINT, in time and without an error, with its users still
	// connected. (It takes about 5 s: the test clients are not reading, so they do not
	// answer the close handshake, which the server gives 5 s.)
	stopped := time.Now()
	assert.NoError(t, n2.stop(), "node 2 exits cleanly on SIGINT")
	t.Logf("node 2 stopped on SIGINT in %v; test took %v", time.Since(stopped).Round(time.Millisecond), since(start))
}

// TestMetricsAndHealth scrapes /metrics on two nodes after driving traffic across
// them, and checks /healthz.
func TestMetricsAndHealth(t *testing.T) {
	rdb := redisClient(t)
	bin := buildNode(t)
	n1 := startNode(t, bin, "node1", rdb.Options().Addr)
	n2 := startNode(t, bin, "node2", rdb.Options().Addr)
	for _, n := range []*node{n1, n2} {
		status, body := n.get("/healthz")
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, "ok", body)
	}

	// alice on node 1 waits for bob on node 2; they exchange five messages. alice
	// sends an event of an unknown type; carol on node 2 waits in the queue.
	alice, bob := n1.dial(), n2.dial()
	flamingotest.Match(t, alice, bob)
	for i := range 3 {
		alice.Say(fmt.Sprint("alice ", i))
		bob.ExpectMessage()
	}
	for i := range 2 {
		bob.Say(fmt.Sprint("bob ", i))
		alice.ExpectMessage()
	}
	alice.Send("nope", nil)
	alice.ExpectError(flamingo.CodeUnknownEvent)
	carol := n2.dial()
	carol.Init("")
	carol.Join(flamingo.GenderOther, flamingo.PreferOther)
	alice.Sync()
	bob.Sync()

	m1, m2 := n1.metrics(), n2.metrics()
	sum := func(series string) float64 { return m1[series] + m2[series] }
	assert.Equal(t, 1.0, m1["flamingo_online"])
	assert.Equal(t, 2.0, m2["flamingo_online"])
	assert.Equal(t, 1.0, m1["flamingo_in_chat"])
	assert.Equal(t, 1.0, m2["flamingo_in_chat"])
	assert.Equal(t, 0.0, m1["flamingo_in_queue"])
	assert.Equal(t, 1.0, m2["flamingo_in_queue"])
	assert.Equal(t, 1.0, m1["flamingo_matches_total"], "counted on the node of alice, who waited longer")
	assert.Equal(t, 1.0, sum("flamingo_matches_total"))
	assert.Equal(t, 5.0, sum("flamingo_messages_total"))
	assert.Equal(t, 5.0, sum("flamingo_cross_node_messages_total"), "alice and bob are on different nodes")
	assert.Positive(t, m1["flamingo_broker_round_trip_seconds_count"])
	assert.Equal(t, 1.0, m1[`flamingo_errors_total{code="unknown_event"}`])
	assert.Equal(t, 1.0, m1["flamingo_match_wait_seconds_count"], "alice's wait")
	assert.Equal(t, 1.0, m2["flamingo_match_wait_seconds_count"], "bob's wait")
	assert.Contains(t, m1, "go_goroutines", "the Go runtime's metrics are there too")
}

// get fetches path from the node and returns the status and the body.
func (n *node) get(path string) (int, string) {
	n.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + n.addr + path)
	require.NoError(n.t, err, "GET %s on %s", path, n.name)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(n.t, err, "GET %s on %s", path, n.name)
	return resp.StatusCode, string(body)
}

// metrics scrapes the node's /metrics and returns the value of each series, by its
// name and labels as the text format writes them (flamingo_errors_total{code="x"}).
func (n *node) metrics() map[string]float64 {
	n.t.Helper()
	status, body := n.get("/metrics")
	require.Equal(n.t, http.StatusOK, status, body)
	series := map[string]float64{}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(line)
		i := strings.LastIndexByte(line, ' ') // label values may hold spaces
		require.Positive(n.t, i, "line %q of %s's /metrics", line, n.name)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(n.t, err, "line %q of %s's /metrics", line, n.name)
		series[line[:i]] = v
	}
	return series
}

// since is how long ago t was, rounded for the log.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// redisClient starts a redis-server for the test, or connects to the one
// FLAMINGO_REDIS_ADDR names. Without redis-server (and the variable) it skips the
// test, except in CI; it fails the test if the server does not answer. The test only
// reads from Redis, so a server named by the variable may be shared with other tests.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv(redistest.AddrEnv)
	if addr == "" {
		addr = redistest.Start(t).Addr()
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Ping(ctx).Err(), "redis-server at %s does not answer", addr)
	return c
}

// buildNode builds the command in the current directory into a temporary directory
// and returns the binary's path. Under go test -race, the command is built with the
// race detector too.
func buildNode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "node")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return bin
}

// raceEnabled reports whether the test binary was built with the race detector.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// node is one running child process of the command.
type node struct {
	t      *testing.T
	name   string
	addr   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed when the process has exited; then err is set
	err    error         // what cmd.Wait returned
}

// startNode starts bin as a node on a free port with Redis at redisAddr and waits
// until it serves the demo page. The test's cleanup stops it (SIGINT, then SIGKILL if
// it does not exit in time) and logs its stderr if the test failed.
func startNode(t *testing.T, bin, name, redisAddr string) *node {
	t.Helper()
	n := &node{t: t, name: name, addr: freeAddr(t), stderr: &syncBuffer{}, exited: make(chan struct{})}
	n.cmd = exec.Command(bin, "-addr", n.addr, "-redis", redisAddr)
	n.cmd.Stdout = n.stderr
	n.cmd.Stderr = n.stderr
	require.NoError(t, n.cmd.Start(), "starting %s", name)
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		if err := n.stop(); err != nil && !n.killed() {
			t.Logf("%s: %v", n.name, err)
		}
		if strings.Contains(n.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race", n.name)
		}
		if t.Failed() {
			t.Logf("%s (%s) output:\n%s", n.name, n.addr, n.stderr.String())
		}
	})

	began := time.Now()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get("http://" + n.addr + "/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("%s up on %s in %v (pid %d)", name, n.addr, since(began), n.cmd.Process.Pid)
				return n
			}
		}
		select {
		case <-n.exited:
			t.Fatalf("%s exited before serving (%v); output:\n%s", name, n.err, n.stderr.String())
		case <-deadline.C:
			t.Fatalf("%s does not answer GET / on %s after %v (last error %v)", name, n.addr, startTimeout, err)
		case <-tick.C:
		}
	}
}

// dial connects a new test client to the node's WebSocket.
func (n *node) dial() *flamingotest.Client {
	n.t.Helper()
	return flamingotest.Dial(n.t, "ws://"+n.addr+"/ws", nil)
}

// kill sends SIGKILL to the node, waits until it has exited and returns when it was
// killed.
func (n *node) kill() time.Time {
	n.t.Helper()
	require.NoError(n.t, n.cmd.Process.Kill(), "killing %s", n.name)
	at := time.Now()
	select {
	case <-n.exited:
	case <-time.After(stopTimeout):
		n.t.Fatalf("%s did not exit after SIGKILL", n.name)
	}
	n.t.Logf("%s killed (SIGKILL)", n.name)
	return at
}

// killed reports whether the node died of SIGKILL.
func (n *node) killed() bool {
	select {
	case <-n.exited:
	default:
		return false
	}
	ws, ok := n.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// stop sends SIGINT to the node and waits for it to exit, up to stopTimeout, after
// which it kills it. It returns the process's exit error (nil for a clean exit). It
// may be called again, and after kill.
func (n *node) stop() error {
	select {
	case <-n.exited:
		return n.err
	default:
	}
	if err := n.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGINT: %w", err)
	}
	select {
	case <-n.exited:
		return n.err
	case <-time.After(stopTimeout):
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
	return fmt.Errorf("did not exit within %v of SIGINT; killed", stopTimeout)
}

// nextWithin returns c's next event, waiting up to d (the client's own reads give up
// after flamingotest.DefaultTimeout). It reads the client's connection directly, so
// the client's UserID and ChatID are not updated.
func nextWithin(t *testing.T, c *flamingotest.Client, d time.Duration) flamingotest.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	b, err := c.Conn().Read(ctx)
	require.NoError(t, err, "waiting up to %v for an event", d)
	raw := append([]byte(nil), b...)
	var env flamingo.Envelope
	require.NoError(t, json.Unmarshal(raw, &env), "frame %s", raw)
	return flamingotest.Event{Type: env.Type, Payload: env.Payload, Raw: raw}
}

// waitSessionChat waits until Redis has c's session with c's current chat, as the
// node c is connected to writes it.
func waitSessionChat(t *testing.T, rdb *redis.Client, c *flamingotest.Client) {
	t.Helper()
	d := sha256.Sum256([]byte(c.UserID))
	key := sessionKeyBase + hex.EncodeToString(d[:16])
	require.Eventually(t, func() bool {
		chat, err := rdb.HGet(context.Background(), key, "chat").Result()
		return err == nil && chat == c.ChatID
	}, 5*time.Second, 10*time.Millisecond, "session %s saved with chat %s", key, c.ChatID)
}

// syncBuffer is a bytes.Buffer safe for a child process's output copier and the test
// to use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
