"""``VertexFormat``: the precision of each vertex stream an ``.arrAsset`` stores (ARR's ``vertex``
conversion settings), and the values each stream may take.

Apart, and free of numpy, because the converter's settings parser (``openrr.assets.settings``) validates
these names without loading the writer.
"""

from __future__ import annotations

from dataclasses import dataclass

POSITION_FORMATS = ("32_32_32_FLOAT", "16_16_16_16_FLOAT")
COLOR_FORMATS = ("NONE", "8_8_8_8_UNSIGNED_NORMALIZED")
VECTOR_FORMATS = ("NONE", "8_8_8_8_SIGNED_NORMALIZED", "16_16_16_16_FLOAT")
TEXCOORD_FORMATS = ("NONE", "32_32_FLOAT", "16_16_FLOAT")


@dataclass(frozen=True)
class VertexFormat:
    """The ``vertex`` section: the precision of each stream in the asset, or NONE to leave it out.

    openrr stores 16-bit positions as unorm16 within the primitive's bounds (uniformly more precise than
    half floats at the same size) and 16-bit normals as snorm16; see docs/arrasset.md. ``color1``,
    ``tangent``, ``binormal`` and ``texcoord1`` are validated but have no stream in openrr's renderer.
    """

    position: str = "32_32_32_FLOAT"
    color0: str = "8_8_8_8_UNSIGNED_NORMALIZED"
    color1: str = "NONE"
    normal: str = "8_8_8_8_SIGNED_NORMALIZED"
    tangent: str = "8_8_8_8_SIGNED_NORMALIZED"
    binormal: str = "8_8_8_8_SIGNED_NORMALIZED"
    texcoord0: str = "32_32_FLOAT"
    texcoord1: str = "32_32_FLOAT"


# Each field's allowed values, for validation.
VERTEX_ENUMS = {
    "position": POSITION_FORMATS,
    "color0": COLOR_FORMATS,
    "color1": COLOR_FORMATS,
    "normal": VECTOR_FORMATS,
    "tangent": VECTOR_FORMATS,
    "binormal": VECTOR_FORMATS,
    "texcoord0": TEXCOORD_FORMATS,
    "texcoord1": TEXCOORD_FORMATS,
}
