// app.js: the flamingo demo page. All protocol work is in flamingo.js; this file
// turns its events into screens. Text from strangers is only ever set with
// textContent, never parsed as HTML.

import { FlamingoClient, Limits, normalizeInterest } from "./flamingo.js";

const $ = (id) => document.getElementById(id);

const el = {
  app: $("app"),
  conn: $("conn"),
  connText: $("conn-text"),
  screens: {
    welcome: $("screen-welcome"),
    searching: $("screen-searching"),
    chat: $("screen-chat"),
    replaced: $("screen-replaced"),
  },
  welcomeTitle: $("welcome-title"),
  startForm: $("start-form"),
  chipsBox: $("chips-box"),
  chips: $("interest-chips"),
  interestInput: $("interest-input"),
  interestHint: $("interest-hint"),
  modeChoice: $("mode-choice"),
  notice: $("notice"),
  searchingInterests: $("searching-interests"),
  matchNote: $("match-note"),
  videoArea: $("video-area"),
  typing: $("typing"),
  presence: $("presence"),
  more: $("more"),
  moreBtn: $("more-btn"),
  moreMenu: $("more-menu"),
  blockBtn: $("block-btn"),
  reportBtn: $("report-btn"),
  reportDialog: $("report-dialog"),
  reportForm: $("report-form"),
  reportDetails: $("report-details"),
  reportError: $("report-error"),
  reportCancel: $("report-cancel"),
  reportSend: $("report-send"),
  startBtn: $("start-btn"),
  formError: $("form-error"),
  welcomeOnline: $("welcome-online"),
  searchingDesc: $("searching-desc"),
  searchingWait: $("searching-wait"),
  statOnline: $("stat-online"),
  statQueue: $("stat-queue"),
  statChat: $("stat-chat"),
  cancelBtn: $("cancel-btn"),
  chatBadge: $("chat-badge"),
  chatSub: $("chat-sub"),
  chatActions: $("chat-actions"),
  leaveBtn: $("leave-btn"),
  nextBtn: $("next-btn"),
  messages: $("messages"),
  composer: $("composer"),
  input: $("msg-input"),
  sendBtn: $("send-btn"),
  ended: $("ended"),
  endedText: $("ended-text"),
  againBtn: $("again-btn"),
  changeBtn: $("change-btn"),
  replacedTitle: $("replaced-title"),
  takeoverBtn: $("takeover-btn"),
  toast: $("toast"),
  announcer: $("announcer"),
};

const SELF_LABEL = { female: "You're a woman", male: "You're a man", other: "You chose Other" };
const PREF_LABEL = { any: "anyone", female: "women", male: "men", other: "people who chose Other" };
const PARTNER_BADGE = { female: "Woman", male: "Man", other: "Other" };
const PARTNER_SPOKEN = { female: "a woman", male: "a man", other: "a stranger" };
const ENDED_TEXT = {
  left: "You left the chat.",
  partner_left: "The stranger left the chat.",
  partner_disconnected: "The stranger lost their connection.",
  server_restart: "The server is restarting. Find someone new in a moment.",
  lost: "This chat expired while you were away.",
  blocked: "You blocked this stranger. You won't be matched with them again.",
  reported: "Thanks for your report. You won't be matched with this stranger again.",
};
const INTEREST_HINT = "We look for someone who shares one first, then anyone after a few seconds.";
const RELAXED_NOTE = "No one shared your interests, so this stranger is random.";
const STATUS_TEXT = { sending: "sending…", failed: "not sent", unconfirmed: "may not have been delivered" };
const ERROR_TEXT = {
  rate_limited: "Slow down a little: that message was not sent.",
  message_too_long: "That message is too long to send.",
  empty_message: "Type something first.",
  not_in_chat: "This chat has already ended.",
  message_rejected: "That message was not allowed.",
  internal: "Something went wrong on the server. Please try again.",
  not_connected: "You are offline. Wait a moment and try again.",
  join_refused: "You can't join right now.",
};
// What a refused next says (the chat, if live, goes on).
const NEXT_ERROR_TEXT = {
  rate_limited: "Slow down a little: wait a moment before the next stranger.",
};

// sessionStorage survives a reload of this tab (not a new tab): the transcript and
// "was searching" live there, so a reload picks up where the user was.
const TRANSCRIPT_KEY = "flamingo.transcript";
const SEARCHING_KEY = "flamingo.searching";
// localStorage keeps the last choices, for convenience.
const CHOICE_KEY = "flamingo.choice";

const local = safeStorage(() => localStorage);
const session = safeStorage(() => sessionStorage);
const client = new FlamingoClient("ws", { storage: local });

const ui = {
  screen: "welcome",
  // {gender, preference, interests: [], mode: "text"|"video"}
  choice: loadJSON(local, CHOICE_KEY),
  interests: [], // the chips on the start screen
  video: false, // FlamingoVideo has started
  // {chat_id, partner: {gender}|null, note: string, ended: reason|null,
  //  moderated: "blocked"|"reported"|undefined,
  //  items: [{who, text, at, id?, cid?, status?}]}
  transcript: null,
  moderating: false, // a block or report is on its way: its chat_ended is not the end
  lastEsc: 0, // when Escape was last pressed in a chat, for Esc twice
  skipping: null, // chat_id of the live chat a next is ending, until it ends or next fails
  restoring: false, // showing a chat from before a reload that the server has not confirmed
  statsTimer: 0,
  waitTimer: 0,
  reconnectTimer: 0,
  unread: 0,
};

// ---------- screens ----------

function show(screen, focusTarget) {
  ui.screen = screen;
  el.app.dataset.screen = screen;
  for (const [name, node] of Object.entries(el.screens)) node.hidden = name !== screen;
  if (screen !== "searching") stopWaitClock();
  if (focusTarget) requestAnimationFrame(() => focusTarget.focus({ preventScroll: true }));
  updateControls();
  pollStats();
}

function showWelcome(focus = true) {
  restoreChoice();
  stopVideo();
  show("welcome", focus ? el.welcomeTitle : null);
}

function showSearching() {
  const c = ui.choice;
  el.searchingDesc.textContent = c ? `${SELF_LABEL[c.gender]}, looking to meet ${PREF_LABEL[c.preference]}.` : "";
  const interests = c?.interests || [];
  el.searchingInterests.textContent = interests.length ? `Interests: ${interests.join(", ")}` : "";
  el.searchingInterests.hidden = interests.length === 0;
  startWaitClock();
  show("searching", el.cancelBtn);
  announce("Looking for someone to chat with.");
}

function showChat(focus = true) {
  closeMenu();
  el.ended.hidden = true;
  el.composer.hidden = false;
  el.chatActions.hidden = false;
  renderChatHead();
  show("chat", focus ? el.input : null);
}

function showEnded(reason, focus = true) {
  closeMenu();
  setTypingShown(false);
  setPresence(null);
  el.composer.hidden = true;
  el.chatActions.hidden = true;
  el.ended.hidden = false;
  el.endedText.textContent = ENDED_TEXT[reason] || "The chat has ended.";
  renderChatHead();
  show("chat", focus ? el.againBtn : null);
}

function renderChatHead() {
  const t = ui.transcript;
  const g = t?.partner?.gender;
  el.chatBadge.textContent = PARTNER_BADGE[g] || "";
  el.chatBadge.hidden = !g;
  let status = "Anonymous chat · say hi!";
  if (t?.ended) status = "Chat ended";
  else if (client.connection === "closed") status = "Disconnected";
  else if (client.connection !== "open") status = "Reconnecting… your chat is kept";
  el.chatSub.textContent = status;
  const note = t?.note || "";
  el.matchNote.textContent = note;
  el.matchNote.hidden = note === "";
  // Block and report work on the live chat and on one that ended at most five
  // minutes ago, once per chat.
  const id = t?.chat_id;
  el.more.hidden = !id || !!t.moderated || (id !== client.chatId && id !== client.lastChatId && !ui.restoring);
  if (el.more.hidden) closeMenu();
}

// matchNote says what the partner and the user have in common.
function matchNote(p) {
  if (p.common_interests?.length) return `You both like: ${p.common_interests.join(", ")}`;
  if (p.relaxed) return RELAXED_NOTE;
  return "";
}

function setTypingShown(on) {
  el.typing.hidden = !on;
}

function setPresence(text) {
  el.presence.textContent = text || "";
  el.presence.hidden = !text;
}

// ---------- transcript ----------

function resetTranscript(chatId, partner, note = "") {
  ui.transcript = { chat_id: chatId, partner: partner || null, note, ended: null, items: [] };
  setTypingShown(false);
  setPresence(null);
  el.messages.replaceChildren();
  addSystem("You're now chatting with a random stranger. Say hi!");
}

function renderTranscript() {
  el.messages.replaceChildren(...ui.transcript.items.map(renderItem));
  el.messages.scrollTop = el.messages.scrollHeight;
}

function clearTranscript() {
  ui.transcript = null;
  ui.restoring = false;
  session.removeItem(TRANSCRIPT_KEY);
  el.messages.replaceChildren();
}

function saveTranscript() {
  if (ui.transcript) setJSON(session, TRANSCRIPT_KEY, ui.transcript);
}

function addItem(item) {
  const t = ui.transcript;
  if (!t) return;
  if (item.id && t.items.some((i) => i.id === item.id)) return; // a replay we already show
  t.items.push(item);
  saveTranscript();
  const m = el.messages;
  const nearEnd = m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  m.append(renderItem(item));
  if (nearEnd || item.who === "me") m.scrollTop = m.scrollHeight;
}

function addSystem(text) {
  addItem({ who: "system", text, at: new Date().toISOString() });
}

function renderItem(item) {
  const li = document.createElement("li");
  li.className = `msg ${item.who}`;
  if (item.cid) li.dataset.cid = item.cid;
  if (item.who === "system") {
    li.textContent = item.text;
    return li;
  }
  const who = document.createElement("span");
  who.className = "sr-only";
  who.textContent = item.who === "me" ? "You said: " : "Stranger said: ";
  const bubble = document.createElement("p");
  bubble.className = "bubble";
  bubble.textContent = item.text; // strangers' text is data, never markup
  if (item.status && item.status !== "sent") {
    // Not acknowledged by the server (yet).
    const st = document.createElement("span");
    st.className = `msg-status ${item.status}`;
    st.textContent = STATUS_TEXT[item.status] || "";
    li.dataset.status = item.status;
    li.append(who, bubble, st);
    return li;
  }
  const time = document.createElement("time");
  time.dateTime = item.at;
  time.textContent = new Date(item.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  li.append(who, bubble, time);
  return li;
}

// setStatus moves one of the user's messages to a new status, on screen and in the
// saved transcript.
function setStatus(cid, status, at) {
  const item = ui.transcript?.items.find((i) => i.cid === cid);
  if (!item || item.status === status) return;
  item.status = status;
  if (at) item.at = at;
  saveTranscript();
  const li = [...el.messages.children].find((n) => n.dataset.cid === cid);
  if (li) li.replaceWith(renderItem(item));
}

function endChat(reason) {
  ui.restoring = false;
  ui.moderating = false;
  if (ui.transcript) {
    ui.transcript.ended = reason;
    saveTranscript();
  }
  showEnded(reason);
  announce(ENDED_TEXT[reason] || "The chat has ended.");
}

// ---------- user actions ----------

async function startSearch(choice) {
  ui.choice = choice;
  setJSON(local, CHOICE_KEY, choice);
  session.setItem(SEARCHING_KEY, "1");
  if (ui.screen !== "searching") showSearching();
  if (choice.mode === "video") await startVideo();
  if (ui.screen !== "searching" || session.getItem(SEARCHING_KEY) !== "1") return; // cancelled meanwhile
  try {
    await client.joinQueue(choice);
  } catch (err) {
    if (err.code === "already_in_queue") return;
    session.removeItem(SEARCHING_KEY);
    if (client.state === "chatting") return;
    toast(ERROR_TEXT[err.code] || "Could not start searching. Please try again.");
    showWelcome();
  }
}

el.startForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const data = new FormData(el.startForm);
  const gender = data.get("gender");
  if (!gender) {
    el.formError.textContent = "Choose what you are first.";
    el.formError.hidden = false;
    el.startForm.querySelector('input[name="gender"]').focus();
    return;
  }
  if (!addInterest(el.interestInput.value)) {
    el.interestInput.focus();
    return;
  }
  el.interestInput.value = "";
  el.formError.hidden = true;
  hideNotice();
  clearTranscript();
  const mode = window.FlamingoVideo && data.get("mode") === "video" ? "video" : "text";
  startSearch({ gender, preference: data.get("preference") || "any", interests: [...ui.interests], mode });
});

// ---------- interests as chips ----------

// addInterest adds what the user typed (one interest, or several separated by
// commas) as chips. It returns false, with a hint saying why, if one is refused.
function addInterest(text) {
  for (const part of String(text).split(",")) {
    const s = normalizeInterest(part);
    if (s === "" || ui.interests.includes(s)) continue;
    if ([...s].length > Limits.interestChars) {
      interestHint(`"${[...s].slice(0, 12).join("")}…" is longer than ${Limits.interestChars} characters.`, true);
      return false;
    }
    if (/[\u0000-\u001f\u007f-\u009f]/.test(s)) {
      interestHint("Interests cannot contain control characters.", true);
      return false;
    }
    if (ui.interests.length >= Limits.interests) {
      interestHint(`Up to ${Limits.interests} interests.`, true);
      return false;
    }
    ui.interests.push(s);
  }
  interestHint(INTEREST_HINT, false);
  renderChips();
  return true;
}

function removeInterest(s) {
  ui.interests = ui.interests.filter((i) => i !== s);
  interestHint(INTEREST_HINT, false);
  renderChips();
  el.interestInput.focus();
}

function renderChips() {
  el.chips.replaceChildren(...ui.interests.map((s) => {
    const li = document.createElement("li");
    li.className = "chip";
    const name = document.createElement("span");
    name.textContent = s;
    const x = document.createElement("button");
    x.type = "button";
    x.className = "chip-x";
    x.setAttribute("aria-label", `Remove ${s}`);
    x.textContent = "×";
    x.addEventListener("click", () => removeInterest(s));
    li.append(name, x);
    return li;
  }));
  el.chips.hidden = ui.interests.length === 0;
}

function interestHint(text, bad) {
  el.interestHint.textContent = text;
  el.interestHint.classList.toggle("bad", bad);
}

el.interestInput.addEventListener("keydown", (ev) => {
  if ((ev.key === "Enter" || ev.key === ",") && !ev.isComposing) {
    ev.preventDefault(); // Enter here adds a chip; it does not start the search
    if (addInterest(el.interestInput.value)) el.interestInput.value = "";
  } else if (ev.key === "Backspace" && el.interestInput.value === "" && ui.interests.length > 0) {
    removeInterest(ui.interests[ui.interests.length - 1]);
  }
});
// A keypress Enter is what submits a form implicitly. Browsers skip it when keydown
// was prevented, but synthetic key events (automation, some IMEs) send it anyway.
el.interestInput.addEventListener("keypress", (ev) => {
  if (ev.key === "Enter") ev.preventDefault();
});
el.chipsBox.addEventListener("click", (ev) => {
  if (ev.target === el.chipsBox) el.interestInput.focus();
});

// ---------- video (video.js, when present, defines window.FlamingoVideo) ----------

async function startVideo() {
  if (ui.video || !window.FlamingoVideo) return ui.video;
  try {
    await window.FlamingoVideo.start(client, el.videoArea);
    ui.video = true;
    el.videoArea.hidden = false;
  } catch (err) {
    showNotice(`${err?.message || "Video could not start."} Continuing with text chat.`);
  }
  return ui.video;
}

function stopVideo() {
  if (!ui.video) return;
  ui.video = false;
  el.videoArea.hidden = true;
  try {
    window.FlamingoVideo.stop();
  } catch {
    // nothing left to stop
  }
}

function showNotice(text) {
  el.notice.textContent = text;
  el.notice.hidden = false;
}

function hideNotice() {
  el.notice.hidden = true;
}

el.startForm.addEventListener("change", () => {
  el.formError.hidden = true;
});

el.cancelBtn.addEventListener("click", async () => {
  session.removeItem(SEARCHING_KEY);
  try {
    await client.leaveQueue();
  } catch {
    // already out of the queue (or offline): the welcome screen is right either way
  }
  if (client.state !== "chatting") showWelcome();
});

el.composer.addEventListener("submit", (ev) => {
  ev.preventDefault();
  sendCurrent();
});

// Enter sends, Shift+Enter makes a new line. Phone keyboards often send no usable
// keydown for Enter, only a line-break input, so that is caught as well.
let newlineWanted = false;
el.input.addEventListener("keydown", (ev) => {
  newlineWanted = ev.key === "Enter" && ev.shiftKey;
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    sendCurrent();
  }
});
el.input.addEventListener("beforeinput", (ev) => {
  if ((ev.inputType === "insertLineBreak" || ev.inputType === "insertParagraph") && !newlineWanted) {
    ev.preventDefault();
    sendCurrent();
  }
});
el.input.addEventListener("input", () => {
  autoGrow();
  // true at most every few seconds while typing, false once the box is empty.
  if (client.state === "chatting") client.setTyping(el.input.value.trim() !== "");
});

function sendCurrent() {
  const text = el.input.value;
  if (text.trim() === "") return;
  let sent;
  try {
    sent = client.sendMessage(text);
  } catch (err) {
    toast(ERROR_TEXT[err.code] || err.message);
    return;
  }
  // Shown at once as "sending…" until the server acknowledges it.
  addItem({ who: "me", text: sent.content, at: sent.sent_at, cid: sent.client_msg_id, status: "sending" });
  el.input.value = "";
  autoGrow();
  el.input.focus();
}

function autoGrow() {
  el.input.style.height = "auto";
  el.input.style.height = `${Math.min(el.input.scrollHeight, 140)}px`;
}

el.leaveBtn.addEventListener("click", leave);
el.nextBtn.addEventListener("click", next);

async function leave() {
  try {
    await client.leaveChat();
  } catch (err) {
    if (err.code === "not_in_chat") return; // it had ended already; its chat_ended shows
    toast(ERROR_TEXT[err.code] || "Could not leave the chat. Please try again.");
  }
}

// next ends the chat (if it is live) and searches again with the same choices, in
// one step on the server. A live chat stays on screen until it has ended (its
// chat_ended, which comes before queue_joined): the server may refuse next
// (rate_limited, or internal while it drains), and then the chat goes on.
async function next() {
  if (client.connection !== "open") {
    toast(ERROR_TEXT.not_connected);
    return;
  }
  if (client.state === "searching" || ui.skipping) return;
  const live = client.state === "chatting" ? client.chatId : null;
  if (live) {
    ui.skipping = live; // chat_ended for it switches to the searching screen
  } else {
    clearTranscript(); // an ended chat: nothing of it is needed any more
    session.setItem(SEARCHING_KEY, "1");
    showSearching();
  }
  try {
    await client.next();
  } catch (err) {
    if (err.code === "already_in_queue") return;
    if (err.code === "not_in_chat" && ui.choice && client.state !== "chatting") {
      startSearch(ui.choice); // this identity never joined (a new one after a long absence)
      return;
    }
    session.removeItem(SEARCHING_KEY);
    const text = NEXT_ERROR_TEXT[err.code] || ERROR_TEXT[err.code] || "Could not start searching. Please try again.";
    if (client.state === "chatting") {
      // Refused, and the chat is still live: it stays on screen as it was.
      if (ui.screen !== "chat") showChat();
      toast(text);
      return;
    }
    toast(text);
    showWelcome();
  } finally {
    ui.skipping = null;
  }
}

// Esc twice within a second in a chat (live or ended) does Next. The first press
// says so; Esc that closes the menu or the report dialog does not count.
const ESC_TWICE_MS = 1000;
document.addEventListener("keydown", (ev) => {
  if (ev.key !== "Escape" || ev.repeat || ev.defaultPrevented) return;
  if (ui.screen !== "chat" || el.reportDialog.open || !el.moreMenu.hidden) return;
  const now = performance.now();
  if (ui.lastEsc && now - ui.lastEsc <= ESC_TWICE_MS) {
    ui.lastEsc = 0;
    next();
    return;
  }
  ui.lastEsc = now;
  toast("Press Esc again for the next stranger.");
});

el.againBtn.addEventListener("click", () => {
  clearTranscript();
  if (ui.choice) startSearch(ui.choice);
  else showWelcome();
});

// ---------- block and report (the ⋯ menu) ----------

function openMenu() {
  el.moreMenu.hidden = false;
  el.moreBtn.setAttribute("aria-expanded", "true");
  el.blockBtn.focus();
}

function closeMenu(focusButton = false) {
  if (el.moreMenu.hidden) return;
  el.moreMenu.hidden = true;
  el.moreBtn.setAttribute("aria-expanded", "false");
  if (focusButton) el.moreBtn.focus();
}

el.moreBtn.addEventListener("click", () => (el.moreMenu.hidden ? openMenu() : closeMenu()));
el.moreMenu.addEventListener("keydown", (ev) => {
  const items = [...el.moreMenu.querySelectorAll('[role="menuitem"]')];
  const i = items.indexOf(document.activeElement);
  if (ev.key === "Escape") {
    ev.preventDefault();
    closeMenu(true);
  } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    items[(i + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
  } else if (ev.key === "Tab") {
    closeMenu();
  }
});
document.addEventListener("click", (ev) => {
  if (!el.more.contains(ev.target)) closeMenu();
});

el.blockBtn.addEventListener("click", async () => {
  closeMenu();
  const id = ui.transcript?.chat_id;
  if (!id) return;
  ui.moderating = true;
  try {
    await client.block(id);
  } catch (err) {
    ui.moderating = false;
    toast(ERROR_TEXT[err.code] || "Could not block. Please try again.");
    return;
  }
  moderated("blocked");
});

el.reportBtn.addEventListener("click", () => {
  closeMenu();
  el.reportForm.reset();
  el.reportError.hidden = true;
  el.reportSend.disabled = false;
  el.reportDialog.showModal();
  el.reportForm.querySelector('input[name="reason"]').focus();
});

el.reportCancel.addEventListener("click", () => el.reportDialog.close());
el.reportForm.addEventListener("change", () => {
  el.reportError.hidden = true;
});

el.reportForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const reason = new FormData(el.reportForm).get("reason");
  if (!reason) {
    el.reportError.textContent = "Choose a reason.";
    el.reportError.hidden = false;
    return;
  }
  const id = ui.transcript?.chat_id;
  ui.moderating = true;
  el.reportSend.disabled = true;
  try {
    await client.report(id, reason, el.reportDetails.value);
  } catch (err) {
    ui.moderating = false;
    el.reportSend.disabled = false;
    el.reportError.textContent = err.code === "not_in_chat"
      ? "This chat is too old to report."
      : ERROR_TEXT[err.code] || "Could not send the report. Please try again.";
    el.reportError.hidden = false;
    return;
  }
  el.reportDialog.close();
  moderated("reported");
});

// moderated shows the chat as ended by a block or a report.
function moderated(kind) {
  if (!ui.transcript) return;
  ui.transcript.moderated = kind;
  endChat(kind);
}

el.changeBtn.addEventListener("click", () => {
  clearTranscript();
  showWelcome();
});

el.takeoverBtn.addEventListener("click", () => {
  client.connect().catch(() => {});
});

// ---------- client events ----------

client.on("connection", (c) => {
  clearInterval(ui.reconnectTimer);
  el.conn.dataset.status = c.status;
  if (c.status === "reconnecting") {
    const tick = () => {
      const s = Math.ceil((client.reconnectAt - Date.now()) / 1000);
      el.connText.textContent = s > 0 ? `Reconnecting in ${s}s…` : "Reconnecting…";
    };
    tick();
    ui.reconnectTimer = setInterval(tick, 500);
  } else {
    el.connText.textContent = { connecting: "Connecting…", open: "Connected", closed: "Disconnected" }[c.status] || "";
  }
  if (c.status === "closed" && c.code !== 4001 && c.code !== 1000) {
    toast("Disconnected from the server. Reload the page to try again.");
  }
  if (ui.screen === "chat") renderChatHead();
  updateControls();
});

client.on("replaced", () => show("replaced", el.replacedTitle));

client.on("ready", (p) => {
  pollStats(); // fresh counts at once, not at the next tick
  if (p.chat_id) {
    // In a live chat: after a reload, a network drop, or a match made while away.
    ui.restoring = false;
    if (ui.transcript?.chat_id !== p.chat_id) resetTranscript(p.chat_id, null);
    showChat(ui.screen !== "chat");
    return;
  }
  if (client.state === "chatting") return; // flamingo.js sorts out the chat it knew
  if (ui.restoring) {
    // Reloaded during a chat that has ended since. A replayed chat_ended says why;
    // the stats reply comes after every replayed event, so by then we know.
    client.getStats().finally(() => {
      if (ui.restoring) endChat("lost");
    });
    return;
  }
  if (client.state === "searching") return; // flamingo.js joins the queue again
  if (session.getItem(SEARCHING_KEY) === "1" && ui.choice) {
    startSearch(ui.choice); // reloaded while searching
    return;
  }
  if (ui.screen === "replaced" || ui.screen === "searching") showWelcome();
});

client.on("state", ({ state, previous }) => {
  if (state === "searching" && ui.screen !== "searching") showSearching();
  if (state === "idle" && previous === "searching" && ui.screen === "searching" && session.getItem(SEARCHING_KEY) !== "1") {
    showWelcome();
  }
});

client.on("match_found", (p) => {
  session.removeItem(SEARCHING_KEY);
  ui.restoring = false;
  if (ui.transcript?.chat_id === p.chat_id) {
    // A replay of the match we already show: it tells us who the partner is.
    ui.transcript.partner = p.partner;
    ui.transcript.note = matchNote(p);
    saveTranscript();
    renderChatHead();
    return;
  }
  resetTranscript(p.chat_id, p.partner, matchNote(p));
  showChat();
  announce(`You're now chatting with ${PARTNER_SPOKEN[p.partner?.gender] || "a stranger"}. Say hi!`);
  notify("New chat");
});

client.on("message_received", (m) => {
  if (ui.transcript?.chat_id !== m.chat_id) {
    if (client.chatId !== m.chat_id) return; // from a chat we no longer show
    resetTranscript(m.chat_id, null);
    showChat();
  }
  addItem({ who: "them", text: m.content, at: m.sent_at, id: m.message_id });
  setTypingShown(false);
  notify("New message");
});

client.on("chat_ended", (p) => {
  if (ui.skipping === p.chat_id) {
    // Our next ended it: its queue_joined follows. The transcript goes only now.
    ui.skipping = null;
    clearTranscript();
    session.setItem(SEARCHING_KEY, "1");
    showSearching();
    return;
  }
  if (ui.transcript?.chat_id !== p.chat_id) return; // a chat we no longer show
  if (ui.moderating && p.reason === "left") {
    // Ended by our block or report: its reply says so in a moment.
    showEnded("left", false);
    return;
  }
  endChat(p.reason);
});

client.on("message_status", (s) => {
  if (ui.transcript?.chat_id !== s.chat_id) return;
  setStatus(s.client_msg_id, s.status, s.sent_at);
});

client.on("partner_typing", (p) => {
  setTypingShown(p.typing && p.chat_id === ui.transcript?.chat_id && !ui.transcript.ended);
});

client.on("partner_away", (p) => {
  if (p.chat_id !== ui.transcript?.chat_id) return;
  const s = Math.max(1, Math.round(p.grace_ms / 1000));
  setTypingShown(false);
  setPresence(`Stranger's connection dropped, waiting up to ${s} s…`);
});

client.on("partner_back", (p) => {
  if (p.chat_id !== ui.transcript?.chat_id || el.presence.hidden) return;
  setPresence(null);
  announce("The stranger is back.");
});

client.on("error", (e) => {
  if (e.code === "session_replaced") return;
  if (!e.ref || e.ref === "send_message") toast(ERROR_TEXT[e.code] || e.message);
});

client.on("stats", renderStats);
client.on("queue_joined", (p) => {
  if (typeof p.in_queue === "number") el.statQueue.textContent = String(p.in_queue);
});

// ---------- stats, clocks, controls ----------

function renderStats(s) {
  el.statOnline.textContent = String(s.online);
  el.statQueue.textContent = String(s.in_queue);
  el.statChat.textContent = String(s.in_chat);
  el.welcomeOnline.textContent = `${s.online} online now · ${s.in_chat} chatting`;
}

const STATS_EVERY = 4000; // ms between get_stats while the counts are on screen

function pollStats() {
  clearTimeout(ui.statsTimer);
  if (ui.screen !== "welcome" && ui.screen !== "searching") return;
  if (client.connection === "open" && document.visibilityState !== "hidden") {
    client.getStats().catch(() => {});
  }
  ui.statsTimer = setTimeout(pollStats, STATS_EVERY);
}

function startWaitClock() {
  stopWaitClock();
  const started = Date.now();
  const tick = () => {
    const s = Math.floor((Date.now() - started) / 1000);
    el.searchingWait.textContent = `Waiting ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  tick();
  ui.waitTimer = setInterval(tick, 1000);
}

function stopWaitClock() {
  clearInterval(ui.waitTimer);
}

function updateControls() {
  const open = client.connection === "open";
  el.startBtn.disabled = !open;
  el.startBtn.textContent = open ? "Start chatting" : client.connection === "closed" ? "Disconnected" : "Connecting…";
  for (const b of [el.sendBtn, el.leaveBtn, el.nextBtn, el.againBtn, el.cancelBtn, el.moreBtn]) b.disabled = !open;
}

// ---------- small helpers ----------

function restoreChoice() {
  for (const [name, value] of Object.entries(ui.choice || {})) {
    if (typeof value !== "string") continue;
    const input = el.startForm.querySelector(`input[name="${name}"][value="${CSS.escape(value)}"]`);
    if (input) input.checked = true;
  }
  ui.interests = Array.isArray(ui.choice?.interests) ? ui.choice.interests.slice(0, Limits.interests) : [];
  renderChips();
}

let toastTimer = 0;
function toast(text) {
  el.toast.textContent = text;
  el.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.toast.hidden = true;
  }, 4000);
}

function announce(text) {
  el.announcer.textContent = "";
  setTimeout(() => {
    el.announcer.textContent = text;
  }, 50);
}

const baseTitle = document.title;
function notify(what) {
  if (document.visibilityState !== "hidden") return;
  ui.unread++;
  document.title = `(${ui.unread}) ${what} · flamingo`;
}
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  ui.unread = 0;
  document.title = baseTitle;
  pollStats();
});

function safeStorage(get) {
  try {
    const s = get();
    s.getItem("flamingo.probe");
    return s;
  } catch {
    const m = new Map();
    return {
      getItem: (k) => (m.has(k) ? m.get(k) : null),
      setItem: (k, v) => void m.set(k, String(v)),
      removeItem: (k) => void m.delete(k),
    };
  }
}

function loadJSON(store, key) {
  try {
    return JSON.parse(store.getItem(key) || "null");
  } catch {
    return null;
  }
}

function setJSON(store, key, value) {
  try {
    store.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or blocked: the page still works, it only forgets on reload
  }
}

// ---------- start: show where the user was before a reload, then connect ----------

if (!window.FlamingoVideo) el.modeChoice.hidden = true; // video.js is not there
const saved = loadJSON(session, TRANSCRIPT_KEY);
if (saved?.chat_id && Array.isArray(saved.items)) {
  ui.transcript = saved;
  renderTranscript();
  if (saved.ended) {
    showEnded(saved.ended, false);
  } else {
    ui.restoring = true;
    showChat(false);
  }
} else if (session.getItem(SEARCHING_KEY) === "1" && ui.choice) {
  showSearching();
} else {
  showWelcome(false);
}
// Reloaded in a video chat (or search): start the camera again before connecting,
// so that video.js sees the resume.
if (ui.screen !== "welcome" && ui.choice?.mode === "video") await startVideo();
client.connect().catch(() => {});
