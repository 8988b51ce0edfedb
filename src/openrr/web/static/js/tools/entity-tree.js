// The scene's entities as a collapsible tree (scene.get), each row with its name (a click selects the
// entity) and two toggles: hide and see-through.
//
// Both toggles set the entity's HierarchicalStateOverride (`hidden`, `seeThrough`: ForceOn when pressed,
// InheritFromParent when released) rather than Entity.enabled: an override is the viewer's own look at the
// scene, it leaves the model's enabled flags as the model (or another tool) set them, and a released
// toggle gives the entity back whatever its parent says, so hiding a parent and showing one child works as
// in ARR. The pressed state shown is the server's answer, not the click.

import { el } from "../ui.js";

const MAX_ROWS = 2000; // a tree that large is not read row by row; the rest are counted, not drawn
const FLAGS = [
  { flag: "hidden", text: "hide", label: "Hide" },
  { flag: "seeThrough", text: "x-ray", label: "See through" },
];

/**
 * @param {object} options
 * @param {HTMLElement} options.container where the tree goes
 * @param {HTMLElement} options.summary says how many entities there are (aria-live)
 * @param {() => object|null} options.client the live RenderingConnection, or null
 * @param {(err: Error) => void} options.report
 * @param {(entity: {id: number, name: string}) => void} options.onSelect a row was chosen
 */
export function createEntityTree({ container, summary, client, report, onSelect }) {
  let entities = new Map(); // id → entity, as scene.get said
  const states = new Map(); // id → {hidden, seeThrough}: booleans from the server's answers
  const collapsed = new Set();
  let selected = null;
  let generation = 0; // a refresh overtaken by a newer one draws nothing
  let total = 0; // entities in the scene (more than drawn when it is big)

  function nameOf(entity) {
    return entity.name || `Entity ${entity.id}`;
  }

  function row(entity, hasChildren) {
    const name = nameOf(entity);
    const state = states.get(entity.id) || {};
    const open = !collapsed.has(entity.id);
    const twisty = hasChildren
      ? el("button", {
          type: "button",
          class: "twisty",
          "aria-expanded": String(open),
          "aria-label": `${open ? "Collapse" : "Expand"} ${name}`,
          "data-action": "toggle",
          text: open ? "▾" : "▸",
        })
      : el("span", { class: "twisty", "aria-hidden": "true" });
    const flags = FLAGS.map(({ flag, text, label }) =>
      el("button", {
        type: "button",
        class: "flag",
        "data-action": flag,
        "aria-pressed": String(Boolean(state[flag])),
        "aria-label": `${label} ${name}`,
        title: label,
        text,
      }),
    );
    const pick = el("button", { type: "button", class: "name", "data-action": "select", text: name });
    if (selected === entity.id) pick.setAttribute("aria-current", "true");
    return el("div", { class: "entity" }, twisty, pick, ...flags);
  }

  function render() {
    const children = new Map();
    const roots = [];
    for (const entity of entities.values()) {
      if (entity.parent === null || !entities.has(entity.parent)) roots.push(entity);
      else (children.get(entity.parent) || children.set(entity.parent, []).get(entity.parent)).push(entity);
    }
    let drawn = 0;
    const branch = (list) => {
      const ul = el("ul", { role: "list" });
      for (const entity of list) {
        if (drawn >= MAX_ROWS) break;
        drawn += 1;
        const kids = children.get(entity.id) || [];
        const li = el("li", { "data-entity": entity.id }, row(entity, kids.length > 0));
        if (kids.length && !collapsed.has(entity.id)) li.append(branch(kids));
        ul.append(li);
      }
      return ul;
    };
    container.replaceChildren(branch(roots));
    const count = Math.max(total, entities.size);
    summary.textContent =
      count === 0
        ? "No entities: load a model."
        : `${count} ${count === 1 ? "entity" : "entities"}${drawn < count ? ` (the first ${drawn} shown)` : ""}.`;
  }

  async function setFlag(id, flag, on) {
    const c = client();
    if (!c) return;
    try {
      const answer = await c.setStateOverride(id, { [flag]: on });
      states.set(id, { ...states.get(id), [flag]: answer.properties[flag] === "ForceOn" });
    } catch (err) {
      report(err);
    }
    render();
  }

  container.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const li = button && button.closest("li[data-entity]");
    if (!li) return;
    const id = Number(li.dataset.entity);
    const entity = entities.get(id);
    const action = button.dataset.action;
    if (!entity) return;
    if (action === "toggle") {
      if (collapsed.has(id)) collapsed.delete(id);
      else collapsed.add(id);
      render();
      container.querySelector(`li[data-entity="${id}"] > .entity > .twisty`)?.focus();
    } else if (action === "select") {
      onSelect({ id, name: nameOf(entity) });
    } else {
      const on = button.getAttribute("aria-pressed") !== "true";
      setFlag(id, action, on ? true : null);
    }
  });

  return {
    /** Read the scene again (after a model load or unload, an entity made or destroyed). */
    async refresh() {
      const mine = ++generation;
      const c = client();
      if (!c) return;
      try {
        // Hierarchy order, parents first: the first MAX_ROWS entities are the top of the tree.
        const list = [];
        for (;;) {
          const page = await c.getScenePage({ offset: list.length });
          list.push(...page.entities);
          total = page.total;
          if (!page.entities.length || list.length >= Math.min(total, MAX_ROWS)) break;
        }
        if (mine !== generation) return;
        entities = new Map(list.map((entity) => [entity.id, entity]));
        for (const id of [...states.keys()]) if (!entities.has(id)) states.delete(id);
      } catch (err) {
        report(err);
      }
      render();
    },
    /** Mark the selected entity's row (null: none). */
    setSelected(id) {
      selected = id;
      for (const button of container.querySelectorAll(".name[aria-current]")) button.removeAttribute("aria-current");
      if (id !== null) {
        container.querySelector(`li[data-entity="${id}"] > .entity > .name`)?.setAttribute("aria-current", "true");
      }
    },
    /** Forget everything (a new connection starts from the session's clean slate). */
    reset() {
      generation += 1;
      entities = new Map();
      total = 0;
      states.clear();
      collapsed.clear();
      selected = null;
      render();
    },
  };
}
