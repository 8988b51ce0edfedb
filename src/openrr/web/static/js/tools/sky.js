// The sky chooser: the render server's built-in skies (sky.list) in a select; choosing one sets it
// (sky.set builtin://NAME), and the select shows the sky the server says is current.

import { el } from "../ui.js";

const BUILTIN = "builtin://";

/**
 * @param {object} options
 * @param {HTMLSelectElement} options.select
 * @param {HTMLElement} options.status aria-live words on what happened
 * @param {() => object|null} options.client
 * @param {(err: Error) => void} options.report
 */
export function createSkyChooser({ select, status, client, report }) {
  let current = "";

  select.addEventListener("change", async () => {
    const c = client();
    const name = select.value;
    if (!c || !name) return;
    select.disabled = true;
    status.textContent = `Setting the sky ${name}…`;
    try {
      current = await c.setSky(`${BUILTIN}${name}`);
      status.textContent = `Sky: ${current}.`;
    } catch (err) {
      report(err);
      status.textContent = `The sky ${name} could not be set.`;
    }
    select.value = current;
    select.disabled = !client();
  });

  return {
    /** Ask the server for its skies (after connecting). */
    async load() {
      const c = client();
      select.disabled = true;
      if (!c) return;
      try {
        const { skies, current: now } = await c.listSkies();
        current = String(now || "").replace(BUILTIN, "");
        select.replaceChildren(...skies.map((name) => el("option", { value: name, text: name })));
        select.value = current;
        select.disabled = false;
        status.textContent = "";
      } catch (err) {
        report(err);
      }
    },
    reset() {
      select.disabled = true;
    },
  };
}
