// The material panel of the selected entity: its mesh parts' materials (material.list), one at a time,
// with albedo colour, roughness, metalness, unlit and double-sided. Edits apply live (material.set, which
// changes the material wherever it is used, as ARR's shared materials); while a slider is dragged only the
// newest value is sent once the previous one was answered.
//
// Unlit is a kind, not a property (ARR's ColorMaterial against its PbrMaterial): turning it on puts an
// unlit copy (material.create "color", the same albedo) on the parts of this entity that use the material
// (mesh.setMaterial); turning it off puts the original back.

/** Linear 0..1 to a display "#rrggbb", and back; the renderer encodes its output with gamma 2.2. */
function hexOfLinear(rgb) {
  const byte = (v) => Math.round(Math.min(Math.max(v, 0), 1) ** (1 / 2.2) * 255);
  return `#${rgb.slice(0, 3).map((v) => byte(v).toString(16).padStart(2, "0")).join("")}`;
}

function linearOfHex(hex) {
  return [1, 3, 5].map((i) => (Number.parseInt(hex.slice(i, i + 2), 16) / 255) ** 2.2);
}

/**
 * @param {object} options
 * @param {object} options.elements {fieldset, heading, select, albedo, roughness, roughnessOut, metalness,
 *   metalnessOut, unlit, doubleSided, status} of the page
 * @param {() => object|null} options.client
 * @param {(err: Error) => void} options.report
 */
export function createMaterialPanel({ elements, client, report }) {
  const { fieldset, heading, select, albedo, roughness, roughnessOut, metalness, metalnessOut, unlit, doubleSided, status } =
    elements;
  let entity = null; // {id, name}
  let listing = null; // {parts, materials}
  const counterparts = new Map(); // material id → the unlit copy made of it, and back
  const pending = new Map(); // material id → properties not sent yet
  let sending = null;

  function material() {
    return listing ? listing.materials.find((m) => String(m.id) === select.value) || null : null;
  }

  function showMaterial() {
    const m = material();
    fieldset.disabled = !m;
    if (!m) {
      albedo.value = "#ffffff"; // nothing to edit: no leftover of the previous entity's material
      roughnessOut.textContent = metalnessOut.textContent = "–";
      unlit.checked = doubleSided.checked = false;
      return;
    }
    albedo.value = hexOfLinear(m.albedoColor || [1, 1, 1, 1]);
    roughness.value = String(m.roughness ?? 1);
    metalness.value = String(m.metalness ?? 0);
    roughnessOut.textContent = Number(roughness.value).toFixed(2);
    metalnessOut.textContent = Number(metalness.value).toFixed(2);
    unlit.checked = m.kind === "color";
    roughness.disabled = metalness.disabled = unlit.checked; // an unlit material has no lighting to tune
    doubleSided.checked = Boolean(m.doubleSided);
    const parts = listing.parts.filter((p) => p.material === m.id).map((p) => p.part);
    status.textContent = `${m.name || `Material ${m.id}`} (${m.kind}), on part${parts.length === 1 ? "" : "s"} ${parts.join(", ")}.`;
  }

  async function load(keep = null) {
    const c = client();
    listing = null;
    select.replaceChildren();
    if (!c || !entity) {
      heading.textContent = "Materials";
      status.textContent = "Select an entity to edit its materials.";
      showMaterial();
      return;
    }
    const mine = entity;
    heading.textContent = `Materials of ${entity.name}`;
    try {
      const answer = await c.listMaterials(entity.id);
      if (mine !== entity) return;
      listing = answer;
    } catch (err) {
      if (mine === entity) status.textContent = `The materials could not be read: ${err.message}`;
      fieldset.disabled = true;
      return;
    }
    for (const m of listing.materials) {
      const option = document.createElement("option");
      option.value = String(m.id);
      option.textContent = m.name || `Material ${m.id}`;
      select.append(option);
    }
    if (keep !== null) select.value = String(keep);
    if (!listing.materials.length) status.textContent = `${entity.name} has no mesh parts.`;
    showMaterial();
  }

  /** Send the pending properties of the shown material; one request at a time, the newest values win. */
  function edit(properties) {
    const m = material();
    if (!m) return;
    Object.assign(m, properties);
    pending.set(m.id, { ...pending.get(m.id), ...properties });
    const c = client();
    if (sending || !c) return;
    sending = (async () => {
      while (pending.size) {
        const [id, send] = pending.entries().next().value;
        pending.delete(id);
        try {
          await c.setMaterial(id, send);
        } catch (err) {
          report(err);
        }
      }
      sending = null;
    })();
  }

  async function setUnlit(on) {
    const c = client();
    const m = material();
    if (!c || !m || (m.kind === "color") === on) return;
    try {
      let other = counterparts.get(m.id);
      if (other === undefined) {
        const made = await c.createMaterial(on ? "color" : "pbr", {
          name: `${m.name || `Material ${m.id}`} (${on ? "unlit" : "lit"})`,
          properties: { albedoColor: m.albedoColor, doubleSided: m.doubleSided },
        });
        other = made.id;
        counterparts.set(m.id, other);
        counterparts.set(other, m.id);
      }
      for (const { part, material: id } of listing.parts) {
        if (id === m.id) await c.setMeshMaterial(entity.id, part, other);
      }
      await load(other);
    } catch (err) {
      report(err);
      showMaterial();
    }
  }

  select.addEventListener("change", showMaterial);
  albedo.addEventListener("input", () => {
    const m = material();
    const alpha = m && m.albedoColor ? m.albedoColor[3] : 1;
    edit({ albedoColor: [...linearOfHex(albedo.value), alpha] });
  });
  roughness.addEventListener("input", () => {
    roughnessOut.textContent = Number(roughness.value).toFixed(2);
    edit({ roughness: Number(roughness.value) });
  });
  metalness.addEventListener("input", () => {
    metalnessOut.textContent = Number(metalness.value).toFixed(2);
    edit({ metalness: Number(metalness.value) });
  });
  doubleSided.addEventListener("change", () => edit({ doubleSided: doubleSided.checked }));
  unlit.addEventListener("change", () => setUnlit(unlit.checked));

  load();
  return {
    /** Show the materials of this entity (`{id, name}`, or null for none). */
    show(selected) {
      entity = selected;
      return load();
    },
    /** A new connection: material ids are per connection. */
    reset() {
      counterparts.clear();
      pending.clear();
      entity = null;
      return load();
    },
  };
}
