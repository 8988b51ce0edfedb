"""``<model>.MaterialOverrides.json``: ARR's per-material changes, parsed and validated as its schema says.

The file is a JSON array of objects; each has a ``name`` and the properties to change
(override-materials.md): ``albedoColor`` ({r, g, b, a?} or {a} alone), ``roughness``, ``metalness``,
``unlit``, ``transparent``, ``alphaClipEnabled``, ``alphaClipThreshold``, ``isDoubleSided``,
``useVertexColor``, ``ignoreTextureMaps`` and, from ARR's first schema, ``textureCoordinateScale`` and
``textureCoordinateOffset`` ({x, y}); ``"<generated>"`` (ARR's first materials files) leaves a property
as converted. ``nameMatching``: ``"exact"`` (default) or ``"regex"``; as in ARR, at most one entry applies
to a material: its exact entry if it has one, else the first regex entry in the file that matches its
whole name (Python's ``re``, close to the JavaScript syntax ARR named).

A property openrr does not know is not an error: it is reported (``unknown``) and the entry's other
properties still apply. A file that is not such an array, or a known property with a wrong value (type,
range, enum), raises ``ConversionFailed`` (``InvalidMaterialOverrides``) naming the entry and property.

Numpy-free, like ``openrr.assets.settings``; ``openrr.assets.material_edits`` applies the entries.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openrr.assets import ConversionFailed

OVERRIDES_SUFFIX = ".MaterialOverrides.json"
MAX_OVERRIDES_BYTES = 1 << 20
MAX_ENTRIES = 65535  # ARR's limit on the materials of one model
MAX_NAME_LENGTH = 1000
GENERATED = "<generated>"
# ARR's listOfMaps, each with what it is in openrr's glTF materials (``material_changes`` applies them).
TEXTURE_MAPS = (
    "AlbedoMap",
    "EmissiveMap",
    "NormalMap",
    "OcclusionMap",
    "RoughnessMap",
    "MetalnessMap",
    "ReflectivityMap",
    "BumpMap",
    "OpacityMap",
    "DiffuseMap",
    "SpecularMap",
    "ShininessMap",
    "MetallicRoughnessMap",
    "SpecularGlossinessMap",
)

Fail = Callable[[str], ConversionFailed]


@dataclass(frozen=True)
class Override:
    """One entry: ``changes`` maps what it changes (``base_rgb``, ``base_alpha``, ``roughness_factor``,
    ``metallic_factor``, ``unlit``, ``double_sided``, ``alpha_cutoff``, ``uv_scale``, ``uv_offset``,
    ``transparent``, ``alpha_clip``, ``ignore``, ``use_vertex_color``) to the value; ``index`` is its
    place in the file (from 0)."""

    index: int
    name: str
    regex: re.Pattern[str] | None
    changes: Mapping[str, Any]
    unknown: tuple[str, ...] = ()

    def shown(self) -> str:
        return f"entry {self.index} ({self.name!r})"


@dataclass
class MaterialOverrides:
    """The entries of one file (``source`` names it in messages) and, as they are looked up, which
    entries applied and to how many materials."""

    source: str
    entries: tuple[Override, ...]
    applied: dict[int, set[str]] = field(default_factory=dict)  # entry index -> material names
    _found: dict[str, Override | None] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: bytes | str, source: str) -> MaterialOverrides:
        """Parse and validate; raises ``ConversionFailed`` (``InvalidMaterialOverrides``)."""

        def fail(message: str) -> ConversionFailed:
            return ConversionFailed(f"{source}: {message}", code="InvalidMaterialOverrides")

        if len(data) > MAX_OVERRIDES_BYTES:
            raise fail(f"larger than {MAX_OVERRIDES_BYTES} bytes")
        try:
            text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
            parsed = json.loads(text.lstrip("\ufeff"))
        except UnicodeDecodeError:
            raise fail("not UTF-8 text") from None
        except (ValueError, RecursionError) as exc:
            raise fail(f"not valid JSON: {exc}") from None
        if not isinstance(parsed, list):
            raise fail("must hold a JSON array of material overrides")
        if len(parsed) > MAX_ENTRIES:
            raise fail(f"has {len(parsed)} entries, more than {MAX_ENTRIES}")
        return cls(source, tuple(_entry(i, e, fail) for i, e in enumerate(parsed)))

    @classmethod
    def load(cls, path: Path) -> MaterialOverrides:
        try:
            size = path.stat().st_size
            if size > MAX_OVERRIDES_BYTES:
                raise ConversionFailed(
                    f"{path.name}: larger than {MAX_OVERRIDES_BYTES} bytes", code="InvalidMaterialOverrides"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise ConversionFailed(
                f"cannot read {path.name}: {exc.strerror or exc}", code="InvalidMaterialOverrides"
            ) from None
        return cls.from_json(data, path.name)

    def entry_for(self, name: str) -> Override | None:
        """The entry that applies to a material named ``name``: its exact entry, else the first regex
        entry matching the whole name, else None. Remembered per name: a model has far fewer materials
        than parts."""
        if name not in self._found:
            exact = next((e for e in self.entries if e.regex is None and e.name == name), None)
            self._found[name] = exact or next(
                (e for e in self.entries if e.regex is not None and e.regex.fullmatch(name)), None
            )
        return self._found[name]

    def record(self, entry: Override, material_name: str) -> None:
        self.applied.setdefault(entry.index, set()).add(material_name)

    def unmatched(self) -> list[Override]:
        return [e for e in self.entries if e.index not in self.applied]

    def overridden_materials(self) -> int:
        return len(set().union(*self.applied.values())) if self.applied else 0


def overrides_file_for(model: Path, named: str) -> tuple[Path | None, bool]:
    """The override file for ``model`` and whether it came from the deprecated ``material-override``
    setting (``named``, a file in the model's folder); else ``<stem>.MaterialOverrides.json`` beside the
    model, or None. A named file that is missing or outside the folder raises ``ConversionFailed``."""
    if named:
        folder = model.parent.resolve()
        path = (folder / named).resolve()
        if not path.is_relative_to(folder):
            raise ConversionFailed(
                f"material-override {named!r} is outside the model's folder", code="InvalidMaterialOverrides"
            )
        if not path.is_file():
            raise ConversionFailed(
                f"material-override names {named!r}, which is not in the input",
                code="InvalidMaterialOverrides",
            )
        return path, True
    beside = model.with_name(model.stem + OVERRIDES_SUFFIX)
    return (beside if beside.is_file() else None), False


def _entry(index: int, entry: Any, fail: Fail) -> Override:
    if not isinstance(entry, dict):
        raise fail(f"entry {index} must be an object, not {_shown(entry)}")
    name = entry.get("name")
    if not isinstance(name, str):
        raise fail(f'entry {index} needs a "name" (a string)')
    if len(name) > MAX_NAME_LENGTH:
        raise fail(f"entry {index}: name longer than {MAX_NAME_LENGTH} characters")
    where = f"entry {index} ({name!r})"

    def fail_here(message: str) -> ConversionFailed:
        return fail(f"{where}: {message}")

    regex = _name_matching(entry.get("nameMatching", "exact"), name, fail_here)
    changes: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in entry.items():
        if key in ("name", "nameMatching"):
            continue
        parser = _PROPERTIES.get(key)
        if parser is None:
            unknown.append(key)
        elif value != GENERATED or key not in _MAY_BE_GENERATED:
            changes.update(parser(key, value, fail_here))
    return Override(index, name, regex, changes, tuple(unknown))


def _name_matching(mode: Any, name: str, fail: Fail) -> re.Pattern[str] | None:
    if mode == "exact":
        return None
    if mode != "regex":
        raise fail(f'nameMatching must be "exact" or "regex", not {_shown(mode)}')
    try:
        return re.compile(name)
    except re.error as exc:
        raise fail(f"name is not a valid regular expression: {exc}") from None


def _number(key: str, value: Any, fail: Fail, low: float = 0.0, high: float = 1.0) -> float:
    # bool is an int in Python but not a number in JSON Schema.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"{key} must be a number, not {_shown(value)}")
    if not low <= value <= high:
        raise fail(f"{key} must be between {low:g} and {high:g}, not {_shown(value)}")
    return float(value)


def _flag(key: str, value: Any, fail: Fail) -> bool:
    if not isinstance(value, bool):
        raise fail(f"{key} must be true or false, not {_shown(value)}")
    return value


def _albedo(key: str, value: Any, fail: Fail) -> dict[str, Any]:
    """ARR's colorOrAlpha: {r, g, b} with an optional a, or {a} alone (the alpha only)."""
    if not isinstance(value, dict) or not (set(value) <= {"r", "g", "b", "a"}):
        raise fail(f"{key} must be an object with r, g, b and optionally a, not {_shown(value)}")
    out: dict[str, Any] = {}
    if "a" in value:
        out["base_alpha"] = _number(f"{key}.a", value["a"], fail)
    if set(value) - {"a"}:
        if not {"r", "g", "b"} <= set(value):
            raise fail(f"{key} needs all of r, g and b (or a alone), not {_shown(value)}")
        out["base_rgb"] = tuple(_number(f"{key}.{c}", value[c], fail) for c in "rgb")
    elif not out:
        raise fail(f"{key} must give r, g and b, or a, not {_shown(value)}")
    return out


def _vector(key: str, value: Any, fail: Fail) -> tuple[float, float]:
    """ARR's vec2: {x, y}, finite numbers."""
    if not isinstance(value, dict) or set(value) != {"x", "y"}:
        raise fail(f"{key} must be an object with x and y, not {_shown(value)}")
    x, y = (_number(f"{key}.{c}", value[c], fail, -1e6, 1e6) for c in "xy")
    return (x, y)


def _maps(key: str, value: Any, fail: Fail) -> frozenset[str]:
    if not isinstance(value, list):
        raise fail(f"{key} must be an array of texture map names, not {_shown(value)}")
    for name in value:
        if name not in TEXTURE_MAPS:
            raise fail(f"{key}: {_shown(name)} is not one of {', '.join(TEXTURE_MAPS)}")
    return frozenset(value)


def _simple(
    target: str, parse: Callable[[str, Any, Fail], Any]
) -> Callable[[str, Any, Fail], dict[str, Any]]:
    return lambda key, value, fail: {target: parse(key, value, fail)}


# Each known property: its parser, giving the changes it makes (see ``Override``).
_PROPERTIES: dict[str, Callable[[str, Any, Fail], dict[str, Any]]] = {
    "albedoColor": _albedo,
    "roughness": _simple("roughness_factor", _number),
    "metalness": _simple("metallic_factor", _number),
    "unlit": _simple("unlit", _flag),
    "transparent": _simple("transparent", _flag),
    "alphaClipEnabled": _simple("alpha_clip", _flag),
    "alphaClipThreshold": _simple("alpha_cutoff", _number),
    "isDoubleSided": _simple("double_sided", _flag),
    "useVertexColor": _simple("use_vertex_color", _flag),
    "textureCoordinateScale": _simple("uv_scale", _vector),
    "textureCoordinateOffset": _simple("uv_offset", _vector),
    "ignoreTextureMaps": _simple("ignore", _maps),
}
_MAY_BE_GENERATED = frozenset({"albedoColor", "roughness", "metalness", "transparent", "isDoubleSided"})


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
