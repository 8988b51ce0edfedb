// Stereo for headsets in the browser: an immersive WebXR session (VR, or AR on pass-through and see-through
// devices) fed by the render server's stereo stream (protocol/xr.py).
//
// Each XR frame: the head's pose goes to the server (both eyes' poses and projections, in the scene's
// space through the model's Placement, with the display time and how far to predict), and the newest
// streamed picture is reprojected to the eyes' poses of this frame (reprojection.js), so the model stays
// fixed in the room while the next picture is on its way. Controllers and hands point and select (a ray
// cast through the scene API selects the entity they point at) and grab (the model follows the hand); their
// buttons carry the scene API's tools (tools.js: see-through, measure, cut).
//
// Events: "state" {state: "running" | "ended", reason}, "select" {hit (or null), ray}, "frame" {poseId,
// latencyMs}, and the tools' "measure" and "tool".

import { Placement } from "./placement.js";
import { Reprojection } from "./reprojection.js";
import { LocalContent } from "./local.js";
import { StereoFrames } from "./frames.js";
import { XrTools } from "./tools.js";
import { fromRotationTranslation, invertRigid, multiply, transformDirection, transformPoint, translationOf } from "./math.js";

const MAX_EYE = { width: 960, height: 1080 }; // what a CPU render server streams at; a GPU takes more
const RAY_M = 4.0;
const RAY_COLOUR = [0.2, 0.8, 1.0, 1.0];
const HIT_COLOUR = [1.0, 0.75, 0.1, 1.0];
const MEASURE_COLOUR = [0.3, 1.0, 0.4, 1.0];

/** Which immersive modes this browser offers: {vr, ar}. */
export async function immersiveModes() {
  const xr = globalThis.navigator && navigator.xr;
  if (!xr) return { vr: false, ar: false };
  const check = (mode) => xr.isSessionSupported(mode).catch(() => false);
  const [vr, ar] = await Promise.all([check("immersive-vr"), check("immersive-ar")]);
  return { vr, ar };
}

function evenWithin(value, most) {
  return Math.max(64, Math.min(most, Math.round(value / 2) * 2));
}

export class XrViewer extends EventTarget {
  /**
   * @param {object} options
   * @param {object} options.connection a connected RenderingConnection (openrr.js)
   * @param {HTMLVideoElement} options.video the element its stream plays in
   * @param {{width: number, height: number}} [options.maxEye] the largest eye picture to ask for
   */
  constructor({ connection, video, maxEye = MAX_EYE }) {
    super();
    this.connection = connection;
    this.video = video;
    this.maxEye = maxEye;
    this.session = null;
    this.placement = null;
    this.layout = null;
    this.frames = new StereoFrames();
    this.latencyMs = null; // pose -> photon, smoothed
    this.sendPoses = true; // tests stop the poses to watch the reprojection alone
    this.selected = null; // the entity id a controller selected last
    this.views = []; // this frame's views {eye, projection, matrix, viewport} (headset space), for tests
    this._hits = new Map(); // input source -> the point its ray meets (headset space)
    this._targets = new Map(); // input source -> {entity, position, direction} of its last hit (scene)
    this.tools = new XrTools(this);
    this._grabs = new Map(); // input source -> {from: grip pose at the start, placement}
    this._sentAt = new Map(); // poseId -> performance.now()
    this._newPicture = false;
    this._onFrame = (event) => this.frames.add(event.detail);
  }

  /** Enter "immersive-vr" or "immersive-ar"; resolves once the first stereo frame was asked for. */
  async start(mode) {
    if (this.session) throw new Error("an immersive session is already running");
    const ar = mode === "immersive-ar";
    const session = await navigator.xr.requestSession(mode, { optionalFeatures: ["local-floor", "hand-tracking"] });
    this.session = session;
    this.transparent = ar;
    const canvas = document.createElement("canvas");
    const gl = canvas.getContext("webgl2", { xrCompatible: true, alpha: ar, antialias: false });
    if (!gl) throw new Error("this browser has no WebGL2, which the headset view needs");
    this.gl = gl;
    session.updateRenderState({ baseLayer: new XRWebGLLayer(session, gl, { alpha: ar }) });
    this.space = await session.requestReferenceSpace("local-floor").catch(() => session.requestReferenceSpace("local"));
    this.reprojection = new Reprojection(gl);
    this.local = new LocalContent(gl);
    this.connection.addEventListener("frame", this._onFrame);
    session.addEventListener("end", () => this._ended("the immersive session ended"));
    session.addEventListener("select", (event) => this._select(event));
    session.addEventListener("squeezestart", (event) => this._grab(event, true));
    session.addEventListener("squeezeend", (event) => this._grab(event, false));
    this._watchVideo();
    // What the first frame says (an XRFrame is only valid inside its own callback): the eyes' size, the head.
    const first = await new Promise((resolve) =>
      session.requestAnimationFrame((t, frame) => {
        const pose = frame.getViewerPose(this.space);
        const viewport = pose ? session.renderState.baseLayer.getViewport(pose.views[0]) : null;
        resolve({ viewport, head: pose ? Float32Array.from(pose.transform.matrix) : null });
      }),
    );
    await this._begin(first);
    session.requestAnimationFrame((time, frame) => this._frame(time, frame));
    this.dispatchEvent(new CustomEvent("state", { detail: { state: "running", mode } }));
  }

  /** Leave the immersive session (the stream goes back to 2D). */
  async end() {
    if (this.session) await this.session.end().catch(() => {});
  }

  async _begin({ viewport, head }) {
    // The headset's own eye size, scaled down as a whole (square pixels) to fit maxEye.
    const [w, h] = viewport ? [viewport.width, viewport.height] : [this.maxEye.width, this.maxEye.height];
    const fit = Math.min(1, this.maxEye.width / w, this.maxEye.height / h);
    const eye = { width: evenWithin(w * fit, this.maxEye.width), height: evenWithin(h * fit, this.maxEye.height) };
    this.layout = await this.connection.startXr({
      eye,
      depth: true,
      background: this.transparent ? "transparent" : "opaque",
    });
    const standing = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1.6, 0, 1]); // no pose yet
    this.placement = Placement.inFrontOf(head || standing, await this._bounds());
  }

  /** The scene's bounds: the union of its root entities' world bounds (null for an empty scene). */
  async _bounds() {
    const entities = await this.connection.getScene().catch(() => []);
    let bounds = null;
    for (const entity of entities.filter((e) => e.parent === null)) {
      const b = await this.connection.getBounds(entity.id).catch(() => null);
      if (!b) continue;
      bounds = bounds
        ? { min: bounds.min.map((v, i) => Math.min(v, b.min[i])), max: bounds.max.map((v, i) => Math.max(v, b.max[i])) }
        : b;
    }
    return bounds;
  }

  _watchVideo() {
    const video = this.video;
    if (!("requestVideoFrameCallback" in video)) return;
    const onPicture = (now, metadata) => {
      if (!this.session) return;
      const message = this.frames.presented(metadata);
      if (message) {
        this._newPicture = true;
        const sent = this._sentAt.get(message.poseId);
        if (sent !== undefined) {
          const ms = performance.now() - sent;
          this.latencyMs = this.latencyMs === null ? ms : this.latencyMs * 0.8 + ms * 0.2;
          this.dispatchEvent(new CustomEvent("frame", { detail: { poseId: message.poseId, latencyMs: ms } }));
        }
      }
      video.requestVideoFrameCallback(onPicture);
    };
    video.requestVideoFrameCallback(onPicture);
  }

  _frame(time, frame) {
    const session = this.session;
    if (!session) return;
    session.requestAnimationFrame((t, f) => this._frame(t, f));
    const pose = frame.getViewerPose(this.space);
    if (!pose) return;
    this._updateGrabs(frame);
    if (this.sendPoses) this._sendPose(time, pose);
    const gl = this.gl;
    const layer = session.renderState.baseLayer;
    gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
    gl.clearColor(0, 0, 0, this.transparent ? 0 : 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    if (this._newPicture || !this.frames.current) {
      if (this.video.readyState >= 2) this.reprojection.upload(this.video);
      this._newPicture = false;
      if (!this.frames.current) this.frames.current = this.frames.newest();
    }
    const shown = this.frames.current;
    this.tools.poll(session.inputSources, this._targets);
    const toScene = this.placement.inverse();
    const rays = this._rays(frame);
    const cursors = [...this._hits.values()].map((position) => ({ position, colour: HIT_COLOUR }));
    const marks = this.tools.measured.map((p) => transformPoint(toScene, p));
    for (const position of marks) cursors.push({ position, colour: MEASURE_COLOUR });
    if (marks.length === 2) {
      const span = marks[1].map((v, i) => v - marks[0][i]);
      const length = Math.hypot(...span);
      if (length > 0) {
        rays.push({ origin: marks[0], direction: span.map((v) => v / length), length, colour: MEASURE_COLOUR });
      }
    }
    this.views = [];
    pose.views.forEach((view, index) => {
      const vp = layer.getViewport(view);
      this.views.push({
        eye: view.eye,
        projection: Array.from(view.projectionMatrix),
        matrix: Array.from(view.transform.matrix),
        viewport: { x: vp.x, y: vp.y, width: vp.width, height: vp.height },
      });
      gl.viewport(vp.x, vp.y, vp.width, vp.height);
      const eyeProj = multiply(view.projectionMatrix, invertRigid(view.transform.matrix)); // xr -> clip
      const eyeIndex = view.eye === "right" ? 1 : 0;
      if (shown && shown.xr) {
        const rendered = shown.xr.views[eyeIndex];
        this.reprojection.draw(eyeIndex, this.layout, shown.xr, multiply(eyeProj, toScene), {
          transparent: this.transparent,
          renderEye: fromRotationTranslation(rendered.orientation, rendered.position),
          unitsPerMetre: this.placement.k,
        });
      }
      this.local.draw(eyeProj, translationOf(view.transform.matrix), rays, cursors);
    });
  }

  _sendPose(time, pose) {
    const views = pose.views
      .filter((view) => view.eye === "left" || view.eye === "right")
      .sort((a, b) => (a.eye === "left" ? -1 : 1) - (b.eye === "left" ? -1 : 1))
      .map((view) => ({
        eye: view.eye,
        ...this.placement.toScene(view.transform.matrix),
        projection: Array.from(view.projectionMatrix),
      }));
    if (views.length !== 2) return; // a monoscopic view (a phone's AR): not this mode
    const poseId = this.connection.sendXrPose({
      time,
      predictMs: Math.min(250, Math.max(0, this.latencyMs || 0)),
      head: this.placement.toScene(pose.transform.matrix),
      views,
    });
    if (poseId !== null) {
      this._sentAt.set(poseId, performance.now());
      if (this._sentAt.size > 300) this._sentAt.delete(this._sentAt.keys().next().value);
    }
  }

  _rays(frame) {
    const rays = [];
    for (const source of this.session.inputSources) {
      if (source.targetRayMode === "gaze" || !source.targetRaySpace) continue;
      const ray = frame.getPose(source.targetRaySpace, this.space);
      if (!ray) continue;
      const m = ray.transform.matrix;
      const origin = translationOf(m);
      const direction = transformDirection(m, [0, 0, -1]);
      const hit = this._hits.get(source);
      const length = hit ? Math.hypot(...hit.map((v, i) => v - origin[i])) : RAY_M;
      rays.push({ origin, direction, length, colour: RAY_COLOUR });
    }
    return rays;
  }

  async _select(event) {
    const ray = event.frame.getPose(event.inputSource.targetRaySpace, this.space);
    if (!ray || !this.placement) return;
    const toScene = this.placement.matrix();
    const m = ray.transform.matrix;
    const origin = transformPoint(toScene, translationOf(m));
    const along = transformDirection(toScene, transformDirection(m, [0, 0, -1]));
    const length = Math.hypot(...along);
    const direction = along.map((v) => v / length);
    const detail = { ray: { origin, direction }, hit: null };
    try {
      const hits = await this.connection.rayCast({ origin, direction, maxDistance: 1000 * this.placement.k });
      detail.hit = hits[0] || null;
    } catch (err) {
      detail.error = String(err);
    }
    if (detail.hit) {
      this._hits.set(event.inputSource, transformPoint(this.placement.inverse(), detail.hit.position));
      this._targets.set(event.inputSource, { entity: detail.hit.entity, position: detail.hit.position, direction });
      if (this.selected !== null && this.selected !== detail.hit.entity) {
        await this.connection.setStateOverride(this.selected, { selected: null }).catch(() => {});
      }
      this.selected = detail.hit.entity;
      await this.connection.setStateOverride(detail.hit.entity, { selected: true }).catch(() => {});
    } else {
      this._hits.delete(event.inputSource);
      this._targets.delete(event.inputSource);
    }
    this.dispatchEvent(new CustomEvent("select", { detail }));
  }

  _grab(event, starting) {
    const source = event.inputSource;
    if (!starting) {
      this._grabs.delete(source);
      return;
    }
    const space = source.gripSpace || source.targetRaySpace;
    const grip = event.frame.getPose(space, this.space);
    if (grip) this._grabs.set(source, { space, from: grip.transform.matrix, placement: this.placement });
  }

  _updateGrabs(frame) {
    for (const grab of this._grabs.values()) {
      const now = frame.getPose(grab.space, this.space);
      if (now) this.placement = grab.placement.moved(grab.from, now.transform.matrix);
    }
  }

  async _ended(reason) {
    if (!this.session) return;
    this.session = null;
    this.connection.removeEventListener("frame", this._onFrame);
    await this.connection.endXr().catch(() => {});
    this.dispatchEvent(new CustomEvent("state", { detail: { state: "ended", reason } }));
  }
}
