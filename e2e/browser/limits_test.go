package browser

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/examples/demo"
	"github.com/flamingochat/flamingo/flamingotest"
)

// Many people behind one address: the engine refuses an init over the address's
// limits with rate_limited, and the clients come back by themselves. These limits are
// tight on purpose: one new identity per 10 s, and a single unknown user_id.
var crowdLimits = flamingo.Config{
	InitRate:        flamingo.RateLimit{Rate: 0.1, Burst: 1},
	ResumeGuessRate: flamingo.RateLimit{Rate: 0.0001, Burst: 1},
}

// staleID is a user_id that matches no session, as one kept from an earlier visit.
func staleID(i int) string { return fmt.Sprintf("%032x", i) }

// spendGuess uses up the address's unknown-user_id bucket from a Go client, so that
// the next unknown user_id from 127.0.0.1 is refused.
func spendGuess(h *harness) {
	h.t.Helper()
	c := flamingotest.Dial(h.t, "ws"+strings.TrimPrefix(h.srv.URL, "http")+"/ws", nil)
	require.False(h.t, c.Init(staleID(1)).Resumed)
}

// openWithStoredID opens path for a new person whose localStorage already holds
// user_id, as after an earlier visit: it sets it on a blank page of the same origin
// first, so that the page's first init carries it. It returns once the element css
// of the page at path is there: until then, scripts may run in the blank page's
// context, which the navigation destroys.
func (h *harness) openWithStoredID(name, path, css, userID string) *user {
	h.t.Helper()
	u := h.openPage(name, desktop, "/blank")
	eval[bool](u, fmt.Sprintf(`localStorage.setItem("flamingo.user_id", %s), true`, jsString(userID)))
	u.do(chromedp.Navigate(h.srv.URL+path), chromedp.WaitReady(css))
	return u
}

func TestRefusedInit_DemoClientComesBack(t *testing.T) {
	h := newHarness(t, crowdLimits)
	h.mux.HandleFunc("/blank", func(http.ResponseWriter, *http.Request) {})
	// The demo page connects to "ws" beside itself: serve a copy whose WebSocket
	// requests are counted.
	var dials atomic.Int32
	ws := flamingo.NewWebSocketHandler(h.engine, nil)
	h.mux.Handle("/counted/ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dials.Add(1)
		ws.ServeHTTP(w, r)
	}))
	h.mux.Handle("/counted/", http.StripPrefix("/counted", demo.Handler()))
	spendGuess(h)

	// A stored user_id that expired is refused; the client forgets it and starts a
	// new identity on the same connection.
	ann := h.openWithStoredID("ann", "/counted/", "#conn", staleID(2))
	ann.waitVisibleText("#conn", "Connected")
	stored := eval[string](ann, `localStorage.getItem("flamingo.user_id")`)
	assert.Regexp(t, `^[0-9a-f]{32}$`, stored)
	assert.NotEqual(t, staleID(2), stored, "the expired id is forgotten")
	assert.Equal(t, int32(1), dials.Load(), "on the same connection")

	// Ann took the one new identity: Bea is refused, and reconnects after
	// retry_after_ms.
	bea := h.openPage("bea", desktop, "/counted/")
	bea.waitVisibleText("#conn", "Connected")
	assert.Equal(t, int32(3), dials.Load(), "Bea connected twice: refused, then admitted")
	assert.Equal(t, 3, h.engine.Stats().Online, "the Go client, Ann and Bea")
}

func TestRefusedInit_GuideMinimalClientComesBack(t *testing.T) {
	h := newHarness(t, crowdLimits)
	page := minimalClient(t)
	h.mux.HandleFunc("/minimal.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})
	h.mux.HandleFunc("/blank", func(http.ResponseWriter, *http.Request) {})
	spendGuess(h)
	connected := `document.querySelector("#status").textContent === "connected"`

	ann := h.openWithStoredID("ann", "/minimal.html", "#status", staleID(2))
	ann.waitJS("ann to be connected", connected)
	assert.NotEqual(t, staleID(2), eval[string](ann, `localStorage.getItem("flamingo.user_id")`))

	bea := h.openPage("bea", desktop, "/minimal.html")
	bea.waitJS("bea to be connected", connected)
	assert.Equal(t, 3, h.engine.Stats().Online, "the Go client, Ann and Bea")
}
