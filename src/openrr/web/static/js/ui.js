// Small DOM and formatting helpers shared by the pages.

/** The element with this id; a missing one is a bug in the page, so say which. */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

/** Create an element: `el("a", {href: "x", class: "button"}, "text", child)`. */
export function el(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  element.append(...children.filter((c) => c !== null && c !== undefined));
  return element;
}

/**
 * Show a message in a live region (role=status or role=alert in the page): `kind` is info, ok, warn or
 * error. Setting the same text again is a no-op, so polling does not make screen readers repeat it.
 */
export function showMessage(region, text, kind = "info") {
  if (region.textContent === text && region.dataset.kind === kind) return;
  region.dataset.kind = kind;
  region.textContent = text;
}

/** A random UUID, also where crypto.randomUUID is missing (pages served over plain HTTP to a remote host). */
export function newUuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function formatBitrate(bitsPerSecond) {
  if (typeof bitsPerSecond !== "number" || !Number.isFinite(bitsPerSecond)) return "–";
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
}

export function formatMs(ms) {
  return typeof ms === "number" && Number.isFinite(ms) ? `${Math.round(ms)} ms` : "–";
}

export function formatMinutes(minutes) {
  if (typeof minutes !== "number") return "–";
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : `${m} min`;
}

/** The words for an ApiError (or anything thrown). */
export function errorText(err) {
  if (err && typeof err.message === "string" && err.message) return err.message;
  return String(err);
}

/** Wait `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
