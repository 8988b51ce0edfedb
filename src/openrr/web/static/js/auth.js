// The signed-in account: its id and access token, kept in this tab's sessionStorage (never the key).

const STORAGE_KEY = "openrr.auth";
const EXPIRY_MARGIN_S = 60; // treat a token as expired a minute early: a request must not race its expiry

/** Seconds since the epoch at which a JWT expires, or null when it cannot be read. */
export function tokenExpiry(token) {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    return typeof json.exp === "number" ? json.exp : null;
  } catch {
    return null;
  }
}

export function saveAuth(accountId, token) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ accountId, token }));
}

export function clearAuth() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** `{accountId, token}` of this tab, or null when nobody is signed in or the token has expired. */
export function loadAuth() {
  let auth;
  try {
    auth = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
  } catch {
    return null;
  }
  if (!auth || typeof auth.accountId !== "string" || typeof auth.token !== "string") return null;
  const exp = tokenExpiry(auth.token);
  if (exp !== null && exp - EXPIRY_MARGIN_S < Date.now() / 1000) {
    clearAuth();
    return null;
  }
  return auth;
}

/** The current page (file name and query), as the sign-in page's `next`. */
function here() {
  const file = location.pathname.split("/").pop() || "dashboard.html";
  return file + location.search;
}

/** Go to the sign-in page, which comes back here afterwards; `reason` is shown there. */
export function goToSignIn(reason = "") {
  const params = new URLSearchParams({ next: here() });
  if (reason) params.set("reason", reason);
  location.replace(`index.html?${params}`);
}

/** The signed-in account, or null after sending the browser to the sign-in page. */
export function requireAuth() {
  const hadToken = sessionStorage.getItem(STORAGE_KEY) !== null;
  const auth = loadAuth();
  if (!auth) goToSignIn(hadToken ? "expired" : "");
  return auth;
}

/** A `next` page that is safe to go to after signing in: only this app's own pages. */
export function safeNext(next) {
  return typeof next === "string" && /^(dashboard|viewer)\.html(\?[^#]*)?$/.test(next) ? next : "dashboard.html";
}
