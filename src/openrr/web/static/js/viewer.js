// The viewer page: connects to one Ready session, shows its video, steers the camera, loads models,
// shows live stats, and says plainly what went wrong when something does. The scene tools (entity tree,
// selection, materials, cut plane, sky, measurement) are modules of their own under tools/; this module
// wires them to the page and the connection. The session's REST calls go through api.js; the connection
// is openrr.js's, as any embedding page's is, and the tools use nothing else.

import { Api, ApiError } from "./api.js";
import { goToSignIn, requireAuth } from "./auth.js";
import { attachControls } from "./input.js";
import { ConnectionStatus, RemoteRenderingError, RenderingSession } from "./openrr.js";
import { createSceneTools } from "./tools/scene-tools.js";
import { byId, errorText, formatBitrate, formatMinutes, formatMs, showMessage, sleep } from "./ui.js";
import { XrViewer, immersiveModes } from "./xr/session.js";

const WAIT_POLL_MS = 2000; // while the session is Starting
const WATCH_MS = 10000; // while connected: lease and status
// What a headset's browser asks for: both eyes with their depth are a 1920x2160 picture (README: Headsets).
const HEADSET_BITRATE = 12_000_000;
// The control plane's root: this module is served at <root>/ui/js/viewer.js (relative, for path prefixes).
const ROOT = new URL("../../", import.meta.url);

const auth = requireAuth();
if (auth) start(auth);

function start({ accountId, token }) {
  const api = new Api(accountId, token);
  const sessionId = new URLSearchParams(location.search).get("session") || "";
  const rendering = sessionId
    ? new RenderingSession({ endpoint: ROOT, accountId, accountToken: token, sessionId })
    : null;

  const status = byId("status");
  const video = byId("video");
  const surface = byId("surface");
  const placeholder = byId("placeholder");
  const stats = byId("stats");
  const lease = byId("lease");
  const reconnectButton = byId("reconnect");
  const disconnectButton = byId("disconnect");
  const modelLoad = byId("model-load");
  const cameraButtons = [...document.querySelectorAll("[data-camera]")];
  const xrButtons = { "immersive-vr": byId("enter-vr"), "immersive-ar": byId("enter-ar") };

  let client = null;
  let headset = null; // the immersive session's XrViewer while one runs
  let attempt = 0; // every connect() bumps it; a continuation of an older attempt gives up
  let watchTimer = 0;
  let inputLatency = null; // smoothed input → frame, ms
  let pingRtt = null; // data-channel ping round trip, ms
  let rtpRtt = null; // RTP round trip from the server's stats, ms (null until the first RTCP report)

  byId("session-id").textContent = sessionId || "–";
  document.title = `${sessionId || "Viewer"} · openrr`;

  // ---- state ------------------------------------------------------------------------------------------
  /** state: idle | checking | waiting | connecting | connected | lost | ended | failed */
  function setState(state, text, kind = "info") {
    document.body.dataset.state = state;
    showMessage(status, text, kind);
    const live = state === "connected";
    placeholder.hidden = live;
    placeholder.textContent = live ? "" : text;
    stats.hidden = !live || byId("toggle-stats").getAttribute("aria-pressed") !== "true";
    for (const button of cameraButtons) button.disabled = !live;
    for (const button of Object.values(xrButtons)) button.disabled = !live || headset !== null;
    modelLoad.disabled = !live;
    disconnectButton.disabled = !(live || state === "connecting" || state === "waiting" || state === "checking");
    reconnectButton.textContent = state === "idle" && !client ? "Connect" : "Reconnect";
    reconnectButton.classList.toggle("primary", !live);
  }

  function dropClient() {
    clearTimeout(watchTimer);
    if (headset) headset.end();
    if (client) client.disconnect();
    if (rendering && rendering.connection) rendering.connection.disconnect(); // one still connecting
    client = null;
    video.srcObject = null;
    tools.reset();
  }

  // ---- connecting -------------------------------------------------------------------------------------
  async function connect() {
    const mine = ++attempt;
    dropClient();
    if (!sessionId) {
      setState("failed", "No session was given. Open a session's viewer from the dashboard.", "error");
      return;
    }
    setState("checking", `Looking up session ${sessionId}…`);
    let session;
    for (;;) {
      try {
        session = await api.getSession(sessionId);
      } catch (err) {
        if (mine === attempt) apiFailure(err);
        return;
      }
      if (mine !== attempt) return;
      if (session.status !== "Starting") break;
      setState(
        "waiting",
        `Session ${sessionId} is not ready yet: it is starting. The viewer connects as soon as it is Ready.`,
        "warn",
      );
      await sleep(WAIT_POLL_MS);
      if (mine !== attempt) return;
    }
    if (session.status !== "Ready") {
      ended(session);
      return;
    }
    showLease(session);
    setState("connecting", `Connecting to the render server of session ${sessionId}…`);
    inputLatency = pingRtt = rtpRtt = null;
    for (const cell of stats.querySelectorAll("dd")) cell.textContent = "–";
    let c;
    try {
      const { vr, ar } = await immersiveModes();
      c = await rendering.connect(video, vr || ar ? { video: { bitrate: HEADSET_BITRATE } } : {});
    } catch (err) {
      if (mine === attempt) await connectFailed(err, mine);
      return;
    }
    if (mine !== attempt) {
      c.disconnect();
      return;
    }
    client = c;
    c.addEventListener("stats", (event) => showStats(event.detail));
    c.addEventListener("pong", (event) => {
      pingRtt = event.detail.rttMs;
      showRoundTrip();
    });
    c.addEventListener("latency", (event) => {
      const ms = event.detail.inputMs;
      inputLatency = inputLatency === null ? ms : inputLatency * 0.7 + ms * 0.3;
      byId("stat-input").textContent = formatMs(inputLatency);
    });
    const onStatus = () => {
      if (client === c && c.status === ConnectionStatus.Disconnected) connectionEnded(c.disconnectReason);
    };
    c.addEventListener("connectionstatuschanged", onStatus);
    onStatus(); // it ended before the listener was there (between the hello and this line)
    if (client !== c) return;
    setState("connected", `Connected to session ${sessionId}.`, "ok");
    tools.connected(c);
    watch(mine);
  }

  /** The session ended (Stopped, Expired, Error): say how. */
  function ended(session) {
    dropClient();
    lease.textContent = "";
    const id = session.id || sessionId;
    if (session.status === "Stopped") {
      setState("ended", `Session ${id} was stopped. Create a new session on the dashboard to go on.`, "warn");
    } else if (session.status === "Expired") {
      setState("ended", `The lease of session ${id} expired, so the session has ended. Create a new session on the dashboard to go on.`, "warn");
    } else if (session.status === "Error") {
      const why = session.error ? `${session.error.code}: ${session.error.message}` : "no reason given";
      setState("ended", `Session ${id} failed (${why}).`, "error");
    } else {
      setState("failed", `Session ${id} is ${session.status}.`, "error");
    }
  }

  /** What an API error means here. */
  function apiFailure(err) {
    dropClient();
    if (err instanceof ApiError && err.status === 401) {
      goToSignIn("expired");
      return;
    }
    if (err instanceof ApiError && (err.code === "SessionNotFound" || err.status === 404)) {
      setState("failed", `There is no session ${sessionId} in this account.`, "error");
    } else if (err instanceof ApiError && err.status === 400) {
      setState("failed", `"${sessionId}" is not a valid session id.`, "error");
    } else {
      setState("failed", `The session could not be looked up: ${errorText(err)}`, "error");
    }
  }

  async function connectFailed(err, mine) {
    dropClient();
    if (err instanceof RemoteRenderingError && err.status === 401) {
      goToSignIn("expired");
      return;
    }
    if (err instanceof RemoteRenderingError && err.code === "ClientAlreadyConnected") {
      setState(
        "failed",
        "Another client is connected to this session. Only one client can be connected at a time: " +
          "close the other viewer (or client), then press Reconnect.",
        "error",
      );
      return;
    }
    // Whatever else it was, the session's state may explain it (stopped or expired meanwhile).
    try {
      const session = await api.getSession(sessionId);
      if (mine !== attempt) return;
      if (session.status === "Starting") {
        connect();
        return;
      }
      if (session.status !== "Ready") {
        ended(session);
        return;
      }
    } catch {
      /* report the original error below */
    }
    if (mine !== attempt) return;
    let text;
    const code = err instanceof RemoteRenderingError ? err.code : "";
    if (code === "RenderServerUnreachable") {
      text = "The session's render server could not be reached from the service. Press Reconnect to try again.";
    } else if (code === "RenderServerTimeout") {
      text = "The session's render server did not answer in time. Press Reconnect to try again.";
    } else if (err instanceof RemoteRenderingError && err.status === 503) {
      text = `The render server is not accepting clients right now (${err.message}). Press Reconnect to try again.`;
    } else if (code === "Timeout") {
      text = `${err.message} The video connection could not be set up; if the render server is on another network it needs STUN or TURN (openrr serve --stun-url/--turn-url).`;
    } else {
      text = `Could not connect to the render server: ${errorText(err)}`;
    }
    setState("failed", text, "error");
  }

  /** The connection ended after it was up (bye, ICE failure, data channel closed): `{reason, code}`. */
  async function connectionEnded({ reason, code }) {
    const mine = attempt;
    const bye = code === "ServerEnded";
    clearTimeout(watchTimer);
    setState("checking", `${reason} Checking the session…`, "warn");
    try {
      const session = await api.getSession(sessionId);
      if (mine !== attempt) return;
      if (session.status !== "Ready") {
        ended(session);
        return;
      }
    } catch (err) {
      if (mine !== attempt) return;
      if (err instanceof ApiError && err.status === 401) {
        goToSignIn("expired");
        return;
      }
    }
    dropClient();
    setState(
      "lost",
      bye
        ? `${reason} Press Reconnect to connect again.`
        : `The connection to the render server was lost. ${reason} Press Reconnect to connect again.`,
      "error",
    );
  }

  /** While connected: keep the lease current and notice a session that ended without a bye. */
  function watch(mine) {
    clearTimeout(watchTimer);
    watchTimer = setTimeout(async () => {
      if (mine !== attempt || !client || !client.connected) return;
      try {
        const session = await api.getSession(sessionId);
        if (mine !== attempt) return;
        if (session.status !== "Ready") {
          ended(session);
          return;
        }
        showLease(session);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          goToSignIn("expired");
          return;
        }
      }
      watch(mine);
    }, WATCH_MS);
  }

  function showLease(session) {
    lease.textContent =
      typeof session.elapsedTimeMinutes === "number"
        ? `· lease ${formatMinutes(session.elapsedTimeMinutes)} of ${formatMinutes(session.maxLeaseTimeMinutes)} used`
        : "";
  }

  // ---- stats ------------------------------------------------------------------------------------------
  let shownFrames = 0;
  let shownFps = null;
  function countFrames() {
    if (typeof video.requestVideoFrameCallback !== "function") return;
    const tick = () => {
      shownFrames += 1;
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
    setInterval(() => {
      shownFps = shownFrames;
      shownFrames = 0;
    }, 1000);
  }
  countFrames();

  /** The round trip the server measures (RTP), or until it has one the data channel's ping. */
  function showRoundTrip() {
    byId("stat-rtt").textContent = formatMs(rtpRtt ?? pingRtt);
  }

  function showStats(s) {
    const sent = typeof s.fps === "number" ? s.fps.toFixed(0) : "–";
    byId("stat-fps").textContent = shownFps === null ? sent : `${sent} sent, ${shownFps} shown`;
    byId("stat-bitrate").textContent = formatBitrate(s.bitrate);
    rtpRtt = typeof s.rttMs === "number" ? s.rttMs : null;
    showRoundTrip();
    byId("stat-video").textContent = s.width && s.height ? `${s.width}×${s.height} ${s.codec || ""}`.trim() : "–";
    byId("stat-polygons").textContent =
      typeof s.polygons === "number" ? s.polygons.toLocaleString() : "–";
    if (s.limitExceeded && s.limitMessage) showMessage(status, s.limitMessage, "warn");
  }

  byId("toggle-stats").addEventListener("click", (event) => {
    const on = event.currentTarget.getAttribute("aria-pressed") !== "true";
    event.currentTarget.setAttribute("aria-pressed", String(on));
    stats.hidden = !on || document.body.dataset.state !== "connected";
  });

  // ---- camera, picking --------------------------------------------------------------------------------
  function report(err) {
    if (err instanceof RemoteRenderingError && err.code === "ConnectionClosed") return;
    showMessage(status, `The render server refused a command: ${errorText(err)}`, "error");
  }

  function send(promise) {
    promise.catch(report);
  }

  function live() {
    return client && client.connected ? client : null;
  }

  const tools = createSceneTools({ client: live, report, surface });

  /** The picture's rectangle inside the <video> element (object-fit: contain leaves bars). */
  function pictureRect() {
    const box = video.getBoundingClientRect();
    const vw = video.videoWidth;
    const vh = video.videoHeight;
    if (!vw || !vh || !box.width || !box.height) return null;
    const scale = Math.min(box.width / vw, box.height / vh);
    const width = vw * scale;
    const height = vh * scale;
    return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width, height };
  }

  /** A click or tap in the picture: measure mode takes its world point, else it selects what is there. */
  async function pickAt(clientX, clientY) {
    const c = live();
    const rect = pictureRect();
    if (!c || !rect) return;
    const x = (clientX - rect.left) / rect.width;
    const y = (clientY - rect.top) / rect.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return;
    let result;
    try {
      result = await c.pick(x, y);
    } catch (err) {
      report(err);
      return;
    }
    if (c === live()) tools.picked(result);
  }

  attachControls(
    surface,
    {
      orbit: (yaw, pitch) => live() && send(client.orbit(yaw, pitch)),
      pan: (dx, dy) => live() && send(client.pan(dx, dy)),
      zoom: (factor) => live() && send(client.zoom(factor)),
      frame: () => live() && send(client.frameScene()),
      pick: (x, y) => pickAt(x, y),
    },
    () => pictureRect() || { width: 0, height: 0 },
  );

  const CAMERA = {
    left: (c) => c.orbit(15, 0),
    right: (c) => c.orbit(-15, 0),
    up: (c) => c.orbit(0, -15),
    down: (c) => c.orbit(0, 15),
    in: (c) => c.zoom(1.25),
    out: (c) => c.zoom(0.8),
    frame: (c) => c.frameScene(),
  };
  for (const button of cameraButtons) {
    button.addEventListener("click", () => {
      const c = live();
      if (c) send(CAMERA[button.dataset.camera](c));
    });
  }

  // ---- headsets (WebXR) -------------------------------------------------------------------------------
  // Offered only where the browser has an immersive mode (a headset's browser); the 2D view stays as it is.
  immersiveModes().then(({ vr, ar }) => {
    xrButtons["immersive-vr"].hidden = !vr;
    xrButtons["immersive-ar"].hidden = !ar;
  });
  for (const [mode, button] of Object.entries(xrButtons)) {
    button.addEventListener("click", async () => {
      const c = live();
      if (!c || headset) return;
      const viewer = (headset = new XrViewer({ connection: c, video }));
      globalThis.openrrXr = viewer; // for the console and the browser tests
      for (const b of Object.values(xrButtons)) b.disabled = true;
      viewer.addEventListener("measure", (event) => {
        const [a, b] = event.detail.points.map((p) => `(${p.map((v) => v.toFixed(3)).join(", ")})`);
        showMessage(status, `Measured in the headset: ${event.detail.distance.toFixed(3)} from ${a} to ${b}.`, "ok");
      });
      viewer.addEventListener("state", (event) => {
        if (event.detail.state !== "ended") return;
        if (headset === viewer) headset = null;
        for (const b of Object.values(xrButtons)) b.disabled = !live();
      });
      try {
        await viewer.start(mode); // the click is the user gesture requestSession needs
        showMessage(status, "In the headset. Take it off or press its menu button to come back.", "ok");
      } catch (err) {
        if (headset === viewer) headset = null;
        await viewer.end();
        for (const b of Object.values(xrButtons)) b.disabled = !live();
        showMessage(status, `The headset view could not start: ${errorText(err)}`, "error");
      }
    });
  }

  // ---- buttons, page life -----------------------------------------------------------------------------
  reconnectButton.addEventListener("click", () => connect());
  disconnectButton.addEventListener("click", () => {
    attempt += 1;
    dropClient();
    lease.textContent = "";
    setState("idle", "Disconnected. Press Connect to connect again.");
  });
  // Leaving the page frees the session's one client slot at once (a closed peer connection says so).
  window.addEventListener("pagehide", () => {
    attempt += 1;
    dropClient();
  });

  connect();
}
