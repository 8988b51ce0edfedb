"""Model conversion: source models (glTF/GLB, OBJ, PLY, XYZ) to openrr's ``.arrAsset`` runtime format.

* ``openrr.assets.convert``: ``convert_model``, which runs the steps below and writes ``<name>.arrAsset``,
  ``<name>.info.json``, ``<name>.result.json`` and ``<name>.log``.
* ``openrr.assets.settings``: ``<model>.ConversionSettings.json``, parsed and validated as ARR did.
* ``openrr.assets.overrides``: ``<model>.MaterialOverrides.json``, parsed and validated as ARR did;
  ``openrr.assets.material_edits`` applies its entries to materials.
* ``openrr.assets.readers``: the input formats, one reader module each.
* ``openrr.assets.transform``: the settings applied to the model as read (coordinates, colours,
  materials and their overrides, ``sceneGraphMode``, recentering).
* ``openrr.assets.statistics``: ARR's input and output statistics.
* ``openrr.assets.job``: the log lines, warnings and timings one conversion records.

The format itself (writer, reader, levels of detail) is ``openrr.model``'s, shared with the render server
(``docs/arrasset.md`` describes it byte by byte).

This package imports nothing heavy itself, so the control plane can catch ``ConversionFailed`` and use the
settings parser without loading numpy, trimesh or the renderer.
"""

from __future__ import annotations


class ConversionFailed(Exception):
    """A conversion cannot proceed because of its input: ``message`` says why, in words for the user.

    ``code`` is the short code written to ``<name>.result.json`` (``{"error": code, "title", "details"}``).
    """

    def __init__(self, message: str, *, code: str = "InvalidInput") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


__all__ = ["ConversionFailed"]
