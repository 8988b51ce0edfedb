// Measurement: while the mode is on, two clicks in the picture pick two world points (the render server's
// pick is a ray cast through the pixel) and the distance between them is shown, in scene units with three
// decimals, until cleared (Clear, Escape, or the mode turned off). A third click starts a new measurement.

function formatPoint(p) {
  return `(${p.map((v) => v.toFixed(3)).join(", ")})`;
}

/**
 * @param {object} options
 * @param {object} options.elements {toggle (aria-pressed button), clear, result (output), status}
 * @param {(active: boolean) => void} options.onModeChange the picture's clicks measure (true) or select
 */
export function createMeasureTool({ elements, onModeChange }) {
  const { toggle, clear, result, status } = elements;
  let active = false;
  let points = [];

  function show() {
    toggle.setAttribute("aria-pressed", String(active));
    clear.disabled = points.length === 0;
    if (points.length === 2) {
      const d = Math.hypot(...points[0].map((v, i) => v - points[1][i]));
      result.value = d.toFixed(3);
      result.textContent = d.toFixed(3);
      status.textContent = `From ${formatPoint(points[0])} to ${formatPoint(points[1])}.`;
    } else {
      result.value = "";
      result.textContent = "–";
      status.textContent = !active
        ? "Measure is off."
        : points.length === 1
          ? `First point ${formatPoint(points[0])}: click the second one.`
          : "Click the first point in the picture.";
    }
  }

  function reset() {
    points = [];
    show();
  }

  toggle.addEventListener("click", () => {
    active = !active;
    points = [];
    show();
    onModeChange(active);
  });
  clear.addEventListener("click", reset);
  show();

  return {
    get active() {
      return active;
    },
    /** A pick's answer in measure mode: its world `position`, or null for the background. */
    add(position) {
      if (!active) return;
      if (!position) {
        status.textContent = "Nothing there (background): click a surface.";
        return;
      }
      if (points.length === 2) points = [];
      points.push(position.map(Number));
      show();
    },
    clear: reset,
  };
}
