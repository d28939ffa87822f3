// Type declarations for flamingo.js, the browser client of the flamingo protocol (v1
// and its v2 additions).

/** What a user says they are. */
export type Gender = "male" | "female" | "other";
/** Whom a user wants to meet. */
export type Preference = Gender | "any";
/** Where the user is: not queued and not chatting, waiting for a match, or in a chat. */
export type ClientState = "idle" | "searching" | "chatting";
/** The connection as the client sees it. */
export type ConnectionStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** Error codes the server sends in an error event. */
export type ServerErrorCode =
  | "bad_json"
  | "unknown_event"
  | "invalid_payload"
  | "not_initialized"
  | "already_initialized"
  | "already_in_queue"
  | "not_in_queue"
  | "already_in_chat"
  | "not_in_chat"
  | "message_too_long"
  | "empty_message"
  | "rate_limited"
  | "session_replaced"
  | "internal"
  | "message_rejected"
  | "join_refused";

/** Codes the client itself uses for a FlamingoError. */
export type ClientErrorCode = "not_connected" | "disconnected" | "closed" | "timeout";

/** Close codes of the flamingo server. */
export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  UNSUPPORTED_DATA: 1003;
  ABNORMAL: 1006;
  INVALID_PAYLOAD: 1007;
  POLICY_VIOLATION: 1008;
  MESSAGE_TOO_BIG: 1009;
  INTERNAL_ERROR: 1011;
  SERVICE_RESTART: 1012;
  SESSION_REPLACED: 4001;
  SLOW_CONSUMER: 4002;
}>;

/** Payload of ready. */
export interface ReadyPayload {
  user_id: string;
  resumed: boolean;
  /** Present only when resuming into a live chat. */
  chat_id?: string;
}
/** Payload of queue_joined. */
export interface QueueJoinedPayload {
  in_queue?: number;
}
/** Why a user reports their partner. */
export type ReportReason = "spam" | "harassment" | "nudity" | "underage" | "other";

/** Limits of protocol v2 that the client checks before sending. */
export declare const Limits: Readonly<{
  interests: 10;
  interestChars: 32;
  reportDetails: 500;
  signalBytes: 16384;
  clientMsgId: 64;
}>;
/** The reasons a report may give. */
export declare const ReportReasons: readonly ReportReason[];
/** Trims and lower-cases an interest, as the server does ("" if nothing is left). */
export declare function normalizeInterest(s: string): string;

/** One entry of RTCConfiguration.iceServers. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** Payload of match_found. */
export interface MatchFoundPayload {
  chat_id: string;
  partner: { gender: Gender };
  /** The interests both users gave, sorted; [] when none. */
  common_interests: string[];
  /** True when at least one user gave interests and the two share none. */
  relaxed: boolean;
  /** True for exactly one user of the chat: the one who makes the WebRTC offer. */
  initiator: boolean;
  /** For this user's RTCPeerConnection; [] when the server has none. */
  ice_servers: IceServer[];
}
/** Payload of blocked, reported and partner_back. */
export interface ChatPayload {
  chat_id: string;
}
/** Payload of partner_typing. */
export interface PartnerTypingPayload {
  chat_id: string;
  typing: boolean;
}
/** Payload of message_sent: the acknowledgement of a message. */
export interface MessageSentPayload {
  chat_id: string;
  client_msg_id: string;
  message_id: string;
  /** RFC 3339 time. */
  sent_at: string;
}
/** Payload of partner_away: the partner's connection dropped. */
export interface PartnerAwayPayload {
  chat_id: string;
  /** How long the chat is kept for the partner to come back, in milliseconds. */
  grace_ms: number;
}
/** Payload of signal: a WebRTC signaling object from the partner. */
export interface SignalPayload {
  chat_id: string;
  data: Record<string, unknown>;
}
/** Where a message sent with sendMessage is. */
export type MessageStatus = "sending" | "sent" | "failed" | "unconfirmed";
/** Detail of the client's "message_status" event. */
export interface MessageStatusChange {
  chat_id: string;
  client_msg_id: string;
  status: MessageStatus;
  /** With "sent". */
  message_id?: string;
  /** With "sent": when the server accepted it (RFC 3339). */
  sent_at?: string;
  /** With "failed": the error code. */
  code?: ServerErrorCode | string;
  message?: string;
}
/** A message waiting for its acknowledgement. */
export interface PendingMessage {
  chat_id: string;
  client_msg_id: string;
  content: string;
  /** When it was first sent, by the client's clock (RFC 3339). */
  sent_at: string;
}
/** What match_found said about the current chat. */
export interface ChatInfo {
  id: string;
  /** null when unknown (a takeover from another tab, or a match made while away). */
  initiator: boolean | null;
  iceServers: IceServer[];
  commonInterests: string[];
  relaxed: boolean;
  partner: { gender: Gender } | null;
}
/** Payload of message_received. */
export interface MessageReceivedPayload {
  chat_id: string;
  message_id: string;
  content: string;
  /** RFC 3339 time. */
  sent_at: string;
}
/**
 * Payload of chat_ended. The reason "lost" with local set to true is made by the
 * client when a resume finds that a chat it knew of is gone without a chat_ended
 * (the session had expired).
 */
export interface ChatEndedPayload {
  chat_id: string;
  reason: "left" | "partner_left" | "partner_disconnected" | "server_restart" | "lost";
  local?: true;
}
/** Payload of stats: counts of users. */
export interface StatsPayload {
  online: number;
  in_queue: number;
  in_chat: number;
}
/** Payload of error. */
export interface ErrorPayload {
  code: ServerErrorCode | string;
  message: string;
  /** The type of the client event that caused it, if any. */
  ref?: string;
  /** With rate_limited: how long to wait, in milliseconds, before trying again. */
  retry_after_ms?: number;
}

/** Detail of the client's "state" event. */
export interface StateChange {
  state: ClientState;
  previous: ClientState;
  chat_id: string | null;
}
/** Detail of the client's "connection" event. */
export interface ConnectionChange {
  status: ConnectionStatus;
  /** Close code, when the change follows a close. */
  code?: number;
  reason?: string;
  /** Milliseconds until the next attempt, when status is "reconnecting" after a close. */
  delay?: number;
  /** No automatic reconnect will follow. */
  final?: boolean;
  /** With status "open": whether the session was resumed. */
  resumed?: boolean;
}

/** Events a FlamingoClient emits, by type, with their detail. */
export interface FlamingoEventMap {
  ready: ReadyPayload;
  queue_joined: QueueJoinedPayload;
  queue_left: Record<string, never>;
  match_found: MatchFoundPayload;
  message_received: MessageReceivedPayload;
  chat_ended: ChatEndedPayload;
  pong: Record<string, never>;
  stats: StatsPayload;
  error: ErrorPayload;
  blocked: ChatPayload;
  reported: ChatPayload;
  partner_typing: PartnerTypingPayload;
  message_sent: MessageSentPayload;
  partner_away: PartnerAwayPayload;
  partner_back: ChatPayload;
  signal: SignalPayload;
  /** A message sent with sendMessage changed status. */
  message_status: MessageStatusChange;
  /** The client's state changed. */
  state: StateChange;
  /** The connection status changed. */
  connection: ConnectionChange;
  /** Another connection took this session over; no reconnect follows. */
  replaced: ErrorPayload;
  /** Every server event. */
  "*": { type: string; payload: unknown };
}

/** Something with the getItem / setItem / removeItem of Web Storage. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface FlamingoClientOptions {
  /** Where the user_id is kept. Default: localStorage, or memory if unavailable. */
  storage?: StorageLike;
  /** Storage key of the user_id. Default "flamingo.user_id". */
  storageKey?: string;
  /**
   * Where this tab's chat details and pending messages are kept. Default:
   * sessionStorage (per tab, survives a reload), or memory if unavailable.
   */
  sessionStorage?: StorageLike;
  /** Key of those in sessionStorage. Default "flamingo.session". */
  sessionKey?: string;
  /** Least milliseconds between two typing:true frames. Default 3000. */
  typingRefresh?: number;
  /** Milliseconds between pings. Default 20000. */
  heartbeatInterval?: number;
  /** Milliseconds to wait for any frame after a ping before reconnecting. Default 10000. */
  heartbeatTimeout?: number;
  /** Milliseconds before a request's promise rejects with code "timeout". Default 15000. */
  requestTimeout?: number;
  /** First reconnect delay cap in milliseconds; doubles per attempt. Default 500. */
  reconnectBase?: number;
  /** Largest reconnect delay in milliseconds. Default 15000. */
  reconnectMax?: number;
  /** Largest message in UTF-8 bytes, checked before sending. Default 4096. */
  maxMessageBytes?: number;
  /** Join the queue again after a reconnect if the client was searching. Default true. */
  rejoinAfterResume?: boolean;
  /** A WebSocket constructor to use instead of the global one. */
  WebSocket?: typeof WebSocket;
}

/** An error from the server (a protocol code) or from the client itself. */
export declare class FlamingoError extends Error {
  constructor(code: string, message: string, ref?: string);
  readonly code: ServerErrorCode | ClientErrorCode | string;
  /** The event type the error refers to, or "". */
  readonly ref: string;
}

/** A resumable connection to a flamingo server. */
export declare class FlamingoClient extends EventTarget {
  /**
   * @param url a ws:// or wss:// URL, or a path such as "/ws" resolved against the page.
   */
  constructor(url: string, options?: FlamingoClientOptions);

  readonly url: string;
  readonly state: ClientState;
  readonly connection: ConnectionStatus;
  /** The current chat, or null. */
  readonly chatId: string | null;
  /** The partner of the current chat, when known (null after a reload until match_found). */
  readonly partner: { gender: Gender } | null;
  /** The stored user_id, a bearer secret: never show or send it anywhere else. */
  readonly userId: string | null;
  /** When the next reconnect attempt is due, in ms since the epoch, or 0. */
  readonly reconnectAt: number;
  /** Whether the partner is typing, as partner_typing last said. */
  readonly partnerTyping: boolean;
  /** While the partner's connection is down; `since` is ms since the epoch. */
  readonly partnerAway: { chat_id: string; grace_ms: number; since: number } | null;
  /** The same as currentChat(). */
  readonly chat: ChatInfo | null;
  /** The chat block and report act on by default (current, or ended at most 5 min ago). */
  readonly lastChatId: string | null;

  /** Opens the connection if needed; resolves with the next (or current) ready. */
  connect(): Promise<ReadyPayload>;
  /** Closes for good: no reconnect. The server keeps the session for its grace. */
  close(): void;
  /** Drops the stored user_id: the next connection gets a new identity. */
  forgetIdentity(): void;

  /**
   * Resolves on queue_joined; rejects with a FlamingoError on an error. Interests are
   * trimmed, lower-cased and de-duplicated; too many or too long rejects with
   * invalid_payload before anything is sent.
   */
  joinQueue(choice: { gender: Gender; preference?: Preference; interests?: string[] }): Promise<QueueJoinedPayload>;
  /** Resolves on queue_left. */
  leaveQueue(): Promise<Record<string, never>>;
  /**
   * Ends the current chat (if any) and joins the queue again with the last criteria.
   * Resolves on queue_joined; a chat_ended with reason "left" comes first.
   */
  next(): Promise<QueueJoinedPayload>;
  /** Blocks the partner of a chat (default: lastChatId). Resolves on blocked. */
  block(chatId?: string | null): Promise<ChatPayload>;
  /** Reports (and so blocks) the partner of a chat (default: lastChatId). Resolves on reported. */
  report(chatId: string | null | undefined, reason: ReportReason, details?: string): Promise<ChatPayload>;
  /**
   * Sends into the current chat with a fresh client_msg_id and returns the message to
   * show locally (the server sends no echo). It stays pending until message_sent;
   * "message_status" events follow it. While the connection is down it waits, and it
   * is sent again after a resume into the same chat. Throws a FlamingoError for an
   * empty or too long message, when not chatting, or after close().
   */
  sendMessage(content: string): PendingMessage & { status: "sending" };
  /** Messages of a chat (default: the current one) waiting for their acknowledgement. */
  pendingMessages(chatId?: string): PendingMessage[];
  /**
   * Says whether the user is typing; sends typing:true at most every typingRefresh ms
   * and typing:false only after a true. Returns whether a frame was sent.
   */
  setTyping(typing: boolean): boolean;
  /**
   * Sends a WebRTC signaling object to the partner of chatId (the current chat).
   * Throws a FlamingoError when not in that chat, not connected, or when data is not
   * an object of at most Limits.signalBytes bytes of JSON.
   */
  sendSignal(chatId: string, data: Record<string, unknown>): void;
  /** What match_found said about the current chat, or null; survives a reload. */
  currentChat(): ChatInfo | null;
  /** Resolves on the chat_ended with reason "left". */
  leaveChat(): Promise<ChatEndedPayload>;
  /** Resolves on stats. */
  getStats(): Promise<StatsPayload>;

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof FlamingoEventMap>(
    type: K,
    cb: (payload: FlamingoEventMap[K], event: CustomEvent<FlamingoEventMap[K]>) => void,
  ): () => void;

  addEventListener<K extends keyof FlamingoEventMap>(
    type: K,
    listener: (event: CustomEvent<FlamingoEventMap[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof FlamingoEventMap>(
    type: K,
    listener: (event: CustomEvent<FlamingoEventMap[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
