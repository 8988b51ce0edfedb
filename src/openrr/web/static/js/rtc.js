// The WebRTC client of a session's render server, as openrr.client.connection does it in Python:
// one recvonly video transceiver and one ordered data channel ("openrr"), ICE gathered completely (no
// trickle), the offer POSTed through the control plane's relay, the answer applied, then the server's hello.
// The data-channel protocol is documented in src/openrr/protocol/datachannel.py.
//
// Events (CustomEvent, details in `detail`): hello, stats, frame, bye {reason}, lost {reason},
// latency {inputMs}, pong {rttMs}.

import { ApiError } from "./api.js";

export const DATA_CHANNEL_LABEL = "openrr";
const PROTOCOL_VERSION = 1;
const CAMERA_TYPES = new Set(["camera.set", "camera.orbit", "camera.pan", "camera.zoom", "camera.frame"]);

/** A failure to connect, or an `error` answer on the data channel: `code` says which. */
export class RenderError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "RenderError";
    this.code = code;
    this.status = status;
  }
}

function timeout(ms, what) {
  let timer = 0;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new RenderError("Timeout", what)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Resolves once ICE gathering is complete (or after `ms`: what was gathered by then is sent). */
function gatheringComplete(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class RenderClient extends EventTarget {
  /**
   * @param {import("./api.js").Api} api the session API of the signed-in account (for the relay)
   * @param {string} sessionId
   * @param {HTMLVideoElement} video where the stream plays
   */
  constructor(api, sessionId, video) {
    super();
    this.api = api;
    this.sessionId = sessionId;
    this.video = video;
    this.pc = null;
    this.channel = null;
    this.hello = null;
    this.answerVideo = null;
    this.closed = false;
    this.lostReason = null;
    this.byeReason = null;
    this._nextId = 1;
    this._pending = new Map(); // id → {resolve, reject, onProgress, timer}
    this._poses = new Map(); // poseId → performance.now() when sent
    this._poseId = 0; // above every pose id sent or seen, so an earlier client's poses never count as ours
    this._pingTimer = 0;
    this._disconnectTimer = 0;
    this._abort = new AbortController();
  }

  /** Connect; resolves on the server's hello. Rejects with ApiError (relay) or RenderError. */
  async connect({ timeoutMs = 20000 } = {}) {
    if (!("RTCPeerConnection" in window)) {
      throw new RenderError("NoWebRTC", "This browser does not support WebRTC, which the viewer needs.");
    }
    const limit = timeout(timeoutMs, `No connection to the render server within ${timeoutMs / 1000} s.`);
    try {
      await Promise.race([this._open(), limit.promise]);
    } catch (err) {
      this.close();
      throw err;
    } finally {
      limit.cancel();
    }
  }

  async _open() {
    const pc = (this.pc = new RTCPeerConnection({ iceServers: [] }));
    pc.addTransceiver("video", { direction: "recvonly" });
    const channel = (this.channel = pc.createDataChannel(DATA_CHANNEL_LABEL, { ordered: true }));
    const helloArrived = new Promise((resolve, reject) => {
      this._helloWaiter = { resolve, reject };
    });
    channel.addEventListener("message", (event) => this._onMessage(event.data));
    channel.addEventListener("close", () => this._lost("The data channel to the render server closed."));
    pc.addEventListener("track", (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.play().catch(() => {
        /* autoplay refused: the page shows the video's own state; muted video normally plays */
      });
    });
    pc.addEventListener("connectionstatechange", () => this._onConnectionState());

    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, 5000);
    let answer;
    try {
      answer = await this.api.relayOffer(
        this.sessionId,
        { type: "offer", sdp: pc.localDescription.sdp },
        this._abort.signal,
      );
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (err && err.name === "AbortError") throw new RenderError("Closed", "The connection was closed.");
      throw err;
    }
    if (this.closed) throw new RenderError("Closed", "The connection was closed.");
    if (!answer || typeof answer.sdp !== "string") {
      throw new RenderError("BadAnswer", "The render server's answer has no SDP.");
    }
    this.answerVideo = answer.video || null;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await helloArrived;
    this._pingTimer = setInterval(() => this.ping().catch(() => {}), 2000);
    this.ping().catch(() => {});
  }

  get connected() {
    return !this.closed && this.lostReason === null && this.hello !== null;
  }

  /** Close the peer connection (idempotent). Pending requests fail. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this._abort.abort();
    clearInterval(this._pingTimer);
    clearTimeout(this._disconnectTimer);
    this._failPending("The connection was closed.");
    try {
      if (this.channel) this.channel.close();
      if (this.pc) this.pc.close();
    } catch {
      /* already closed */
    }
  }

  // ---- events ---------------------------------------------------------------------------------------------
  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _lost(reason) {
    if (this.closed || this.lostReason !== null) return;
    this.lostReason = reason;
    this._failPending(reason);
    if (this._helloWaiter) this._helloWaiter.reject(new RenderError("ConnectionLost", reason));
    if (this.hello !== null) this._emit("lost", { reason });
  }

  _onConnectionState() {
    const state = this.pc ? this.pc.connectionState : "closed";
    clearTimeout(this._disconnectTimer);
    if (state === "failed") {
      this._lost(
        this.hello
          ? "The connection to the render server failed."
          : "The video connection could not be set up (ICE failed). A render server on another network needs STUN or TURN (openrr serve --stun-url/--turn-url).",
      );
    } else if (state === "closed") {
      this._lost("The connection to the render server closed.");
    } else if (state === "disconnected") {
      // ICE may recover from a short outage; give it a few seconds.
      this._disconnectTimer = setTimeout(() => this._lost("The connection to the render server was lost."), 5000);
    }
  }

  _failPending(reason) {
    for (const pending of this._pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new RenderError("ConnectionClosed", reason));
    }
    this._pending.clear();
  }

  _onMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "hello":
        this.hello = msg;
        if (this._helloWaiter) this._helloWaiter.resolve(msg);
        this._emit("hello", msg);
        return;
      case "frame":
        this._onFrame(msg);
        return;
      case "bye":
        // The server ends the link (the session is stopping): say why rather than "connection lost".
        this.byeReason = String(msg.reason || "no reason given");
        this._emit("bye", { reason: this.byeReason });
        this._lost(`The render server ended the connection: ${this.byeReason}`);
        return;
      case "stats":
        this._emit("stats", msg);
        break;
      default:
        break;
    }
    const pending = msg.re !== undefined ? this._pending.get(msg.re) : undefined;
    if (!pending) return;
    if (msg.type === "model.progress") {
      if (pending.onProgress) pending.onProgress(msg);
      return;
    }
    this._pending.delete(msg.re);
    clearTimeout(pending.timer);
    if (msg.type === "error") pending.reject(new RenderError(String(msg.code || "Error"), String(msg.message || "")));
    else pending.resolve(msg);
  }

  /** Input → frame latency: from sending a camera request to the first frame that shows its pose. */
  _onFrame(msg) {
    this._emit("frame", msg);
    if (typeof msg.poseId !== "number") return;
    this._poseId = Math.max(this._poseId, msg.poseId);
    if (!this._poses.size) return;
    const now = performance.now();
    let newest = null;
    for (const [poseId, sentAt] of this._poses) {
      if (poseId <= msg.poseId) {
        if (newest === null || poseId > newest.poseId) newest = { poseId, sentAt };
        this._poses.delete(poseId);
      }
    }
    if (newest) this._emit("latency", { inputMs: now - newest.sentAt });
  }

  // ---- requests -------------------------------------------------------------------------------------------
  /** Send a request; resolves with its answer, rejects with RenderError on an `error` answer. */
  request(body, { onProgress = null, timeoutMs = 10000 } = {}) {
    const channel = this.channel;
    if (!this.connected || !channel || channel.readyState !== "open") {
      return Promise.reject(new RenderError("ConnectionClosed", this.lostReason || "Not connected."));
    }
    const id = this._nextId++;
    const message = { v: PROTOCOL_VERSION, id, ...body };
    if (CAMERA_TYPES.has(message.type)) {
      this._poseId += 1;
      message.poseId = this._poseId;
      this._poses.set(message.poseId, performance.now());
      if (this._poses.size > 200) this._poses.delete(this._poses.keys().next().value);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RenderError("Timeout", `No answer to ${message.type} within ${timeoutMs / 1000} s.`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, onProgress, timer });
      try {
        channel.send(JSON.stringify(message));
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new RenderError("ConnectionClosed", String(err)));
      }
    });
  }

  orbit(yaw, pitch = 0) {
    return this.request({ type: "camera.orbit", yaw, pitch });
  }

  pan(dx, dy) {
    return this.request({ type: "camera.pan", dx, dy });
  }

  zoom(factor) {
    return this.request({ type: "camera.zoom", factor });
  }

  frameScene() {
    return this.request({ type: "camera.frame" });
  }

  pick(x, y) {
    return this.request({ type: "pick", x, y });
  }

  /** Change a node: `{color: [r, g, b, a]}` or `{clearColor: true}`, `visible`, `transform`. */
  setNode(node, changes) {
    return this.request({ type: "node.set", node, ...changes });
  }

  loadModel(url, onProgress) {
    return this.request({ type: "model.load", url }, { onProgress, timeoutMs: 300000 });
  }

  async ping() {
    const sent = performance.now();
    await this.request({ type: "ping", t: sent / 1000 });
    const rttMs = performance.now() - sent;
    this._emit("pong", { rttMs });
    return rttMs;
  }
}
