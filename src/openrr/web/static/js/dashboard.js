// The dashboard: the account's sessions (create, extend, stop), its model library (js/models.js) and asset
// conversions (read only), kept current by polling.

import { Api, ApiError, inspectorUrl } from "./api.js";
import { clearAuth, goToSignIn, requireAuth } from "./auth.js";
import { startLibrary } from "./models.js";
import { byId, el, errorText, formatMinutes, newUuid, showMessage } from "./ui.js";

// Three lists every 2 s (1.5 requests/s): the default throttle (2 requests/s, burst 60) allows this
// indefinitely.
const POLL_MS = 2000;
const SESSION_ID = /^[A-Za-z0-9_-]{1,256}$/;

const auth = requireAuth();
if (auth) start(auth);

function start({ accountId, token }) {
  const api = new Api(accountId, token);
  const status = byId("status");
  const list = byId("sessions");
  const empty = byId("empty");
  const updated = byId("updated");

  /** id → {session, card}; sessions that ended stay (with their final status) until dismissed. */
  const shown = new Map();
  let pollTimer = 0;
  let polling = false;
  let leaving = false;

  byId("account-id").textContent = accountId;
  byId("sign-out").addEventListener("click", () => {
    clearAuth();
    location.replace("index.html?reason=signed-out");
  });

  // ---- errors every request may meet --------------------------------------------------------------------
  /** Handle what no caller can: an expired token. Returns true when the page is going away. */
  function fatal(err) {
    if (err instanceof ApiError && err.status === 401) {
      leaving = true;
      clearAuth();
      goToSignIn("expired");
      return true;
    }
    return false;
  }

  // ---- the model library: "open in a session" starts one with the model and opens its viewer ---------------
  const pollLibrary = startLibrary(api, {
    fatal,
    pollMs: POLL_MS,
    openSession: async (url, name) => {
      const size = byId("create-size").value;
      const lease = Number(byId("create-lease").value) || 30;
      const created = await api.createSessionWithModels(size, Math.min(Math.max(lease, 1), 1440), [url]);
      showMessage(status, `Session ${created} is starting with ${name}.`, "ok");
      location.assign(`viewer.html?session=${encodeURIComponent(created)}`);
    },
  });

  // ---- the list ------------------------------------------------------------------------------------------
  async function poll() {
    clearTimeout(pollTimer);
    if (polling) return;
    polling = true;
    let delay = POLL_MS;
    const conversionsDone = pollConversions(); // its own errors, shown in its own section
    const libraryDone = pollLibrary(); // likewise
    try {
      const active = await api.listSessions();
      const seen = new Set();
      for (const session of active) {
        seen.add(session.id);
        upsert(session);
      }
      // Sessions that left the list have ended: fetch each once to show how (Stopped, Expired, Error).
      for (const [id, entry] of shown) {
        if (!seen.has(id) && isActive(entry.session.status)) {
          try {
            upsert(await api.getSession(id));
          } catch (err) {
            if (err instanceof ApiError && err.status === 404) remove(id);
            else throw err;
          }
        }
      }
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshed every ${POLL_MS / 1000} s.`;
      if (status.dataset.kind === "error" && status.dataset.source === "poll") showMessage(status, "");
    } catch (err) {
      if (fatal(err)) return;
      if (err instanceof ApiError && err.retryAfter) delay = Math.max(delay, err.retryAfter * 1000);
      status.dataset.source = "poll";
      showMessage(status, `The session list could not be refreshed: ${errorText(err)} Retrying…`, "error");
    } finally {
      delay = Math.max(delay, await conversionsDone, await libraryDone);
      polling = false;
      empty.hidden = shown.size > 0;
      if (!document.hidden && !leaving) pollTimer = setTimeout(poll, delay);
    }
  }

  document.addEventListener("visibilitychange", () => {
    clearTimeout(pollTimer);
    if (!document.hidden) poll(); // a hidden tab does not poll; coming back refreshes at once
  });

  function isActive(state) {
    return state === "Starting" || state === "Ready";
  }

  function remove(id) {
    const entry = shown.get(id);
    if (!entry) return;
    entry.card.remove();
    shown.delete(id);
    empty.hidden = shown.size > 0;
  }

  function upsert(session) {
    let entry = shown.get(session.id);
    if (!entry) {
      entry = { session, card: makeCard(session.id) };
      shown.set(session.id, entry);
      list.prepend(entry.card);
    }
    entry.session = session;
    fillCard(entry.card, session);
    empty.hidden = true;
  }

  /** A card's skeleton; fillCard keeps it current without replacing elements (focus stays put). */
  function makeCard(id) {
    const headingId = `session-${id}`;
    const card = el(
      "li",
      { class: "card", "data-session": id, "aria-labelledby": headingId },
      el("h3", { id: headingId, text: id }),
      el(
        "dl",
        {},
        el("dt", { text: "Status" }),
        el("dd", {}, el("span", { class: "badge", "data-field": "status" })),
        el("dt", { text: "Size" }),
        el("dd", { "data-field": "size" }),
        el("dt", { text: "Lease" }),
        el("dd", { "data-field": "lease" }),
        el("dt", { text: "Render server" }),
        el("dd", { "data-field": "endpoint" }),
      ),
      el("p", { class: "problem", "data-field": "problem", hidden: true }),
      el(
        "div",
        { class: "actions" },
        el("a", { class: "button primary", "data-action": "view", href: `viewer.html?session=${encodeURIComponent(id)}`, text: "Open viewer" }),
        el("a", { class: "button", "data-action": "inspect", target: "_blank", rel: "noopener noreferrer", text: "Inspector" }),
        el("button", { type: "button", "data-action": "extend", text: "Extend lease" }),
        el("button", { type: "button", class: "danger", "data-action": "stop", text: "Stop" }),
        el("button", { type: "button", "data-action": "dismiss", text: "Dismiss" }),
      ),
    );
    card.querySelector('[data-action="extend"]').setAttribute("aria-label", `Extend the lease of session ${id}`);
    card.querySelector('[data-action="stop"]').setAttribute("aria-label", `Stop session ${id}`);
    card.querySelector('[data-action="view"]').setAttribute("aria-label", `Open the viewer of session ${id}`);
    card.querySelector('[data-action="inspect"]').setAttribute("aria-label", `Open the inspector of session ${id} (new tab)`);
    card.querySelector('[data-action="dismiss"]').setAttribute("aria-label", `Remove session ${id} from this list`);
    card.querySelector('[data-action="extend"]').addEventListener("click", () => openExtend(id));
    card.querySelector('[data-action="stop"]').addEventListener("click", (event) => stop(id, event.currentTarget));
    card.querySelector('[data-action="dismiss"]').addEventListener("click", () => remove(id));
    return card;
  }

  /**
   * The inspector link of a Ready session carries a connect token of that session in its fragment (the
   * render server takes no account token). One is asked for when the session turns Ready, and again once
   * half of its life has passed; an error just leaves the link hidden until the next poll tries again.
   */
  const inspectorTokens = new Map(); // session id → { token, fetched, expires } or { pending: true }

  function showInspectorLink(link, session) {
    if (session.status !== "Ready" || !inspectorUrl(session, "")) {
      link.hidden = true;
      inspectorTokens.delete(session.id);
      return;
    }
    const held = inspectorTokens.get(session.id);
    const now = Date.now();
    if (held && held.token && now < held.fetched + (held.expires - held.fetched) / 2) {
      link.href = inspectorUrl(session, held.token, held.base);
      link.hidden = false;
      return;
    }
    if (held && held.pending) return;
    inspectorTokens.set(session.id, { pending: true });
    api.connectToken(session.id).then(
      (body) => {
        const expires = Date.parse(body && body.expiresOn);
        if (!body || typeof body.token !== "string" || Number.isNaN(expires)) throw new Error("no token");
        const base = typeof body.inspectorUrl === "string" ? body.inspectorUrl : null;
        inspectorTokens.set(session.id, { token: body.token, fetched: now, expires, base });
        link.href = inspectorUrl(session, body.token, base);
        link.hidden = false;
      },
    ).catch(() => {
      inspectorTokens.delete(session.id);
      link.hidden = true;
    });
  }

  function fillCard(card, session) {
    const field = (name) => card.querySelector(`[data-field="${name}"]`);
    const action = (name) => card.querySelector(`[data-action="${name}"]`);
    const active = isActive(session.status);
    const badge = field("status");
    badge.textContent = session.status;
    badge.dataset.status = session.status;
    card.classList.toggle("ended", !active);
    card.dataset.status = session.status;
    field("size").textContent = session.size || "–";
    const lease = session.maxLeaseTimeMinutes;
    field("lease").textContent =
      session.status === "Ready" && typeof session.elapsedTimeMinutes === "number"
        ? `${formatMinutes(session.elapsedTimeMinutes)} of ${formatMinutes(lease)} used`
        : formatMinutes(lease);
    field("endpoint").textContent =
      session.hostname && session.handshakePort ? `${session.hostname}:${session.handshakePort}` : "–";
    const problem = field("problem");
    const why = session.error
      ? `${session.error.code}: ${session.error.message}`
      : session.status === "Expired"
        ? "The lease expired."
        : "";
    problem.textContent = why;
    problem.hidden = !why;
    action("view").hidden = !active;
    showInspectorLink(action("inspect"), session);
    action("extend").hidden = !active;
    action("stop").hidden = !active;
    action("dismiss").hidden = active;
  }

  // ---- conversions (read only: they are started with `openrr conversions create` or the SDK) ------------
  const conversionsBody = byId("conversions").tBodies[0];
  const conversionsWrap = byId("conversions-wrap");
  const conversionsEmpty = byId("conversions-empty");
  const conversionsStatus = byId("conversions-status");
  const conversionsUpdated = byId("conversions-updated");
  /** id → its table row; rows are kept and refilled, so the table does not flicker. */
  const conversionRows = new Map();
  let conversionsLoaded = false;

  /** Refresh the conversion table; resolves to the delay the next poll should keep (Retry-After); never throws. */
  async function pollConversions() {
    try {
      const conversions = await api.listConversions();
      showConversions(conversions);
      conversionsLoaded = true;
      conversionsUpdated.textContent =
        `Updated ${new Date().toLocaleTimeString()}; refreshed every ${POLL_MS / 1000} s.`;
      showMessage(conversionsStatus, "");
      return POLL_MS;
    } catch (err) {
      if (fatal(err)) return POLL_MS;
      const text = `The conversion list could not be refreshed: ${errorText(err)} Retrying…`;
      showMessage(conversionsStatus, text, "error");
      return err instanceof ApiError && err.retryAfter ? err.retryAfter * 1000 : POLL_MS;
    } finally {
      conversionsEmpty.hidden = !conversionsLoaded || conversionRows.size > 0;
      conversionsWrap.hidden = conversionRows.size === 0;
    }
  }

  function showConversions(conversions) {
    // Newest first; the service lists by id.
    const newest = (a, b) =>
      String(b.creationTime || "").localeCompare(String(a.creationTime || "")) || String(a.id).localeCompare(String(b.id));
    const sorted = [...conversions].sort(newest);
    const seen = new Set();
    for (const conversion of sorted) {
      seen.add(conversion.id);
      let row = conversionRows.get(conversion.id);
      if (!row) {
        row = makeConversionRow(conversion.id);
        conversionRows.set(conversion.id, row);
      }
      fillConversionRow(row, conversion);
      conversionsBody.append(row); // moves a kept row into the sorted place
    }
    for (const [id, row] of conversionRows) {
      if (!seen.has(id)) {
        row.remove();
        conversionRows.delete(id);
      }
    }
  }

  function makeConversionRow(id) {
    const cell = (label, field, ...children) =>
      el("td", { role: "cell", "data-label": label, "data-field": field }, ...children);
    return el(
      "tr",
      { role: "row", "data-conversion": id },
      el("th", { scope: "row", role: "rowheader", class: "id", "data-label": "Conversion", text: id }),
      cell("Status", "status", el("span", { class: "badge" })),
      cell("Input", "input"),
      cell("Result", "result"),
      cell("Created", "created", el("time")),
    );
  }

  /** One labelled line of a cell: `<span class="line"><span class="key">Container</span> value</span>`. */
  function line(key, value, extra = {}) {
    const { class: more, ...attrs } = extra;
    return el(
      "span",
      { class: more ? `line ${more}` : "line", ...attrs },
      el("span", { class: "key", text: key }),
      " ",
      el("span", { class: "value", text: value }),
    );
  }

  function fillConversionRow(row, conversion) {
    const field = (name) => row.querySelector(`[data-field="${name}"]`);
    const status = String(conversion.status || "Unknown");
    row.dataset.status = status;
    const badge = field("status").querySelector(".badge");
    badge.textContent = status;
    badge.dataset.status = status;

    const input = (conversion.settings && conversion.settings.inputLocation) || {};
    const inputLines = [line("Container", input.storageContainerUri || "–")];
    if (input.blobPrefix) inputLines.push(line("Prefix", input.blobPrefix));
    inputLines.push(line("Asset", input.relativeInputAssetPath || "–"));
    field("input").replaceChildren(...inputLines);

    const result = field("result");
    const output = conversion.output && conversion.output.outputAssetUri;
    const error = conversion.error;
    if (status === "Succeeded" && output) {
      result.replaceChildren(line("Output", output, { "data-kind": "output" }));
    } else if (error && (status === "Failed" || status === "Cancelled")) {
      result.replaceChildren(line(error.code || "Error", error.message || "", { class: "problem", "data-kind": "error" }));
    } else {
      const pending = status === "Running" || status === "NotStarted";
      result.replaceChildren(el("span", { class: "hint", text: pending ? "In progress…" : "–" }));
    }

    const time = field("created").querySelector("time");
    const created = conversion.creationTime ? new Date(conversion.creationTime) : null;
    if (created && !Number.isNaN(created.getTime())) {
      time.dateTime = conversion.creationTime;
      time.textContent = created.toLocaleString();
    } else {
      time.removeAttribute("datetime");
      time.textContent = "–";
    }
  }

  // ---- create ----------------------------------------------------------------------------------------------
  const form = byId("create");
  const idInput = byId("create-id");
  const modelsInput = byId("create-models");
  const leaseInput = byId("create-lease");
  const createError = byId("create-error");
  const createSubmit = byId("create-submit");

  idInput.value = newUuid();
  byId("create-new-id").addEventListener("click", () => {
    idInput.value = newUuid();
    idInput.focus();
  });
  function models() {
    return modelsInput.value.split("\n").map((line) => line.trim()).filter(Boolean);
  }
  function syncIdField() {
    const v1 = models().length > 0;
    idInput.disabled = v1;
    byId("create-new-id").disabled = v1;
  }
  modelsInput.addEventListener("input", syncIdField);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showMessage(createError, "");
    const lease = Number(leaseInput.value);
    const size = byId("create-size").value;
    const wanted = models();
    const id = idInput.value.trim();
    if (!Number.isInteger(lease) || lease < 1 || lease > 1440) {
      showMessage(createError, "The lease is a whole number of minutes from 1 to 1440.", "error");
      leaseInput.focus();
      return;
    }
    if (!wanted.length && !SESSION_ID.test(id)) {
      showMessage(createError, "The session id is 1 to 256 letters, digits, - and _.", "error");
      idInput.focus();
      return;
    }
    createSubmit.disabled = true;
    try {
      if (wanted.length) {
        const created = await api.createSessionWithModels(size, lease, wanted);
        upsert({ id: created, status: "Starting", size, maxLeaseTimeMinutes: lease });
        showMessage(status, `Session ${created} is starting with ${wanted.length} model(s).`, "ok");
      } else {
        upsert(await api.createSession(id, size, lease));
        showMessage(status, `Session ${id} is starting.`, "ok");
        idInput.value = newUuid();
      }
      status.dataset.source = "create";
      poll();
    } catch (err) {
      if (fatal(err)) return;
      const text =
        err instanceof ApiError && err.status === 409
          ? `A session with the id ${id} already exists with other settings. Pick another id.`
          : `The session could not be created: ${errorText(err)}`;
      showMessage(createError, text, "error");
    } finally {
      createSubmit.disabled = false;
    }
  });

  // ---- stop and extend ---------------------------------------------------------------------------------------
  async function stop(id, button) {
    button.disabled = true;
    try {
      await api.stopSession(id);
      showMessage(status, `Session ${id} was stopped.`, "ok");
      status.dataset.source = "stop";
      upsert(await api.getSession(id));
    } catch (err) {
      if (fatal(err)) return;
      showMessage(status, `Session ${id} could not be stopped: ${errorText(err)}`, "error");
      status.dataset.source = "stop";
    } finally {
      button.disabled = false;
    }
  }

  const dialog = byId("extend-dialog");
  const extendForm = byId("extend-form");
  const extendMinutes = byId("extend-minutes");
  const extendError = byId("extend-error");
  let extending = null;

  function openExtend(id) {
    const entry = shown.get(id);
    if (!entry) return;
    extending = id;
    const current = entry.session.maxLeaseTimeMinutes || 0;
    byId("extend-what").textContent = `Session ${id}: the lease is now ${formatMinutes(current)}.`;
    extendMinutes.min = String(Math.min(current + 1, 1440));
    extendMinutes.value = String(Math.min(current + 30, 1440));
    showMessage(extendError, "");
    dialog.showModal();
    extendMinutes.select();
  }
  byId("extend-cancel").addEventListener("click", () => dialog.close());
  extendForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = extending;
    const minutes = Number(extendMinutes.value);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) {
      showMessage(extendError, "The lease is a whole number of minutes up to 1440.", "error");
      return;
    }
    const submitButton = byId("extend-submit");
    submitButton.disabled = true;
    try {
      upsert(await api.extendLease(id, minutes));
      dialog.close();
      showMessage(status, `The lease of session ${id} is now ${formatMinutes(minutes)}.`, "ok");
      status.dataset.source = "extend";
    } catch (err) {
      if (fatal(err)) return;
      showMessage(extendError, errorText(err), "error");
    } finally {
      submitButton.disabled = false;
    }
  });

  poll();
}
