package browser

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
	"github.com/flamingochat/flamingo/examples/demo"
)

var updateDocs = flag.Bool("update-docs-screenshot", false,
	"also copy the desktop chat screenshot to docs/screenshot.png at the repository root")

// stepTimeout bounds every single browser step: generous, because a shared machine
// can be slow, and a step that waits for a condition returns as soon as it holds.
const stepTimeout = 30 * time.Second

// outDir is where screenshots go; .gitignore keeps it out of the repository.
const outDir = "testdata/out"

// viewport is a browser window size.
type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

var (
	desktop = viewport{name: "desktop", width: 1280, height: 800}
	phone   = viewport{name: "phone", width: 390, height: 844, mobile: true}
)

// chromiumPath finds the browser: $FLAMINGO_CHROMIUM, else chromium on $PATH (the
// Debian package installs /usr/bin/chromium). Without one the test skips, or fails
// when $CI is "true".
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FLAMINGO_CHROMIUM"); p != "" {
		_, err := os.Stat(p)
		require.NoError(t, err, "FLAMINGO_CHROMIUM names no file")
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: CI must run `apt-get install -y chromium` (or set FLAMINGO_CHROMIUM)")
	}
	t.Skip("chromium not found: run `apt-get install chromium` (or set FLAMINGO_CHROMIUM) to run the browser tests")
	return ""
}

// harness is one in-process flamingo server (engine, WebSocket handler, demo page) on
// 127.0.0.1 and one headless Chromium.
type harness struct {
	t      *testing.T
	engine *flamingo.Engine
	srv    *httptest.Server
	mux    *http.ServeMux // tests may add pages before users open them
	gate   *gate
	// msgGate holds every message in the engine's OnMessage hook while it is closed:
	// the message is neither delivered nor acknowledged until it opens.
	msgGate *gate
	browser context.Context

	mu       sync.Mutex
	messages []string // contents the engine has accepted, in order
	arrived  []string // contents that reached OnMessage, held or not, in order
}

func newHarness(t *testing.T, cfg flamingo.Config) *harness {
	t.Helper()
	exe := chromiumPath(t)
	h := &harness{t: t, gate: &gate{}, msgGate: &gate{}}
	cfg.OnMessage = func(m flamingo.Message) error {
		h.mu.Lock()
		h.arrived = append(h.arrived, m.Content)
		h.mu.Unlock()
		h.msgGate.wait()
		h.mu.Lock()
		h.messages = append(h.messages, m.Content)
		h.mu.Unlock()
		return nil
	}
	engine, err := flamingo.New(cfg)
	require.NoError(t, err)
	h.engine = engine

	h.mux = http.NewServeMux()
	h.mux.Handle("/ws", h.gate.wrap(flamingo.NewWebSocketHandler(engine, nil)))
	h.mux.Handle("/", demo.Handler())
	h.srv = httptest.NewServer(h.mux) // listens on 127.0.0.1

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(desktop.width), int(desktop.height)),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser() // closes every tab, and so every WebSocket
		cancelAlloc()   // waits for the browser process to exit
		h.gate.release()
		h.msgGate.release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, engine.Shutdown(ctx), "engine shutdown")
		h.srv.Close()
	})
	// The first Run starts the browser; it must not carry a timeout (chromedp would
	// stop the browser when it expired).
	require.NoError(t, chromedp.Do(browserCtx), "starting chromium")
	h.browser = browserCtx
	return h
}

// acceptedMessage reports whether the engine has accepted a message with content.
func (h *harness) acceptedMessage(content string) bool {
	return h.acceptedCount(content) > 0
}

// arrivedMessage reports whether a message with content has reached the engine's
// OnMessage hook (it may be held there).
func (h *harness) arrivedMessage(content string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.arrived {
		if m == content {
			return true
		}
	}
	return false
}

// acceptedCount returns how many times the engine's OnMessage hook has seen a
// message with content.
func (h *harness) acceptedCount(content string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.messages {
		if m == content {
			n++
		}
	}
	return n
}

// eventually polls cond every 20 ms until it holds, failing after stepTimeout.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", stepTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gate holds WebSocket upgrades while it is closed, so that a test can keep a
// reloading page offline for as long as it needs.
type gate struct {
	mu     sync.Mutex
	closed chan struct{} // nil while open
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = make(chan struct{})
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
}

// wait returns once the gate is open.
func (g *gate) wait() {
	g.mu.Lock()
	ch := g.closed
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		ch := g.closed
		g.mu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// user is one person: a tab in a browser context of its own (its own localStorage
// and sessionStorage, like a separate browser profile).
type user struct {
	h    *harness
	name string
	vp   viewport
	ctx  context.Context

	mu         sync.Mutex
	dialogs    []string
	exceptions []string
}

// newUser opens the demo page for a new person and waits until it is connected.
func (h *harness) newUser(name string, vp viewport) *user {
	h.t.Helper()
	u := h.openPage(name, vp, "/")
	u.waitVisibleText("#conn", "Connected")
	return u
}

// openPage opens path in a new browser context (a separate profile) at the size vp.
func (h *harness) openPage(name string, vp viewport, path string) *user {
	h.t.Helper()
	ctx, cancel := chromedp.NewContext(h.browser, chromedp.WithNewBrowserContext())
	h.t.Cleanup(cancel)
	u := &user{h: h, name: name, vp: vp, ctx: ctx}
	require.NoError(h.t, chromedp.Do(ctx), "%s: opening a tab", name)
	require.NoError(h.t, chromedp.Listen(ctx, u.observe))
	var emulate []chromedp.EmulateViewportOption
	if vp.mobile {
		emulate = append(emulate, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	u.do(
		chromedp.EmulateViewport(vp.width, vp.height, emulate...),
		chromedp.Navigate(h.srv.URL+path),
	)
	h.t.Cleanup(u.checkClean)
	return u
}

// observe records dialogs (and dismisses them) and uncaught exceptions. It runs on
// chromedp's reader goroutine, so it only records and hands work to another goroutine.
func (u *user) observe(ev any) {
	switch ev := ev.(type) {
	case *page.EventJavascriptDialogOpening:
		u.mu.Lock()
		u.dialogs = append(u.dialogs, string(ev.Type)+": "+ev.Message)
		u.mu.Unlock()
		go func() {
			_, _ = chromedp.Call(u.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}()
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		u.mu.Lock()
		u.exceptions = append(u.exceptions, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, text))
		u.mu.Unlock()
	}
}

// checkClean fails the test if the page opened a dialog or threw an uncaught exception.
func (u *user) checkClean() {
	u.mu.Lock()
	defer u.mu.Unlock()
	assert.Empty(u.h.t, u.dialogs, "%s: the page opened dialogs", u.name)
	assert.Empty(u.h.t, u.exceptions, "%s: the page threw uncaught exceptions", u.name)
}

// do runs browser steps, each bounded by stepTimeout.
func (u *user) do(steps ...chromedp.Action[chromedp.Void]) {
	u.h.t.Helper()
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
		err := chromedp.Do(ctx, s)
		cancel()
		require.NoError(u.h.t, err, "%s: browser step failed", u.name)
	}
}

func eval[T any](u *user, js string) T {
	u.h.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(u.h.t, err, "%s: evaluating %s", u.name, js)
	return v
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// click clicks the element like a mouse would (it must be visible).
func (u *user) click(css string) {
	u.h.t.Helper()
	u.do(chromedp.Click(chromedp.CSS(css)))
}

// choose picks what the user is and whom they want to meet, by clicking the options.
func (u *user) choose(gender, preference string) {
	u.h.t.Helper()
	u.click(fmt.Sprintf(`input[name="gender"][value=%q] + span`, gender))
	u.click(fmt.Sprintf(`input[name="preference"][value=%q] + span`, preference))
}

// typeAndSend types text into the message box and presses Enter.
func (u *user) typeAndSend(text string) {
	u.h.t.Helper()
	u.do(
		chromedp.SendKeys(chromedp.CSS("#msg-input"), text),
		chromedp.SendKeys(chromedp.CSS("#msg-input"), kb.Enter),
	)
	// Sending clears the box; waiting for that keeps the next keystrokes separate.
	u.waitJS("the message box to clear", `document.querySelector("#msg-input").value === ""`)
}

// waitJS waits until a JavaScript expression is truthy.
func (u *user) waitJS(what, expr string) {
	u.h.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout)))
	require.NoError(u.h.t, err, "%s: waiting for %s", u.name, what)
}

// waitScreen waits until the named screen (welcome, searching, chat, replaced) shows.
func (u *user) waitScreen(name string) {
	u.h.t.Helper()
	u.do(chromedp.WaitVisible(chromedp.CSS("#screen-" + name)))
}

// visibleTextJS is a JavaScript predicate: some visible element matching css has
// visible text that contains text.
func visibleTextJS(css, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%s)].some(e => e.checkVisibility() && e.innerText.includes(%s))`,
		jsString(css), jsString(text))
}

// waitVisibleText waits until a visible element matching css shows text.
func (u *user) waitVisibleText(css, text string) {
	u.h.t.Helper()
	u.waitJS(fmt.Sprintf("%q to show %q", css, text), visibleTextJS(css, text))
}

// hasVisibleText reports whether a visible element matching css shows text now.
func (u *user) hasVisibleText(css, text string) bool {
	u.h.t.Helper()
	return eval[bool](u, visibleTextJS(css, text))
}

// waitBubble waits until a message bubble from who ("me" or "them") shows exactly
// text, and is visible.
func (u *user) waitBubble(who, text string) {
	u.h.t.Helper()
	u.waitJS(fmt.Sprintf("a %s bubble %q", who, text), fmt.Sprintf(
		`[...document.querySelectorAll("#messages .msg.%s .bubble")].some(e => e.checkVisibility() && e.textContent === %s)`,
		who, jsString(text)))
}

// bubbles returns the text of the visible message bubbles, in order, as "me: ..." or
// "them: ...".
func (u *user) bubbles() []string {
	u.h.t.Helper()
	return eval[[]string](u, `[...document.querySelectorAll("#messages .msg:not(.system)")]
		.filter(e => e.checkVisibility())
		.map(e => (e.classList.contains("me") ? "me: " : "them: ") + e.querySelector(".bubble").textContent)`)
}

// screenshot saves what the user sees to testdata/out/<test>-<user>-<what>.png and
// returns the file name.
func (u *user) screenshot(what string) string {
	u.h.t.Helper()
	require.NoError(u.h.t, os.MkdirAll(outDir, 0o755))
	ctx, cancel := context.WithTimeout(u.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(u.h.t, err, "%s: screenshot", u.name)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(u.h.t.Name()) + "-" + u.name + "-" + u.vp.name + "-" + what + ".png"
	path := filepath.Join(outDir, name)
	require.NoError(u.h.t, os.WriteFile(path, png, 0o644))
	return path
}
