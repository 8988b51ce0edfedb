// The dashboard's model library: the drop zone and file pickers (a file, or a folder with a .gltf and its
// buffers and textures), the upload and conversion progress bar, the list of the account's models with their
// statistics (rename, delete, open in a session), and the session form's model picker, which also offers the
// builtin:// models. A new user with an empty library finds builtin://sample picked, so their first session
// shows something.

import { ApiError, builtinModels } from "./api.js";
import { byId, el, errorText, showMessage } from "./ui.js";

const SAMPLE = "builtin://sample";
const TERMINAL = new Set(["Succeeded", "Failed"]);

/**
 * Start the library section. `fatal(err)` handles an expired token (true: the page is leaving);
 * `openSession(url, name)` creates a session with the model and opens its viewer.
 * Returns `poll()`, which refreshes the list and resolves to the delay the next poll should keep.
 */
export function startLibrary(api, { fatal, openSession, pollMs }) {
  const list = byId("library");
  const empty = byId("library-empty");
  const status = byId("library-status");
  const upload = byId("upload");
  const uploadWhat = byId("upload-what");
  const bar = byId("upload-progress");
  const zone = byId("drop-zone");
  const picker = byId("create-pick");
  const pickLibrary = byId("create-pick-library");
  const pickBuiltin = byId("create-pick-builtin");
  const modelsField = byId("create-models");

  /** id → {model, card, details}; details: the statistics once the model has ended. */
  const shown = new Map();
  let loaded = false;
  let touched = false; // the user typed models or picked one: no preselection any more
  let watching = null; // the id whose conversion the progress bar follows
  let uploaded = null; // the id the bar last spoke of: deleting that model clears the bar

  // ---- the picker ----------------------------------------------------------------------------------------
  modelsField.addEventListener("input", () => {
    touched = true;
  });
  picker.addEventListener("change", () => {
    touched = true;
    modelsField.value = picker.value;
    modelsField.dispatchEvent(new Event("input")); // the form switches to the v1 API (or back)
  });
  builtinModels().then(
    (builtins) => {
      pickBuiltin.replaceChildren(
        ...builtins.map((b) => el("option", { value: b.url, title: b.description, text: `${b.url} — ${b.description}` })),
      );
      preselect();
    },
    () => {}, // the picker just lacks them; typing a URL still works
  );

  function fillPicker() {
    const ready = [...shown.values()].map((e) => e.model).filter((m) => m.status === "Succeeded" && m.url);
    pickLibrary.replaceChildren(...ready.map((m) => el("option", { value: m.url, text: m.name })));
    if (!touched && modelsField.value && ![...picker.options].some((o) => o.value === modelsField.value)) {
      picker.value = "";
    } else if (modelsField.value) {
      picker.value = modelsField.value;
    }
  }

  /** A new user (an empty library) gets the sample scene picked, unless they already chose something. */
  function preselect() {
    if (touched || !loaded || shown.size > 0 || modelsField.value) return;
    if (![...pickBuiltin.querySelectorAll("option")].some((o) => o.value === SAMPLE)) return;
    picker.value = SAMPLE;
    modelsField.value = SAMPLE;
    modelsField.dispatchEvent(new Event("input"));
    touched = false; // still a suggestion: the user has not chosen
  }

  // ---- the list ------------------------------------------------------------------------------------------
  async function poll() {
    try {
      const models = await api.listModels();
      const seen = new Set();
      for (const model of models) {
        seen.add(model.id);
        upsert(model);
      }
      for (const [id, entry] of shown) {
        if (!seen.has(id)) {
          entry.card.remove();
          shown.delete(id);
        }
      }
      loaded = true;
      if (status.dataset.source === "poll") showMessage(status, "");
      return pollMs;
    } catch (err) {
      if (fatal(err)) return pollMs;
      status.dataset.source = "poll";
      showMessage(status, `The model list could not be refreshed: ${errorText(err)} Retrying…`, "error");
      return err instanceof ApiError && err.retryAfter ? err.retryAfter * 1000 : pollMs;
    } finally {
      empty.hidden = !loaded || shown.size > 0;
      fillPicker();
      preselect();
    }
  }

  function upsert(model) {
    let entry = shown.get(model.id);
    if (!entry) {
      entry = { model, card: makeCard(model.id), details: null };
      shown.set(model.id, entry);
      list.prepend(entry.card);
    }
    const ended = TERMINAL.has(model.status) && !TERMINAL.has(entry.model.status);
    entry.model = model;
    fillCard(entry);
    if ((ended || (TERMINAL.has(model.status) && !entry.details)) && !entry.fetching) fetchDetails(entry);
    if (watching === model.id) follow(model);
  }

  async function fetchDetails(entry) {
    entry.fetching = true;
    try {
      entry.details = await api.getModel(entry.model.id);
      fillCard(entry);
    } catch (err) {
      fatal(err);
    } finally {
      entry.fetching = false;
    }
  }

  function makeCard(id) {
    const headingId = `model-${id}`;
    const card = el(
      "li",
      { class: "card", "data-model": id, "aria-labelledby": headingId },
      el("h3", { id: headingId, "data-field": "name" }),
      el(
        "dl",
        {},
        el("dt", { text: "Status" }),
        el("dd", {}, el("span", { class: "badge", "data-field": "status" })),
        el("dt", { text: "Uploaded" }),
        el("dd", { "data-field": "size" }),
        el("dt", { text: "Statistics" }),
        el("dd", { "data-field": "stats" }),
      ),
      el("p", { class: "problem", "data-field": "problem", hidden: true }),
      el("details", { "data-field": "log-box", hidden: true }, el("summary", { text: "Conversion log" }), el("pre", { class: "log", "data-field": "log" })),
      el(
        "div",
        { class: "actions" },
        el("button", { type: "button", class: "primary", "data-action": "open", text: "Open in a session" }),
        el("button", { type: "button", "data-action": "rename", text: "Rename" }),
        el("button", { type: "button", class: "danger", "data-action": "delete", text: "Delete" }),
      ),
    );
    const action = (name) => card.querySelector(`[data-action="${name}"]`);
    action("open").addEventListener("click", (event) => open(id, event.currentTarget));
    action("rename").addEventListener("click", () => openRename(id));
    action("delete").addEventListener("click", (event) => remove(id, event.currentTarget));
    return card;
  }

  function fillCard({ model, card, details }) {
    const field = (name) => card.querySelector(`[data-field="${name}"]`);
    const action = (name) => card.querySelector(`[data-action="${name}"]`);
    field("name").textContent = model.name;
    const badge = field("status");
    const text = model.status === "Converting" || model.status === "Queued" ? `${model.status}…` : model.status;
    badge.textContent = text;
    badge.dataset.status = model.status;
    card.dataset.status = model.status;
    field("size").textContent = `${formatBytes(model.size)}, ${model.files} file(s)`;
    field("stats").textContent = describeStats(details && details.statistics);
    const problem = field("problem");
    const why = model.error ? `${model.error.code}: ${model.error.message}` : "";
    problem.textContent = why;
    problem.hidden = !why;
    const log = details && details.log;
    field("log-box").hidden = !log;
    field("log").textContent = log || "";
    action("open").hidden = model.status !== "Succeeded";
    for (const name of ["open", "rename", "delete"]) action(name).setAttribute("aria-label", `${action(name).textContent}: ${model.name}`);
  }

  // ---- upload --------------------------------------------------------------------------------------------
  async function send(files) {
    if (!files.length) return;
    const total = files.reduce((sum, f) => sum + f.file.size, 0);
    upload.hidden = false;
    upload.dataset.phase = "upload";
    bar.removeAttribute("value");
    uploadWhat.textContent = `Uploading ${files.length} file(s), ${formatBytes(total)}…`;
    showMessage(status, "");
    try {
      const model = await api.uploadModel(files, (sent, size) => {
        bar.value = size ? (0.5 * sent) / size : 0; // the first half of the bar: the upload
      });
      watching = model.id;
      uploaded = model.id;
      upsert(model);
      poll();
    } catch (err) {
      if (fatal(err)) return;
      upload.dataset.phase = "failed";
      uploadWhat.textContent = `The upload failed: ${errorText(err)}`;
      bar.value = 0;
      showMessage(status, `The model could not be uploaded: ${errorText(err)}`, "error");
    }
  }

  /** The bar's second half: the conversion of the model just uploaded. */
  function follow(model) {
    upload.dataset.phase = model.status;
    bar.value = 0.5 + 0.5 * (model.progress || 0);
    if (model.status === "Succeeded") {
      uploadWhat.textContent = `${model.name} is ready: open it in a session.`;
      watching = null;
    } else if (model.status === "Failed") {
      uploadWhat.textContent = `${model.name} could not be converted: ${model.error ? model.error.message : ""}`;
      watching = null;
    } else {
      uploadWhat.textContent = `${model.name}: ${model.status === "Queued" ? "waiting to be converted" : "converting"}…`;
    }
  }

  byId("upload-file").addEventListener("change", (event) => {
    const files = [...event.target.files].map((file) => ({ file, path: file.name }));
    event.target.value = "";
    send(files);
  });
  byId("upload-folder").addEventListener("change", (event) => {
    const files = [...event.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    event.target.value = "";
    send(files);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    try {
      send(await droppedFiles(event.dataTransfer));
    } catch (err) {
      showMessage(status, `The dropped files could not be read: ${errorText(err)}`, "error");
    }
  });

  // ---- rename, delete, open ------------------------------------------------------------------------------
  const dialog = byId("rename-dialog");
  const renameName = byId("rename-name");
  const renameError = byId("rename-error");
  let renaming = null;

  function openRename(id) {
    const entry = shown.get(id);
    if (!entry) return;
    renaming = id;
    renameName.value = entry.model.name;
    showMessage(renameError, "");
    dialog.showModal();
    renameName.select();
  }
  byId("rename-cancel").addEventListener("click", () => dialog.close());
  byId("rename-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = renameName.value.trim();
    if (!name) {
      showMessage(renameError, "A name is 1 to 100 characters.", "error");
      return;
    }
    try {
      upsert(await api.renameModel(renaming, name));
      dialog.close();
      showMessage(status, `The model is now called ${name}.`, "ok");
    } catch (err) {
      if (fatal(err)) return;
      showMessage(renameError, errorText(err), "error");
    }
  });

  async function remove(id, button) {
    const entry = shown.get(id);
    if (!entry || !confirm(`Delete the model ${entry.model.name}, its upload and its converted asset?`)) return;
    button.disabled = true;
    try {
      await api.deleteModel(id);
      entry.card.remove();
      shown.delete(id);
      if (uploaded === id) upload.hidden = true;
      showMessage(status, `${entry.model.name} was deleted.`, "ok");
      empty.hidden = shown.size > 0;
      fillPicker();
    } catch (err) {
      if (fatal(err)) return;
      showMessage(status, `${entry.model.name} could not be deleted: ${errorText(err)}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  async function open(id, button) {
    const entry = shown.get(id);
    if (!entry || !entry.model.url) return;
    button.disabled = true;
    try {
      await openSession(entry.model.url, entry.model.name);
    } catch (err) {
      if (fatal(err)) return;
      showMessage(status, `No session could be started with ${entry.model.name}: ${errorText(err)}`, "error");
      button.disabled = false;
    }
  }

  return poll;
}

/** The files of a drop as [{file, path}]: a folder's files under their paths in it, read recursively. */
async function droppedFiles(transfer) {
  const entries = [...transfer.items]
    .filter((item) => item.kind === "file")
    .map((item) => ({ entry: item.webkitGetAsEntry ? item.webkitGetAsEntry() : null, file: item.getAsFile() }));
  const found = [];
  for (const { entry, file } of entries) {
    if (entry && entry.isDirectory) await walk(entry, `${entry.name}/`, found);
    else if (file) found.push({ file, path: file.name });
  }
  return found;
}

async function walk(directory, prefix, found) {
  const reader = directory.createReader();
  for (;;) {
    // readEntries returns a batch at a time (100 in Chromium) until an empty one.
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const entry of batch) {
      if (entry.isDirectory) await walk(entry, `${prefix}${entry.name}/`, found);
      else found.push({ file: await new Promise((resolve, reject) => entry.file(resolve, reject)), path: `${prefix}${entry.name}` });
    }
  }
}

function describeStats(stats) {
  if (!stats) return "–";
  const parts = [];
  if (stats.format) parts.push(stats.format);
  if (typeof stats.triangles === "number") parts.push(`${stats.triangles.toLocaleString()} triangles`);
  if (stats.points) parts.push(`${stats.points.toLocaleString()} points`);
  if (typeof stats.materials === "number") parts.push(`${stats.materials} material(s)`);
  if (typeof stats.textures === "number") parts.push(`${stats.textures} texture(s)`);
  if (stats.bounds) {
    const size = stats.bounds.max.map((v, i) => (v - stats.bounds.min[i]).toPrecision(3));
    parts.push(`${size.join(" × ")} in size`);
  }
  return parts.join(", ") || "–";
}

function formatBytes(size) {
  if (size < 1024) return `${size} B`;
  const units = ["KiB", "MiB", "GiB"];
  let amount = size;
  let unit = "B";
  for (const next of units) {
    amount /= 1024;
    unit = next;
    if (amount < 1024) break;
  }
  return `${amount.toFixed(1)} ${unit}`;
}
