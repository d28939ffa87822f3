package browser

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flamingochat/flamingo"
)

// Tests of the protocol v2 features of the demo page: interests, Next, block, report,
// typing, acknowledged messages and partner presence.

// noRepeatWindow lets two users who just chatted meet again at once, so that a test
// can tell a block from the matcher's rule against repeats.
const noRepeatWindow = time.Nanosecond

// addInterests types each interest into the start screen's box and presses Enter.
func (u *user) addInterests(interests ...string) {
	u.h.t.Helper()
	for _, s := range interests {
		u.do(chromedp.SendKeys(chromedp.CSS("#interest-input"), s+kb.Enter))
	}
}

// chips returns the interests shown as chips on the start screen.
func (u *user) chips() []string {
	u.h.t.Helper()
	return eval[[]string](u, `[...document.querySelectorAll("#interest-chips .chip span")].map(e => e.textContent)`)
}

// pressEsc presses Escape on the page.
func (u *user) pressEsc() {
	u.h.t.Helper()
	u.do(chromedp.KeyEvent(kb.Escape))
}

// hidden reports whether the element css is not shown.
func (u *user) hidden(css string) bool {
	u.h.t.Helper()
	return eval[bool](u, fmt.Sprintf(`!document.querySelector(%s).checkVisibility()`, jsString(css)))
}

// waitHidden waits until the element css is not shown.
func (u *user) waitHidden(css string) {
	u.h.t.Helper()
	u.waitJS(css+" to be hidden", fmt.Sprintf(`!document.querySelector(%s).checkVisibility()`, jsString(css)))
}

// myStatusJS is a JavaScript expression for the status line of the user's own message with text ("" once it
// shows its time, that is once the server acknowledged it).
func (u *user) myStatusJS(text string) string {
	return fmt.Sprintf(`(() => {
		const li = [...document.querySelectorAll("#messages .msg.me")].find(e => e.querySelector(".bubble").textContent === %s);
		if (!li) return "missing";
		const st = li.querySelector(".msg-status");
		return st && st.checkVisibility() ? st.textContent : "";
	})()`, jsString(text))
}

func TestInterestChipsAndYouBothLike(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice := h.newUser("alice", desktop)
	bob := h.newUser("bob", phone)

	alice.choose("female", "male")
	alice.addInterests("Music", "  films ", "music", "cats")
	assert.Equal(t, []string{"music", "films", "cats"}, alice.chips(), "trimmed, lower-cased, no duplicates")
	alice.click(`#interest-chips button[aria-label="Remove cats"]`)
	assert.Equal(t, []string{"music", "films"}, alice.chips(), "× removes a chip")
	tooLong := strings.Repeat("x", 33)
	alice.addInterests(tooLong)
	alice.waitVisibleText("#interest-hint", "longer than 32 characters")
	assert.Equal(t, []string{"music", "films"}, alice.chips(), "a 33-character interest is refused")
	assert.Equal(t, tooLong, eval[string](alice, `document.querySelector("#interest-input").value`), "the refused text stays to be fixed")
	alice.do(chromedp.SendKeys(chromedp.CSS("#interest-input"), strings.Repeat(kb.Backspace, len(tooLong))))
	alice.screenshot("chips")
	alice.click("#start-btn")
	alice.waitScreen("searching")
	alice.waitVisibleText("#searching-interests", "Interests: music, films")

	bob.choose("male", "female")
	bob.addInterests("FILMS", "chess", "music")
	bob.click("#start-btn")
	for _, u := range []*user{alice, bob} {
		u.waitScreen("chat")
		// Only the shared interests, sorted: never the partner's others.
		u.waitVisibleText("#match-note", "You both like: films, music")
		assert.False(t, u.hasVisibleText("#match-note", "chess"), "%s: the partner's other interests leak", u.name)
		assert.False(t, u.hasVisibleText("#match-note", "cats"), "%s: a removed chip was sent", u.name)
	}
	alice.screenshot("both-like")
	bob.screenshot("both-like")

	// The chips are remembered for the next visit.
	alice.do(chromedp.Reload())
	alice.waitScreen("chat")
	alice.waitVisibleText("#match-note", "You both like: films, music")
}

func TestRelaxedMatchSaysStrangerIsRandom(t *testing.T) {
	h := newHarness(t, flamingo.Config{InterestWait: 300 * time.Millisecond})
	alice := h.newUser("alice", desktop)
	bob := h.newUser("bob", phone)
	alice.choose("female", "male")
	alice.addInterests("knitting")
	alice.click("#start-btn")
	alice.waitScreen("searching")
	bob.choose("male", "female")
	bob.addInterests("skateboarding")
	bob.click("#start-btn")
	for _, u := range []*user{alice, bob} {
		u.waitScreen("chat")
		u.waitVisibleText("#match-note", "No one shared your interests, so this stranger is random")
	}
	bob.screenshot("relaxed")
}

func TestNextButtonAndEscTwice(t *testing.T) {
	h := newHarness(t, flamingo.Config{RepeatWindow: noRepeatWindow})
	alice, bob := matchPair(h)
	alice.typeAndSend("first chat")
	bob.waitBubble("them", "first chat")

	// Next: Bob leaves and searches in one step; Alice sees that he left.
	bob.click("#next-btn")
	bob.waitScreen("searching")
	alice.waitVisibleText("#ended-text", "The stranger left the chat.")
	h.eventually("bob to be queued", func() bool { return h.engine.Stats().InQueue == 1 })

	// Esc twice on the ended screen: Alice searches again and meets Bob in a new chat.
	alice.pressEsc()
	alice.waitVisibleText("#toast", "Press Esc again")
	alice.pressEsc()
	for _, u := range []*user{alice, bob} {
		u.waitScreen("chat")
		u.waitVisibleText("#chat-sub", "say hi")
		assert.Empty(t, u.bubbles(), "%s: a new chat starts empty", u.name)
	}

	// One Esc alone does nothing but say what a second would do.
	bob.pressEsc()
	bob.waitVisibleText("#toast", "Press Esc again")
	assert.True(t, eval[bool](bob, `document.querySelector("#screen-chat").checkVisibility() && !document.querySelector("#composer").hidden`),
		"one Esc left the chat")
	bob.pressEsc()
	bob.waitScreen("searching")
	alice.waitVisibleText("#ended-text", "The stranger left the chat.")
	bob.screenshot("after-esc-twice")
}

func TestBlockViaMenu(t *testing.T) {
	// Without the rule against repeats, only the block keeps the two apart.
	h := newHarness(t, flamingo.Config{RepeatWindow: noRepeatWindow})
	alice, bob := matchPair(h)
	bob.typeAndSend("something rude")
	alice.waitBubble("them", "something rude")

	alice.click("#more-btn")
	alice.waitVisibleText("#more-menu", "Block stranger")
	alice.screenshot("menu")
	alice.click("#block-btn")
	alice.waitVisibleText("#ended-text", "You blocked this stranger")
	bob.waitVisibleText("#ended-text", "The stranger left the chat.")
	alice.waitHidden("#more") // once per chat

	// Both search again: they are compatible but never paired again.
	alice.click("#again-btn")
	bob.click("#again-btn")
	for _, u := range []*user{alice, bob} {
		u.waitScreen("searching")
	}
	h.eventually("both to be queued", func() bool { return h.engine.Stats().InQueue == 2 })
	for _, u := range []*user{alice, bob} {
		u.waitJS("the page to count 2 searching", `document.querySelector("#stat-queue").textContent === "2"`)
		assert.True(t, u.hasVisibleText("#searching-title", "Looking for someone"), "%s: still searching", u.name)
	}

	// Someone else is paired with Bob at once: the block is about Alice only.
	carol := h.newUser("carol", desktop)
	carol.startSearching("female", "male")
	carol.waitScreen("chat")
	bob.waitScreen("chat")
	assert.True(t, alice.hasVisibleText("#searching-title", "Looking for someone"), "alice: still searching")
}

func TestReportViaMenuAfterTheChatEnded(t *testing.T) {
	var (
		mu      sync.Mutex
		reports []flamingo.Report
	)
	h := newHarness(t, flamingo.Config{OnReport: func(r flamingo.Report) {
		mu.Lock()
		reports = append(reports, r)
		mu.Unlock()
	}})
	alice, bob := matchPair(h)
	const spam = "buy followers cheap at example.test"
	alice.typeAndSend("hi")
	bob.waitBubble("them", "hi")
	bob.typeAndSend(spam)
	alice.waitBubble("them", spam)
	bob.click("#leave-btn")
	alice.waitVisibleText("#ended-text", "The stranger left the chat.")

	// The chat has ended; it can still be reported for a few minutes.
	alice.click("#more-btn")
	alice.click("#report-btn")
	alice.do(chromedp.WaitVisible(chromedp.CSS("#report-dialog")))
	alice.click("#report-send")
	alice.waitVisibleText("#report-error", "Choose a reason.")
	alice.click(`#report-dialog input[name="reason"][value="spam"]`)
	alice.do(chromedp.SendKeys(chromedp.CSS("#report-details"), "links to a shop"))
	alice.screenshot("report")
	alice.click("#report-send")
	alice.waitVisibleText("#ended-text", "Thanks for your report")
	alice.waitHidden("#report-dialog")
	alice.waitHidden("#more")

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, reports, 1, "OnReport calls")
	r := reports[0]
	assert.Equal(t, flamingo.ReportSpam, r.Reason)
	assert.Equal(t, "links to a shop", r.Details)
	assert.NotEmpty(t, r.Reporter)
	assert.NotEmpty(t, r.Reported)
	assert.NotEqual(t, r.Reporter, r.Reported)
	var contents []string
	for _, m := range r.Messages {
		contents = append(contents, m.Content)
	}
	assert.Equal(t, []string{"hi", spam}, contents, "the chat's last messages go with the report")
}

func TestTypingIndicatorOnAndOff(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice, bob := matchPair(h)
	for _, u := range []*user{alice, bob} {
		// Neither gave interests: there is nothing to say about them.
		assert.True(t, u.hidden("#match-note"), "%s: a note without interests", u.name)
	}
	assert.True(t, alice.hidden("#typing"))

	bob.do(chromedp.SendKeys(chromedp.CSS("#msg-input"), "hel"))
	alice.waitVisibleText("#typing", "Stranger is typing…")
	alice.screenshot("typing")

	// Emptying the box turns it off.
	bob.do(chromedp.SendKeys(chromedp.CSS("#msg-input"), kb.Backspace+kb.Backspace+kb.Backspace))
	alice.waitHidden("#typing")

	// Typing again turns it on; sending the message turns it off.
	bob.do(chromedp.SendKeys(chromedp.CSS("#msg-input"), "hello"))
	alice.waitVisibleText("#typing", "Stranger is typing…")
	bob.do(chromedp.SendKeys(chromedp.CSS("#msg-input"), kb.Enter))
	alice.waitBubble("them", "hello")
	alice.waitHidden("#typing")
	assert.True(t, bob.hidden("#typing"), "bob sees his own typing")
}

func TestMessageShowsSendingUntilAcknowledged(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice, bob := matchPair(h)

	// The engine holds the message in its OnMessage hook: no delivery, no ack yet.
	h.msgGate.hold()
	alice.typeAndSend("wait for it")
	alice.waitBubble("me", "wait for it")
	alice.waitJS("the message to show sending…", alice.myStatusJS("wait for it")+` === "sending…"`)
	h.eventually("the message to reach the engine", func() bool { return h.arrivedMessage("wait for it") })
	alice.screenshot("sending")
	assert.Empty(t, bob.bubbles(), "delivered before the engine accepted it")

	h.msgGate.release()
	bob.waitBubble("them", "wait for it")
	alice.waitJS("the message to show as sent", alice.myStatusJS("wait for it")+` === ""`)
	alice.waitJS("the message to show its time", `document.querySelector("#messages .msg.me time") !== null`)
}

func TestPendingMessageIsSentAgainAfterReloadOnce(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice, bob := matchPair(h)

	const text = "sent just before the reload"
	h.msgGate.hold()
	alice.typeAndSend(text)
	h.eventually("the message to reach the engine", func() bool { return h.arrivedMessage(text) })

	// Alice reloads before the acknowledgement comes; her new page stays offline.
	h.gate.hold()
	alice.do(chromedp.Reload())
	alice.waitScreen("chat")
	alice.waitJS("the pending message to show sending… after the reload", alice.myStatusJS(text)+` === "sending…"`)
	// The engine now delivers the first copy; its acknowledgement goes nowhere.
	h.msgGate.release()
	bob.waitBubble("them", text)
	h.eventually("the engine to see alice's old connection end", func() bool { return h.engine.Stats().Online == 1 })

	// Alice comes back: her page sends the message again with the same
	// client_msg_id; the engine acknowledges it without delivering it twice.
	h.gate.release()
	alice.waitVisibleText("#conn", "Connected")
	alice.waitJS("the message to show as sent", alice.myStatusJS(text)+` === ""`)
	alice.typeAndSend("and one more")
	bob.waitBubble("them", "and one more")
	assert.Equal(t, []string{"them: " + text, "them: and one more"}, bob.bubbles())
	assert.Equal(t, 1, h.acceptedCount(text), "the engine accepted the message twice")
	assert.Equal(t, []string{"me: " + text, "me: and one more"}, alice.bubbles())
}

func TestPartnerAwayAndBack(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice, bob := matchPair(h)

	h.gate.hold()
	bob.do(chromedp.Reload())
	alice.waitVisibleText("#presence", "Stranger's connection dropped, waiting up to 30 s…")
	alice.screenshot("partner-away")

	h.gate.release()
	bob.waitVisibleText("#conn", "Connected")
	alice.waitHidden("#presence")
	bob.typeAndSend("back again")
	alice.waitBubble("them", "back again")
}

func TestRefusedNextKeepsTheLiveChat(t *testing.T) {
	// One join per connection and no refill: the join that found Bob's chat used it,
	// so his next is refused with rate_limited while the chat is live.
	h := newHarness(t, flamingo.Config{JoinRate: flamingo.RateLimit{Rate: 0.0001, Burst: 1}})
	alice, bob := matchPair(h)
	alice.typeAndSend("still there?")
	bob.waitBubble("them", "still there?")

	bob.click("#next-btn")
	bob.waitVisibleText("#toast", "wait a moment before the next stranger")
	assert.True(t, eval[bool](bob, `document.querySelector("#screen-chat").checkVisibility() && !document.querySelector("#composer").hidden`),
		"bob: the live chat left the screen")
	assert.Equal(t, []string{"them: still there?"}, bob.bubbles(), "bob: the transcript of the live chat")

	// The chat goes on both ways.
	bob.typeAndSend("yes")
	alice.waitBubble("them", "yes")
	assert.True(t, eval[bool](alice, `!document.querySelector("#composer").hidden`), "alice: the chat ended")
}

func TestBlockAfterReloadIntoAChatThatEndedMeanwhile(t *testing.T) {
	h := newHarness(t, flamingo.Config{})
	alice, bob := matchPair(h)
	bob.typeAndSend("something rude")
	alice.waitBubble("them", "something rude")

	// Alice reloads and stays offline while Bob leaves: the chat's end is held for her.
	h.gate.hold()
	alice.do(chromedp.Reload())
	alice.waitScreen("chat")
	h.eventually("the engine to see alice's old connection end", func() bool { return h.engine.Stats().Online == 1 })
	bob.click("#leave-btn")
	bob.waitVisibleText("#ended-text", "You left the chat.")

	// Back online: ready has no chat_id, the replayed chat_ended ends the chat she
	// shows, and it can still be blocked.
	h.gate.release()
	alice.waitVisibleText("#ended-text", "The stranger left the chat.")
	alice.click("#more-btn")
	alice.click("#block-btn")
	alice.waitVisibleText("#ended-text", "You blocked this stranger")
}
