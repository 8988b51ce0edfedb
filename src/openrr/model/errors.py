"""``ModelLoadError``: the one exception every model reader raises (glTF, the other trimesh formats and
``.arrAsset``), whatever went wrong underneath.

Apart from ``openrr.model.loader`` so that the readers the loader dispatches to (``openrr.model.arrasset``)
can raise it without importing the loader back.
"""

from __future__ import annotations


class ModelLoadError(Exception):
    """A model could not be loaded; ``message`` says why, in words a client can show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
