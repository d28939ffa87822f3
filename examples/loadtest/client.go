package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// epoch is the origin of the timestamps that messages carry; clients and the clock
// that reads them live in this process, so the monotonic clock is shared.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// event is a control event a flamingo client received (not a chat message).
type event struct {
	typ    string
	chatID string
	at     time.Time
}

// client is one load connection.
type client struct {
	id     int
	node   int // the cluster node it is connected to (0 for other servers)
	run    *runner
	conn   *websocket.Conn
	events chan event // control events for the phase driver; capacity 16
	window chan struct{}
	done   chan struct{} // closed when the read loop ends

	gender, pref string
	chatID       string // current chat (flamingo), set by the driver
	frame        []byte // the sender's scratch frame
}

// dialers returns one HTTP client per loopback source address, so that more
// connections than one address has ephemeral ports can be opened.
func dialers(n int) []*http.Client {
	cs := make([]*http.Client, n)
	for i := range cs {
		d := &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))},
			Timeout:   10 * time.Second,
		}
		cs[i] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	return cs
}

// dialWS opens a WebSocket to url through hc, without compression, as every load
// client does.
func dialWS(ctx context.Context, hc *http.Client, url string) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:      hc,
		CompressionMode: websocket.CompressionDisabled,
	})
	return conn, err
}

// dial opens the client's WebSocket and starts its read loop.
func (c *client) dial(ctx context.Context, hc *http.Client, url string) error {
	conn, err := dialWS(ctx, hc, url)
	if err != nil {
		return err
	}
	conn.SetReadLimit(1 << 20)
	c.conn = conn
	c.events = make(chan event, 16)
	c.window = make(chan struct{}, c.run.cfg.window)
	c.done = make(chan struct{})
	go c.readLoop()
	return nil
}

var (
	contentKey = []byte(`"content":"i=`)
	typeKey    = []byte(`{"type":"`)
	chatKey    = []byte(`"chat_id":"`)
)

// readLoop reads until the connection ends. Chat messages are timed and credited to
// their sender's window; other events go to the driver.
func (c *client) readLoop() {
	defer close(c.done)
	ctx := context.Background()
	var buf []byte
	r := c.run
	for {
		_, rd, err := c.conn.Reader(ctx)
		if err != nil {
			return
		}
		buf, err = readAll(rd, buf[:0])
		if err != nil {
			return
		}
		if i := bytes.Index(buf, contentKey); i >= 0 {
			r.onMessage(c, buf[i+len(contentKey):])
			continue
		}
		ev := event{at: time.Now()}
		if bytes.HasPrefix(buf, typeKey) {
			rest := buf[len(typeKey):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				ev.typ = string(rest[:j])
			}
		}
		if i := bytes.Index(buf, chatKey); i >= 0 {
			rest := buf[i+len(chatKey):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				ev.chatID = string(rest[:j])
			}
		}
		if ev.typ == "error" {
			r.errors.Add(1)
			continue
		}
		select {
		case c.events <- ev:
		default:
			r.dropped.Add(1)
		}
	}
}

// onMessage handles the content of a chat message that to received: "i=<sender>
// t=<ns> ...".
func (r *runner) onMessage(to *client, b []byte) {
	sender, b := parseUint(b)
	b = bytes.TrimPrefix(b, []byte(" t="))
	sent, _ := parseUint(b)
	d := time.Duration(now() - int64(sent))
	if h := r.hist.Load(); h != nil {
		h.record(d)
	}
	r.recv.Add(1)
	if int(sender) < len(r.clients) {
		from := r.clients[sender]
		select {
		case <-from.window:
		default:
		}
		if r.nodeRecv != nil {
			r.nodeRecv[to.node].Add(1)
			h := r.histSame.Load()
			if from.node != to.node {
				r.crossRecv.Add(1)
				h = r.histCross.Load()
			}
			if h != nil {
				h.record(d)
			}
		}
	}
}

func parseUint(b []byte) (uint64, []byte) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	return v, b[i:]
}

// send writes a frame built from s.
func (c *client) send(s string) error {
	return c.conn.Write(context.Background(), websocket.MessageText, []byte(s))
}

// sendMessage writes one send_message frame stamped with at (nanoseconds since
// epoch), padded to the configured content size.
func (c *client) sendMessage(at int64) error {
	b := append(c.frame[:0], `{"type":"send_message","payload":{"chat_id":"`...)
	b = append(b, c.chatID...)
	b = append(b, `","content":"`...)
	start := len(b)
	b = append(b, "i="...)
	b = strconv.AppendInt(b, int64(c.id), 10)
	b = append(b, " t="...)
	b = strconv.AppendInt(b, at, 10)
	b = append(b, ' ')
	for len(b)-start < c.run.cfg.size {
		b = append(b, 'x')
	}
	b = append(b, `"}}`...)
	c.frame = b
	return c.conn.Write(context.Background(), websocket.MessageText, b)
}

// wait returns the next control event of one of the given types, skipping others, or
// false once deadline passes or the connection ends.
func (c *client) wait(deadline time.Time, types ...string) (event, bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		select {
		case ev := <-c.events:
			for _, typ := range types {
				if ev.typ == typ {
					return ev, true
				}
			}
		case <-c.done:
			return event{}, false
		case <-t.C:
			return event{}, false
		}
	}
}

// joinAndMatch sends join_queue and waits for match_found. A client not matched within
// matchWait (its preference may have no compatible waiter left) leaves the queue and
// joins again accepting anyone. It returns the match event and whether the first
// join matched.
func (c *client) joinAndMatch(matchWait time.Duration) (ev event, first, ok bool) {
	join := func(gender, pref string) bool {
		return c.send(`{"type":"join_queue","payload":{"gender":"`+gender+`","preference":"`+pref+`"}}`) == nil
	}
	if !join(c.gender, c.pref) {
		return ev, false, false
	}
	if ev, ok := c.wait(time.Now().Add(matchWait), "match_found"); ok {
		return ev, true, true
	}
	if c.send(`{"type":"leave_queue"}`) != nil {
		return ev, false, false
	}
	ev, ok = c.wait(time.Now().Add(matchWait), "queue_left", "match_found")
	if !ok {
		return ev, false, false
	}
	if ev.typ == "match_found" {
		return ev, false, true
	}
	if !join("other", "any") {
		return ev, false, false
	}
	ev, ok = c.wait(time.Now().Add(matchWait), "match_found")
	return ev, false, ok
}

// parallel runs f(i) for i in [0, n) on at most limit goroutines (n if limit ≤ 0) and
// waits for all of them.
func parallel(n, limit int, f func(i int)) {
	if limit <= 0 || limit > n {
		limit = n
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range limit {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
