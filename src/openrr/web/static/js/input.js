// Mouse, touch and keyboard gestures on the viewer's surface, turned into camera commands.
//
//   mouse      drag = orbit, shift-drag or right/middle-drag = pan, wheel = zoom, click (no drag) = pick
//   touch      one finger = orbit, two fingers: pinch = zoom and move = pan, tap = pick
//   keyboard   arrows = orbit, shift+arrows = pan, + / - = zoom, F = frame the scene, Enter = pick the centre
//
// Movements are summed and sent at most once per animation frame, so a fast drag does not flood the data
// channel. The handlers get:
//   orbit(yaw, pitch)  degrees; dragging right turns the model right (the camera goes left)
//   pan(dx, dy)        fractions of the view; dragging moves the picture along
//   zoom(factor)       > 1 moves closer
//   frame()            fit the scene into the view
//   pick(clientX, clientY)

const DEGREES_PER_PIXEL = 0.35;
const KEY_ORBIT_DEGREES = 10;
const KEY_PAN = 0.05;
const KEY_ZOOM = 1.25;
const CLICK_SLOP = { mouse: 5, pen: 6, touch: 12 }; // pixels a click or tap may wander and stay one

/**
 * @param {HTMLElement} surface the element that takes the input (focusable, touch-action: none)
 * @param {object} handlers see above
 * @param {() => {width: number, height: number}} viewSize the size of the picture on screen, in CSS pixels
 * @returns {() => void} detach
 */
export function attachControls(surface, handlers, viewSize) {
  const pointers = new Map(); // pointerId → {x, y}
  let gesture = null; // {mode: "orbit"|"pan"|"pinch"|"idle", startX, startY, moved, type, distance, midX, midY}
  let pending = { yaw: 0, pitch: 0, dx: 0, dy: 0, zoom: 1 };
  let scheduled = false;

  function flush() {
    scheduled = false;
    const p = pending;
    pending = { yaw: 0, pitch: 0, dx: 0, dy: 0, zoom: 1 };
    if (p.yaw || p.pitch) handlers.orbit(p.yaw, p.pitch);
    if (p.dx || p.dy) handlers.pan(p.dx, p.dy);
    if (p.zoom !== 1) handlers.zoom(Math.min(Math.max(p.zoom, 0.05), 20));
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }

  function orbitBy(dxPixels, dyPixels) {
    pending.yaw -= dxPixels * DEGREES_PER_PIXEL;
    pending.pitch += dyPixels * DEGREES_PER_PIXEL;
    schedule();
  }

  function panBy(dxPixels, dyPixels) {
    const { width, height } = viewSize();
    if (!width || !height) return;
    pending.dx -= dxPixels / width;
    pending.dy += dyPixels / height;
    schedule();
  }

  function zoomBy(factor) {
    pending.zoom *= factor;
    schedule();
  }

  function twoFingers() {
    const [a, b] = [...pointers.values()];
    return { distance: Math.hypot(a.x - b.x, a.y - b.y), midX: (a.x + b.x) / 2, midY: (a.y + b.y) / 2 };
  }

  function onPointerDown(event) {
    if (event.pointerType === "mouse" && event.button > 2) return;
    surface.focus({ preventScroll: true });
    try {
      surface.setPointerCapture(event.pointerId);
    } catch {
      /* the pointer is already gone */
    }
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (pointers.size === 1) {
      const pan = event.shiftKey || event.button === 1 || event.button === 2;
      gesture = {
        mode: pan ? "pan" : "orbit",
        startX: event.clientX,
        startY: event.clientY,
        moved: false,
        type: event.pointerType,
        button: event.button,
      };
    } else if (pointers.size === 2) {
      gesture = { mode: "pinch", moved: true, type: event.pointerType, ...twoFingers() };
    } else if (gesture) {
      gesture.mode = "idle"; // three fingers: ignore until they lift
    }
    event.preventDefault();
  }

  function onPointerMove(event) {
    const last = pointers.get(event.pointerId);
    if (!last || !gesture) return;
    const dx = event.clientX - last.x;
    const dy = event.clientY - last.y;
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (gesture.mode === "orbit" || gesture.mode === "pan") {
      if (!gesture.moved) {
        const slop = CLICK_SLOP[gesture.type] || 5;
        if (Math.hypot(event.clientX - gesture.startX, event.clientY - gesture.startY) < slop) return;
        gesture.moved = true;
        // Count the movement from where the pointer went down, so the slop is not lost.
        const fromX = event.clientX - gesture.startX;
        const fromY = event.clientY - gesture.startY;
        if (gesture.mode === "orbit") orbitBy(fromX, fromY);
        else panBy(fromX, fromY);
        return;
      }
      if (gesture.mode === "orbit") orbitBy(dx, dy);
      else panBy(dx, dy);
    } else if (gesture.mode === "pinch" && pointers.size === 2) {
      const now = twoFingers();
      if (gesture.distance > 0 && now.distance > 0) zoomBy(now.distance / gesture.distance);
      panBy(now.midX - gesture.midX, now.midY - gesture.midY);
      Object.assign(gesture, now);
    }
  }

  function onPointerUp(event) {
    if (!pointers.has(event.pointerId)) return;
    pointers.delete(event.pointerId);
    const click =
      event.type === "pointerup" &&
      gesture &&
      !gesture.moved &&
      pointers.size === 0 &&
      (gesture.type !== "mouse" || gesture.button === 0) &&
      gesture.mode !== "pan";
    if (click) handlers.pick(event.clientX, event.clientY);
    if (pointers.size === 0) gesture = null;
    else if (gesture) gesture.mode = "idle"; // one finger of two lifted: wait for the other, no jump
  }

  function onWheel(event) {
    event.preventDefault();
    const lines = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
    zoomBy(Math.exp(-event.deltaY * lines * 0.0015));
  }

  function onKeyDown(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const shift = event.shiftKey;
    let handled = true;
    switch (event.key) {
      case "ArrowLeft":
        if (shift) pending.dx += KEY_PAN;
        else pending.yaw += KEY_ORBIT_DEGREES;
        break;
      case "ArrowRight":
        if (shift) pending.dx -= KEY_PAN;
        else pending.yaw -= KEY_ORBIT_DEGREES;
        break;
      case "ArrowUp":
        if (shift) pending.dy -= KEY_PAN;
        else pending.pitch -= KEY_ORBIT_DEGREES;
        break;
      case "ArrowDown":
        if (shift) pending.dy += KEY_PAN;
        else pending.pitch += KEY_ORBIT_DEGREES;
        break;
      case "+":
      case "=":
        pending.zoom *= KEY_ZOOM;
        break;
      case "-":
      case "_":
        pending.zoom /= KEY_ZOOM;
        break;
      case "f":
      case "F":
        handlers.frame();
        break;
      case "Enter": {
        const rect = surface.getBoundingClientRect();
        handlers.pick(rect.left + rect.width / 2, rect.top + rect.height / 2);
        break;
      }
      default:
        handled = false;
    }
    if (handled) {
      event.preventDefault();
      schedule();
    }
  }

  const onContextMenu = (event) => event.preventDefault();
  surface.addEventListener("pointerdown", onPointerDown);
  surface.addEventListener("pointermove", onPointerMove);
  surface.addEventListener("pointerup", onPointerUp);
  surface.addEventListener("pointercancel", onPointerUp);
  surface.addEventListener("wheel", onWheel, { passive: false });
  surface.addEventListener("keydown", onKeyDown);
  surface.addEventListener("contextmenu", onContextMenu);
  return () => {
    surface.removeEventListener("pointerdown", onPointerDown);
    surface.removeEventListener("pointermove", onPointerMove);
    surface.removeEventListener("pointerup", onPointerUp);
    surface.removeEventListener("pointercancel", onPointerUp);
    surface.removeEventListener("wheel", onWheel);
    surface.removeEventListener("keydown", onKeyDown);
    surface.removeEventListener("contextmenu", onContextMenu);
  };
}
