"""``<model>.ConversionSettings.json``: ARR's conversion settings, parsed and validated as its schema says.

ARR's schema (configure-model-conversion.md) has ``"additionalProperties": false`` at the top level and in
``vertex``, so an unknown key is an error here too, named in the message; so is a value of the wrong type
or outside its enum. JSON keys are case-sensitive, as in the schema. Every problem raises
``ConversionFailed`` naming the property (``vertex.normal``, ``axis[1]``...).

Defaults are ARR's. Two groups depend on the input format, so they stay ``None`` until ``for_format``:

* ``gammaToLinearMaterial`` / ``gammaToLinearVertex``: true for FBX, E57, PLY, LAS, LAZ and XYZ, false for
  the others (glTF factors are linear by specification; OBJ is treated like glTF, since openrr's renderer
  takes factors as they are).
* ``opaqueMaterialDefaultSidedness``: ARR assumes double-sided opaque materials where the source says
  nothing. glTF says something for every material (``doubleSided``, default false), so an unset property
  keeps the file's flag there; set explicitly, it applies to every opaque material of any format.

Numpy-free on purpose: the control plane may validate settings without loading the render stack.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

from openrr.assets import ConversionFailed
from openrr.model.arrasset.vertex import VERTEX_ENUMS, VertexFormat
from openrr.model.metadata import MAX_PATTERN_LENGTH, MAX_PATTERNS

Sidedness = Literal["SingleSided", "DoubleSided"]
SceneGraphMode = Literal["none", "static", "dynamic"]
AxisName = Literal["default", "+x", "-x", "+y", "-y", "+z", "-z"]

AXIS_NAMES: tuple[AxisName, ...] = ("default", "+x", "-x", "+y", "-y", "+z", "-z")
# Formats whose colours ARR took as gamma-encoded by default (the lower-case extension, without the dot).
# STEP and IFC, which ARR never read, too: their colours are display values picked in a CAD or BIM tool
# (sRGB, as Open CASCADE and IfcOpenShell treat them), not linear factors as glTF's are.
GAMMA_BY_DEFAULT = frozenset({"fbx", "e57", "ply", "las", "laz", "xyz", "step", "stp", "ifc"})
SETTINGS_SUFFIX = ".ConversionSettings.json"
LEGACY_SETTINGS_NAME = "conversionSettings.json"  # deprecated by ARR, still honoured


@dataclass(frozen=True)
class ConversionSettings:
    """Validated conversion settings. ``specified`` is the JSON object as given (for ``info.json``)."""

    scaling: float = 1.0
    recenter_to_origin: bool = False
    opaque_material_default_sidedness: Sidedness | None = None  # None: the format's default (see above)
    material_override: str = ""
    gamma_to_linear_material: bool | None = None  # None: the format's default
    gamma_to_linear_vertex: bool | None = None
    scene_graph_mode: SceneGraphMode = "dynamic"
    generate_collision_mesh: bool = True
    unlit_materials: bool = False
    deduplicate_materials: bool = True
    fbx_assume_metallic: bool = True
    axis: tuple[AxisName, AxisName, AxisName] = ("+x", "+y", "+z")
    vertex: VertexFormat = field(default_factory=VertexFormat)
    metadata_keys: tuple[str, ...] = ()
    specified: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(
        cls, data: str | bytes | Mapping[str, Any], source: str = "conversion settings"
    ) -> ConversionSettings:
        """Parse and validate; ``source`` names the file in messages. Raises ``ConversionFailed``."""
        if isinstance(data, str | bytes):
            raw = data.decode("utf-8-sig", errors="strict") if isinstance(data, bytes) else data
            try:
                obj = json.loads(raw.lstrip("\ufeff"))  # tools on Windows like to write a BOM
            except ValueError as exc:
                raise ConversionFailed(f"{source}: not valid JSON: {exc}", code="InvalidSettings") from None
        else:
            obj = data
        if not isinstance(obj, Mapping):
            raise ConversionFailed(f"{source}: must hold a JSON object", code="InvalidSettings")
        return _parse(dict(obj), source)

    @classmethod
    def load(cls, path: Path) -> ConversionSettings:
        """Read and validate a settings file."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConversionFailed(
                f"cannot read {path.name}: {exc.strerror or exc}", code="InvalidSettings"
            ) from None
        try:
            return cls.from_json(data, path.name)
        except UnicodeDecodeError:
            raise ConversionFailed(f"{path.name} is not UTF-8 text", code="InvalidSettings") from None

    def for_format(self, extension: str) -> ConversionSettings:
        """These settings with the format-dependent defaults filled in (``extension`` like ``.ply``)."""
        gamma = extension.lower().lstrip(".") in GAMMA_BY_DEFAULT
        return replace(
            self,
            gamma_to_linear_material=gamma
            if self.gamma_to_linear_material is None
            else self.gamma_to_linear_material,
            gamma_to_linear_vertex=gamma
            if self.gamma_to_linear_vertex is None
            else self.gamma_to_linear_vertex,
        )

    def axis_mapping(self) -> tuple[tuple[int, float], tuple[int, float], tuple[int, float]]:
        """For each output axis (x, y, z): the source axis it takes (0..2) and the sign."""
        out: list[tuple[int, float]] = []
        for slot, name in enumerate(self.axis):
            if name == "default":
                out.append((slot, 1.0))
            else:
                out.append(("xyz".index(name[1]), -1.0 if name[0] == "-" else 1.0))
        return out[0], out[1], out[2]


def settings_file_for(model: Path) -> Path | None:
    """The settings file ARR would use for ``model``: ``<stem>.ConversionSettings.json`` beside it, else
    the deprecated ``conversionSettings.json`` in the same folder; None if there is neither."""
    specific = model.with_name(model.stem + SETTINGS_SUFFIX)
    if specific.is_file():
        return specific
    legacy = model.with_name(LEGACY_SETTINGS_NAME)
    return legacy if legacy.is_file() else None


_KEYS = {
    "scaling": "scaling",
    "recenterToOrigin": "recenter_to_origin",
    "opaqueMaterialDefaultSidedness": "opaque_material_default_sidedness",
    "material-override": "material_override",
    "gammaToLinearMaterial": "gamma_to_linear_material",
    "gammaToLinearVertex": "gamma_to_linear_vertex",
    "sceneGraphMode": "scene_graph_mode",
    "generateCollisionMesh": "generate_collision_mesh",
    "unlitMaterials": "unlit_materials",
    "deduplicateMaterials": "deduplicate_materials",
    "fbxAssumeMetallic": "fbx_assume_metallic",
    "axis": "axis",
    "vertex": "vertex",
    "metadataKeys": "metadata_keys",
}
_BOOLEANS = {
    "recenterToOrigin",
    "gammaToLinearMaterial",
    "gammaToLinearVertex",
    "generateCollisionMesh",
    "unlitMaterials",
    "deduplicateMaterials",
    "fbxAssumeMetallic",
}
_ENUMS: dict[str, tuple[str, ...]] = {
    "opaqueMaterialDefaultSidedness": ("SingleSided", "DoubleSided"),
    "sceneGraphMode": ("none", "static", "dynamic"),
}


Fail = Callable[[str], ConversionFailed]


def _parse(obj: dict[str, Any], source: str) -> ConversionSettings:
    def fail(message: str) -> ConversionFailed:
        return ConversionFailed(f"{source}: {message}", code="InvalidSettings")

    unknown = sorted(k for k in obj if k not in _KEYS)
    if unknown:
        raise fail(f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}")
    values = {_KEYS[key]: _value(key, value, fail) for key, value in obj.items()}
    return ConversionSettings(**values, specified=obj)


def _value(key: str, value: Any, fail: Fail) -> Any:
    """The value of a known property, checked (and converted: tuples, floats) as its schema says."""
    if key in _BOOLEANS:
        if not isinstance(value, bool):
            raise fail(f"{key} must be true or false, not {_shown(value)}")
        return value
    if key in _ENUMS:
        if value not in _ENUMS[key]:
            raise fail(f"{key} must be one of {', '.join(_ENUMS[key])}, not {_shown(value)}")
        return value
    return _CHECKS[key](value, fail)


def _scaling(value: Any, fail: Fail) -> float:
    # bool is an int in Python but not a number in JSON Schema.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"scaling must be a number, not {_shown(value)}")
    if not math.isfinite(value) or value <= 0:
        raise fail(f"scaling must be a finite number greater than 0, not {_shown(value)}")
    return float(value)


def _material_override(value: Any, fail: Fail) -> str:
    if not isinstance(value, str):
        raise fail(f"material-override must be a string, not {_shown(value)}")
    return value


def _metadata_keys(value: Any, fail: Fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"metadataKeys must be an array of strings, not {_shown(value)}")
    if len(value) > MAX_PATTERNS:
        raise fail(f"metadataKeys has {len(value)} entries, more than {MAX_PATTERNS}")
    if any(len(v) > MAX_PATTERN_LENGTH for v in value):
        raise fail(f"a metadataKeys entry is longer than {MAX_PATTERN_LENGTH} characters")
    return tuple(value)


def _axis(value: Any, fail: Fail) -> tuple[AxisName, AxisName, AxisName]:
    if not isinstance(value, list) or len(value) != 3:
        raise fail(f"axis must be an array of 3 strings, not {_shown(value)}")
    for i, name in enumerate(value):
        if name not in AXIS_NAMES:
            raise fail(f"axis[{i}] must be one of {', '.join(AXIS_NAMES)}, not {_shown(name)}")
    # Each output axis must take a different source axis, or the model would be flattened.
    used = [("xyz"[i] if name == "default" else name[1]) for i, name in enumerate(value)]
    if len(set(used)) != 3:
        raise fail(f"axis {value} uses a source axis twice: each of x, y and z must appear once")
    return cast(tuple[AxisName, AxisName, AxisName], tuple(value))


def _vertex(value: Any, fail: Fail) -> VertexFormat:
    if not isinstance(value, dict):
        raise fail(f"vertex must be an object, not {_shown(value)}")
    unknown = sorted(k for k in value if k not in VERTEX_ENUMS)
    if unknown:
        raise fail(
            f"unknown vertex propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}"
        )
    for key, fmt in value.items():
        if fmt not in VERTEX_ENUMS[key]:
            raise fail(f"vertex.{key} must be one of {', '.join(VERTEX_ENUMS[key])}, not {_shown(fmt)}")
    return VertexFormat(**value)


# The checks of the properties that are neither booleans nor enums.
_CHECKS: dict[str, Callable[[Any, Fail], Any]] = {
    "scaling": _scaling,
    "material-override": _material_override,
    "axis": _axis,
    "vertex": _vertex,
    "metadataKeys": _metadata_keys,
}


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def settings_json(settings: ConversionSettings) -> dict[str, Any]:
    """Every setting in ARR's JSON names, defaults included (``None`` for a format default left unset)."""
    names = {v: k for k, v in _KEYS.items()}
    out: dict[str, Any] = {}
    for f in fields(settings):
        if f.name == "specified":
            continue
        value = getattr(settings, f.name)
        if isinstance(value, VertexFormat):
            value = {g.name: getattr(value, g.name) for g in fields(value)}
        elif isinstance(value, tuple):
            value = list(value)
        out[names[f.name]] = value
    return out
