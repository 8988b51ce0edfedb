// The viewer's selection: one entity at a time, shown by the render server's outline (the entity's
// HierarchicalStateOverride `selected` set to ForceOn; the previous one set back to InheritFromParent).
// Clicking in the picture or on a tree row selects; Escape or a click on the background clears. The
// outline's colour is a setting of the connection (outline.set).

/** sRGB hex "#rrggbb" for display values 0..1, and back (the outline colour is a display colour). */
export function hexOf(rgb) {
  return `#${rgb.map((v) => Math.round(Math.min(Math.max(v, 0), 1) * 255).toString(16).padStart(2, "0")).join("")}`;
}

export function rgbOf(hex) {
  const value = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!value) return null;
  return [0, 2, 4].map((i) => Number.parseInt(value[1].slice(i, i + 2), 16) / 255);
}

/**
 * @param {object} options
 * @param {HTMLElement} options.label where the selected entity's name is said (aria-live)
 * @param {HTMLInputElement} options.outlineColor the outline colour input
 * @param {() => object|null} options.client the live RenderingConnection, or null
 * @param {(err: Error) => void} options.report shows a refused request
 * @param {(selection: {id: number, name: string}|null) => void} options.onChange
 */
export function createSelection({ label, outlineColor, client, report, onChange }) {
  let current = null; // {id, name}
  let queue = Promise.resolve(); // one change at a time, in order

  function say(text, id = null) {
    label.textContent = text;
    if (id === null) delete label.dataset.entity;
    else label.dataset.entity = String(id);
  }

  function change(next) {
    const c = client();
    const previous = current;
    current = next;
    if (next) say(next.name || `Entity ${next.id}`, next.id);
    onChange(next);
    queue = queue.then(async () => {
      if (!c) return;
      try {
        if (previous && (!next || previous.id !== next.id)) {
          await c.setStateOverride(previous.id, { selected: null }).catch((err) => {
            if (err.code !== "EntityNotFound") throw err; // a destroyed entity has nothing to clear
          });
        }
        if (next && (!previous || previous.id !== next.id)) await c.setStateOverride(next.id, { selected: true });
      } catch (err) {
        report(err);
      }
    });
    return queue;
  }

  outlineColor.addEventListener("change", () => {
    const c = client();
    const color = rgbOf(outlineColor.value);
    if (c && color) c.setOutline({ color }).catch(report);
  });

  return {
    get current() {
      return current;
    },
    /** Select an entity (`{id, name}`); resolves once the server has it. */
    select(entity) {
      return change({ id: entity.id, name: entity.name });
    },
    /** Clear the selection; `why` is what the label says then. */
    clear(why = "Nothing selected.") {
      const done = current ? change(null) : queue;
      say(why);
      return done;
    },
    /** Forget it without asking the server (a new connection starts from a clean slate). */
    reset() {
      current = null;
      queue = Promise.resolve();
      say("Click or tap an object to select it.");
      onChange(null);
    },
  };
}
