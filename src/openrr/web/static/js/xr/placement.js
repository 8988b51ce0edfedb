// Where the scene stands in the headset's space: scene = t + k · R(q) · xr (k: scene units per metre).
// The viewer opens with the model in front of the user at a comfortable size; grabbing moves it.

import { fromRotationTranslation, quatMultiply, rotationOf, translationOf } from "./math.js";

const IN_FRONT_M = 1.5; // the model's centre this far ahead of the head when the session starts
const BELOW_EYES_M = 0.3; // ... and this far below the eyes
const LARGEST_RADIUS_M = 0.6; // a bigger model is shown scaled down to this radius

function rotate(q, v) {
  const m = fromRotationTranslation(q, [0, 0, 0]);
  return [
    m[0] * v[0] + m[4] * v[1] + m[8] * v[2],
    m[1] * v[0] + m[5] * v[1] + m[9] * v[2],
    m[2] * v[0] + m[6] * v[1] + m[10] * v[2],
  ];
}

function conjugate(q) {
  return [-q[0], -q[1], -q[2], q[3]];
}

export class Placement {
  constructor(k = 1, q = [0, 0, 0, 1], t = [0, 0, 0]) {
    this.k = k;
    this.q = q;
    this.t = t;
  }

  /** The placement that puts a scene of `bounds` ({min, max} or null) in front of a head at `headMatrix`. */
  static inFrontOf(headMatrix, bounds) {
    const centre = bounds ? bounds.min.map((v, i) => (v + bounds.max[i]) / 2) : [0, 0, 0];
    const radius = bounds ? Math.hypot(...bounds.max.map((v, i) => v - bounds.min[i])) / 2 : 1;
    const k = Math.max(1, radius / LARGEST_RADIUS_M);
    const head = translationOf(headMatrix);
    const heading = Math.atan2(headMatrix[8], headMatrix[10]); // about +Y; 0: looking down -Z
    const forward = [-Math.sin(heading), 0, -Math.cos(heading)];
    const anchor = [head[0] + forward[0] * IN_FRONT_M, head[1] - BELOW_EYES_M, head[2] + forward[2] * IN_FRONT_M];
    // The user looks at the model's front (+Z side): R turns the user's heading to -Z.
    const q = [0, Math.sin(-heading / 2), 0, Math.cos(-heading / 2)];
    const rotated = rotate(q, anchor);
    const t = centre.map((c, i) => c - k * rotated[i]);
    return new Placement(k, q, t);
  }

  /** A pose of the headset's space (a rigid 4x4) as {position, orientation} in the scene. */
  toScene(matrix) {
    const p = rotate(this.q, translationOf(matrix));
    return {
      position: p.map((v, i) => this.t[i] + this.k * v),
      orientation: quatMultiply(this.q, rotationOf(matrix)),
    };
  }

  /** xr → scene as a 4x4 matrix. */
  matrix() {
    const m = fromRotationTranslation(this.q, this.t);
    for (let i = 0; i < 11; i++) if (i % 4 !== 3) m[i] *= this.k;
    return m;
  }

  /** scene → xr as a 4x4 matrix. */
  inverse() {
    const qi = conjugate(this.q);
    const back = rotate(qi, this.t).map((v) => -v / this.k);
    const m = fromRotationTranslation(qi, back);
    for (let i = 0; i < 11; i++) if (i % 4 !== 3) m[i] /= this.k;
    return m;
  }

  /** The placement after a grab: the scene moves with the controller from `from` to `to` (rigid 4x4s in
   * the headset's space), i.e. scene = T · from · to⁻¹ · xr. */
  moved(from, to) {
    const qFrom = rotationOf(from);
    const qTo = rotationOf(to);
    const turn = quatMultiply(qFrom, conjugate(qTo)); // from · to⁻¹, rotation part
    const pFrom = translationOf(from);
    const pTo = translationOf(to);
    const shift = pFrom.map((v, i) => v - rotate(turn, pTo)[i]); // from · to⁻¹, translation part
    const q = quatMultiply(this.q, turn);
    const moved = rotate(this.q, shift);
    const t = this.t.map((v, i) => v + this.k * moved[i]);
    return new Placement(this.k, q, t);
  }
}
