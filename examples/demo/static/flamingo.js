// flamingo.js: a small browser client for the flamingo protocol v1 (JSON over WebSocket).
//
// Copy this file (and flamingo.d.ts for editor types) into your page; it has no
// dependencies and needs no build step.
//
//   import { FlamingoClient } from "./flamingo.js";
//   const client = new FlamingoClient("wss://example.com/ws");
//   client.on("match_found", (p) => console.log("chatting in", p.chat_id));
//   client.on("message_received", (m) => show(m.content));
//   await client.connect();
//   await client.joinQueue({ gender: "female", preference: "any" });
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
//     connection status, and emits every server event by its type.

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

const DEFAULTS = Object.freeze({
  storageKey: "flamingo.user_id",
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

function defaultStorage() {
  try {
    const s = globalThis.localStorage;
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

    this._ws = null;
    this._ready = false; // ready received on the current socket
    this._stopped = true; // no reconnects (before connect, after close or a final code)
    this._attempt = 0;
    this._reconnectTimer = 0;
    this._heartbeatTimer = 0;
    this._deadTimer = 0;
    this._lastQueue = null; // {gender, preference} of the last join_queue
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
   * Joins the queue. Resolves on queue_joined (with its payload).
   * @param {{gender: "male"|"female"|"other", preference?: "male"|"female"|"other"|"any"}} choice
   */
  joinQueue(choice) {
    const payload = { gender: choice.gender, preference: choice.preference || "any" };
    return this._request("join_queue", payload, "queue_joined").then((p) => {
      this._lastQueue = payload;
      return p;
    }, (err) => {
      if (err.code === "already_in_queue") this._lastQueue = payload;
      throw err;
    });
  }

  /** Leaves the queue. Resolves on queue_left. */
  leaveQueue() {
    this._lastQueue = null;
    return this._request("leave_queue", {}, "queue_left");
  }

  /**
   * Sends a message into the current chat. There is no reply on success (the partner
   * gets message_received); a refusal arrives as an "error" event with ref
   * "send_message". Throws a FlamingoError at once for an empty or too long message,
   * no chat, or no connection. Returns the message as the sender should show it.
   * @param {string} content
   * @returns {{chat_id: string, content: string, sent_at: string}}
   */
  sendMessage(content) {
    content = String(content);
    if (!this.chatId) throw new FlamingoError("not_in_chat", "you are not in a chat", "send_message");
    if (content.trim() === "") throw new FlamingoError("empty_message", "the message is empty", "send_message");
    if (encoder.encode(content).length > this.options.maxMessageBytes) {
      throw new FlamingoError("message_too_long", `the message is longer than ${this.options.maxMessageBytes} bytes`, "send_message");
    }
    this._send("send_message", { chat_id: this.chatId, content });
    return { chat_id: this.chatId, content, sent_at: new Date().toISOString() };
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
        this._lastQueue = null;
        this.partner = p.partner || null;
        this._orphanChat = null;
        this._setState("chatting", p.chat_id);
        break;
      case "chat_ended":
        if (p.chat_id === this._orphanChat) this._orphanChat = null;
        if (p.chat_id === this.chatId) {
          this.partner = null;
          this._setState("idle", null);
        }
        break;
      case "pong":
        if (this._orphanChat) this._endOrphan();
        break;
      case "error":
        if (p.code === "session_replaced") this._emit("replaced", p);
        else if (p.code === "rate_limited" && p.ref === "init" && !this._ready) this._initRefused(p);
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
    this._setConnection("open", { resumed: !!p.resumed });
    this._startHeartbeat();
    if (p.chat_id) {
      this._orphanChat = null;
      this._setState("chatting", p.chat_id);
    } else if (this.chatId) {
      // The chat we knew is gone: a replayed chat_ended usually follows. The pong to
      // this ping arrives after all replayed events, so it tells if none came.
      this._orphanChat = this.chatId;
      this._rawSend({ type: "ping", payload: {} });
    } else if (this.state === "searching") {
      // A disconnect takes the user out of the queue: join again, or stop searching.
      const choice = this._lastQueue;
      if (choice && this.options.rejoinAfterResume) {
        queueMicrotask(() => this.joinQueue(choice).catch(() => this._setState("idle")));
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
    this._setState("idle", null);
    this._emit("chat_ended", { chat_id: id, reason: "lost", local: true });
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

function resolveURL(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const loc = globalThis.location;
  if (!loc) return url;
  const u = new URL(url, loc.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}
