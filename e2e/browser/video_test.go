package browser

// Video calls on the demo page (video.js), in headless Chromium with fake media devices.
//
// Facts measured for these tests (Chromium 156 on Debian 12, headless, chromedp):
//
//   - --use-fake-device-for-media-stream gives a camera (a moving test pattern) and a
//     microphone (a beep); --use-fake-ui-for-media-stream grants the permission
//     prompt. Pages on http://127.0.0.1 are a secure context, so getUserMedia works.
//   - Loopback host candidates (127.0.0.1, ::1) are gathered only with
//     --allow-loopback-in-peer-connection. Without it, in a namespace that has only
//     loopback, a peer connection gathers no candidate at all and never connects.
//   - mDNS (host candidates named <uuid>.local) did not hide anything here: a page on a
//     loopback origin (http://127.0.0.1:port, which is how the tests serve it) got
//     literal addresses with and without camera permission, and so did a page on a
//     named origin once it had camera permission, as every video page has. Only a
//     named origin without camera permission got .local names (and then only the
//     default route's interface, never loopback). So no feature switch is needed;
//     --disable-features=WebRtcHideLocalIpsWithMdns changes nothing in these set-ups.
//     TestVideoCall asserts that no candidate is a .local name.
//   - Outside a network namespace, Chromium gathers on every interface. Dropping every
//     candidate whose address is not in 127.0.0.0/8 before the page hands it to its
//     peer connection (a wrapper installed before the page loads) makes every
//     destination 127.0.0.1, but not every source: Chromium still sends connectivity
//     checks from its socket on the machine's own address (192.0.2.2 here) to the
//     partner's 127.0.0.1, the partner learns that address as a peer-reflexive
//     candidate, and the selected pair was 192.0.2.2 -> 127.0.0.1 (Chromium prefers
//     it: its loopback network has network-cost 50, the Ethernet one 0). The kernel
//     delivers that locally, so nothing goes on a wire, but it is not 127.0.0.0/8
//     only. No flag or switch restricts Chromium's gathering to loopback (the IP
//     handling policies narrow it to the default route, which is not loopback), so
//     the namespace is the way; without one the test filters, asserts that every end
//     of the pair is an address of this machine, and says so in its log.
//   - `unshare --net` (as root; `unshare --map-root-user --net` otherwise, where the
//     kernel allows unprivileged user namespaces) followed by `ip link set lo up` gives
//     a namespace that has only loopback: TestVideoCall runs itself again in one when
//     it can (see mediaOnLoopback).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/examples/demo"
)

// netnsEnv tells TestVideoCall where it runs: unset, it runs itself again in a new
// network namespace that has only loopback, if it can; "inside" marks that run; "off"
// keeps it in the current namespace (candidates are then filtered to loopback).
const netnsEnv = "FLAMINGO_VIDEO_NETNS"

// videoFlags are the Chromium flags of the video tests (see the facts above).
var videoFlags = []chromedp.ExecAllocatorOption{
	chromedp.Flag("use-fake-device-for-media-stream", true),
	chromedp.Flag("use-fake-ui-for-media-stream", true),
	chromedp.Flag("allow-loopback-in-peer-connection", true),
	chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
}

// mediaOnLoopback makes sure that the media of the test stays on 127.0.0.0/8. It
// returns done when it ran the test in a child process inside a loopback-only network
// namespace (the caller then returns), and filter when the test runs here and must
// drop candidates that are not on loopback itself.
func mediaOnLoopback(t *testing.T) (done, filter bool) {
	t.Helper()
	switch os.Getenv(netnsEnv) {
	case "inside":
		ifs, err := net.Interfaces()
		require.NoError(t, err)
		for _, ifc := range ifs {
			require.NotZero(t, ifc.Flags&net.FlagLoopback, "interface %s in the test's namespace", ifc.Name)
		}
		return false, false
	case "off":
		t.Logf("%s=off: candidates filtered to 127.0.0.0/8; a source may be an address of this machine", netnsEnv)
		return false, true
	}
	unshare := []string{"unshare", "--net"}
	if os.Getuid() != 0 {
		unshare = []string{"unshare", "--map-root-user", "--net"}
	}
	probe := append(append([]string{}, unshare...), "--", "ip", "link", "set", "lo", "up")
	if out, err := exec.Command(probe[0], probe[1:]...).CombinedOutput(); err != nil {
		t.Logf("no loopback-only network namespace (%s: %v %s): candidates filtered to 127.0.0.0/8; a source may be an address of this machine",
			strings.Join(probe, " "), err, strings.TrimSpace(string(out)))
		return false, true
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
		defer cancel()
	}
	args := append(append([]string{}, unshare[1:]...), "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		exe, "-test.run=^"+t.Name()+"$", "-test.v=true", "-test.count=1")
	cmd := exec.CommandContext(ctx, unshare[0], args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=inside")
	t.Logf("running %s again in a network namespace that has only loopback", t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("output of the run in the namespace:\n%s", out)
	require.NoError(t, err, "%s in the loopback-only namespace", t.Name())
	// The child must have run the test, not skipped it or matched nothing.
	require.Contains(t, string(out), "--- PASS: "+t.Name(), "the run in the namespace passed the test")
	return true, false
}

// newVideoHarness is newHarness with a Chromium that has fake media devices and may
// use loopback for WebRTC (videoFlags).
func newVideoHarness(t *testing.T, cfg flamingo.Config) *harness {
	t.Helper()
	exe := chromiumPath(t)
	h := &harness{t: t, gate: &gate{}}
	engine, err := flamingo.New(cfg)
	require.NoError(t, err)
	h.engine = engine
	h.mux = http.NewServeMux()
	h.mux.Handle("/ws", h.gate.wrap(flamingo.NewWebSocketHandler(engine, nil)))
	h.mux.Handle("/", demo.Handler())
	h.srv = httptest.NewServer(h.mux) // listens on 127.0.0.1

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(desktop.width), int(desktop.height)),
	)
	opts = append(opts, videoFlags...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		h.gate.release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, engine.Shutdown(ctx), "engine shutdown")
		h.srv.Close()
	})
	require.NoError(t, chromedp.Do(browserCtx), "starting chromium")
	h.browser = browserCtx
	return h
}

// testInstruments is installed in every video test page before its own scripts run.
// It records the page's RTCPeerConnections and WebSockets (window.__videoTest), and
// with loopbackOnly drops candidates that are not on 127.0.0.0/8 before they reach a
// peer connection, whether they come as candidates or inside a description. While
// dropOffers is set, the page's offers are dropped instead of sent (droppedOffers
// counts them), as a dead socket would.
const testInstruments = `(() => {
  const loopbackOnly = %t;
  const t = { pcs: [], sockets: [], candidates: [], maxSignal: 0, dropOffers: false, droppedOffers: 0 };
  window.__videoTest = t;
  const onLoopback = (line) => {
    const f = String(line).replace(/^a=/, "").split(" ");
    return f.length > 4 && f[4].startsWith("127.");
  };
  const NativePC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePC {
    constructor(...args) {
      super(...args);
      t.pcs.push(this);
      this.addEventListener("icecandidate", (ev) => {
        if (ev.candidate && ev.candidate.candidate) t.candidates.push(ev.candidate.candidate);
      });
    }
    addIceCandidate(c, ...rest) {
      if (loopbackOnly && c && c.candidate && !onLoopback(c.candidate)) return Promise.resolve();
      return super.addIceCandidate(c, ...rest);
    }
    setRemoteDescription(d, ...rest) {
      if (loopbackOnly && d && typeof d.sdp === "string") {
        const sdp = d.sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:") || onLoopback(l)).join("\r\n");
        d = { type: d.type, sdp };
      }
      return super.setRemoteDescription(d, ...rest);
    }
  };
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(...args) {
      super(...args);
      t.sockets.push(this);
    }
    send(frame) {
      if (typeof frame === "string" && frame.startsWith('{"type":"signal"')) {
        t.maxSignal = Math.max(t.maxSignal, new TextEncoder().encode(frame).length);
        if (t.dropOffers && frame.includes('"data":{"type":"offer"')) {
          t.droppedOffers++;
          return;
        }
      }
      return super.send(frame);
    }
  };
  // drive stands in for app.js on a page that does not offer video yet: a client of
  // its own (its user_id under another key, so that it resumes after a reload), which
  // FlamingoVideo follows. With a choice it joins the queue, unless it is in a chat.
  t.drive = async (choice) => {
    const { FlamingoClient } = await import("./flamingo.js");
    const client = new FlamingoClient("ws", { storageKey: "videotest.user_id" });
    t.client = client;
    if (choice) sessionStorage.setItem("videotest.choice", JSON.stringify(choice));
    await client.connect();
    document.querySelector("#screen-welcome").hidden = true;
    document.querySelector("#screen-chat").hidden = false;
    await FlamingoVideo.start(client, document.querySelector("#video-area"));
    if (choice && client.state !== "chatting") await client.joinQueue(choice);
  };
  t.join = () => t.client.joinQueue(JSON.parse(sessionStorage.getItem("videotest.choice")));
  // stats describes the newest peer connection that is not closed.
  t.stats = async () => {
    const pc = [...t.pcs].reverse().find((p) => p.connectionState !== "closed");
    const r = { pcs: t.pcs.length, open: t.pcs.filter((p) => p.connectionState !== "closed").length,
      state: "", frames: 0, width: 0, local: "", remote: "", remoteType: "", ufrag: "" };
    if (!pc) return r;
    r.state = pc.connectionState;
    r.ufrag = ((pc.localDescription && pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/)) || [])[1] || "";
    const stats = await pc.getStats();
    let pair = "";
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        r.frames = s.framesDecoded || 0;
        r.width = s.frameWidth || 0;
      }
      if (s.type === "transport" && s.selectedCandidatePairId) pair = s.selectedCandidatePairId;
    });
    const p = pair && stats.get(pair);
    if (p) {
      r.local = (stats.get(p.localCandidateId) || {}).address || "";
      const rc = stats.get(p.remoteCandidateId) || {};
      r.remote = rc.address || "";
      r.remoteType = rc.candidateType || "";
    }
    return r;
  };
})();`

// callStats is what window.__videoTest.stats() returns.
type callStats struct {
	PCs    int    `json:"pcs"`   // peer connections the page made
	Open   int    `json:"open"`  // of which not closed
	State  string `json:"state"` // connectionState of the newest open one
	Frames int    `json:"frames"`
	Width  int    `json:"width"`
	Local  string `json:"local"`  // selected candidate pair
	Remote string `json:"remote"` // empty for a peer-reflexive candidate (Chromium hides it)
	// RemoteType is the remote candidate's type: host, or prflx when the partner's
	// checks arrived before its candidate did (as after an ICE restart).
	RemoteType string `json:"remoteType"`
	Ufrag      string `json:"ufrag"` // local ICE username fragment
}

// openVideoPage opens the demo page like openPage, with testInstruments installed
// before the page's scripts, and waits until it is connected.
func (h *harness) openVideoPage(name string, vp viewport, filter bool, extraJS string) *user {
	h.t.Helper()
	u := h.openPage(name, vp, "/blank") // a page of the same origin that the mux does not serve
	_, err := chromedp.Call(u.ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: fmt.Sprintf(testInstruments, filter) + extraJS})
	require.NoError(h.t, err)
	u.do(chromedp.Navigate(h.srv.URL + "/"))
	u.waitVisibleText("#conn", "Connected")
	return u
}

// hasModeChoice reports whether the page offers the text or video choice.
func (u *user) hasModeChoice() bool {
	u.h.t.Helper()
	return eval[bool](u, `!!document.querySelector('input[name="mode"][value="video"]')`)
}

// startVideo makes u search in video mode. With the mode choice on the page it clicks
// it; a page without one (before app.js knew video) is driven by hand (drive in
// testInstruments).
func (u *user) startVideo(gender, preference string) {
	u.h.t.Helper()
	if u.hasModeChoice() {
		u.click(`input[name="mode"][value="video"] + span`)
		u.startSearching(gender, preference)
		return
	}
	u.await(fmt.Sprintf(`window.__videoTest.drive({ gender: %s, preference: %s })`, jsString(gender), jsString(preference)))
}

// next leaves the chat and searches again, by the "New stranger" button or by hand.
func (u *user) next() {
	u.h.t.Helper()
	if u.hasModeChoice() {
		u.click("#next-btn")
		return
	}
	u.await(`window.__videoTest.client.leaveChat().then(() => window.__videoTest.join())`)
}

// reload reloads u's page. A page driven by hand is started again: its client resumes
// the chat, as app.js would.
func (u *user) reload() {
	u.h.t.Helper()
	u.do(chromedp.Reload())
	u.waitVisibleText("#conn", "Connected")
	if !u.hasModeChoice() {
		u.await(`window.__videoTest.drive(null)`)
	}
}

// await evaluates a JavaScript expression and waits for the promise it returns.
func (u *user) await(js string) {
	u.h.t.Helper()
	u.do(chromedp.Evaluate[chromedp.Void](js, chromedp.EvalAwaitPromise))
}

// stats reads the call's statistics.
func (u *user) stats() callStats {
	u.h.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[callStats](`window.__videoTest.stats()`, chromedp.EvalAwaitPromise))
	require.NoError(u.h.t, err, "%s: reading the call's stats", u.name)
	return s
}

// waitFrames waits until the page's newest peer connection is connected and has
// decoded more than after video frames, and returns its stats.
func (u *user) waitFrames(after int) callStats {
	u.h.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		s := u.stats()
		if s.State == "connected" && s.Frames > after {
			return s
		}
		if time.Now().After(deadline) {
			u.h.t.Fatalf("%s: no connected call decoding more than %d frames after %s: %+v", u.name, after, stepTimeout, s)
		}
		time.Sleep(20 * time.Millisecond) // polling the page, as eventually does
	}
}

// run runs f as a subtest, with h's pages, waits and failures on the subtest.
func (h *harness) run(name string, f func(t *testing.T)) {
	parent := h.t
	parent.Run(name, func(t *testing.T) {
		h.t = t
		defer func() { h.t = parent }()
		f(t)
	})
}

// checkPair asserts where the selected candidate pair of u's call is. In a
// loopback-only namespace both ends are 127.0.0.1. Filtering candidates instead, both
// ends are addresses of this machine (see the facts above). The remote end of a
// peer-reflexive pair is hidden from the page; the partner's local end shows it.
func checkPair(t *testing.T, u *user, s callStats, filter bool) {
	t.Helper()
	ends := []string{s.Local}
	if s.Remote != "" || s.RemoteType != "prflx" {
		ends = append(ends, s.Remote)
	}
	for _, a := range ends {
		if !filter {
			assert.Equal(t, "127.0.0.1", a, "%s: an end of the selected pair %+v", u.name, s)
			continue
		}
		ip := net.ParseIP(a)
		assert.True(t, ip != nil && (ip.IsLoopback() || ownAddress(t, ip)), "%s: an end of the selected pair %+v", u.name, s)
	}
}

// ownAddress reports whether ip is an address of one of this machine's interfaces.
func ownAddress(t *testing.T, ip net.IP) bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// initiator returns whether u's side of the current chat is the initiator, as video.js
// keeps it for the chat.
func (u *user) initiator() bool {
	u.h.t.Helper()
	return eval[bool](u, `JSON.parse(sessionStorage.getItem("flamingo.video.chat")).initiator`)
}

func TestVideoCall(t *testing.T) {
	chromiumPath(t) // skip here, not in a child, without a browser
	done, filter := mediaOnLoopback(t)
	if done {
		return
	}
	h := newVideoHarness(t, flamingo.Config{})
	alice := h.openVideoPage("alice", desktop, filter, "")
	bob := h.openVideoPage("bob", phone, filter, "")
	alice.startVideo("female", "male")
	bob.startVideo("male", "female")

	users := []*user{alice, bob}
	for _, u := range users {
		u.do(chromedp.WaitVisible(chromedp.CSS("#video-area")))
		u.waitJS("the local preview to play", `document.querySelector("#video-local").videoWidth > 0`)
	}
	first := map[*user]callStats{}
	for _, u := range users {
		s := u.waitFrames(0)
		first[u] = s
		t.Logf("%s: %+v", u.name, s)
		checkPair(t, u, s, filter)
		assert.Positive(t, s.Width, "%s: decoded frame width", u.name)
		u.waitJS("the stranger's video to play", `document.querySelector("#video-remote").videoWidth > 0`)
		cands := eval[[]string](u, `window.__videoTest.candidates`)
		require.NotEmpty(t, cands)
		for _, c := range cands {
			assert.NotContains(t, c, ".local ", "%s: a host candidate hidden behind an mDNS name", u.name)
		}
	}
	assert.NotEqual(t, alice.initiator(), bob.initiator(), "exactly one side is the initiator")
	for _, u := range users {
		// The engine refuses signal data over 16 KiB; an offer for audio and video
		// is the largest (about 5 KiB measured here).
		n := eval[int](u, `window.__videoTest.maxSignal`)
		t.Logf("%s: largest signal frame sent: %d bytes", u.name, n)
		assert.Less(t, n, 12<<10, "%s: largest signal frame", u.name)
	}
	alice.screenshot("video")
	bob.screenshot("video")

	h.run("mute and camera off reach the partner", func(t *testing.T) {
		alice.click("#video-mute")
		alice.waitJS("the microphone track off", `document.querySelector("#video-local").srcObject.getAudioTracks().every((t) => !t.enabled)`)
		assert.Equal(t, "true", eval[string](alice, `document.querySelector("#video-mute").getAttribute("aria-pressed")`))
		bob.waitVisibleText("#video-area", "The stranger is muted.")
		alice.click("#video-camera")
		alice.waitJS("the camera track off", `document.querySelector("#video-local").srcObject.getVideoTracks().every((t) => !t.enabled)`)
		bob.waitVisibleText("#video-area", "The stranger turned their camera off.")
		alice.screenshot("muted")
		alice.click("#video-mute")
		alice.click("#video-camera")
		bob.waitJS("the notes to go", `![...document.querySelectorAll("#video-area .video-note")].some((e) => e.checkVisibility())`)
	})

	h.run("text chat goes on beside the video", func(t *testing.T) {
		if !alice.hasModeChoice() {
			t.Skip("the page has no text or video choice yet: its chat screen is not driven by this client")
		}
		alice.typeAndSend("can you see me? 🎥")
		bob.waitBubble("them", "can you see me? 🎥")
		bob.typeAndSend("yes!")
		alice.waitBubble("them", "yes!")
		for _, u := range users {
			assert.True(t, eval[bool](u, `document.querySelector("#video-area").checkVisibility()`), "%s: video shown", u.name)
		}
	})

	h.run("a resume renegotiates with an ICE restart", func(t *testing.T) {
		// Each side in turn loses its WebSocket: flamingo.js resumes the session, and
		// the initiator restarts ICE (asked to by the other side when that one dropped).
		init, other := alice, bob
		if !alice.initiator() {
			init, other = bob, alice
		}
		for _, dropped := range []*user{other, init} {
			before := init.stats()
			frames := map[*user]int{alice: alice.stats().Frames, bob: bob.stats().Frames}
			online := h.engine.Stats().Online
			eval[bool](dropped, `window.__videoTest.sockets.findLast((s) => s.readyState === 1).close(), true`)
			h.eventually("the engine to see the socket go", func() bool { return h.engine.Stats().Online < online })
			h.eventually(dropped.name+" to resume", func() bool { return h.engine.Stats().Online == online })
			h.eventually("a new ICE username fragment at the initiator", func() bool { return init.stats().Ufrag != before.Ufrag })
			for _, u := range users {
				s := u.waitFrames(frames[u])
				assert.Equal(t, 1, s.Open, "%s: one open peer connection", u.name)
				checkPair(t, u, s, filter)
			}
		}
	})

	h.run("a lost offer is sent again", func(t *testing.T) {
		// The other side drops its socket and asks for an ICE restart on its resume;
		// the initiator's offer is lost on the way. The next repair (another resume)
		// must send that offer again: nothing else would ever answer it.
		init, other := alice, bob
		if !alice.initiator() {
			init, other = bob, alice
		}
		const newestPC = `window.__videoTest.pcs.findLast((p) => p.connectionState !== "closed")`
		drop := func() {
			online := h.engine.Stats().Online
			eval[bool](other, `window.__videoTest.sockets.findLast((s) => s.readyState === 1).close(), true`)
			h.eventually("the engine to see the socket go", func() bool { return h.engine.Stats().Online < online })
			h.eventually(other.name+" to resume", func() bool { return h.engine.Stats().Online == online })
		}
		eval[bool](init, `window.__videoTest.dropOffers = true`)
		drop()
		init.waitJS("the restart offer to be lost", `window.__videoTest.droppedOffers > 0`)
		assert.Equal(t, "have-local-offer", eval[string](init, newestPC+`.signalingState`), "%s: the offer out", init.name)
		eval[bool](init, `!(window.__videoTest.dropOffers = false)`)

		frames := map[*user]int{alice: alice.stats().Frames, bob: bob.stats().Frames}
		drop()
		init.waitJS("the offer to be answered", newestPC+`.signalingState === "stable"`)
		for _, u := range users {
			s := u.waitFrames(frames[u])
			assert.Equal(t, 1, s.Open, "%s: one open peer connection", u.name)
			checkPair(t, u, s, filter)
		}
	})

	h.run("a reload builds a new call in the same chat", func(t *testing.T) {
		// A reloaded page has no peer connection: as the initiator it offers again, as
		// the other side it asks for an offer; the partner's connection is rebuilt.
		for _, reloaded := range []*user{alice, bob} {
			partner := alice
			if reloaded == alice {
				partner = bob
			}
			pcs := partner.stats().PCs
			reloaded.reload()
			h.eventually(partner.name+": a new peer connection for the reloaded page", func() bool { return partner.stats().PCs > pcs })
			for _, u := range users {
				s := u.waitFrames(0)
				assert.Equal(t, 1, s.Open, "%s: one open peer connection", u.name)
				checkPair(t, u, s, filter)
			}
			reloaded.waitJS("the stranger's video to play", `document.querySelector("#video-remote").videoWidth > 0`)
		}
		assert.NotEqual(t, alice.initiator(), bob.initiator(), "the roles kept")
	})

	h.run("next builds a new call with the same camera", func(t *testing.T) {
		// Bob moves on and meets Carol (a woman who wants to meet men, as Alice, so
		// that only Bob suits her); Alice's call ends and her camera stays on.
		pcs := bob.stats().PCs
		bob.next()
		h.eventually("alice: the call to close", func() bool { return alice.stats().Open == 0 })
		carol := h.openVideoPage("carol", desktop, filter, "")
		carol.startVideo("female", "male")
		for _, u := range []*user{bob, carol} {
			s := u.waitFrames(0)
			checkPair(t, u, s, filter)
		}
		assert.Equal(t, pcs+1, bob.stats().PCs, "bob: one new peer connection for the new chat")
		for _, u := range users {
			assert.True(t, eval[bool](u, `document.querySelector("#video-local").srcObject.getVideoTracks().every((t) => t.readyState === "live")`),
				"%s: the camera kept", u.name)
		}
		assert.Zero(t, alice.stats().Open, "alice: no call while she has no chat")
	})
}

func TestVideoWithoutCameraFallsBackToText(t *testing.T) {
	h := newVideoHarness(t, flamingo.Config{})
	for _, tc := range []struct{ name, errName, want string }{
		{"permission denied", "NotAllowedError", "Camera permission was denied."},
		{"no camera", "NotFoundError", "No camera was found."},
	} {
		h.run(tc.name, func(t *testing.T) {
			deny := fmt.Sprintf(`navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("refused by the test", %s));`,
				jsString(tc.errName))
			carol := h.openVideoPage("carol", desktop, true, deny)
			if !carol.hasModeChoice() {
				// Before app.js offers video: FlamingoVideo.start itself must refuse
				// with the message and leave the video area hidden.
				ctx, cancel := context.WithTimeout(carol.ctx, stepTimeout)
				defer cancel()
				got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
					`FlamingoVideo.start({}, document.querySelector("#video-area")).then(() => "started", (e) => e.message)`,
					chromedp.EvalAwaitPromise))
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				assert.True(t, eval[bool](carol, `document.querySelector("#video-area").hidden`), "video area hidden")
				return
			}
			dave := h.newUser("dave", phone)
			carol.startVideo("female", "male")
			carol.waitJS("the message "+tc.want, fmt.Sprintf(`document.body.innerText.includes(%s)`, jsString(tc.want)))
			carol.screenshot("refused")
			dave.startSearching("male", "female")
			carol.waitScreen("chat")
			dave.waitScreen("chat")
			assert.False(t, eval[bool](carol, `document.querySelector("#video-area").checkVisibility()`), "video area shown")
			carol.typeAndSend("text it is")
			dave.waitBubble("them", "text it is")
			assert.Zero(t, carol.stats().PCs, "a peer connection made without a camera")
		})
	}
}
