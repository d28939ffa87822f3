// app.js: the flamingo demo page. All protocol work is in flamingo.js; this file
// turns its events into screens. Text from strangers is only ever set with
// textContent, never parsed as HTML.

import { FlamingoClient } from "./flamingo.js";

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
};
const ERROR_TEXT = {
  rate_limited: "Slow down a little: that message was not sent.",
  message_too_long: "That message is too long to send.",
  empty_message: "Type something first.",
  not_in_chat: "This chat has already ended.",
  message_rejected: "That message was not allowed.",
  internal: "Something went wrong on the server. Please try again.",
  not_connected: "You are offline. Wait a moment and try again.",
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
  choice: loadJSON(local, CHOICE_KEY),
  // {chat_id, partner: {gender}|null, ended: reason|null, items: [{who, text, at, id?}]}
  transcript: null,
  restoring: false, // showing a chat from before a reload that the server has not confirmed
  nextAfterLeave: false,
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
  show("welcome", focus ? el.welcomeTitle : null);
}

function showSearching() {
  const c = ui.choice;
  el.searchingDesc.textContent = c ? `${SELF_LABEL[c.gender]}, looking to meet ${PREF_LABEL[c.preference]}.` : "";
  startWaitClock();
  show("searching", el.cancelBtn);
  announce("Looking for someone to chat with.");
}

function showChat(focus = true) {
  el.ended.hidden = true;
  el.composer.hidden = false;
  el.chatActions.hidden = false;
  renderChatHead();
  show("chat", focus ? el.input : null);
}

function showEnded(reason, focus = true) {
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
}

// ---------- transcript ----------

function resetTranscript(chatId, partner) {
  ui.transcript = { chat_id: chatId, partner: partner || null, ended: null, items: [] };
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
  const time = document.createElement("time");
  time.dateTime = item.at;
  time.textContent = new Date(item.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  li.append(who, bubble, time);
  return li;
}

function endChat(reason) {
  ui.restoring = false;
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
  el.formError.hidden = true;
  clearTranscript();
  startSearch({ gender, preference: data.get("preference") || "any" });
});

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
el.input.addEventListener("input", autoGrow);

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
  addItem({ who: "me", text: sent.content, at: sent.sent_at });
  el.input.value = "";
  autoGrow();
  el.input.focus();
}

function autoGrow() {
  el.input.style.height = "auto";
  el.input.style.height = `${Math.min(el.input.scrollHeight, 140)}px`;
}

el.leaveBtn.addEventListener("click", () => leave(false));
el.nextBtn.addEventListener("click", () => leave(true));

async function leave(next) {
  ui.nextAfterLeave = next;
  try {
    await client.leaveChat();
  } catch (err) {
    ui.nextAfterLeave = false;
    if (err.code === "not_in_chat") return; // it had ended already; its chat_ended shows
    toast(ERROR_TEXT[err.code] || "Could not leave the chat. Please try again.");
  }
}

el.againBtn.addEventListener("click", () => {
  clearTranscript();
  if (ui.choice) startSearch(ui.choice);
  else showWelcome();
});

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
    saveTranscript();
    renderChatHead();
    return;
  }
  resetTranscript(p.chat_id, p.partner);
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
  notify("New message");
});

client.on("chat_ended", (p) => {
  if (ui.transcript?.chat_id !== p.chat_id) return; // a chat we no longer show
  if (ui.nextAfterLeave && p.reason === "left") {
    ui.nextAfterLeave = false;
    clearTranscript();
    if (ui.choice) {
      startSearch(ui.choice);
      return;
    }
  }
  endChat(p.reason);
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
  for (const b of [el.sendBtn, el.leaveBtn, el.nextBtn, el.againBtn, el.cancelBtn]) b.disabled = !open;
}

// ---------- small helpers ----------

function restoreChoice() {
  for (const [name, value] of Object.entries(ui.choice || {})) {
    const input = el.startForm.querySelector(`input[name="${name}"][value="${CSS.escape(String(value))}"]`);
    if (input) input.checked = true;
  }
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
client.connect().catch(() => {});
