// The viewer's scene tools assembled on its page: the entity tree, the selection, the material panel, the
// cut plane, the sky chooser, the measurement and the model panel, each its own module in this folder,
// all talking to the render server through openrr.js's RenderingConnection alone. The viewer hands in the
// live connection (a function: it changes on every reconnect) and routes the picture's clicks here.

import { byId } from "../ui.js";
import { createCutPlaneTool } from "./cut-plane.js";
import { createEntityTree } from "./entity-tree.js";
import { createMaterialPanel } from "./materials.js";
import { createMeasureTool } from "./measure.js";
import { createModelPanel } from "./models.js";
import { createSelection } from "./selection.js";
import { createSkyChooser } from "./sky.js";

/**
 * @param {object} options
 * @param {() => object|null} options.client the live RenderingConnection, or null
 * @param {(err: Error) => void} options.report shows a refused request
 * @param {HTMLElement} options.surface the picture's input surface (marked while measuring)
 */
export function createSceneTools({ client, report, surface }) {
  let pickedPoint = null; // the world point of the last pick that hit something

  const tree = createEntityTree({
    container: byId("entity-tree"),
    summary: byId("entities-summary"),
    client,
    report,
    onSelect: (entity) => selection.select(entity),
  });
  const materials = createMaterialPanel({
    elements: {
      fieldset: byId("material-fields"),
      heading: byId("materials-heading"),
      select: byId("material-select"),
      albedo: byId("albedo"),
      roughness: byId("roughness"),
      roughnessOut: byId("roughness-out"),
      metalness: byId("metalness"),
      metalnessOut: byId("metalness-out"),
      unlit: byId("unlit"),
      doubleSided: byId("double-sided"),
      status: byId("material-status"),
    },
    client,
    report,
  });
  const selection = createSelection({
    label: byId("picked"),
    outlineColor: byId("outline-color"),
    client,
    report,
    onChange: (selected) => {
      tree.setSelected(selected ? selected.id : null);
      materials.show(selected);
    },
  });
  const cut = createCutPlaneTool({
    elements: {
      normal: byId("cut-normal"),
      placeCenter: byId("cut-center"),
      placePicked: byId("cut-picked"),
      offset: byId("cut-offset"),
      offsetOut: byId("cut-offset-out"),
      flip: byId("cut-flip"),
      remove: byId("cut-remove"),
      status: byId("cut-status"),
    },
    client,
    pickedPoint: () => pickedPoint,
    report,
    onChange: () => tree.refresh(),
  });
  const sky = createSkyChooser({ select: byId("sky-select"), status: byId("sky-status"), client, report });
  const measure = createMeasureTool({
    elements: {
      toggle: byId("measure-toggle"),
      clear: byId("measure-clear"),
      result: byId("measure-distance"),
      status: byId("measure-status"),
    },
    onModeChange: (active) => surface.classList.toggle("measuring", active),
  });
  const models = createModelPanel({
    elements: {
      form: byId("model-form"),
      url: byId("model-url"),
      load: byId("model-load"),
      progress: byId("model-progress"),
      status: byId("model-status"),
      list: byId("models"),
    },
    client,
    report,
    onChange: async (unloaded) => {
      if (unloaded && selection.current) await selection.clear(); // its entity may have gone with the model
      tree.refresh();
    },
  });

  // Escape clears the selection and the measurement (a field or a dialog keeps its own Escape).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.target.closest("input, select, textarea, dialog")) return;
    selection.clear();
    measure.clear();
  });

  return {
    /** Connected: read what the server has. */
    connected(connection) {
      models.connected(connection.hello || {});
      tree.refresh();
      sky.load();
      cut.update();
    },
    /** A pick's answer (pick.result) for a click in the picture: measure mode takes its world point, else
     * it selects the entity hit, or clears the selection on the background. */
    picked(result) {
      if (result.node && result.position) pickedPoint = result.position;
      cut.update();
      if (measure.active) measure.add(result.node ? result.position : null);
      else if (result.node) selection.select(result.node);
      else selection.clear("Nothing there (background).");
    },
    /** A new or no connection: what the tools knew belonged to the old one. */
    reset() {
      pickedPoint = null;
      models.reset();
      selection.reset();
      tree.reset();
      materials.reset();
      cut.reset();
      sky.reset();
      measure.clear();
    },
  };
}
