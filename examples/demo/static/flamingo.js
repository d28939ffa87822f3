// flamingo.js: a small browser client for the flamingo protocol (v1 and its v2
// additions: interests, next, block, report, typing, acknowledged messages, partner
// presence and WebRTC signaling), JSON over WebSocket.
//
// Copy this file (and flamingo.d.ts for editor types) into your page; it has no
// dependencies and needs no build step.
//
//   import { FlamingoClient } from "./flamingo.js";
//   const client = new FlamingoClient("wss://example.com/ws");
//   client.on("match_found", (p) => console.log("chatting in", p.chat_id));
//   client.on("message_received", (m) => show(m.content));
//   await client.connect();
//   await client.joinQueue({ gender: "female", preference: "any", interests: ["music"] });
//
// What it does for you:
//   - sends init with the user_id kept in storage, so a reload or a network drop
//     resumes the same session and chat;
//   - reconnects after a drop with capped, jittered exponential backoff, except after
//     close code 4001 (the session was opened elsewhere), a protocol violation, or close();
//   - after a resume, joins the queue again if it was searching;
//   - when the server refuses init because too many people share the address, starts
//     a new identity if the stored one has expired, or reconnects when told to;
//   - pings every 20 s and reconnects when a ping goes unanswered;
//   - tracks state ("idle" | "searching" | "chatting"), the current chat_id and the
//     connection status, and emits every server event by its type;
//   - sends every message with a client_msg_id and keeps it pending until the server
//     acknowledges it (message_sent); after a resume into the same chat it sends the
//     pending ones again with the same ids, which the server de-duplicates. Pending
//     messages and what match_found said about the chat (initiator, ICE servers,
//     common interests) are kept in sessionStorage, so they survive a reload of the tab;
//   - throttles typing indicators (one typing:true every few seconds at most).

/** Server close codes, as the flamingo engine uses them. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  SESSION_REPLACED: 4001,
  SLOW_CONSUMER: 4002,
});

// Close codes after which reconnecting would only repeat the failure.
const FINAL_CLOSE_CODES = new Set([
  CloseCode.UNSUPPORTED_DATA,
  CloseCode.INVALID_PAYLOAD,
  CloseCode.POLICY_VIOLATION,
  CloseCode.MESSAGE_TOO_BIG,
  CloseCode.SESSION_REPLACED,
]);

/** Limits of protocol v2 that the client checks before sending. */
export const Limits = Object.freeze({
  /** Interests per join_queue. */
  interests: 10,
  /** Characters (code points) per interest. */
  interestChars: 32,
  /** Characters of a report's details. */
  reportDetails: 500,
  /** Bytes of a signal's data, as JSON. */
  signalBytes: 16 << 10,
  /** Characters of a client_msg_id. */
  clientMsgId: 64,
});

/** The reasons a report may give. */
export const ReportReasons = Object.freeze(["spam", "harassment", "nudity", "underage", "other"]);

// How long after its end a chat can still be blocked or reported (DESIGN §4.7).
const MODERATION_WINDOW = 5 * 60 * 1000;

const DEFAULTS = Object.freeze({
  storageKey: "flamingo.user_id",
  sessionKey: "flamingo.session",
  typingRefresh: 3000,
  heartbeatInterval: 20000,
  heartbeatTimeout: 10000,
  requestTimeout: 15000,
  reconnectBase: 500,
  reconnectMax: 15000,
  maxMessageBytes: 4096,
  rejoinAfterResume: true,
});

/** An error refused by the server (code from the protocol) or by the client itself. */
export class FlamingoError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {string} [ref]
   */
  constructor(code, message, ref) {
    super(message || code);
    this.name = "FlamingoError";
    this.code = code;
    this.ref = ref || "";
  }
}

// memoryStorage is used when no Web Storage is available (private modes, workers).
function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => void m.set(k, String(v)),
    removeItem: (k) => void m.delete(k),
  };
}

function defaultStorage(name = "localStorage") {
  try {
    const s = globalThis[name];
    const probe = "flamingo.probe";
    s.setItem(probe, "1");
    s.removeItem(probe);
    return s;
  } catch {
    return memoryStorage();
  }
}

const encoder = new TextEncoder();

/**
 * Normalises one interest as the server does: trimmed and lower-cased. Returns "" for
 * one that is empty after trimming. It does not check the length: see Limits.
 * @param {string} s
 */
export function normalizeInterest(s) {
  return String(s).trim().toLowerCase();
}

// checkInterests normalises a list of interests (dropping empty ones and duplicates)
// and throws a FlamingoError for one the server would refuse.
function checkInterests(list) {
  const out = [];
  for (const raw of list || []) {
    const s = normalizeInterest(raw);
    if (s === "" || out.includes(s)) continue;
    if ([...s].length > Limits.interestChars || /[\u0000-\u001f\u007f-\u009f]/.test(s)) {
      throw new FlamingoError("invalid_payload", `the interest "${s}" is longer than ${Limits.interestChars} characters or has control characters`, "join_queue");
    }
    out.push(s);
  }
  if (out.length > Limits.interests) {
    throw new FlamingoError("invalid_payload", `at most ${Limits.interests} interests`, "join_queue");
  }
  return out;
}

// newClientMsgId returns 22 random characters of [A-Za-z0-9_-] (about 128 bits).
function newClientMsgId() {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const bytes = new Uint8Array(22);
  globalThis.crypto.getRandomValues(bytes);
  let id = "";
  for (const b of bytes) id += alphabet[b & 63];
  return id;
}

/**
 * FlamingoClient keeps one resumable connection to a flamingo server.
 * Server events are dispatched as CustomEvents whose `detail` is the payload; `on`
 * is a shorthand that passes the payload directly.
 */
export class FlamingoClient extends EventTarget {
  /**
   * @param {string} url WebSocket URL, e.g. "wss://example.com/ws". A path such as
   *   "/ws" is resolved against the page's location.
   * @param {object} [options] see flamingo.d.ts (FlamingoClientOptions)
   */
  constructor(url, options = {}) {
    super();
    this.url = resolveURL(url);
    this.options = { ...DEFAULTS, ...options };
    this.storage = options.storage || defaultStorage();
    this.sessionStorage = options.sessionStorage || defaultStorage("sessionStorage");
    this.WebSocketImpl = options.WebSocket || globalThis.WebSocket;

    /** @type {"idle"|"searching"|"chatting"} */
    this.state = "idle";
    /** @type {"idle"|"connecting"|"open"|"reconnecting"|"closed"} */
    this.connection = "idle";
    /** @type {string|null} */
    this.chatId = null;
    /** @type {{gender: string}|null} */
    this.partner = null;
    /** @type {string|null} */
    this.userId = this.storage.getItem(this.options.storageKey);
    /** When the next reconnect attempt is due (ms since epoch), or 0. */
    this.reconnectAt = 0;
    /** Whether the partner is typing, as partner_typing last said. */
    this.partnerTyping = false;
    /** While the partner's connection is down: {chat_id, grace_ms, since}. */
    this.partnerAway = null;

    this._ws = null;
    this._ready = false; // ready received on the current socket
    this._stopped = true; // no reconnects (before connect, after close or a final code)
    this._attempt = 0;
    this._reconnectTimer = 0;
    this._heartbeatTimer = 0;
    this._deadTimer = 0;
    this._lastQueue = null; // {gender, preference, interests} of the last join_queue
    this._wantQueue = false; // the user asked to search and has not asked to stop
    this._typingOn = false; // the last typing sent in this chat was true
    this._typingAt = 0; // when it was sent
    this._inflight = []; // client_msg_ids sent on this socket and not answered yet
    this._retryTimer = 0; // sends rate-limited messages again
    this._retryIds = new Set();
    this._retryAll = false;
    // Kept in sessionStorage: this tab's chat, as match_found described it, the last
    // chat that ended, and the messages not acknowledged yet.
    const saved = readJSON(this.sessionStorage, this.options.sessionKey) || {};
    this._chat = saved.chat || null; // {id, initiator, iceServers, commonInterests, relaxed, partner}
    this._lastChat = saved.lastChat || null; // {id, endedAt}
    this._pendingMsgs = Array.isArray(saved.pending) ? saved.pending : []; // [{chat_id, client_msg_id, content, sent_at}]
    this._pending = new Map(); // reply type -> [{resolve, reject, timer, ref}]
    this._readyWaiters = [];
    this._orphanChat = null; // chat we believe in that ready did not confirm

    this._onOnline = () => this._reconnectNow();
    this._onVisible = () => {
      if (globalThis.document && document.visibilityState === "visible") this._reconnectNow();
    };
  }

  /**
   * Opens the connection (if not open) and resolves with the ready payload.
   * @returns {Promise<object>}
   */
  connect() {
    const p = new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
    if (this._stopped) {
      this._stopped = false;
      globalThis.addEventListener?.("online", this._onOnline);
      globalThis.document?.addEventListener("visibilitychange", this._onVisible);
      this._open();
    } else if (this._ready) {
      this._settleReady(null, this._lastReady);
    }
    return p;
  }

  /**
   * Closes the connection for good: no reconnect follows. The session stays on the
   * server for its resume grace, so a later connect() (or a reload) resumes it.
   */
  close() {
    this._stopped = true;
    globalThis.removeEventListener?.("online", this._onOnline);
    globalThis.document?.removeEventListener("visibilitychange", this._onVisible);
    clearTimeout(this._reconnectTimer);
    this.reconnectAt = 0;
    const ws = this._ws;
    this._teardown(new FlamingoError("closed", "the client was closed"));
    if (ws) ws.close(CloseCode.NORMAL, "bye");
    this._failReadyWaiters(new FlamingoError("closed", "the client was closed"));
    this._setConnection("closed", { code: CloseCode.NORMAL, reason: "closed by the client", final: true });
  }

  /** Forgets the stored user_id: the next connection starts a new identity. */
  forgetIdentity() {
    this.storage.removeItem(this.options.storageKey);
    this.userId = null;
  }

  /**
   * Joins the queue. Resolves on queue_joined (with its payload). Interests are
   * trimmed, lower-cased and de-duplicated; more than Limits.interests, or one longer
   * than Limits.interestChars, rejects with invalid_payload before anything is sent.
   * @param {{gender: "male"|"female"|"other", preference?: "male"|"female"|"other"|"any", interests?: string[]}} choice
   */
  joinQueue(choice) {
    const payload = { gender: choice.gender, preference: choice.preference || "any" };
    try {
      const interests = checkInterests(choice.interests);
      if (interests.length > 0) payload.interests = interests;
    } catch (err) {
      return Promise.reject(err);
    }
    this._wantQueue = true;
    return this._request("join_queue", payload, "queue_joined").then((p) => {
      this._lastQueue = payload;
      return p;
    }, (err) => {
      if (err.code === "already_in_queue") this._lastQueue = payload;
      else this._wantQueue = false;
      throw err;
    });
  }

  /** Leaves the queue. Resolves on queue_left. */
  leaveQueue() {
    this._wantQueue = false;
    return this._request("leave_queue", {}, "queue_left");
  }

  /**
   * Skips to the next stranger: in a chat, ends it (chat_ended with reason "left"
   * arrives first) and joins the queue again with the last criteria; out of a chat,
   * joins again. Resolves on queue_joined. Rejects with not_in_chat if this identity
   * never joined the queue, already_in_queue if it is searching.
   * @returns {Promise<object>}
   */
  next() {
    this._wantQueue = true;
    return this._request("next", {}, "queue_joined").catch(async (err) => {
      if (err.code === "unknown_event" && this._lastQueue) {
        // A server without protocol v2: leave and join again in two steps.
        if (this.chatId) await this.leaveChat();
        return this.joinQueue(this._lastQueue);
      }
      if (err.code !== "already_in_queue") this._wantQueue = false;
      throw err;
    });
  }

  /**
   * Blocks the partner of a chat: the current one (ended at once) or one that ended
   * at most five minutes ago. The two are never paired again. Resolves on blocked.
   * @param {string} [chatId] default: the current chat, else the last one
   * @returns {Promise<{chat_id: string}>}
   */
  block(chatId) {
    const id = chatId || this._moderatableChat();
    if (!id) return Promise.reject(new FlamingoError("not_in_chat", "no chat to block", "block"));
    return this._request("block", { chat_id: id }, "blocked");
  }

  /**
   * Reports the partner of a chat (the current one, or one that ended at most five
   * minutes ago); it implies block. Resolves on reported (no blocked follows).
   * @param {string} [chatId] default: the current chat, else the last one
   * @param {"spam"|"harassment"|"nudity"|"underage"|"other"} reason
   * @param {string} [details] at most Limits.reportDetails characters
   * @returns {Promise<{chat_id: string}>}
   */
  report(chatId, reason, details) {
    const id = chatId || this._moderatableChat();
    if (!id) return Promise.reject(new FlamingoError("not_in_chat", "no chat to report", "report"));
    if (!ReportReasons.includes(reason)) {
      return Promise.reject(new FlamingoError("invalid_payload", `unknown reason ${JSON.stringify(reason)}`, "report"));
    }
    const payload = { chat_id: id, reason };
    details = details == null ? "" : String(details);
    if ([...details].length > Limits.reportDetails) {
      return Promise.reject(new FlamingoError("invalid_payload", `details longer than ${Limits.reportDetails} characters`, "report"));
    }
    if (details.trim() !== "") payload.details = details;
    return this._request("report", payload, "reported");
  }

  /**
   * Sends a message into the current chat, with a fresh client_msg_id. The message
   * is pending until the server acknowledges it: a "message_status" event says
   * "sending" now and "sent" (with message_id and sent_at) on message_sent; "failed"
   * (with code) if the server refuses it; "unconfirmed" if the chat was gone after a
   * resume before an acknowledgement came (it may or may not have been delivered).
   * Pending messages are sent again, with the same id, after a resume into the same
   * chat; while the connection is down they wait for it. Throws a FlamingoError at
   * once for an empty or too long message, or no chat.
   * @param {string} content
   * @returns {{chat_id: string, content: string, sent_at: string, client_msg_id: string, status: "sending"}}
   */
  sendMessage(content) {
    content = String(content);
    if (!this.chatId) throw new FlamingoError("not_in_chat", "you are not in a chat", "send_message");
    if (content.trim() === "") throw new FlamingoError("empty_message", "the message is empty", "send_message");
    if (encoder.encode(content).length > this.options.maxMessageBytes) {
      throw new FlamingoError("message_too_long", `the message is longer than ${this.options.maxMessageBytes} bytes`, "send_message");
    }
    if (this._stopped) throw new FlamingoError("not_connected", "not connected", "send_message");
    const msg = { chat_id: this.chatId, client_msg_id: newClientMsgId(), content, sent_at: new Date().toISOString() };
    this._pendingMsgs.push(msg);
    this._saveSession();
    if (this._ready) this._transmit(msg);
    // The engine clears the partner's indicator itself when it delivers the message
    // (DESIGN §4.8), so a typing:false here would only be dropped as a repeat.
    this._typingOn = false;
    this._emitStatus(msg, "sending");
    return { ...msg, status: "sending" };
  }

  /**
   * The messages of a chat (default: the current one) still waiting for their
   * acknowledgement, oldest first.
   * @param {string} [chatId]
   * @returns {{chat_id: string, client_msg_id: string, content: string, sent_at: string}[]}
   */
  pendingMessages(chatId) {
    const id = chatId || this.chatId;
    return this._pendingMsgs.filter((m) => m.chat_id === id).map((m) => ({ ...m }));
  }

  /**
   * Says whether the user is typing. Call it with true on every input in the message
   * box and with false when the box is emptied: it sends typing:true when typing
   * starts and again at most every typingRefresh ms (the server clears an indicator
   * after 6 s without a refresh), and typing:false only after a true. Sending a
   * message ends typing without a frame (the server clears the indicator itself).
   * Returns whether a frame was sent.
   * @param {boolean} typing
   */
  setTyping(typing) {
    typing = !!typing;
    if (!this.chatId || !this._ready) {
      this._typingOn = false;
      return false;
    }
    const now = Date.now();
    if (typing ? this._typingOn && now - this._typingAt < this.options.typingRefresh : !this._typingOn) return false;
    this._typingOn = typing;
    this._typingAt = now;
    this._rawSend({ type: "typing", payload: { chat_id: this.chatId, typing } });
    return true;
  }

  /**
   * Sends a WebRTC signaling object (an offer, answer or ICE candidate) to the
   * partner of the current chat, who receives it as a "signal" event. Throws a
   * FlamingoError when not in that chat, not connected, or when data is not a plain
   * object of at most Limits.signalBytes bytes of JSON.
   * @param {string} chatId
   * @param {object} data
   */
  sendSignal(chatId, data) {
    if (!chatId || chatId !== this.chatId) throw new FlamingoError("not_in_chat", "not in that chat", "signal");
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new FlamingoError("invalid_payload", "signal data must be a JSON object", "signal");
    }
    const json = JSON.stringify(data);
    if (encoder.encode(json).length > Limits.signalBytes) {
      throw new FlamingoError("invalid_payload", `signal data larger than ${Limits.signalBytes} bytes`, "signal");
    }
    this._send("signal", { chat_id: chatId, data });
  }

  /**
   * What match_found said about the current chat, or null when not in one:
   * {id, initiator, iceServers, commonInterests, relaxed, partner}. It survives a
   * reload of the tab (sessionStorage). After a takeover from another tab, or a
   * match made while away whose match_found has not been replayed yet, initiator is
   * null and the lists are empty.
   */
  currentChat() {
    const c = this._chat;
    if (!c || c.id !== this.chatId) return null;
    return { ...c, iceServers: [...c.iceServers], commonInterests: [...c.commonInterests] };
  }

  /** The same as currentChat(). */
  get chat() {
    return this.currentChat();
  }

  /**
   * The id of the chat that block and report act on by default: the current chat,
   * or the last one if it ended at most five minutes ago; else null.
   */
  get lastChatId() {
    return this._moderatableChat();
  }

  /** Leaves the current chat. Resolves on the chat_ended that follows (reason "left"). */
  leaveChat() {
    const payload = this.chatId ? { chat_id: this.chatId } : {};
    return this._request("leave_chat", payload, "chat_ended");
  }

  /** Asks for the user counts. Resolves with {online, in_queue, in_chat}. */
  getStats() {
    return this._request("get_stats", {}, "stats");
  }

  /**
   * Subscribes to an event; returns a function that unsubscribes.
   * @param {string} type a server event type, or "state", "connection", "replaced", "*"
   * @param {(payload: any, event: CustomEvent) => void} cb
   */
  on(type, cb) {
    const h = (ev) => cb(ev.detail, ev);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  // ---- internals ----

  _open() {
    clearTimeout(this._reconnectTimer);
    this.reconnectAt = 0;
    this._setConnection(this._attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (err) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    this._ready = false;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._rawSend({ type: "init", payload: { user_id: this.userId || "" } });
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      clearTimeout(this._deadTimer); // any frame shows the peer is alive
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === "string") this._handle(frame.type, frame.payload || {});
    };
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {}; // onclose follows with the details
  }

  _onClose(code, reason) {
    this._ws = null;
    this._teardown(new FlamingoError("disconnected", "the connection was lost"));
    if (this._stopped) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      this._stopped = true;
      if (this.state === "searching") this._setState("idle");
      this._setConnection("closed", { code, reason, final: true });
      this._failReadyWaiters(new FlamingoError(code === CloseCode.SESSION_REPLACED ? "session_replaced" : "closed", reason || `closed with ${code}`));
      return;
    }
    if (code === CloseCode.SERVICE_RESTART) {
      // The server is draining before a restart: another one takes the session
      // over now, so reconnect at once instead of backing off.
      this._attempt = 0;
      this._setConnection("reconnecting", { code, reason, delay: 0 });
      this._open();
      return;
    }
    this._scheduleReconnect(code, reason);
  }

  _scheduleReconnect(code, reason, notBefore = 0) {
    const cap = Math.min(this.options.reconnectMax, this.options.reconnectBase * 2 ** this._attempt);
    const delay = notBefore + Math.round(cap / 2 + Math.random() * (cap / 2)); // jitter in [cap/2, cap]
    this._attempt++;
    this.reconnectAt = Date.now() + delay;
    this._setConnection("reconnecting", { code, reason, delay });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  _reconnectNow() {
    if (this._stopped || this._ws) return;
    this._attempt = Math.min(this._attempt, 1);
    this._open();
  }

  // _teardown stops timers and fails requests waiting on the old socket.
  _teardown(err) {
    this._ready = false;
    this._inflight = [];
    this._typingOn = false; // the server clears the partner's indicator on a disconnect
    clearTimeout(this._retryTimer); // a resume sends every pending message anyway
    this._retryIds = new Set();
    this._retryAll = false;
    clearInterval(this._heartbeatTimer);
    clearTimeout(this._deadTimer);
    this._heartbeatTimer = 0;
    for (const list of this._pending.values()) {
      for (const r of list) {
        clearTimeout(r.timer);
        r.reject(err);
      }
    }
    this._pending.clear();
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    }
  }

  _handle(type, p) {
    switch (type) {
      case "ready":
        this._onReady(p);
        break;
      case "queue_joined":
        this._setState("searching");
        break;
      case "queue_left":
        if (this.state === "searching") this._setState("idle");
        break;
      case "match_found":
        this._wantQueue = false;
        this.partner = p.partner || null;
        this._orphanChat = null;
        this._enterChat(p.chat_id, p);
        this._setState("chatting", p.chat_id);
        break;
      case "chat_ended":
        if (p.chat_id === this._orphanChat) this._orphanChat = null;
        if (p.chat_id === this.chatId) {
          this.partner = null;
          this._chatGone(p.chat_id);
          this._setState("idle", null);
        } else if (p.chat_id && p.chat_id === this._chat?.id) {
          // The chat this tab was in before a reload (kept in sessionStorage), whose
          // end was held for us and replayed after ready: it is the last chat, which
          // block and report act on.
          this._chatGone(p.chat_id);
        }
        break;
      case "message_sent":
        this._acked(p);
        break;
      case "partner_typing":
        if (p.chat_id === this.chatId) this.partnerTyping = !!p.typing;
        break;
      case "partner_away":
        if (p.chat_id === this.chatId) this.partnerAway = { chat_id: p.chat_id, grace_ms: p.grace_ms, since: Date.now() };
        break;
      case "partner_back":
        if (p.chat_id === this.chatId) this.partnerAway = null;
        break;
      case "pong":
        if (this._orphanChat) this._endOrphan();
        break;
      case "error":
        if (p.code === "session_replaced") this._emit("replaced", p);
        else if (p.code === "rate_limited" && p.ref === "init" && !this._ready) this._initRefused(p);
        else if (p.ref === "send_message" || (p.code === "rate_limited" && !p.ref)) this._sendRefused(p);
        break;
    }
    this._resolve(type, p);
    this._emit(type, p);
    this._emit("*", { type, payload: p });
  }

  _onReady(p) {
    this._ready = true;
    this._lastReady = p;
    this._attempt = 0;
    if (p.user_id && p.user_id !== this.userId) {
      this.userId = p.user_id;
      this.storage.setItem(this.options.storageKey, p.user_id);
    }
    if (!p.resumed) {
      // A new identity: what this tab kept belongs to the old one.
      this._chat = null;
      this._lastChat = null;
    }
    this._setConnection("open", { resumed: !!p.resumed });
    this._startHeartbeat();
    // Messages of any other chat can no longer be sent.
    for (const m of this._pendingMsgs.filter((m) => m.chat_id !== p.chat_id)) this._giveUp(m);
    if (p.chat_id) {
      this._orphanChat = null;
      if (this._chat?.id !== p.chat_id) this._enterChat(p.chat_id, null);
      this._setState("chatting", p.chat_id);
      // After a resume into the same chat, send again what was not acknowledged,
      // with the same client_msg_ids: the server de-duplicates.
      for (const m of this._pendingMsgs) this._transmit(m);
    } else if (this.chatId) {
      // The chat we knew is gone: a replayed chat_ended usually follows. The pong to
      // this ping arrives after all replayed events, so it tells if none came.
      this._orphanChat = this.chatId;
      this._rawSend({ type: "ping", payload: {} });
    } else if (this.state === "searching") {
      // A disconnect takes the user out of the queue: join again (with the last
      // criteria, or with next, which the server answers with the criteria it
      // kept), or stop searching.
      const choice = this._lastQueue;
      if (this._wantQueue && this.options.rejoinAfterResume) {
        queueMicrotask(() => (choice ? this.joinQueue(choice) : this.next()).catch(() => this._setState("idle")));
      } else {
        this._setState("idle");
      }
    }
    this._settleReady(null, p);
  }

  // _initRefused handles an init over the server's per-address limits (many people
  // behind one address). The server never refuses a user_id it knows, so a refused one
  // has expired: start a new identity at once, on this connection. A refused new
  // identity waits retry_after_ms and tries on a new connection, since this one's init
  // timeout keeps running.
  _initRefused(p) {
    if (this.userId) {
      this.forgetIdentity();
      this._rawSend({ type: "init", payload: { user_id: "" } });
      return;
    }
    const ws = this._ws;
    this._teardown(new FlamingoError(p.code, p.message, p.ref));
    ws.close(CloseCode.NORMAL, "init refused");
    this._scheduleReconnect(undefined, p.message, p.retry_after_ms || 0);
  }

  _endOrphan() {
    const id = this._orphanChat;
    this._orphanChat = null;
    if (this.chatId !== id) return;
    this.partner = null;
    this._chatGone(id);
    this._setState("idle", null);
    this._emit("chat_ended", { chat_id: id, reason: "lost", local: true });
  }

  // _enterChat records a chat this tab is in: from match_found (p), or from a ready
  // that names a chat this tab did not know (p null: the details are unknown until a
  // replayed match_found, if one comes).
  _enterChat(id, p) {
    if (this._chat?.id !== id) {
      this._typingOn = false;
      this.partnerTyping = false;
      this.partnerAway = null;
    }
    this._chat = {
      id,
      initiator: p ? !!p.initiator : null,
      iceServers: p && Array.isArray(p.ice_servers) ? p.ice_servers : [],
      commonInterests: p && Array.isArray(p.common_interests) ? p.common_interests : [],
      relaxed: p ? !!p.relaxed : false,
      partner: p?.partner || null,
    };
    this._saveSession();
  }

  // _chatGone forgets the current chat, keeping its id for block and report. Its
  // pending messages that were never answered on this connection are given up; the
  // ones in flight still get their answer (an acknowledgement, or not_in_chat).
  _chatGone(id) {
    this._chat = null;
    this._lastChat = { id, endedAt: Date.now() };
    this._typingOn = false;
    this.partnerTyping = false;
    this.partnerAway = null;
    for (const m of this._pendingMsgs.filter((m) => m.chat_id === id && !this._inflight.includes(m.client_msg_id))) {
      this._giveUp(m);
    }
    this._saveSession();
  }

  _moderatableChat() {
    if (this.chatId) return this.chatId;
    const last = this._lastChat;
    if (last && Date.now() - last.endedAt <= MODERATION_WINDOW) return last.id;
    return null;
  }

  // _transmit sends a pending message on the current socket.
  _transmit(m) {
    if (!this._ready) return;
    m.transmitted = true;
    this._inflight.push(m.client_msg_id);
    this._saveSession();
    this._rawSend({ type: "send_message", payload: { chat_id: m.chat_id, content: m.content, client_msg_id: m.client_msg_id } });
  }

  _acked(p) {
    const i = this._inflight.indexOf(p.client_msg_id);
    if (i >= 0) this._inflight.splice(i, 1);
    const m = this._takePending(p.client_msg_id);
    if (m) this._emitStatus(m, "sent", { message_id: p.message_id, sent_at: p.sent_at });
  }

  // _sendRefused handles an error for a send_message. Answers come in the order of
  // the requests, so an error with ref send_message is about the oldest message in
  // flight. A rate_limited one is sent again when the server allows it; any other
  // refusal fails the message. A rate_limited without ref (dropped before it was
  // read) cannot be placed: every pending message of the chat is sent again later,
  // which the server's de-duplication makes safe.
  _sendRefused(p) {
    const later = Math.max(p.retry_after_ms || 0, 250);
    if (!p.ref) {
      this._inflight = [];
      this._retryLater(later, null);
      return;
    }
    const id = this._inflight.shift();
    const m = id && this._pendingMsgs.find((m) => m.client_msg_id === id);
    if (!m) return;
    if (p.code === "rate_limited") {
      this._retryLater(later, id);
      return;
    }
    this._takePending(id);
    this._emitStatus(m, "failed", { code: p.code, message: p.message });
  }

  // _retryLater sends pending messages of the current chat again after ms: the one
  // with client_msg_id id, or every one when id is null.
  _retryLater(ms, id) {
    if (id === null) this._retryAll = true;
    else this._retryIds.add(id);
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => {
      const all = this._retryAll;
      const ids = this._retryIds;
      this._retryAll = false;
      this._retryIds = new Set();
      for (const m of this._pendingMsgs) {
        if (m.chat_id === this.chatId && (all || ids.has(m.client_msg_id))) this._transmit(m);
      }
    }, ms);
  }

  // _giveUp drops a pending message whose chat is gone: "failed" if it never left
  // this tab, "unconfirmed" if it was sent and no acknowledgement came.
  _giveUp(m) {
    this._takePending(m.client_msg_id);
    if (m.transmitted) this._emitStatus(m, "unconfirmed");
    else this._emitStatus(m, "failed", { code: "not_in_chat", message: "the chat ended before the message could be sent" });
  }

  _takePending(id) {
    const i = this._pendingMsgs.findIndex((m) => m.client_msg_id === id);
    if (i < 0) return null;
    const [m] = this._pendingMsgs.splice(i, 1);
    this._saveSession();
    return m;
  }

  _emitStatus(m, status, extra = {}) {
    this._emit("message_status", { chat_id: m.chat_id, client_msg_id: m.client_msg_id, status, ...extra });
  }

  _saveSession() {
    const pending = this._pendingMsgs.map(({ chat_id, client_msg_id, content, sent_at, transmitted }) =>
      ({ chat_id, client_msg_id, content, sent_at, transmitted: !!transmitted }));
    try {
      this.sessionStorage.setItem(this.options.sessionKey, JSON.stringify({ chat: this._chat, lastChat: this._lastChat, pending }));
    } catch {
      // storage full or blocked: a reload forgets pending messages, nothing else
    }
  }

  _settleReady(err, p) {
    const waiters = this._readyWaiters;
    this._readyWaiters = [];
    for (const w of waiters) (err ? w.reject(err) : w.resolve(p));
  }

  _failReadyWaiters(err) {
    this._settleReady(err);
  }

  _resolve(type, p) {
    if (type === "error") {
      // Errors name the event that caused them: fail the oldest request of that kind.
      for (const [reply, list] of this._pending) {
        const i = list.findIndex((r) => r.ref === p.ref);
        if (i >= 0) {
          const [r] = list.splice(i, 1);
          if (list.length === 0) this._pending.delete(reply);
          clearTimeout(r.timer);
          r.reject(new FlamingoError(p.code, p.message, p.ref));
          return;
        }
      }
      return;
    }
    const list = this._pending.get(type);
    if (!list) return;
    if (type === "chat_ended" && p.reason !== "left") return; // not the reply to leave_chat
    const r = list.shift();
    if (list.length === 0) this._pending.delete(type);
    clearTimeout(r.timer);
    r.resolve(p);
  }

  _request(type, payload, reply) {
    return new Promise((resolve, reject) => {
      if (!this._ready) {
        reject(new FlamingoError("not_connected", "not connected", type));
        return;
      }
      const r = { resolve, reject, ref: type, timer: 0 };
      r.timer = setTimeout(() => {
        const list = this._pending.get(reply) || [];
        const i = list.indexOf(r);
        if (i >= 0) list.splice(i, 1);
        reject(new FlamingoError("timeout", `no ${reply} within ${this.options.requestTimeout} ms`, type));
      }, this.options.requestTimeout);
      if (!this._pending.has(reply)) this._pending.set(reply, []);
      this._pending.get(reply).push(r);
      this._rawSend({ type, payload });
    });
  }

  _send(type, payload) {
    if (!this._ready) throw new FlamingoError("not_connected", "not connected", type);
    this._rawSend({ type, payload });
  }

  _rawSend(frame) {
    if (this._ws && this._ws.readyState === 1) this._ws.send(JSON.stringify(frame));
  }

  _startHeartbeat() {
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = setInterval(() => {
      this._rawSend({ type: "ping", payload: {} });
      clearTimeout(this._deadTimer);
      this._deadTimer = setTimeout(() => {
        // No frame since the ping: the connection is dead even if the browser has
        // not noticed. Drop it and resume on a new one.
        const ws = this._ws;
        this._onClose(CloseCode.ABNORMAL, "heartbeat timeout");
        ws?.close();
      }, this.options.heartbeatTimeout);
    }, this.options.heartbeatInterval);
  }

  _setState(state, chatId) {
    if (chatId !== undefined) this.chatId = chatId;
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit("state", { state, previous, chat_id: this.chatId });
  }

  _setConnection(status, info = {}) {
    this.connection = status;
    this._emit("connection", { status, ...info });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function readJSON(store, key) {
  try {
    return JSON.parse(store.getItem(key) || "null");
  } catch {
    return null;
  }
}

function resolveURL(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const loc = globalThis.location;
  if (!loc) return url;
  const u = new URL(url, loc.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}
