// Type declarations for flamingo.js, the browser client of the flamingo protocol v1.

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
  | "message_rejected";

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
/** Payload of match_found. */
export interface MatchFoundPayload {
  chat_id: string;
  partner: { gender: Gender };
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

  /** Opens the connection if needed; resolves with the next (or current) ready. */
  connect(): Promise<ReadyPayload>;
  /** Closes for good: no reconnect. The server keeps the session for its grace. */
  close(): void;
  /** Drops the stored user_id: the next connection gets a new identity. */
  forgetIdentity(): void;

  /** Resolves on queue_joined; rejects with a FlamingoError on an error. */
  joinQueue(choice: { gender: Gender; preference?: Preference }): Promise<QueueJoinedPayload>;
  /** Resolves on queue_left. */
  leaveQueue(): Promise<Record<string, never>>;
  /**
   * Sends into the current chat and returns the message to show locally (the server
   * sends no echo). Throws a FlamingoError for an empty or too long message, or when
   * not chatting or not connected. A later refusal arrives as an "error" event with
   * ref "send_message".
   */
  sendMessage(content: string): { chat_id: string; content: string; sent_at: string };
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
