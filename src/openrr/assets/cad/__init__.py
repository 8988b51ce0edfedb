"""CAD and BIM models (STEP through Open CASCADE, IFC through IfcOpenShell) turned into scenes.

The reader modules ``openrr.assets.readers.step`` and ``.ifc`` declare the formats and import the modules
here only when a file of theirs is converted (``readers.source.library``): the registry imports every
module of ``openrr.assets.readers`` to list the formats, and Open CASCADE and IfcOpenShell take seconds
and hundreds of megabytes to load. This package itself imports neither; ``step_document`` imports Open
CASCADE, ``ifc_model`` IfcOpenShell.

What both share is here: the bound on the triangles a B-rep model may become (tessellation is where a
small file turns into a huge mesh), and one material per colour.
"""

from __future__ import annotations

from collections.abc import Sequence

from openrr.assets import ConversionFailed
from openrr.model.mesh import Material

# The most triangles one CAD or BIM model may tessellate into. A module setting (tests and embedders change
# it): 20 million triangles is ~1 GiB of vertex data before levels of detail, which a 2-core converter
# still finishes in minutes.
MAX_TRIANGLES = 20_000_000
# The most B-rep faces (STEP) or products (IFC) a model may have: checked before tessellating anything,
# so that a file of millions of tiny faces fails at once rather than after minutes of meshing.
MAX_FACES = 5_000_000
MAX_PRODUCTS = 1_000_000
# CAD colours without a colour of their own: a light neutral grey, as CAD viewers show unstyled parts.
DEFAULT_COLOR = (0.8, 0.8, 0.8, 1.0)


class TriangleBudget:
    """Counts the triangles a model tessellates into; ``take`` raises ``ConversionFailed``
    (``ModelTooComplex``) once they pass ``limit``."""

    def __init__(self, file_name: str, limit: int | None = None) -> None:
        self.file_name = file_name
        self.limit = MAX_TRIANGLES if limit is None else limit
        self.used = 0

    def take(self, count: int, what: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise ConversionFailed(
                f"{self.file_name}: {what} takes the tessellation past {self.limit} triangles, the most one "
                "model may have: simplify the model or export fewer parts",
                code="ModelTooComplex",
            )


def check_count(file_name: str, count: int, limit: int, what: str) -> None:
    """``ConversionFailed`` (``ModelTooComplex``) when ``count`` of ``what`` pass ``limit``."""
    if count > limit:
        raise ConversionFailed(
            f"{file_name} has {count} {what}, more than the {limit} one model may have",
            code="ModelTooComplex",
        )


class ColorMaterials:
    """One ``Material`` per distinct colour, shared by every mesh of the model. Colours are RGBA in 0..1
    as the file stores them (sRGB: ``assets.settings`` linearises CAD colours by default)."""

    def __init__(self) -> None:
        self._materials: dict[tuple[float, ...], Material] = {}

    def get(self, rgba: Sequence[float], name: str = "") -> Material:
        key = tuple(round(float(min(max(c, 0.0), 1.0)), 6) for c in rgba)
        if len(key) == 3:
            key = (*key, 1.0)
        material = self._materials.get(key)
        if material is None:
            r, g, b, a = key
            material = Material(
                name=name or f"rgb({r:.3f},{g:.3f},{b:.3f})",
                base_color_factor=(r, g, b, a),
                metallic_factor=0.0,  # CAD and BIM colours are paint, not metal
                roughness_factor=0.6,
                alpha_mode="OPAQUE" if a >= 1.0 else "BLEND",
            )
            self._materials[key] = material
        return material
