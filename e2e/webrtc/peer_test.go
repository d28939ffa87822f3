package webrtc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/flamingochat/flamingo"
)

// waitTimeout bounds every wait of the tests. It is generous, since it is reached only
// when a test is about to fail: on loopback two peers connect in about a second.
const waitTimeout = 20 * time.Second

// loopbackAPI returns a pion API whose PeerConnections keep every packet on this
// machine's loopback. What was needed here, and why:
//
//   - ICE gathers host candidates on every interface by default, so a peer would offer
//     (and its partner would send STUN checks to) the machine's non-loopback
//     addresses. The interface filter keeps only loopback interfaces and the IP filter
//     only 127.0.0.0/8 (and ::1, which UDP4 drops anyway).
//   - pion leaves loopback addresses out of its candidates unless told otherwise:
//     SetIncludeLoopbackCandidate(true) is what makes 127.0.0.1 a candidate at all.
//     With the filters above it is then the only one.
//   - mDNS is off: in its default mode pion opens a multicast socket
//     (224.0.0.251:5353) to resolve ".local" candidates, which is traffic off
//     loopback, and the peers here never hide their addresses behind mDNS names.
//   - UDP over IPv4 only: no TCP candidates (ICE-TCP is passive only in pion) and no
//     IPv6, which keeps the candidate list to one per gathering and the test quick.
//
// Measured here (2 cores, pion/webrtc v4.2.26): from init to an open data channel on
// one node took 0.04–0.25 s, 0.1 s across two nodes, about twice that with the race
// detector. An ICE restart gathers on new sockets: the pair after it has new ports.
//
// more, if given, adjusts the settings further.
func loopbackAPI(more ...func(*webrtc.SettingEngine)) *webrtc.API {
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool {
		ifi, err := net.InterfaceByName(name)
		return err == nil && ifi.Flags&net.FlagLoopback != 0
	})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	for _, f := range more {
		f(&se)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// signalData is what the peers put in a signal's data: a session description
// ({"type": "offer" or "answer", "sdp": ...}, the shape of RTCSessionDescriptionInit)
// or an ICE candidate ({"candidate": RTCIceCandidateInit}), as a browser page would.
type signalData struct {
	Type      string                   `json:"type,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
}

// dcMessage is one data-channel message as it arrived.
type dcMessage struct {
	text bool
	data []byte
}

// event is one server event as a peer received it, other than a signal.
type event struct {
	typ     flamingo.EventType
	payload json.RawMessage
	raw     []byte
}

// page is one user's side of a video chat, the Go counterpart of the demo page: a
// WebSocket to flamingo (replaced when the page reloads) and a PeerConnection that
// negotiates through the signal events. It reacts to the server's events on the
// goroutine that reads them, as a page's event handlers would; the test only watches
// (events, open, received) and drives the user's actions (connect, init, join,
// reload, send).
type page struct {
	t    testing.TB
	name string
	api  *webrtc.API
	// policy is the PeerConnection's ICE transport policy: all candidates, or
	// relayed ones only.
	policy webrtc.ICETransportPolicy

	failed   chan struct{} // closed by the first failure; err says what it was
	failOnce sync.Once
	err      error

	events   chan event         // server events other than signal, for the test
	open     chan struct{}      // closed when the data channel opens
	received chan dcMessage     // data-channel messages, in order
	pairs    chan struct{}      // one token per selected ICE candidate pair (capacity 16)
	readers  sync.WaitGroup     // the WebSocket readers
	openOnce sync.Once          // closes open
	ctx      context.Context    // ends with the test: unblocks a reader delivering events
	cancel   context.CancelFunc //

	// out serialises what the page sends as signals, so that a description always
	// goes out before the candidates gathered for it, and holds signals while the page
	// has no ready connection (during a reload).
	out struct {
		sync.Mutex
		conn    *websocket.Conn // the connection signals go to; nil until ready
		holding bool            // a description is being made: candidates wait
		pending []outgoing      // signals waiting for conn or for the description
	}

	// Kept across reloads, as a page keeps them in sessionStorage (the identity, the
	// match) or in its PeerConnection object.
	mu      sync.Mutex
	conn    *websocket.Conn // the current WebSocket, ready or not
	userID  string
	match   *flamingo.MatchFoundPayload
	matchAt json.RawMessage // match_found's payload as it came
	pc      *webrtc.PeerConnection
	dc      *webrtc.DataChannel
	offers  int               // offers made, ICE restarts included
	sent    []json.RawMessage // signal data sent, in order
	relayed []json.RawMessage // signal data received from the partner, in order
}

// newPage returns a page with no connection yet. The test's cleanup closes its
// WebSocket and its PeerConnection and waits for its goroutines.
func newPage(t testing.TB, name string, api *webrtc.API) *page {
	p := &page{
		t: t, name: name, api: api,
		failed:   make(chan struct{}),
		events:   make(chan event, 256),
		open:     make(chan struct{}),
		received: make(chan dcMessage, 1024),
		pairs:    make(chan struct{}, 16),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	t.Cleanup(p.close)
	return p
}

// fail records the page's first failure; the test sees it in its next wait.
func (p *page) fail(format string, args ...any) {
	p.failOnce.Do(func() {
		p.err = fmt.Errorf(p.name+": "+format, args...)
		close(p.failed)
	})
}

// connect opens a new WebSocket to url (the page loads) and starts reading it.
func (p *page) connect(url string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		p.t.Fatalf("%s: dial %s: %v", p.name, url, err)
	}
	c.SetReadLimit(1 << 20)
	p.mu.Lock()
	p.conn = c
	p.mu.Unlock()
	p.readers.Add(1)
	go p.read(c)
}

// reload closes the page's WebSocket as a reload does (1001, going away) and opens a
// new one to url. The PeerConnection and the data channel stay (see
// TestReloadMidCall). Signals the page makes meanwhile wait for the new connection.
func (p *page) reload(url string) {
	p.t.Helper()
	p.out.Lock()
	p.out.conn = nil
	p.out.Unlock()
	p.mu.Lock()
	old := p.conn
	p.conn = nil // its reader ends without taking that for a failure
	p.mu.Unlock()
	if err := old.Close(websocket.StatusGoingAway, "reload"); err != nil {
		p.t.Fatalf("%s: closing the WebSocket: %v", p.name, err)
	}
	p.connect(url)
}

// send sends an event on the page's current WebSocket.
func (p *page) send(typ flamingo.EventType, payload any) {
	p.t.Helper()
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if err := write(c, frame(typ, payload)); err != nil {
		p.t.Fatalf("%s: send %s: %v", p.name, typ, err)
	}
}

// frame encodes an event.
func frame(typ flamingo.EventType, payload any) []byte {
	b, err := json.Marshal(struct {
		Type    flamingo.EventType `json:"type"`
		Payload any                `json:"payload,omitempty"`
	}{typ, payload})
	if err != nil {
		panic(err) // only the tests' own types are encoded
	}
	return b
}

// write sends one text frame, bounded by waitTimeout.
func write(c *websocket.Conn, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, b)
}

// expect waits for the next server event other than signal and fails the test unless
// it is of type typ. It decodes the payload into v unless v is nil.
func (p *page) expect(typ flamingo.EventType, v any) event {
	p.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case ev := <-p.events:
		if ev.typ != typ {
			p.t.Fatalf("%s: got %s, want %s", p.name, ev.raw, typ)
		}
		if v != nil {
			if err := json.Unmarshal(ev.payload, v); err != nil {
				p.t.Fatalf("%s: decode %s: %v", p.name, ev.raw, err)
			}
		}
		return ev
	case <-p.failed:
		p.t.Fatal(p.err)
	case <-timer.C:
		p.t.Fatalf("%s: no %s within %v", p.name, typ, waitTimeout)
	}
	return event{}
}

// init sends init with userID ("" for a new user) and waits for ready.
func (p *page) init(userID string) flamingo.ReadyPayload {
	p.t.Helper()
	p.send(flamingo.EventInit, flamingo.InitPayload{UserID: userID})
	var r flamingo.ReadyPayload
	p.expect(flamingo.EventReady, &r)
	return r
}

// join queues the page and waits for queue_joined.
func (p *page) join(g flamingo.Gender, pref flamingo.Preference) {
	p.t.Helper()
	p.send(flamingo.EventJoinQueue, flamingo.JoinQueuePayload{Gender: g, Preference: pref})
	p.expect(flamingo.EventQueueJoined, nil)
}

// read reads c until it closes, reacting to each server event as a page does, and
// hands every event but signal to the test.
func (p *page) read(c *websocket.Conn) {
	defer p.readers.Done()
	for {
		_, b, err := c.Read(context.Background())
		if err != nil {
			p.mu.Lock()
			current := p.conn == c
			p.mu.Unlock()
			if current && p.ctx.Err() == nil {
				p.fail("the WebSocket ended: %v", err)
			}
			return
		}
		var env flamingo.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			p.fail("the server sent a frame that is not JSON: %q", b)
			return
		}
		if !p.handle(c, env) {
			return
		}
		if env.Type == flamingo.EventSignal {
			continue
		}
		select {
		case p.events <- event{typ: env.Type, payload: env.Payload, raw: b}:
		case <-p.ctx.Done():
			return
		}
	}
}

// handle reacts to one server event; it returns false once the page has failed.
func (p *page) handle(c *websocket.Conn, env flamingo.Envelope) bool {
	switch env.Type {
	case flamingo.EventReady:
		var r flamingo.ReadyPayload
		if err := json.Unmarshal(env.Payload, &r); err != nil {
			p.fail("ready: %v", err)
			return false
		}
		p.mu.Lock()
		p.userID = r.UserID
		initiator := p.match != nil && p.match.Initiator
		p.mu.Unlock()
		p.ready(c)
		// A page that resumed into its chat renegotiates: the side that made the
		// first offer (it kept match_found) offers again, with an ICE restart.
		if r.Resumed && initiator {
			return p.negotiate(true)
		}
	case flamingo.EventMatchFound:
		var m flamingo.MatchFoundPayload
		if err := json.Unmarshal(env.Payload, &m); err != nil {
			p.fail("match_found: %v", err)
			return false
		}
		p.mu.Lock()
		p.matchAt = env.Payload
		p.mu.Unlock()
		return p.matched(m)
	case flamingo.EventPartnerBack:
		// The partner resumed, from a page that may have lost its network path: the
		// initiator offers again, with an ICE restart.
		p.mu.Lock()
		initiator := p.match != nil && p.match.Initiator
		p.mu.Unlock()
		if initiator {
			return p.negotiate(true)
		}
	case flamingo.EventSignal:
		var s flamingo.SignalPayload
		if err := json.Unmarshal(env.Payload, &s); err != nil {
			p.fail("signal: %v", err)
			return false
		}
		return p.signalled(s)
	case flamingo.EventError:
		p.fail("error event: %s", env.Payload)
		return false
	}
	return true
}

// outgoing is a signal waiting to be sent.
type outgoing struct {
	data  json.RawMessage // its data, for the record of what was sent
	frame []byte          // the whole event
}

// ready makes c the connection that signals go to, and sends what waited for one.
func (p *page) ready(c *websocket.Conn) {
	p.out.Lock()
	defer p.out.Unlock()
	p.out.conn = c
	if !p.out.holding {
		p.flushLocked()
	}
}

// flushLocked sends the pending signals, in order. p.out is locked.
func (p *page) flushLocked() {
	for len(p.out.pending) > 0 && p.out.conn != nil {
		o := p.out.pending[0]
		// A reload takes p.out before it closes the connection, so a write fails
		// only if the server closed it.
		if err := write(p.out.conn, o.frame); err != nil {
			p.out.conn = nil
			p.fail("sending a signal: %v", err)
			return
		}
		p.out.pending = p.out.pending[1:]
		p.mu.Lock()
		p.sent = append(p.sent, o.data)
		p.mu.Unlock()
	}
}

// signal queues one signal for the partner, after any before it.
func (p *page) signal(data any) {
	b, err := json.Marshal(data)
	if err != nil {
		p.fail("encoding a signal: %v", err)
		return
	}
	o := p.outgoing(b)
	p.out.Lock()
	defer p.out.Unlock()
	p.out.pending = append(p.out.pending, o)
	if !p.out.holding {
		p.flushLocked()
	}
}

// outgoing makes a signal event of the page's chat with data.
func (p *page) outgoing(data []byte) outgoing {
	p.mu.Lock()
	chatID := p.match.ChatID
	p.mu.Unlock()
	return outgoing{data: data, frame: frame(flamingo.EventSignal, flamingo.SignalPayload{ChatID: chatID, Data: data})}
}

// matched makes the page's PeerConnection for a new chat, with the ICE servers
// flamingo gave, and, on the initiator's side, the data channel and the first offer.
func (p *page) matched(m flamingo.MatchFoundPayload) bool {
	cfg := webrtc.Configuration{ICETransportPolicy: p.policy}
	for _, s := range m.ICEServers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	pc, err := p.api.NewPeerConnection(cfg)
	if err != nil {
		p.fail("NewPeerConnection: %v", err)
		return false
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil { // nil marks the end of a gathering, which needs no signal here
			p.signal(signalData{Candidate: ptr(c.ToJSON())})
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			p.fail("the PeerConnection failed")
		}
	})
	pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(*webrtc.ICECandidatePair) {
		select {
		case p.pairs <- struct{}{}:
		default:
		}
	})
	pc.OnDataChannel(p.useChannel)
	p.mu.Lock()
	p.match, p.pc = &m, pc
	p.mu.Unlock()
	if !m.Initiator {
		return true
	}
	dc, err := pc.CreateDataChannel("chat", nil)
	if err != nil {
		p.fail("CreateDataChannel: %v", err)
		return false
	}
	p.useChannel(dc)
	return p.negotiate(false)
}

// useChannel keeps dc as the page's data channel and listens on it.
func (p *page) useChannel(dc *webrtc.DataChannel) {
	dc.OnOpen(func() { p.openOnce.Do(func() { close(p.open) }) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		select {
		case p.received <- dcMessage{text: m.IsString, data: m.Data}:
		default:
			p.fail("more data-channel messages than the test reads")
		}
	})
	p.mu.Lock()
	p.dc = dc
	p.mu.Unlock()
}

// negotiate makes an offer (with an ICE restart if restart) and sends it. Candidates
// gathered for it wait until it has gone.
func (p *page) negotiate(restart bool) bool {
	p.mu.Lock()
	pc := p.pc
	p.offers++
	p.mu.Unlock()
	return p.describe(func() (webrtc.SessionDescription, error) {
		return pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	})
}

// describe makes a local description with create, sets it and sends it, holding the
// candidates that setting it starts gathering until it has gone.
func (p *page) describe(create func() (webrtc.SessionDescription, error)) bool {
	p.out.Lock()
	p.out.holding = true
	p.out.Unlock()
	defer func() {
		p.out.Lock()
		p.out.holding = false
		p.flushLocked()
		p.out.Unlock()
	}()
	d, err := create()
	if err != nil {
		p.fail("creating a description: %v", err)
		return false
	}
	p.mu.Lock()
	pc := p.pc
	p.mu.Unlock()
	if err := pc.SetLocalDescription(d); err != nil {
		p.fail("SetLocalDescription(%s): %v", d.Type, err)
		return false
	}
	// The description goes ahead of the candidates that wait in pending.
	b, err := json.Marshal(signalData{Type: d.Type.String(), SDP: d.SDP})
	if err != nil {
		p.fail("encoding a description: %v", err)
		return false
	}
	o := p.outgoing(b)
	p.out.Lock()
	p.out.pending = append([]outgoing{o}, p.out.pending...)
	p.out.Unlock()
	return true
}

// signalled handles a signal from the partner: a description (answering an offer) or
// a candidate.
func (p *page) signalled(s flamingo.SignalPayload) bool {
	p.mu.Lock()
	pc, m := p.pc, p.match
	p.relayed = append(p.relayed, s.Data)
	p.mu.Unlock()
	if m == nil || s.ChatID != m.ChatID {
		p.fail("a signal for chat %q, not ours", s.ChatID)
		return false
	}
	var d signalData
	if err := json.Unmarshal(s.Data, &d); err != nil {
		p.fail("signal data %s: %v", s.Data, err)
		return false
	}
	switch {
	case d.Candidate != nil:
		// The partner sends a description before the candidates gathered for it,
		// and flamingo relays in order: the remote description is always set here.
		if err := pc.AddICECandidate(*d.Candidate); err != nil {
			p.fail("AddICECandidate(%s): %v", d.Candidate.Candidate, err)
			return false
		}
	case d.Type == "offer" || d.Type == "answer":
		desc := webrtc.SessionDescription{Type: webrtc.NewSDPType(d.Type), SDP: d.SDP}
		if err := pc.SetRemoteDescription(desc); err != nil {
			p.fail("SetRemoteDescription(%s): %v", d.Type, err)
			return false
		}
		if d.Type == "offer" {
			return p.describe(func() (webrtc.SessionDescription, error) { return pc.CreateAnswer(nil) })
		}
	default:
		p.fail("signal data of no known kind: %s", s.Data)
		return false
	}
	return true
}

// waitOpen waits until the data channel is open.
func (p *page) waitOpen() {
	p.t.Helper()
	select {
	case <-p.open:
	case <-p.failed:
		p.t.Fatal(p.err)
	case <-time.After(waitTimeout):
		p.t.Fatalf("%s: the data channel did not open within %v", p.name, waitTimeout)
	}
}

// waitPair waits until ICE selects a candidate pair (again): after an ICE restart,
// that is the proof that the new checks with the new credentials succeeded.
func (p *page) waitPair() {
	p.t.Helper()
	select {
	case <-p.pairs:
	case <-p.failed:
		p.t.Fatal(p.err)
	case <-time.After(waitTimeout):
		p.t.Fatalf("%s: ICE selected no candidate pair within %v", p.name, waitTimeout)
	}
}

// drainPairs forgets the candidate pairs selected so far.
func (p *page) drainPairs() {
	for {
		select {
		case <-p.pairs:
		default:
			return
		}
	}
}

// isInitiator reports whether match_found made the page the initiator.
func (p *page) isInitiator() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.match != nil && p.match.Initiator
}

// identity returns the page's user id and chat id, as it keeps them across a reload.
func (p *page) identity() (userID, chatID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.match != nil {
		chatID = p.match.ChatID
	}
	return p.userID, chatID
}

// matchFound returns the page's match_found, which it keeps across reloads.
func (p *page) matchFound() flamingo.MatchFoundPayload {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.match == nil {
		return flamingo.MatchFoundPayload{}
	}
	return *p.match
}

// matchPayload returns the payload of the page's match_found as it came.
func (p *page) matchPayload() json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.matchAt
}

// offerCount returns how many offers the page has made.
func (p *page) offerCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offers
}

// channel returns the page's data channel.
func (p *page) channel() *webrtc.DataChannel {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dc
}

// nextMessage waits for the next data-channel message.
func (p *page) nextMessage() dcMessage {
	p.t.Helper()
	select {
	case m := <-p.received:
		return m
	case <-p.failed:
		p.t.Fatal(p.err)
	case <-time.After(waitTimeout):
		p.t.Fatalf("%s: no data-channel message within %v", p.name, waitTimeout)
	}
	return dcMessage{}
}

// selectedPair returns the ICE candidate pair that carries the page's data, as
// "local <-> remote" addresses.
func (p *page) selectedPair() string {
	p.mu.Lock()
	pc := p.pc
	p.mu.Unlock()
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return fmt.Sprintf("none (%v)", err)
	}
	return fmt.Sprintf("%s:%d <-> %s:%d", pair.Local.Address, pair.Local.Port, pair.Remote.Address, pair.Remote.Port)
}

// selectedTypes returns the types (host, relay, ...) of the local and the remote
// candidate of the pair that carries the page's data.
func (p *page) selectedTypes() (local, remote webrtc.ICECandidateType) {
	p.mu.Lock()
	pc := p.pc
	p.mu.Unlock()
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return webrtc.ICECandidateTypeUnknown, webrtc.ICECandidateTypeUnknown
	}
	return pair.Local.Typ, pair.Remote.Typ
}

// iceUfrags returns the ICE username fragments of the page's local and remote
// descriptions: an ICE restart changes both.
func (p *page) iceUfrags() (local, remote string) {
	p.mu.Lock()
	pc := p.pc
	p.mu.Unlock()
	return ufrag(pc.CurrentLocalDescription()), ufrag(pc.CurrentRemoteDescription())
}

// ufrag returns the a=ice-ufrag of d, or "" if it has none.
func ufrag(d *webrtc.SessionDescription) string {
	if d == nil {
		return ""
	}
	for line := range strings.Lines(d.SDP) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

// close ends the page: its WebSockets, its readers and its PeerConnection.
func (p *page) close() {
	p.cancel()
	p.mu.Lock()
	c, pc := p.conn, p.pc
	p.mu.Unlock()
	if c != nil {
		_ = c.CloseNow()
	}
	p.readers.Wait()
	if pc != nil {
		// GracefulClose waits for pion's goroutines to end, for goleak.
		if err := pc.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
			p.t.Errorf("%s: closing the PeerConnection: %v", p.name, err)
		}
	}
}

// signalsMatch reports an error unless every signal from has sent arrived at to, in
// order and intact (as JSON values).
func signalsMatch(from, to *page) error {
	from.mu.Lock()
	sent := append([]json.RawMessage(nil), from.sent...)
	from.mu.Unlock()
	to.mu.Lock()
	got := append([]json.RawMessage(nil), to.relayed...)
	to.mu.Unlock()
	if len(got) != len(sent) {
		return fmt.Errorf("%s sent %d signals, %s received %d", from.name, len(sent), to.name, len(got))
	}
	for i := range sent {
		var a, b any
		if err := errors.Join(json.Unmarshal(sent[i], &a), json.Unmarshal(got[i], &b)); err != nil {
			return err
		}
		if !reflect.DeepEqual(a, b) {
			return fmt.Errorf("signal %d from %s: sent %s, received %s", i, from.name, sent[i], got[i])
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
