// The model panel: load a model by path or URL (with its progress), the loaded models listed, each with
// an Unload button. `onChange(unloaded)` runs after a load (false) or an unload (true): the entity tree reads the scene
// again.

import { RemoteRenderingError } from "../openrr.js";
import { el, errorText } from "../ui.js";

/**
 * @param {object} options
 * @param {object} options.elements {form, url, load, progress, status, list} of the page
 * @param {() => object|null} options.client
 * @param {(err: Error) => void} options.report
 * @param {(unloaded: boolean) => void} options.onChange
 */
export function createModelPanel({ elements, client, report, onChange }) {
  const { form, url: input, load, progress, status, list } = elements;
  const models = new Map(); // modelId → {modelId, url, nodes, polygons}

  function show() {
    list.replaceChildren(
      ...[...models.values()].map((model) =>
        el(
          "li",
          {},
          el("span", { text: `${model.modelId} (${model.url})` }),
          el("button", { type: "button", "data-model": model.modelId, "aria-label": `Unload ${model.modelId}`, text: "Unload" }),
        ),
      ),
    );
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const c = client();
    const url = input.value.trim();
    if (!url) {
      status.textContent = "Enter a path or URL.";
      input.focus();
      return;
    }
    if (!c) {
      status.textContent = "Connect to the session first.";
      return;
    }
    load.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status.textContent = `Loading ${url}…`;
    try {
      const loaded = await c.loadModel(url, {
        onProgress: (message) => {
          if (typeof message.fraction === "number") progress.value = message.fraction;
          const percent = typeof message.fraction === "number" ? `${Math.round(message.fraction * 100)} %` : "";
          status.textContent = [percent, message.message].filter(Boolean).join(" · ") || "Loading…";
        },
      });
      progress.value = 1;
      status.textContent = `Loaded ${loaded.modelId}: ${loaded.nodes} nodes, ${Number(loaded.polygons).toLocaleString()} polygons.`;
      models.set(loaded.modelId, { modelId: loaded.modelId, url, nodes: loaded.nodes, polygons: loaded.polygons });
      show();
      onChange(false);
    } catch (err) {
      const what =
        err instanceof RemoteRenderingError && err.code === "ModelSourceRefused"
          ? "The render server refuses this source"
          : err instanceof RemoteRenderingError && err.code === "Busy"
            ? "The render server is busy loading other models"
            : "The model could not be loaded";
      status.textContent = `${what}: ${errorText(err)}`;
      progress.hidden = true;
    } finally {
      load.disabled = !client();
    }
  });

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-model]");
    const c = client();
    if (!button || !c) return;
    const modelId = button.dataset.model;
    button.disabled = true;
    try {
      await c.unloadModel(modelId);
      models.delete(modelId);
      status.textContent = `Unloaded ${modelId}.`;
    } catch (err) {
      report(err);
    }
    show();
    onChange(true);
  });

  return {
    /** The models the server's hello lists (those loaded before this client came). */
    connected(hello) {
      models.clear();
      for (const model of hello.models || []) models.set(model.modelId, model);
      show();
    },
    reset() {
      models.clear();
      show();
    },
  };
}
