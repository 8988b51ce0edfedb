// openrr.js: the browser client of an openrr session, one ES module with no dependencies and no build step.
//
// Any page may import it, from the control plane that serves it (`<ROOT>/ui/js/openrr.js`, sent with
// `Access-Control-Allow-Origin: *`) or from its own copy. A page on another origin needs the control plane
// to list that origin (`openrr serve --cors-origin https://app.example`) before its API calls are allowed.
//
//   import { RemoteRendering } from "./openrr.js"; // or from the control plane's <ROOT>/ui/js/openrr.js
//   const connection = await RemoteRendering.connect({
//     endpoint: "https://openrr.example", accountId, accountToken: () => myBackend.token(), sessionId,
//     video: document.querySelector("video"),
//   });
//   const box = await connection.createEntity({ name: "marker", position: [0, 1, 0] });
//   await connection.setStateOverride(box.id, { tint: true, tintColor: [1, 0, 0, 0.5] });
//   connection.addEventListener("connectionstatuschanged", (e) => console.log(e.detail.status, e.detail.reason));
//
// Names follow Azure Remote Rendering's client runtime: a RenderingSession (the control plane's session:
// its properties, its connect token, connect()) and a RenderingConnection (the render server's data channel:
// camera, entities, components, materials, sky, spatial queries). The wire protocol is documented in
// openrr's protocol/datachannel.py (v1: camera, models, pick) and protocol/scene_api.py (v2: the scene API);
// scene requests go out with "v": 2, the rest with "v": 1.
//
// Connecting: POST .../connectToken (fails fast with SessionNotReady before any WebRTC work, and gives the
// token's expiry and the inspector's URL), then one recvonly video transceiver and one ordered data channel
// ("openrr"), ICE gathered completely, the offer POSTed through the control plane's offer relay (which
// hands the render server a connect token of its own), the answer applied, then the server's `hello`.
//
// Events, on the connection and repeated on its session (CustomEvent, the data in `detail`):
//   connectionstatuschanged  {status, reason, code}   status: ConnectionStatus; reason/code when Disconnected
//   hello   the server's hello (video, models, nodes, camera)
//   frame   one per video frame sent (frameId, poseId, renderMs, encodeMs, ...)
//   stats   once a second (fps, bitrate, rttMs, polygons, ...)
//   latency {inputMs}: from a camera request to the first frame showing it
//   pong    {rttMs}: the data channel's round trip (pinged every pingIntervalMs)
//
// Every request returns a promise; an `error` answer rejects it with a RemoteRenderingError carrying the
// server's `code` and `message`; no answer within the timeout rejects it with code "Timeout".

export const VERSION = "1";
export const DATA_CHANNEL_LABEL = "openrr";
export const API_VERSION = "2021-01-01";

/** ARR's ConnectionStatus. */
export const ConnectionStatus = Object.freeze({
  Connecting: "Connecting",
  Connected: "Connected",
  Disconnected: "Disconnected",
});

/** The component types of the scene API (ARR's ObjectType names). */
export const ComponentType = Object.freeze({
  StateOverride: "HierarchicalStateOverride",
  CutPlane: "CutPlane",
  PointLight: "PointLight",
  SpotLight: "SpotLight",
  DirectionalLight: "DirectionalLight",
});

/** The values of a HierarchicalStateOverride flag. */
export const OverrideState = Object.freeze({
  ForceOn: "ForceOn",
  ForceOff: "ForceOff",
  InheritFromParent: "InheritFromParent",
});

const STATE_FLAGS = ["hidden", "seeThrough", "selected", "tint", "disableCollision", "useCutPlaneFilterMask"];
const CAMERA_TYPES = new Set(["camera.set", "camera.orbit", "camera.pan", "camera.zoom", "camera.frame"]);
// The requests of protocol v2 (protocol/scene_api.py); every other request is a v1 one.
const SCENE_TYPES = new Set([
  "scene.get", "entity.create", "entity.get", "entity.set", "entity.destroy", "entity.bounds",
  "entity.metadata", "component.create", "component.set", "component.get", "component.destroy",
  "material.list", "material.get", "material.set", "material.create", "mesh.setMaterial", "texture.load",
  "sky.set", "sky.list", "outline.set", "shell.set", "pointCloud.set", "raycast", "query.box", "query.sphere",
  "query.orientedBox",
]);
const DEFAULT_REQUEST_TIMEOUT_MS = 10000;
const LOAD_TIMEOUT_MS = 300000; // models, textures and skies download and convert
const SCENE_PAGE = 100; // entities per scene.get answer: well inside its size bound (about 1 KB each)
const HTTP_CODES = {
  400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
  422: "UnprocessableEntity",
  413: "PayloadTooLarge", 429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
  503: "ServiceUnavailable", 504: "GatewayTimeout",
};

/**
 * Every failure: `code` is the server's error code (`SessionNotReady`, `ClientAlreadyConnected`,
 * `EntityNotFound`, ...) or one of this module's (`NetworkError`, `Timeout`, `ConnectionClosed`, `NoWebRTC`,
 * `BadAnswer`); `status` is the HTTP status of a control-plane call (0 otherwise); `retryAfter` seconds.
 */
export class RemoteRenderingError extends Error {
  constructor(code, message, { status = 0, retryAfter = 0 } = {}) {
    super(message);
    this.name = "RemoteRenderingError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// ---- the control plane ---------------------------------------------------------------------------------

/**
 * What a failed control-plane response says, from ARR's `{"error": {code, message}}`, v1 problem details
 * or the status alone: `{status, code, message, retryAfter}` (the app's own api.js uses it too).
 */
export async function describeFailure(response) {
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    body = null;
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "0", 10) || 0;
  let code = HTTP_CODES[response.status] || `Http${response.status}`;
  let message = `The service answered ${response.status} ${response.statusText}`.trim() + ".";
  if (body && typeof body === "object" && body.error && typeof body.error === "object") {
    code = String(body.error.code || code);
    message = String(body.error.message || message);
  } else if (body && typeof body.title === "string") {
    message = body.title;
  }
  return { status: response.status, code, message, retryAfter };
}

async function httpFailure(response) {
  const { status, code, message, retryAfter } = await describeFailure(response);
  return new RemoteRenderingError(code, message, { status, retryAfter });
}

/**
 * A session of the control plane (ARR's RenderingSession).
 * @param {object} options
 * @param {string|URL} options.endpoint the control plane's base URL (may include a path prefix)
 * @param {string} options.accountId
 * @param {string|(() => (string|Promise<string>))} options.accountToken an access token of the account, or
 *   a function giving one (called before every control-plane call, so it may refresh it)
 * @param {string} options.sessionId
 */
export class RenderingSession extends EventTarget {
  constructor({ endpoint, accountId, accountToken, sessionId }) {
    super();
    if (!endpoint || !accountId || !accountToken || !sessionId) {
      throw new TypeError("RenderingSession needs endpoint, accountId, accountToken and sessionId.");
    }
    const base = String(endpoint);
    this.endpoint = new URL(base.endsWith("/") ? base : `${base}/`, globalThis.location?.href);
    this.accountId = String(accountId);
    this.sessionId = String(sessionId);
    this._accountToken = accountToken;
    /** The connection of the newest connect(), or null. */
    this.connection = null;
  }

  /** The connection's status (Disconnected before connect()). */
  get status() {
    return this.connection ? this.connection.status : ConnectionStatus.Disconnected;
  }

  async _token() {
    const token = typeof this._accountToken === "function" ? await this._accountToken() : this._accountToken;
    if (typeof token !== "string" || !token) {
      throw new RemoteRenderingError("Unauthorized", "The account token provider gave no token.");
    }
    return token;
  }

  _path(suffix, openrr) {
    const path = `accounts/${encodeURIComponent(this.accountId)}/sessions/${encodeURIComponent(this.sessionId)}`;
    return `${openrr ? "openrr/" : ""}${path}${suffix}`;
  }

  /** A control-plane call with the account's bearer token; resolves with the JSON body (null when none). */
  async fetchJson(method, path, { json, query, signal } = {}) {
    const url = new URL(path, this.endpoint);
    for (const [key, value] of Object.entries(query || {})) url.searchParams.set(key, value);
    const headers = { Accept: "application/json", Authorization: `Bearer ${await this._token()}` };
    const init = { method, headers, cache: "no-store", credentials: "omit", mode: "cors", signal };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      if (err && err.name === "AbortError") throw new RemoteRenderingError("Closed", "The connection was closed.");
      throw new RemoteRenderingError(
        "NetworkError",
        `The openrr service at ${this.endpoint.origin} could not be reached (or does not allow this page's origin).`,
      );
    }
    if (!response.ok) throw await httpFailure(response);
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new RemoteRenderingError("BadAnswer", "The service sent an answer that is not JSON.", {
        status: response.status,
      });
    }
  }

  /** The session's properties (the 2021-01-01 GET): status, size, lease, hostname, ... */
  getProperties() {
    return this.fetchJson("GET", this._path(""), { query: { "api-version": API_VERSION } });
  }

  /** A connect token for the session's render server: `{token, expiresOn, handshakeUrl, inspectorUrl}`. */
  async connectToken(signal) {
    const body = await this.fetchJson("POST", this._path("/connectToken", true), { signal });
    if (!body || typeof body.token !== "string") {
      throw new RemoteRenderingError("BadAnswer", "The service sent no connect token.");
    }
    return body;
  }

  /** Send a complete WebRTC offer through the control plane's relay; resolves with the render server's answer. */
  relayOffer(offer, signal) {
    return this.fetchJson("POST", this._path("/offer", true), { json: offer, signal });
  }

  /**
   * Connect; resolves with the RenderingConnection once the render server said hello. The previous
   * connection of this session object, if any, is closed first (a session takes one client at a time).
   * @param {HTMLVideoElement} video where the stream plays
   * @param {object} [options] see RenderingConnection.open
   */
  async connect(video, options = {}) {
    if (this.connection) this.connection.disconnect();
    const connection = new RenderingConnection({ session: this, ...options });
    this.connection = connection;
    await connection.open(video, options);
    return connection;
  }
}

// ---- the render server's connection ----------------------------------------------------------------------

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
    const timer = setTimeout(done, ms); // what was gathered by then is sent
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function withTimeout(promise, ms, what) {
  let timer = 0;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new RemoteRenderingError("Timeout", what)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** `true`/`false`/`null` as ForceOn/ForceOff/InheritFromParent; strings as they are. */
function overrideValue(value) {
  if (value === true) return OverrideState.ForceOn;
  if (value === false) return OverrideState.ForceOff;
  if (value === null) return OverrideState.InheritFromParent;
  return value;
}

/**
 * The data channel to a session's render server (ARR's RenderingConnection): its status, its events and
 * every request of the protocol. Made by RenderingSession.connect(), or by RenderingConnection.overChannel()
 * on a data channel the caller opened itself.
 */
export class RenderingConnection extends EventTarget {
  /**
   * @param {object} [options]
   * @param {RenderingSession} [options.session] whose relay connects it, and which repeats its events
   * @param {number} [options.requestTimeoutMs] default limit of a request (10 s)
   * @param {number} [options.pingIntervalMs] data-channel pings for `pong` (2 s; 0: none)
   */
  constructor({ session = null, requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS, pingIntervalMs = 2000 } = {}) {
    super();
    this.session = session;
    this.requestTimeoutMs = requestTimeoutMs;
    this.pingIntervalMs = pingIntervalMs;
    this.status = ConnectionStatus.Disconnected;
    /** Why it is Disconnected: `{reason, code}` (code: ClientDisconnected, ServerEnded, ConnectionLost, ...). */
    this.disconnectReason = null;
    this.hello = null;
    /** The connect token's expiry and the inspector's URL (never the token itself). */
    this.tokenInfo = null;
    /** The video settings the render server's answer put in effect. */
    this.videoSettings = null;
    this.pc = null;
    this.channel = null;
    this._nextId = 1;
    this._pending = new Map(); // id → {resolve, reject, onProgress, timer}
    this._poses = new Map(); // poseId → performance.now() when sent
    this._poseId = 0;
    this._pingTimer = 0;
    this._lostTimer = 0;
    this._helloWaiter = null;
    this._abort = new AbortController();
  }

  /** A connection over a data channel opened elsewhere (anything with send(), readyState and message/close
   * events); resolves once the server's hello arrives. For custom signalling, and for tests. */
  static async overChannel(channel, options = {}) {
    const connection = new RenderingConnection(options);
    connection._setStatus(ConnectionStatus.Connecting);
    const hello = connection._attach(channel);
    await withTimeout(hello, options.timeoutMs ?? 20000, "The render server sent no hello.");
    connection._connected();
    return connection;
  }

  get connected() {
    return this.status === ConnectionStatus.Connected;
  }

  // ---- status and events ----------------------------------------------------------------------------------
  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
    if (this.session && this.session.connection === this) {
      this.session.dispatchEvent(new CustomEvent(type, { detail }));
    }
  }

  _setStatus(status, reason = null, code = null) {
    if (this.status === status) return;
    this.status = status;
    this.disconnectReason = status === ConnectionStatus.Disconnected ? { reason, code } : null;
    this._emit("connectionstatuschanged", { status, reason, code });
  }

  _connected() {
    if (this.disconnectReason) {
      // Ended between the hello and here (disconnect(), bye): say so rather than report Connected.
      throw new RemoteRenderingError(this.disconnectReason.code, this.disconnectReason.reason);
    }
    this._setStatus(ConnectionStatus.Connected);
    if (this.pingIntervalMs > 0) {
      this._pingTimer = setInterval(() => this.ping().catch(() => {}), this.pingIntervalMs);
      this.ping().catch(() => {});
    }
  }

  /** End the connection with `reason` (idempotent): pending requests fail, the peer connection closes. */
  _end(reason, code) {
    if (this.status === ConnectionStatus.Disconnected && this.disconnectReason) return;
    this._abort.abort();
    clearInterval(this._pingTimer);
    clearTimeout(this._lostTimer);
    this._failPending(reason);
    if (this._helloWaiter) this._helloWaiter.reject(new RemoteRenderingError(code, reason));
    try {
      if (this.channel) this.channel.close();
      if (this.pc) this.pc.close();
    } catch {
      /* already closed */
    }
    this._setStatus(ConnectionStatus.Disconnected, reason, code);
  }

  /** Close the connection (idempotent); it frees the session's client slot at once. */
  disconnect() {
    this._end("The client disconnected.", "ClientDisconnected");
  }

  _failPending(reason) {
    for (const pending of this._pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new RemoteRenderingError("ConnectionClosed", reason));
    }
    this._pending.clear();
  }

  // ---- connecting -----------------------------------------------------------------------------------------
  /**
   * Connect through the session's relay; resolves on the server's hello, rejects with RemoteRenderingError.
   * @param {HTMLVideoElement} video
   * @param {object} [options]
   * @param {number} [options.timeoutMs] for the whole connect (20 s)
   * @param {object} [options.video] wished video settings {width, height, fps, bitrate, codec}
   */
  async open(video, { timeoutMs = 20000, video: videoSettings = null } = {}) {
    if (!this.session) throw new TypeError("open() needs a connection made by RenderingSession.connect().");
    if (!("RTCPeerConnection" in globalThis)) {
      throw new RemoteRenderingError("NoWebRTC", "This browser does not support WebRTC, which openrr needs.");
    }
    this._setStatus(ConnectionStatus.Connecting);
    const what = `No connection to the render server within ${timeoutMs / 1000} s.`;
    try {
      await withTimeout(this._open(video, videoSettings), timeoutMs, what);
    } catch (err) {
      const error = err instanceof RemoteRenderingError ? err : new RemoteRenderingError("ConnectFailed", String(err));
      this._end(error.message, error.code);
      throw error;
    }
    this._connected();
  }

  async _open(video, videoSettings) {
    const signal = this._abort.signal;
    const { token: _secret, ...tokenInfo } = await this.session.connectToken(signal);
    this.tokenInfo = tokenInfo;
    const pc = (this.pc = new RTCPeerConnection({ iceServers: [] }));
    pc.addTransceiver("video", { direction: "recvonly" });
    const hello = this._attach(pc.createDataChannel(DATA_CHANNEL_LABEL, { ordered: true }));
    pc.addEventListener("track", (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      if (video.srcObject !== stream) video.srcObject = stream;
      video.play().catch(() => {
        /* autoplay refused: the page decides; a muted video normally plays */
      });
    });
    pc.addEventListener("connectionstatechange", () => this._onPeerState());
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, 5000);
    const offer = { type: "offer", sdp: pc.localDescription.sdp };
    if (videoSettings) offer.video = videoSettings;
    const answer = await this.session.relayOffer(offer, signal);
    if (this.disconnectReason) throw new RemoteRenderingError("ClientDisconnected", "The client disconnected.");
    if (!answer || typeof answer.sdp !== "string") {
      throw new RemoteRenderingError("BadAnswer", "The render server's answer has no SDP.");
    }
    this.videoSettings = answer.video || null;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await hello;
  }

  /** Listen to a data channel; returns a promise of the server's hello. */
  _attach(channel) {
    this.channel = channel;
    channel.addEventListener("message", (event) => this._onMessage(event.data));
    channel.addEventListener("close", () => this._end("The data channel to the render server closed.", "ConnectionLost"));
    return new Promise((resolve, reject) => {
      this._helloWaiter = { resolve, reject };
    });
  }

  _onPeerState() {
    const state = this.pc ? this.pc.connectionState : "closed";
    clearTimeout(this._lostTimer);
    if (state === "failed") {
      this._end(
        this.hello
          ? "The connection to the render server failed."
          : "The video connection could not be set up (ICE failed). A render server on another network needs STUN or TURN (openrr serve --stun-url/--turn-url).",
        "ConnectionLost",
      );
    } else if (state === "closed") {
      this._end("The connection to the render server closed.", "ConnectionLost");
    } else if (state === "disconnected") {
      // ICE may recover from a short outage; give it a few seconds.
      this._lostTimer = setTimeout(() => this._end("The connection to the render server was lost.", "ConnectionLost"), 5000);
    }
  }

  // ---- messages -------------------------------------------------------------------------------------------
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
        this._end(`The render server ended the connection: ${String(msg.reason || "no reason given")}`, "ServerEnded");
        return;
      case "stats":
        this._emit("stats", msg);
        break; // also the answer of stats.get
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
    if (msg.type === "error") {
      pending.reject(new RemoteRenderingError(String(msg.code || "Error"), String(msg.message || "The render server refused the request.")));
    } else {
      pending.resolve(msg);
    }
  }

  _onFrame(msg) {
    this._emit("frame", msg);
    if (typeof msg.poseId !== "number") return;
    this._poseId = Math.max(this._poseId, msg.poseId);
    let newest = null;
    for (const [poseId, sentAt] of this._poses) {
      if (poseId <= msg.poseId) {
        if (newest === null || poseId > newest.poseId) newest = { poseId, sentAt };
        this._poses.delete(poseId);
      }
    }
    if (newest) this._emit("latency", { inputMs: performance.now() - newest.sentAt });
  }

  /**
   * Send any request of the protocol; resolves with the whole answer message.
   * @param {string} type e.g. "entity.create"
   * @param {object} [fields] the request's fields
   * @param {object} [options] `timeoutMs`; `onProgress(message)` for model.progress
   */
  request(type, fields = {}, { timeoutMs = this.requestTimeoutMs, onProgress = null } = {}) {
    const channel = this.channel;
    if (!this.connected || !channel || channel.readyState !== "open") {
      const why = this.disconnectReason ? this.disconnectReason.reason : "Not connected.";
      return Promise.reject(new RemoteRenderingError("ConnectionClosed", why));
    }
    const id = this._nextId++;
    const message = { ...fields, v: SCENE_TYPES.has(type) ? 2 : 1, id, type };
    if (CAMERA_TYPES.has(type)) {
      this._poseId += 1;
      message.poseId = this._poseId;
      this._poses.set(message.poseId, performance.now());
      if (this._poses.size > 200) this._poses.delete(this._poses.keys().next().value);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RemoteRenderingError("Timeout", `No answer to ${type} within ${timeoutMs / 1000} s.`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, onProgress, timer });
      try {
        channel.send(JSON.stringify(message));
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new RemoteRenderingError("ConnectionClosed", String(err)));
      }
    });
  }

  // ---- camera, models, picking, stats (v1) ----------------------------------------------------------------
  /** `{position, orientation (quaternion x, y, z, w), fov}`; resolves with the pose. */
  setCamera(camera) {
    return this.request("camera.set", camera);
  }

  orbit(yaw, pitch = 0) {
    return this.request("camera.orbit", { yaw, pitch });
  }

  pan(dx, dy) {
    return this.request("camera.pan", { dx, dy });
  }

  zoom(factor) {
    return this.request("camera.zoom", { factor });
  }

  frameScene() {
    return this.request("camera.frame");
  }

  /** Load a model (path or URL); `onProgress(message)` gets model.progress; resolves with model.loaded. */
  loadModel(url, { modelId, onProgress = null, timeoutMs = LOAD_TIMEOUT_MS } = {}) {
    return this.request("model.load", { url, modelId }, { onProgress, timeoutMs });
  }

  unloadModel(modelId) {
    return this.request("model.unload", { modelId });
  }

  /** The node under a point of the picture (x, y: 0..1 from the top left); resolves with pick.result. */
  pick(x, y) {
    return this.request("pick", { x, y });
  }

  /** v1's node.set: `{color: [r, g, b, a]}` or `{clearColor: true}`, `visible`, `transform`. */
  setNode(node, changes) {
    return this.request("node.set", { node, ...changes });
  }

  getStats() {
    return this.request("stats.get");
  }

  /** The data channel's round trip in ms (also emitted as `pong`). */
  async ping() {
    const sent = performance.now();
    await this.request("ping", { t: sent / 1000 });
    const rttMs = performance.now() - sent;
    this._emit("pong", { rttMs });
    return rttMs;
  }

  // ---- stereo for headsets (protocol/xr.py) ---------------------------------------------------------------
  /**
   * Switch the stream to stereo; resolves with `xr.started` (the frame size, each eye's colour and depth
   * rectangles, the depth encoding). From then on every `frame` event carries `xr`: the eyes it was
   * rendered from.
   * @param {object} options `eye: {width, height}` (even, 64..2048), `layout` ("side-by-side" |
   *   "top-bottom"), `depth` (true), `background` ("opaque" | "transparent")
   */
  startXr({ eye, layout = "side-by-side", depth = true, background = "opaque" }) {
    return this.request("xr.start", { eye, layout, depth, background });
  }

  /** Back to the 2D view. */
  endXr() {
    return this.request("xr.end");
  }

  /**
   * Send the head's pose for the next frames (no answer: the frames rendered from it carry its poseId).
   * `time` is its predicted display time (ms, this page's clock), `predictMs` how far past it the server
   * should predict, `head` {position, orientation}, `views` [left, right] {eye, position, orientation,
   * projection}, in the scene's world space. Returns the poseId, or null when not connected.
   */
  sendXrPose({ time, predictMs = 0, head, views }) {
    const channel = this.channel;
    if (!this.connected || !channel || channel.readyState !== "open") return null;
    this._poseId += 1;
    const message = { v: 1, type: "xr.pose", poseId: this._poseId, time, predictMs, head, views };
    this._poses.set(message.poseId, performance.now());
    if (this._poses.size > 200) this._poses.delete(this._poses.keys().next().value);
    channel.send(JSON.stringify(message));
    return message.poseId;
  }

  // ---- entities (v2) --------------------------------------------------------------------------------------
  /** Every entity, parents before their children: [entity]. A big scene is read in pages (an answer is
   * bounded to one data-channel message); see getScenePage to read only part of it. */
  async getScene({ pageSize = SCENE_PAGE } = {}) {
    const entities = [];
    for (;;) {
      const page = await this.getScenePage({ offset: entities.length, limit: pageSize });
      entities.push(...page.entities);
      if (!page.entities.length || entities.length >= page.total) return entities;
    }
  }

  /** One page of the scene's entities in hierarchy order: `{entities, total, offset}`. */
  async getScenePage({ offset = 0, limit = SCENE_PAGE } = {}) {
    const answer = await this.request("scene.get", { offset, limit });
    return { entities: answer.entities, total: answer.total, offset: answer.offset };
  }

  /** `{name, parent, position, rotation, scale}`, all optional; resolves with the entity. */
  async createEntity(properties = {}) {
    return (await this.request("entity.create", properties)).entity;
  }

  async getEntity(entity) {
    return (await this.request("entity.get", { entity })).entity;
  }

  /** `{parent (null: a root), enabled, name, position, rotation, scale}` or `{transform}`; resolves with it. */
  async setEntity(entity, changes) {
    return (await this.request("entity.set", { ...changes, entity })).entity;
  }

  /** Destroys the entity and its subtree; resolves with the destroyed ids. */
  async destroyEntity(entity) {
    return (await this.request("entity.destroy", { entity })).destroyed;
  }

  /** `{min, max}` in "world" (default) or "local" space, or null for an entity with nothing to bound. */
  async getBounds(entity, space = "world") {
    const answer = await this.request("entity.bounds", { entity, space });
    return answer.min && answer.max ? { min: answer.min, max: answer.max } : null;
  }

  /** The entity's metadata (glTF extras), `{key: value}`. */
  async getMetadata(entity) {
    return (await this.request("entity.metadata", { entity })).metadata;
  }

  // ---- components (v2) ------------------------------------------------------------------------------------
  /** Resolves with `{entity, component, properties}`. */
  createComponent(entity, component, properties = {}) {
    return this.request("component.create", { entity, component, properties }).then(componentOf);
  }

  setComponent(entity, component, properties) {
    return this.request("component.set", { entity, component, properties }).then(componentOf);
  }

  getComponent(entity, component) {
    return this.request("component.get", { entity, component }).then(componentOf);
  }

  async destroyComponent(entity, component) {
    await this.request("component.destroy", { entity, component });
  }

  /**
   * Set an entity's HierarchicalStateOverride, creating it when it has none. Flags (hidden, seeThrough,
   * selected, tint, disableCollision, useCutPlaneFilterMask) take true (ForceOn), false (ForceOff), null
   * (InheritFromParent) or the OverrideState names; `tintColor` and `cutPlaneFilterMask` as they are.
   */
  async setStateOverride(entity, state) {
    const properties = { ...state };
    for (const flag of STATE_FLAGS) if (flag in properties) properties[flag] = overrideValue(properties[flag]);
    try {
      return await this.setComponent(entity, ComponentType.StateOverride, properties);
    } catch (err) {
      if (!(err instanceof RemoteRenderingError) || err.code !== "ComponentNotFound") throw err;
      return this.createComponent(entity, ComponentType.StateOverride, properties);
    }
  }

  /** Remove an entity's state override; resolves false when it had none. */
  async clearStateOverride(entity) {
    try {
      await this.destroyComponent(entity, ComponentType.StateOverride);
      return true;
    } catch (err) {
      if (err instanceof RemoteRenderingError && err.code === "ComponentNotFound") return false;
      throw err;
    }
  }

  // ---- materials and textures (v2) ------------------------------------------------------------------------
  /** The materials of an entity's mesh parts: `{parts: [{part, material}], materials: [material]}`. */
  async listMaterials(entity) {
    const answer = await this.request("material.list", { entity });
    return { parts: answer.parts, materials: answer.materials };
  }

  async getMaterial(material) {
    return (await this.request("material.get", { material })).material;
  }

  /** Change a material everywhere it is used; resolves with the material. */
  async setMaterial(material, properties) {
    return (await this.request("material.set", { material, properties })).material;
  }

  /** `kind`: "pbr" or "color" (unlit); resolves with the new material. */
  async createMaterial(kind, { name, properties } = {}) {
    return (await this.request("material.create", { kind, name, properties })).material;
  }

  /** Put a material on one part of one entity's mesh; resolves like listMaterials. */
  async setMeshMaterial(entity, part, material) {
    const answer = await this.request("mesh.setMaterial", { entity, part, material });
    return { parts: answer.parts, materials: answer.materials };
  }

  /** Resolves with `{texture, width, height, url}`. */
  loadTexture(url, { timeoutMs = LOAD_TIMEOUT_MS } = {}) {
    return this.request("texture.load", { url }, { timeoutMs });
  }

  // ---- sky, outline, shell (v2) ---------------------------------------------------------------------------
  /** A URL ("builtin://NAME" or an image) or six face URLs (+X, -X, +Y, -Y, +Z, -Z); resolves with its name. */
  async setSky(source, { timeoutMs = LOAD_TIMEOUT_MS } = {}) {
    const fields = Array.isArray(source) ? { faces: source } : { url: source };
    return (await this.request("sky.set", fields, { timeoutMs })).sky;
  }

  /** `{skies: [names], current}`. */
  async listSkies() {
    const answer = await this.request("sky.list");
    return { skies: answer.skies, current: answer.current };
  }

  /** `{color, pulseRate, pulseIntensity}`, each optional; resolves with the settings in effect. */
  setOutline(settings) {
    return this.request("outline.set", settings).then(({ color, pulseRate, pulseIntensity }) => ({ color, pulseRate, pulseIntensity }));
  }

  /** `{desaturation, opacity}`, each optional; resolves with the settings in effect. */
  setShell(settings) {
    return this.request("shell.set", settings).then(({ desaturation, opacity }) => ({ desaturation, opacity }));
  }

  /** `{pointSizeScale, pointBudget}`, each optional (ARR's PointCloudSettings); resolves with the settings. */
  setPointCloud(settings) {
    return this.request("pointCloud.set", settings).then(({ pointSizeScale, pointBudget }) => ({ pointSizeScale, pointBudget }));
  }

  // ---- spatial queries (v2) -------------------------------------------------------------------------------
  /** `{origin, direction, maxDistance, mode ("closest" | "any" | "all"), maxHits}`; resolves with the hits. */
  async rayCast(ray) {
    return (await this.request("raycast", ray)).hits;
  }

  /** Entities whose triangles meet the box; resolves with their ids. */
  async queryBox(min, max, { maxResults } = {}) {
    return (await this.request("query.box", { min, max, maxResults })).entities;
  }

  async querySphere(center, radius, { maxResults } = {}) {
    return (await this.request("query.sphere", { center, radius, maxResults })).entities;
  }

  async queryOrientedBox(center, halfExtents, rotation = [0, 0, 0, 1], { maxResults } = {}) {
    return (await this.request("query.orientedBox", { center, halfExtents, rotation, maxResults })).entities;
  }
}

function componentOf({ entity, component, properties }) {
  return { entity, component, properties };
}

/** ARR-style entry point: `await RemoteRendering.connect({endpoint, accountId, accountToken, sessionId, video})`. */
export const RemoteRendering = Object.freeze({
  /** Connect to a session; resolves with its RenderingConnection (its session is `connection.session`). */
  connect({ video, timeoutMs, requestTimeoutMs, pingIntervalMs, videoSettings, ...sessionOptions }) {
    const session = new RenderingSession(sessionOptions);
    const options = { timeoutMs, requestTimeoutMs, pingIntervalMs, video: videoSettings };
    for (const key of Object.keys(options)) if (options[key] === undefined) delete options[key];
    return session.connect(video, options);
  },
});
