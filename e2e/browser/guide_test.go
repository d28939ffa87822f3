package browser

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// minimalClient returns the HTML of the minimal client in FRONTEND_GUIDE.md: the first
// html code block of its section 8.
func minimalClient(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "FRONTEND_GUIDE.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "\n## 8. ")
	require.True(t, ok, "FRONTEND_GUIDE.md has no section 8")
	_, block, ok := strings.Cut(section, "```html\n")
	require.True(t, ok, "section 8 has no html block")
	block, _, ok = strings.Cut(block, "\n```")
	require.True(t, ok, "the html block does not end")
	return "<!doctype html><meta charset=\"utf-8\"><title>minimal</title>\n" + block
}

func TestGuideMinimalClientChats(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	page := minimalClient(t)
	h.mux.HandleFunc("/minimal.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})
	a := h.openPage("ann", desktop, "/minimal.html")
	b := h.openPage("bea", desktop, "/minimal.html")
	for _, u := range []*user{a, b} {
		u.waitVisibleText("#status", "connected")
	}
	// The guide's client is a woman who wants to meet anyone: two of them match.
	a.click("#find")
	a.waitVisibleText("#status", "looking for someone")
	b.click("#find")
	for _, u := range []*user{a, b} {
		u.waitVisibleText("#log", "you are chatting with a stranger (female)")
	}

	const hello = `hi <b>there</b> 🦩`
	a.do(chromedp.SendKeys(chromedp.CSS("#text"), hello))
	a.click("#form button")
	a.waitVisibleText("#log", "you: "+hello)
	b.waitVisibleText("#log", "stranger: "+hello)
	require.Zero(t, eval[int](b, `document.querySelectorAll("#log b").length`), "markup turned into elements")

	b.click("#leave")
	b.waitVisibleText("#log", "flamingo: you left")
	a.waitVisibleText("#log", "flamingo: the stranger left")
}
