// The scene API's tools in a headset, on a controller's buttons (the xr-standard gamepad mapping):
//   A / X (button 4): see-through on and off for the entity the controller selected last (ARR's shell);
//   B / Y (button 5): a measurement point where the controller's ray met the scene last; two points give
//                     their distance, a third starts a new measurement;
//   thumbstick press (button 3): cut the scene open where the ray met it (a CutPlane facing the user, on an
//                     entity of its own); pressed again, the cut goes.
// Selecting (the trigger, a pinch) and grabbing (the grip) are the session's own (session.js).
//
// Events on the viewer: "measure" {points: [scene, scene], distance (scene units)}, "tool" {tool, state}.

const SEE_THROUGH = 4;
const MEASURE = 5;
const CUT = 3;

export class XrTools {
  /** @param {EventTarget & {connection: object}} viewer the XrViewer */
  constructor(viewer) {
    this.viewer = viewer;
    this.measured = []; // scene points of the measurement under way (at most 2)
    this.cut = null; // the cut plane's entity id
    this.seeThrough = new Set(); // entities made see-through here
    this._pressed = new Map(); // input source -> pressed state of each button, last frame
  }

  /** Read the buttons of this frame's input sources; acts on presses (not on holds). */
  poll(inputSources, targets) {
    for (const source of inputSources) {
      const buttons = source.gamepad ? source.gamepad.buttons : [];
      const before = this._pressed.get(source) || [];
      const now = buttons.map((b) => b.pressed);
      this._pressed.set(source, now);
      for (const index of [SEE_THROUGH, MEASURE, CUT]) {
        if (now[index] && !before[index]) this._press(index, targets.get(source)).catch((err) => this._failed(err));
      }
    }
  }

  async _press(index, target) {
    const c = this.viewer.connection;
    if (index === SEE_THROUGH) {
      if (!target) return;
      const on = !this.seeThrough.has(target.entity);
      await c.setStateOverride(target.entity, { seeThrough: on ? true : null });
      if (on) this.seeThrough.add(target.entity);
      else this.seeThrough.delete(target.entity);
      this._emit("tool", { tool: "seeThrough", entity: target.entity, state: on });
    } else if (index === MEASURE) {
      if (!target) return;
      if (this.measured.length === 2) this.measured = [];
      this.measured.push(target.position);
      if (this.measured.length === 2) {
        const [a, b] = this.measured;
        const distance = Math.hypot(...a.map((v, i) => v - b[i]));
        this._emit("measure", { points: [a, b], distance });
      }
    } else if (this.cut !== null) {
      const entity = this.cut;
      this.cut = null;
      await c.destroyEntity(entity);
      this._emit("tool", { tool: "cut", state: false });
    } else if (target) {
      const entity = await c.createEntity({ name: "headset cut", position: target.position });
      this.cut = entity.id;
      const normal = target.direction.map((v) => -v); // the side facing the user is cut away
      await c.createComponent(entity.id, "CutPlane", { normal });
      this._emit("tool", { tool: "cut", state: true, entity: entity.id });
    }
  }

  _emit(type, detail) {
    this.viewer.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _failed(err) {
    this._emit("tool", { tool: "error", state: String(err) });
  }
}
