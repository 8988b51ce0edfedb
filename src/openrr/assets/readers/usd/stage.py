"""Opening a USD stage confined to the model's folder, and what the stage says of itself.

USD's asset resolver follows any path a layer names: an absolute path anywhere on the machine, a search
path, ``..``. A converted model must not read files beside it that are not its own, so before the stage is
composed every layer the model needs (sublayers, references, payloads, in every variant) is found here
with ``Sdf`` alone, which opens one layer without composing it: a dependency that resolves outside the
model's folder (or outside the ``.usdz`` it lies in), names a URL, or uses a path expression is removed from
the layer in memory (``UpdateCompositionAssetDependency``, never saved) with a warning, so the composed
stage never opens it. Textures are checked with ``inside`` the same way before they are read.

Value clips are removed from every layer in memory the same way: openrr reads the default time, where
clips give nothing, and USD would open their layers (wherever they lie) at the first question about a
value's sources.

The layers opened are held for as long as the stage is, and the edited ones are reloaded from disk at the
end: ``Sdf`` shares layers across the process by file name, so the next conversion of the same file sees it
as it is on disk.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.usd.pxr_modules import Ar, Sdf, Usd, UsdGeom

MAX_LAYERS = 1000  # layers one model may compose (sublayers, references, payloads)
MAX_LAYER_BYTES = 8 << 30  # all of them together, as files
MAX_REPORTED_ERRORS = 20  # composition errors listed as warnings; the rest are counted
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # a scheme: http:, file:, omniverse:... (not C:\ paths)
_Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass
class Opened:
    """A composed stage and what ``info.json`` and the walk need of it. ``root_transform``: applied to
    each top node (column vectors): the stage's ``upAxis`` turned to Y-up, ``metersPerUnit`` to metres."""

    stage: Any
    folder: Path
    version: str = ""
    generator: str = ""
    root_transform: np.ndarray = field(default_factory=lambda: np.eye(4))

    def inside(self, resolved: str) -> bool:
        """Whether a resolved asset path (a file, or a file inside a package: ``a.usdz[b.png]``) lies in
        the model's folder."""
        return _inside(resolved, self.folder)


@contextlib.contextmanager
def open_stage(job: Job, path: Path) -> Iterator[Opened]:
    """The stage of ``path``, composed from the layers inside its folder only. ``ConversionFailed`` for a
    file USD cannot read, too many layers, or no prim to convert."""
    folder = path.parent.resolve()
    root = _open_layer(str(path), path.name)
    layers, edited = _confine(job, root, folder)
    try:
        try:
            stage = Usd.Stage.Open(root, Usd.Stage.LoadAll)
        except Exception as exc:  # noqa: BLE001 - pxr raises Tf.ErrorException (and others) on bad data
            raise ConversionFailed(f"{path.name}: not a valid USD stage: {_message(exc)}") from None
        if stage is None:
            raise ConversionFailed(f"{path.name}: not a valid USD stage")
        _report_composition(job, stage)
        yield Opened(stage, folder, _version(path), _generator(root), _root_transform(job, stage))
    finally:
        for layer in edited:  # back to what is on disk for whoever opens the file next in this process
            with contextlib.suppress(Exception):
                layer.Reload(True)
        del layers


def _open_layer(identifier: str, name: str) -> Any:
    try:
        layer = Sdf.Layer.FindOrOpen(identifier)
    except Exception as exc:  # noqa: BLE001 - pxr raises Tf.ErrorException on unreadable data
        raise ConversionFailed(f"{name}: not a valid USD file: {_message(exc)}") from None
    if layer is None:
        raise ConversionFailed(f"{name}: not a valid USD file")
    return layer


def _report_composition(job: Job, stage: Any) -> None:
    """What USD could not compose (a missing reference, a broken variant), as warnings: the stage is
    converted without it, as USD's own viewers draw it."""
    errors = list(stage.GetCompositionErrors())
    for error in errors[:MAX_REPORTED_ERRORS]:
        job.warn("CompositionError", "Part of the stage not composed", _without_folders(str(error))[:300])
    if len(errors) > MAX_REPORTED_ERRORS:
        job.say(f"{len(errors) - MAX_REPORTED_ERRORS} more composition errors not listed", "WARNING")


def _without_folders(text: str) -> str:
    """``text`` with file names for paths: a message does not show the machine's folders."""
    return re.sub(r"""(?:^|(?<=[\s@'"(]))(?:[A-Za-z]:)?[\\/][^\s'"@\[\]<>]*[\\/]""", "", text)


def _message(exc: Exception) -> str:
    """pxr's error text without its C++ location and with file names instead of paths, short enough for
    a message (pxr writes ``Error in 'function' at line N in file F : 'what went wrong'``)."""
    texts = []
    for line in (line.strip() for line in str(exc).splitlines()):
        found = re.search(r" : '(.*)$", line)
        text = (found.group(1) if found else line).strip("'")
        if text:
            texts.append(_without_folders(text))
    return ("; ".join(texts) or type(exc).__name__)[:300]


def _confine(job: Job, root: Any, folder: Path) -> tuple[list[Any], list[Any]]:
    """Every layer the stage will compose, opened; dependencies outside ``folder`` removed (with a
    warning). Returns the layers (to hold them open) and those edited."""
    layers, edited = [root], []
    seen = {root.identifier}
    total = 0
    for layer in layers:  # grows as dependencies are found
        # "": an internal reference (to a prim of the same layer stack)
        for asset in [a for a in layer.GetCompositionAssetDependencies() if a]:
            resolved = _resolve(layer, asset)
            if resolved is None or not _inside(resolved, folder):
                job.warn(
                    "ExternalReference",
                    "Reference outside the model ignored",
                    f"{Path(layer.identifier).name} refers to {asset!r}, outside the model's folder: "
                    "openrr reads only the files beside the model",
                )
                layer.UpdateCompositionAssetDependency(asset, "")
                if layer not in edited:
                    edited.append(layer)
                continue
            if resolved == "" or resolved in seen:
                continue  # missing: the stage warns of it as it composes
            seen.add(resolved)
            if len(seen) > MAX_LAYERS:
                raise ConversionFailed(f"the model composes more than {MAX_LAYERS} USD layers")
            total += _size(resolved)
            if total > MAX_LAYER_BYTES:
                raise ConversionFailed(f"the model's USD layers take more than {MAX_LAYER_BYTES} bytes")
            layers.append(_open_layer(resolved, asset))
    for layer in layers:
        if _drop_clips(layer) and layer not in edited:
            edited.append(layer)
    return layers, edited


def _drop_clips(layer: Any) -> int:
    """Remove every prim's value clips from ``layer`` (in memory); how many prims had some. Clips only
    give time samples, and openrr reads the default time: their layers (which may lie anywhere) would be
    opened by any question about a value's sources, so they go before the stage is composed."""
    dropped = 0
    stack = [layer.pseudoRoot]
    while stack:
        spec = stack.pop()
        for key in ("clips", "clipSets"):
            if spec.HasInfo(key):
                spec.ClearInfo(key)
                dropped += 1
        stack.extend(spec.nameChildren)
        for variant_set in spec.variantSets:
            stack.extend(variant.primSpec for variant in variant_set.variants.values())
    return dropped


def _resolve(layer: Any, asset: str) -> str | None:
    """``asset`` as the stage would resolve it from ``layer``: "" where no file is found, None where it
    is not a plain path (a URL, a path expression)."""
    if (_URL.match(asset) and not re.match(r"^[A-Za-z]:[\\/]", asset)) or "`" in asset:
        return None
    anchored = Sdf.ComputeAssetPathRelativeToLayer(layer, asset)
    return str(Ar.GetResolver().Resolve(anchored))


def _inside(resolved: str, folder: Path) -> bool:
    if not resolved:
        return True  # nothing to read
    outer = Ar.SplitPackageRelativePathOuter(resolved)[0] if Ar.IsPackageRelativePath(resolved) else resolved
    if _URL.match(outer) and not re.match(r"^[A-Za-z]:[\\/]", outer):
        return False
    real = Path(os.path.realpath(outer))
    return real == folder or folder in real.parents


def _size(resolved: str) -> int:
    outer = Ar.SplitPackageRelativePathOuter(resolved)[0] if Ar.IsPackageRelativePath(resolved) else resolved
    try:
        return os.stat(outer).st_size
    except OSError:
        return 0


def _version(path: Path) -> str:
    """The file's own format version: ``#usda 1.0``'s, or a crate's (``PXR-USDC`` then major, minor,
    patch bytes); "" for a package or an unreadable header."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return ""
    if head.startswith(b"#usda "):
        return head[6:].split(b"\n")[0].decode("ascii", "replace").strip()
    if head.startswith(b"PXR-USDC") and len(head) >= 11:
        return ".".join(str(b) for b in head[8:11])
    return ""


def _generator(root: Any) -> str:
    """What wrote the file, where it says: ``customLayerData``'s ``creator`` (Omniverse, guc...), else the
    layer's ``doc`` when it is short (Blender writes "Blender v4.5.3 LTS")."""
    with contextlib.suppress(Exception):
        data = dict(root.customLayerData or {})
        for key in ("creator", "generator"):
            if isinstance(data.get(key), str) and data[key].strip():
                return str(data[key]).strip()[:200]
        doc = str(root.documentation or "").strip()
        if doc and len(doc) <= 100 and "\n" not in doc:
            return doc
    return ""


def _root_transform(job: Job, stage: Any) -> np.ndarray:
    """``metersPerUnit`` scaling and, for a Z-up stage, the turn to Y-up (x, y, z) -> (x, z, -y)."""
    axis = str(UsdGeom.GetStageUpAxis(stage))
    units = float(UsdGeom.GetStageMetersPerUnit(stage))
    if not np.isfinite(units) or units <= 0:
        job.warn("InvalidUnits", "Invalid metersPerUnit", f"metersPerUnit {units} ignored: metres assumed")
        units = 1.0
    matrix = np.diag([units, units, units, 1.0])
    if axis == "Z":
        matrix = _Z_UP_TO_Y_UP @ matrix
    return matrix
