// video.js: the video half of the flamingo demo page. A classic script (load it before
// app.js); it defines window.FlamingoVideo = { start(client, el), stop() }.
//
//   await FlamingoVideo.start(client, document.querySelector("#video-area"));
//
// start asks for the camera and microphone and shows the preview in el. If it cannot,
// it rejects with an Error whose message can be shown as it is ("Camera permission was
// denied.", "No camera was found.", ...) and leaves el hidden: the page goes on as text
// chat. Once started, it follows the client by itself:
//
//   - match_found builds an RTCPeerConnection for the chat with the chat's ice_servers
//     and the local camera; the side with initiator: true makes the offer (only that
//     side ever offers, so two offers never cross);
//   - offers, answers and ICE candidates travel as the data of flamingo's signal event;
//   - chat_ended closes the connection and keeps the camera for the next chat;
//   - after a resume in the same chat (ready with resumed: true) the initiator
//     renegotiates with an ICE restart, and the other side asks it to;
//   - after a reload the page is new: the chat's role, kept in sessionStorage, tells the
//     new connection to offer again (initiator) or to ask for an offer ("hello").
//
// The signal data it sends, all JSON objects that flamingo relays as they are:
//   {type: "offer",     pc, n, sdp}       only from the initiator; n numbers its offers
//   {type: "answer",    pc, to, n, sdp}   to and n: the pc and n of the offer it answers
//   {type: "candidate", pc, candidate}    an RTCIceCandidateInit
//   {type: "hello",     pc}               a new connection of the answering side wants an offer
//   {type: "restart",   pc}               the answering side wants an ICE restart
//   {type: "media",     pc, audio, video} whether the sender's microphone and camera are on
// pc is a random id of the sender's RTCPeerConnection: a side that reloaded gets a new
// one, and whatever was sent for the old one is recognised and dropped. An offer may be
// lost (sent offline, dropped with a dead socket, refused): the initiator sends the
// same offer, with the same n, again when it is asked to repair the call; an answer
// whose n is not that of the offer out is stale and dropped.
(() => {
  "use strict";

  const STORE_KEY = "flamingo.video.chat"; // sessionStorage: {chat_id, initiator, ice_servers}

  const STATUS_TEXT = {
    idle: "Your camera is ready. Waiting for a stranger…",
    waiting: "Waiting for the stranger's video…",
    connecting: "Connecting video…",
    connected: "",
    reconnecting: "Reconnecting video…",
    failed: "The video could not connect. Text chat still works.",
    ended: "The video has ended.",
  };

  /** The running video: null until start() succeeds and after stop(). */
  let active = null;
  /** Bumped by every start() and stop(), so that a start overtaken by a stop gives up. */
  let generation = 0;

  /**
   * Asks for the camera and microphone, shows the preview in el and follows client.
   * @param {object} client a FlamingoClient (flamingo.js)
   * @param {HTMLElement} el the element to draw the video area into
   * @returns {Promise<void>}
   */
  async function start(client, el) {
    if (active && active.client === client && active.el === el) return;
    stop();
    const gen = ++generation;
    const stream = await openCamera();
    if (gen !== generation) {
      stopTracks(stream); // stop() came first
      throw new Error("Video was stopped.");
    }
    const v = { client, el, stream, ui: render(el, stream), chat: null, offs: [], remoteMedia: null };
    active = v;
    v.ui.mute.addEventListener("click", () => toggle(v, "audio"));
    v.ui.camera.addEventListener("click", () => toggle(v, "video"));
    v.offs.push(
      client.on("match_found", (p) => onMatch(v, p)),
      client.on("signal", (p) => onSignal(v, p)),
      client.on("chat_ended", (p) => {
        if (v.chat && v.chat.id === p.chat_id) endChat(v, "ended");
      }),
      client.on("ready", (p) => onReady(v, p)),
      client.on("error", (p) => onError(v, p)),
    );
    setStatus(v, "idle");
    // Started in the middle of a chat (a reload while chatting): rejoin its call now,
    // since the ready that said so may have come before start was called.
    if (client.connection === "open" && client.chatId) onReady(v, { chat_id: client.chatId, resumed: true });
  }

  /** Ends any call, turns the camera off and empties the video area. */
  function stop() {
    generation++;
    const v = active;
    if (!v) return;
    active = null;
    for (const off of v.offs) off();
    endChat(v, "ended");
    stopTracks(v.stream);
    v.el.replaceChildren();
    v.el.hidden = true;
    delete v.el.dataset.video;
    forgetChat();
  }

  // ---------- camera ----------

  async function openCamera() {
    const md = globalThis.navigator && navigator.mediaDevices;
    if (!md || typeof md.getUserMedia !== "function") {
      throw new Error(
        globalThis.isSecureContext === false
          ? "Video needs a secure (https) page."
          : "This browser cannot use a camera.",
      );
    }
    try {
      return await md.getUserMedia({ video: true, audio: true });
    } catch (err) {
      if (err && err.name !== "NotFoundError") throw new Error(cameraErrorText(err), { cause: err });
    }
    // Nothing found for camera and microphone together: a camera without a microphone
    // still makes a (silent) video call.
    try {
      return await md.getUserMedia({ video: true });
    } catch (err) {
      throw new Error(cameraErrorText(err), { cause: err });
    }
  }

  function cameraErrorText(err) {
    switch (err && err.name) {
      case "NotAllowedError":
      case "PermissionDeniedError":
      case "SecurityError":
        return "Camera permission was denied.";
      case "NotFoundError":
      case "DevicesNotFoundError":
      case "OverconstrainedError":
        return "No camera was found.";
      case "NotReadableError":
      case "TrackStartError":
        return "The camera is in use by another program.";
      default:
        return "The camera could not be started.";
    }
  }

  function stopTracks(stream) {
    for (const t of stream.getTracks()) t.stop();
  }

  function toggle(v, kind) {
    const tracks = kind === "audio" ? v.stream.getAudioTracks() : v.stream.getVideoTracks();
    const on = !tracks.some((t) => t.enabled);
    for (const t of tracks) t.enabled = on;
    renderButtons(v);
    if (v.chat) sendMedia(v, v.chat);
  }

  function mediaOn(v) {
    return {
      audio: v.stream.getAudioTracks().some((t) => t.enabled),
      video: v.stream.getVideoTracks().some((t) => t.enabled),
    };
  }

  // ---------- the video area ----------

  function render(el, stream) {
    const ui = {
      remote: make("video", { id: "video-remote", className: "video-remote", autoplay: true, playsInline: true }),
      status: make("p", { id: "video-status", className: "video-status", role: "status" }),
      remoteNote: make("p", { className: "video-note", hidden: true }),
      local: make("video", { id: "video-local", className: "video-local", autoplay: true, playsInline: true, muted: true }),
      localNote: make("span", { className: "video-local-off", hidden: true, textContent: "Camera off" }),
      mute: make("button", { id: "video-mute", type: "button", className: "video-btn" }),
      camera: make("button", { id: "video-camera", type: "button", className: "video-btn" }),
    };
    ui.remote.setAttribute("aria-label", "The stranger's video");
    ui.local.setAttribute("aria-label", "Your camera");
    ui.local.srcObject = stream;
    ui.remoteNote.setAttribute("aria-live", "polite");
    const pip = make("div", { className: "video-pip" });
    pip.append(ui.local, ui.localNote);
    const controls = make("div", { className: "video-controls" });
    controls.append(ui.mute, ui.camera);
    const stage = make("div", { className: "video-stage" });
    stage.append(ui.remote, ui.status, ui.remoteNote, pip, controls);
    el.replaceChildren(stage);
    el.hidden = false;
    play(ui.local);
    const v = { stream, ui };
    renderButtons(v);
    return ui;
  }

  function renderButtons(v) {
    const { audio, video } = mediaOn(v);
    setButton(v.ui.mute, !audio, "Unmute", "Mute", "Unmute your microphone", "Mute your microphone");
    v.ui.mute.disabled = v.stream.getAudioTracks().length === 0; // no microphone
    setButton(v.ui.camera, !video, "Camera on", "Camera off", "Turn your camera on", "Turn your camera off");
    v.ui.localNote.hidden = video;
  }

  function setButton(btn, pressed, onText, offText, onLabel, offLabel) {
    btn.setAttribute("aria-pressed", String(pressed));
    btn.textContent = pressed ? onText : offText;
    btn.title = pressed ? onLabel : offLabel;
  }

  function setStatus(v, state) {
    v.el.dataset.video = state;
    v.ui.status.textContent = STATUS_TEXT[state];
    v.ui.status.hidden = STATUS_TEXT[state] === "";
  }

  function renderRemoteMedia(v, m) {
    const notes = [];
    if (m && m.video === false) notes.push("The stranger turned their camera off.");
    if (m && m.audio === false) notes.push("The stranger is muted.");
    v.ui.remoteNote.textContent = notes.join(" ");
    v.ui.remoteNote.hidden = notes.length === 0;
  }

  function make(tag, props) {
    return Object.assign(document.createElement(tag), props);
  }

  function play(video) {
    const p = video.play();
    if (p) p.catch(() => {}); // autoplay refused: the element starts when the user taps it
  }

  // ---------- chats and their peer connections ----------

  function onMatch(v, p) {
    // A replay of the chat we are in changes nothing, unless its role was a guess.
    if (v.chat && v.chat.id === p.chat_id && !v.chat.guessed) return;
    endChat(v, "ended");
    const info = { chat_id: p.chat_id, initiator: !!p.initiator, ice_servers: p.ice_servers || [] };
    rememberChat(info);
    const chat = newChat(v, info);
    if (chat.initiator) enqueue(v, chat, () => offer(v, chat, false));
  }

  function onReady(v, p) {
    if (v.chat && v.chat.id !== p.chat_id) {
      endChat(v, "ended"); // that chat is over; chat_ended says so too, if it was replayed
      return;
    }
    if (!p.chat_id) return;
    if (v.chat) {
      // Back on a new connection, same page: the path may have changed, so the
      // initiator renegotiates with an ICE restart and the other side asks it to.
      if (p.resumed) recover(v, v.chat);
      return;
    }
    // A new page in a chat (a reload): its role was kept for it, by the client (a
    // flamingo.js that has currentChat) or by us. Without it, the guess is to answer;
    // a replayed match_found then corrects it.
    const info = knownChat(v.client, p.chat_id);
    const chat = newChat(v, info || { chat_id: p.chat_id, initiator: false, ice_servers: [] });
    chat.guessed = !info;
    if (chat.initiator) enqueue(v, chat, () => offer(v, chat, false));
    else send(v, chat, { type: "hello", pc: chat.pcId });
  }

  // onError repairs the call a while after the server refused one of our signals for
  // its rate: an offer, an answer or a candidate may be what it refused.
  function onError(v, p) {
    const chat = v.chat;
    if (!chat || p.ref !== "signal" || p.code !== "rate_limited" || chat.retryTimer) return;
    chat.retryTimer = setTimeout(() => {
      chat.retryTimer = 0;
      if (v.chat === chat) recover(v, chat);
    }, Math.max(p.retry_after_ms || 0, 1000));
  }

  function onSignal(v, p) {
    const d = p.data;
    if (!d || typeof d !== "object" || typeof d.type !== "string") return;
    const chat = v.chat;
    if (!chat || chat.id !== p.chat_id) return; // from a chat that is over
    enqueue(v, chat, () => handleSignal(v, chat, d));
  }

  // enqueue runs the steps of one chat's negotiation one after another: each needs the
  // state the one before left (a candidate needs its description in place).
  function enqueue(v, chat, step) {
    chat.queue = chat.queue
      .then(() => (v.chat === chat ? step() : undefined))
      .catch((err) => console.warn("flamingo video:", err));
  }

  // knownChat returns what match_found said about chat id, if the client or this page
  // kept it, as {chat_id, initiator, ice_servers}; else null.
  function knownChat(client, id) {
    const c = typeof client.currentChat === "function" ? client.currentChat() : null;
    if (c && c.id === id && typeof c.initiator === "boolean") {
      return { chat_id: id, initiator: c.initiator, ice_servers: c.iceServers || [] };
    }
    const saved = recallChat();
    return saved && saved.chat_id === id ? saved : null;
  }

  function newChat(v, info) {
    const chat = {
      id: info.chat_id,
      initiator: !!info.initiator,
      iceServers: Array.isArray(info.ice_servers) ? info.ice_servers : [],
      pc: null,
      pcId: "",
      remoteId: "", // pc id of the partner's connection that ours talks to
      offerN: 0, // n of the last offer made
      retryTimer: 0, // repairs the call after a refused signal
      guessed: false, // the role is a guess (nothing kept said it)
      queue: Promise.resolve(),
    };
    v.chat = chat;
    v.remoteMedia = null;
    renderRemoteMedia(v, null);
    buildPc(v, chat);
    return chat;
  }

  function buildPc(v, chat) {
    if (chat.pc) closePc(chat);
    const pc = new RTCPeerConnection({ iceServers: chat.iceServers });
    chat.pc = pc;
    chat.pcId = randomId();
    chat.remoteId = "";
    const pcId = chat.pcId;
    for (const track of v.stream.getTracks()) pc.addTrack(track, v.stream);
    pc.onicecandidate = (ev) => {
      if (ev.candidate && chat.pc === pc) send(v, chat, { type: "candidate", pc: pcId, candidate: ev.candidate.toJSON() });
    };
    const remoteStream = new MediaStream();
    pc.ontrack = (ev) => {
      if (chat.pc !== pc) return;
      remoteStream.addTrack(ev.track);
      if (v.ui.remote.srcObject !== remoteStream) v.ui.remote.srcObject = remoteStream;
      play(v.ui.remote);
    };
    pc.onconnectionstatechange = () => {
      if (chat.pc !== pc || v.chat !== chat) return;
      switch (pc.connectionState) {
        case "connected":
          setStatus(v, "connected");
          sendMedia(v, chat);
          break;
        case "disconnected":
          setStatus(v, "reconnecting");
          break;
        case "failed":
          setStatus(v, "failed");
          recover(v, chat);
          break;
      }
    };
    v.ui.remote.srcObject = null;
    setStatus(v, chat.initiator ? "connecting" : "waiting");
  }

  function closePc(chat) {
    const pc = chat.pc;
    chat.pc = null;
    if (!pc) return;
    pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
    pc.close();
  }

  function endChat(v, state) {
    const chat = v.chat;
    if (!chat) return;
    v.chat = null;
    clearTimeout(chat.retryTimer);
    closePc(chat);
    forgetChat();
    v.ui.remote.srcObject = null;
    renderRemoteMedia(v, null);
    setStatus(v, state);
  }

  // recover repairs the media path of a chat that is still on: the initiator makes an
  // ICE restart, the other side asks it for one.
  function recover(v, chat) {
    if (chat.initiator) enqueue(v, chat, () => offer(v, chat, true));
    else send(v, chat, { type: "restart", pc: chat.pcId });
  }

  async function offer(v, chat, iceRestart) {
    const pc = chat.pc;
    if (pc.signalingState === "have-local-offer" && iceRestart) {
      // An offer is out, and the call needs repair: the offer (or its answer) may
      // have been lost, and then no answer ever comes. Send it again: it is already
      // an ICE restart if the call had been connected, and an answer to either copy
      // answers it.
      send(v, chat, { type: "offer", pc: chat.pcId, n: chat.offerN, sdp: pc.localDescription.sdp });
      return;
    }
    if (pc.signalingState !== "stable") return;
    if (iceRestart && pc.remoteDescription) setStatus(v, "reconnecting");
    const desc = await pc.createOffer(iceRestart && pc.remoteDescription ? { iceRestart: true } : {});
    await pc.setLocalDescription(desc);
    chat.offerN++;
    send(v, chat, { type: "offer", pc: chat.pcId, n: chat.offerN, sdp: pc.localDescription.sdp });
  }

  async function handleSignal(v, chat, d) {
    switch (d.type) {
      case "offer": {
        if (chat.initiator || typeof d.sdp !== "string") return; // only the initiator offers
        if (chat.remoteId && d.pc !== chat.remoteId && chat.pc.remoteDescription) {
          buildPc(v, chat); // the partner's page is new: so is our connection to it
        }
        chat.remoteId = d.pc;
        await chat.pc.setRemoteDescription({ type: "offer", sdp: d.sdp });
        await chat.pc.setLocalDescription(await chat.pc.createAnswer());
        if (chat.pc.connectionState !== "connected") setStatus(v, "connecting");
        send(v, chat, { type: "answer", pc: chat.pcId, to: d.pc, n: d.n, sdp: chat.pc.localDescription.sdp });
        return;
      }
      case "answer": {
        const pc = chat.pc;
        if (!chat.initiator || d.to !== chat.pcId || pc.signalingState !== "have-local-offer") return;
        // An answer to an earlier offer (a copy of it answered twice) does not fit the
        // one out. A page without n answers without it: taken as before.
        if (d.n !== undefined && d.n !== chat.offerN) return;
        chat.remoteId = d.pc;
        await pc.setRemoteDescription({ type: "answer", sdp: d.sdp });
        return;
      }
      case "candidate":
        if (d.pc !== chat.remoteId || !d.candidate) return; // for a connection that is gone
        try {
          await chat.pc.addIceCandidate(d.candidate);
        } catch (err) {
          console.warn("flamingo video: candidate refused:", err);
        }
        return;
      case "hello":
        // A new page of the answering side: start over with a fresh connection.
        if (!chat.initiator) return;
        if (chat.pc.localDescription || chat.pc.remoteDescription) buildPc(v, chat);
        await offer(v, chat, false);
        return;
      case "restart":
        if (chat.initiator && d.pc === chat.remoteId) await offer(v, chat, true);
        return;
      case "media":
        if (d.pc !== chat.remoteId) return;
        v.remoteMedia = { audio: d.audio !== false, video: d.video !== false };
        renderRemoteMedia(v, v.remoteMedia);
        return;
    }
  }

  function sendMedia(v, chat) {
    send(v, chat, { type: "media", pc: chat.pcId, ...mediaOn(v) });
  }

  // send hands data to the signal relay. Offline it is dropped: the resume that follows
  // renegotiates anyway.
  function send(v, chat, data) {
    const c = v.client;
    try {
      if (typeof c.sendSignal === "function") c.sendSignal(chat.id, data);
      else c._send("signal", { chat_id: chat.id, data }); // before flamingo.js had sendSignal
    } catch (err) {
      // Offline, or the chat ended a moment ago: nothing to do.
      if (err && err.code !== "not_connected" && err.code !== "not_in_chat") console.warn("flamingo video: signal not sent:", err);
    }
  }

  // ---------- small helpers ----------

  function randomId() {
    const b = new Uint8Array(8);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function rememberChat(info) {
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify(info));
    } catch {
      // no storage: after a reload the page asks the partner for a new offer instead
    }
  }

  function recallChat() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    } catch {
      return null;
    }
  }

  function forgetChat() {
    try {
      sessionStorage.removeItem(STORE_KEY);
    } catch {
      // nothing kept, nothing to forget
    }
  }

  globalThis.FlamingoVideo = Object.freeze({ start, stop });
})();
