package browser

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// docsScreenshotMax is the size limit of docs/screenshot.png.
const docsScreenshotMax = 200 << 10

// startSearching makes u pick gender and preference and press Start chatting.
func (u *user) startSearching(gender, preference string) {
	u.h.t.Helper()
	u.choose(gender, preference)
	u.click("#start-btn")
}

// matchPair opens the page for a woman who wants to meet men (desktop) and a man who
// wants to meet women (phone), and waits until both are chatting.
func matchPair(h *harness) (alice, bob *user) {
	h.t.Helper()
	alice = h.newUser("alice", desktop)
	bob = h.newUser("bob", phone)
	alice.startSearching("female", "male")
	alice.waitScreen("searching")
	bob.startSearching("male", "female")
	alice.waitScreen("chat")
	bob.waitScreen("chat")
	alice.waitVisibleText("#chat-title", "Stranger Man")
	bob.waitVisibleText("#chat-title", "Stranger Woman")
	return alice, bob
}

func TestStrangersMatchAndChatBothWays(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice := h.newUser("alice", desktop)
	bob := h.newUser("bob", phone)
	alice.screenshot("welcome")
	bob.screenshot("welcome")

	alice.startSearching("female", "male")
	alice.waitScreen("searching")
	alice.waitVisibleText("#searching-title", "Looking for someone")
	alice.waitVisibleText("#searching-desc", "You're a woman, looking to meet men.")
	alice.screenshot("searching")

	bob.startSearching("male", "female")
	alice.waitScreen("chat")
	bob.waitScreen("chat")
	alice.waitVisibleText("#chat-title", "Stranger Man")
	bob.waitVisibleText("#chat-title", "Stranger Woman")
	// Focus moves to the message box, so the user can type at once.
	for _, u := range []*user{alice, bob} {
		u.waitJS("focus in the message box", `document.activeElement === document.querySelector("#msg-input")`)
	}

	const (
		hello  = "Hi stranger 👋 🦩"
		reply  = "Hello! 😀 Ça va? Ünïcødé ✓"
		markup = `<img src=x onerror=alert(1)><b>bold</b>`
		answer = `Nice try: <script>alert("x")</script> & <i>friends</i>`
	)
	alice.typeAndSend(hello)
	alice.waitBubble("me", hello)
	bob.waitBubble("them", hello)

	bob.typeAndSend(reply)
	bob.waitBubble("me", reply)
	alice.waitBubble("them", reply)

	alice.typeAndSend(markup)
	bob.waitBubble("them", markup)
	bob.typeAndSend(answer)
	alice.waitBubble("them", answer)

	for _, u := range []*user{alice, bob} {
		// Markup from a stranger is text: shown literally, no element made from it.
		assert.True(t, u.hasVisibleText("#messages", markup), "%s: markup shown literally", u.name)
		assert.True(t, u.hasVisibleText("#messages", answer), "%s: markup shown literally", u.name)
		created := eval[int](u, `document.querySelectorAll("#messages img, #messages b, #messages i, #messages script").length`)
		assert.Zero(t, created, "%s: elements created from message text", u.name)
	}
	assert.Equal(t, []string{"me: " + hello, "them: " + reply, "me: " + markup, "them: " + answer}, alice.bubbles())
	assert.Equal(t, []string{"them: " + hello, "me: " + reply, "them: " + markup, "me: " + answer}, bob.bubbles())

	shot := alice.screenshot("chat")
	bob.screenshot("chat")
	if *updateDocs {
		png, err := os.ReadFile(shot)
		require.NoError(t, err)
		require.LessOrEqual(t, len(png), docsScreenshotMax, "docs screenshot too big")
		require.NoError(t, os.WriteFile(filepath.Join("..", "..", "docs", "screenshot.png"), png, 0o644))
	}
	// No dialog (the onerror above would have opened one) is checked at cleanup.
}

func TestReloadMidChatResumesAndShowsMissedMessage(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice, bob := matchPair(h)

	alice.typeAndSend("before the reload")
	bob.waitBubble("them", "before the reload")
	bob.typeAndSend("still there?")
	alice.waitBubble("them", "still there?")

	// Alice reloads. Her new page cannot reach the WebSocket until the gate opens,
	// so she is away for as long as the test needs.
	h.gate.hold()
	alice.do(chromedp.Reload())
	h.eventually("the engine to see alice's old connection end", func() bool { return h.engine.Stats().Online == 1 })
	alice.waitVisibleText("#conn", "Connecting")

	const missed = "sent while you were reloading 🔄"
	bob.typeAndSend(missed)
	bob.waitBubble("me", missed)
	h.eventually("the engine to accept bob's message", func() bool { return h.acceptedMessage(missed) })
	alice.screenshot("reloading")

	h.gate.release()
	alice.waitVisibleText("#conn", "Connected")
	alice.waitScreen("chat")
	alice.waitBubble("them", missed)
	// The conversation continues where it was: the earlier messages are still shown,
	// then the one sent during the reload.
	assert.Equal(t, []string{"me: before the reload", "them: still there?", "them: " + missed}, alice.bubbles())
	alice.screenshot("resumed")

	alice.typeAndSend("I'm back")
	bob.waitBubble("them", "I'm back")
	bob.typeAndSend("welcome back")
	alice.waitBubble("them", "welcome back")
	assert.Equal(t, flamingo.Stats{Online: 2, InQueue: 0, InChat: 2}, h.engine.Stats())
}

func TestLeaveShowsEndedScreenToBoth(t *testing.T) {
	// The two meet again below: turn off the matcher's rule against repeats.
	h := newHarness(t, flamingo.Config{RepeatWindow: noRepeatWindow})
	alice, bob := matchPair(h)
	alice.typeAndSend("bye then")
	bob.waitBubble("them", "bye then")

	alice.click("#leave-btn")
	alice.waitVisibleText("#ended-text", "You left the chat.")
	bob.waitVisibleText("#ended-text", "The stranger left the chat.")
	for _, u := range []*user{alice, bob} {
		u.waitVisibleText("#again-btn", "Find someone new")
		u.do(chromedp.WaitNotVisible(chromedp.CSS("#msg-input")))
		u.waitJS("focus on Find someone new", `document.activeElement === document.querySelector("#again-btn")`)
		// The transcript stays readable after the end.
		assert.True(t, u.hasVisibleText("#messages", "bye then"), "%s: transcript kept", u.name)
	}
	alice.screenshot("ended")
	bob.screenshot("ended")

	// Both look again and, being compatible, meet again in a fresh chat.
	bob.click("#again-btn")
	bob.waitScreen("searching")
	alice.click("#again-btn")
	alice.waitScreen("chat")
	bob.waitScreen("chat")
	assert.Empty(t, alice.bubbles(), "a new chat starts empty")

	// "Next" leaves and searches at once; the partner sees the end.
	bob.click("#next-btn")
	bob.waitScreen("searching")
	alice.waitVisibleText("#ended-text", "The stranger left the chat.")
}

func TestIncompatibleChoicesBothKeepSearching(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice := h.newUser("carl", desktop)
	bob := h.newUser("dan", phone)
	// Two men who both want to meet women: neither accepts the other.
	alice.startSearching("male", "female")
	bob.startSearching("male", "female")
	alice.waitScreen("searching")
	bob.waitScreen("searching")

	h.eventually("both to be queued", func() bool { return h.engine.Stats().InQueue == 2 })
	// The page refreshes its counts every few seconds; once it shows both searching,
	// the in-memory matcher (which pairs inside join_queue) has long decided.
	for _, u := range []*user{alice, bob} {
		u.waitJS("the page to count 2 searching", `document.querySelector("#stat-queue").textContent === "2"`)
		u.waitJS("the page to count 2 online", `document.querySelector("#stat-online").textContent === "2"`)
	}
	for _, u := range []*user{alice, bob} {
		assert.True(t, u.hasVisibleText("#searching-title", "Looking for someone"), "%s: still searching", u.name)
		assert.False(t, eval[bool](u, `document.querySelector("#screen-chat").checkVisibility()`), "%s: chat shown", u.name)
		u.screenshot("searching")
	}
	assert.Equal(t, flamingo.Stats{Online: 2, InQueue: 2, InChat: 0}, h.engine.Stats())

	alice.click("#cancel-btn")
	alice.waitScreen("welcome")
	h.eventually("one user to be left in the queue", func() bool { return h.engine.Stats().InQueue == 1 })
	bob.waitJS("the page to count 1 searching", `document.querySelector("#stat-queue").textContent === "1"`)
}

func TestPartnerWhoDoesNotComeBackEndsChat(t *testing.T) {
	h := newHarness(t, flamingo.Config{ResumeGrace: 300 * time.Millisecond})
	alice, bob := matchPair(h)
	alice.closeTab()
	bob.waitVisibleText("#ended-text", "The stranger lost their connection.")
	bob.screenshot("partner-gone")
}

func TestSecondTabTakesTheSessionOver(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	first := h.newUser("erin", desktop)
	second := first.openSecondTab("erin-tab2")

	first.waitScreen("replaced")
	first.waitVisibleText("#conn", "Disconnected")
	first.screenshot("replaced")
	second.waitVisibleText("#conn", "Connected")
	// The replaced tab does not reconnect by itself: the engine keeps one user online.
	// (Its stats come from a fresh request, after the takeover finished.)
	second.waitJS("the page to count 1 online", `document.querySelector("#welcome-online").textContent.startsWith("1 online")`)
	assert.Equal(t, 1, h.engine.Stats().Online)

	// The user can take it back on purpose.
	first.click("#takeover-btn")
	second.waitScreen("replaced")
	first.waitScreen("welcome")
	first.waitVisibleText("#conn", "Connected")
}

// closeTab closes the user's tab, as closing a browser tab would.
func (u *user) closeTab() {
	u.h.t.Helper()
	require.NoError(u.h.t, chromedp.Cancel(u.ctx))
}

// openSecondTab opens the page in another tab of the same browser profile, so it
// shares u's localStorage (and so its user_id).
func (u *user) openSecondTab(name string) *user {
	u.h.t.Helper()
	ctx, cancel := chromedp.NewContext(u.ctx)
	u.h.t.Cleanup(cancel)
	v := &user{h: u.h, name: name, vp: u.vp, ctx: ctx}
	require.NoError(u.h.t, chromedp.Do(ctx), "%s: opening a tab", name)
	require.NoError(u.h.t, chromedp.Listen(ctx, v.observe))
	v.do(chromedp.Navigate(u.h.srv.URL + "/"))
	u.h.t.Cleanup(v.checkClean)
	return v
}
