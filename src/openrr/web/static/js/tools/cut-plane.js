// The cut-plane tool: one CutPlane component on an entity of its own, made at the scene's centre or at the
// last picked point, its normal one of ±X/±Y/±Z; a slider moves the entity along the normal, Flip turns
// the normal round (the other side is cut away), Remove destroys the entity.

const AXES = { X: [1, 0, 0], Y: [0, 1, 0], Z: [0, 0, 1] };

/** The unit vector of "X", "-Y", ... */
function axisVector(axis) {
  const sign = axis.startsWith("-") ? -1 : 1;
  return AXES[axis.replace("-", "")].map((v) => v * sign);
}

function flipped(axis) {
  return axis.startsWith("-") ? axis.slice(1) : `-${axis}`;
}

/** The union of the world bounds of the scene's roots: `{center, extent}` (extent: half the diagonal). */
async function sceneBox(c) {
  const entities = await c.getScene();
  let min = null;
  let max = null;
  for (const root of entities.filter((e) => e.parent === null)) {
    const box = await c.getBounds(root.id);
    if (!box) continue;
    min = min ? min.map((v, i) => Math.min(v, box.min[i])) : box.min;
    max = max ? max.map((v, i) => Math.max(v, box.max[i])) : box.max;
  }
  if (!min) return null;
  const center = min.map((v, i) => (v + max[i]) / 2);
  const extent = Math.hypot(...max.map((v, i) => v - min[i])) / 2;
  return { center, extent };
}

/**
 * @param {object} options
 * @param {object} options.elements {normal (select), placeCenter, placePicked, offset (range), offsetOut
 *   (output), flip, remove, status} of the page
 * @param {() => object|null} options.client
 * @param {() => number[]|null} options.pickedPoint the world point of the last pick, or null
 * @param {(err: Error) => void} options.report
 * @param {() => void} options.onChange an entity was made or destroyed (the tree reads the scene again)
 */
export function createCutPlaneTool({ elements, client, pickedPoint, report, onChange }) {
  const { normal, placeCenter, placePicked, offset, offsetOut, flip, remove, status } = elements;
  let plane = null; // {entity, axis, origin, offset}
  let moving = Promise.resolve();
  let wanted = null; // the newest slider value not sent yet

  function show() {
    const live = Boolean(client());
    placeCenter.disabled = !live;
    placePicked.disabled = !live || !pickedPoint();
    offset.disabled = flip.disabled = remove.disabled = !plane;
    normal.disabled = !live;
    offsetOut.textContent = plane ? plane.offset.toFixed(3) : "–";
    status.textContent = plane
      ? `A cut plane at (${plane.origin.map((v) => v.toFixed(2)).join(", ")}) cuts away the ${plane.axis} side.`
      : "No cut plane.";
  }

  function positionOf(p) {
    const n = axisVector(p.axis);
    return p.origin.map((v, i) => v + n[i] * p.offset);
  }

  async function place(origin, extent) {
    const c = client();
    if (!c) return;
    try {
      if (plane) await destroy(c);
      const axis = normal.value;
      const entity = await c.createEntity({ name: "Cut plane", position: origin });
      plane = { entity: entity.id, axis, origin, offset: 0 };
      await c.createComponent(entity.id, "CutPlane", { normal: axis });
      const range = Math.max(extent, 1e-3);
      offset.min = String(-range);
      offset.max = String(range);
      offset.step = String(range / 200);
      offset.value = "0";
    } catch (err) {
      report(err);
    }
    show();
    onChange();
  }

  async function destroy(c) {
    const gone = plane;
    plane = null;
    offset.value = "0";
    await c.destroyEntity(gone.entity).catch((err) => {
      if (err.code !== "EntityNotFound") throw err;
    });
  }

  placeCenter.addEventListener("click", async () => {
    const c = client();
    if (!c) return;
    try {
      const box = await sceneBox(c);
      if (!box) {
        status.textContent = "The scene is empty: load a model first.";
        return;
      }
      await place(box.center, box.extent);
    } catch (err) {
      report(err);
    }
  });

  placePicked.addEventListener("click", async () => {
    const c = client();
    const point = pickedPoint();
    if (!c || !point) return;
    try {
      const box = await sceneBox(c);
      await place(point, box ? box.extent : 1);
    } catch (err) {
      report(err);
    }
  });

  // The slider sends its newest value once the previous move was answered (no flood while dragging).
  offset.addEventListener("input", () => {
    if (!plane) return;
    wanted = Number(offset.value);
    plane.offset = wanted;
    show();
    moving = moving.then(async () => {
      const c = client();
      if (wanted === null || !plane || !c) return;
      wanted = null;
      await c.setEntity(plane.entity, { position: positionOf(plane) }).catch(report);
    });
  });

  flip.addEventListener("click", async () => {
    const c = client();
    if (!c || !plane) return;
    const axis = flipped(plane.axis);
    try {
      await c.setComponent(plane.entity, "CutPlane", { normal: axis });
      plane.axis = axis;
      normal.value = axis;
      // The offset runs along the normal: keep the plane where it is.
      plane.offset = -plane.offset;
      offset.value = String(plane.offset);
    } catch (err) {
      report(err);
    }
    show();
  });

  normal.addEventListener("change", async () => {
    const c = client();
    if (!c || !plane) return;
    try {
      await c.setComponent(plane.entity, "CutPlane", { normal: normal.value });
      plane.axis = normal.value;
      plane.offset = 0;
      offset.value = "0";
      await c.setEntity(plane.entity, { position: positionOf(plane) });
    } catch (err) {
      report(err);
    }
    show();
  });

  remove.addEventListener("click", async () => {
    const c = client();
    if (!c || !plane) return;
    try {
      await destroy(c);
    } catch (err) {
      report(err);
    }
    show();
    onChange();
  });

  show();
  return {
    /** Connection or pick changed: enable what can be used now. */
    update: show,
    /** A new connection: the plane was the old one's. */
    reset() {
      plane = null;
      show();
    },
  };
}
