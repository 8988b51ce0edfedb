"""The v1 ``node.set`` request applied to a scene: transform, visibility and colour of one node.

Apart from ``pipeline.py``, which runs it on the GL thread (where every scene edit runs) and tells the
frames that the picture changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openrr.model.scene import Scene
from openrr.render.scene_answers import node_json
from openrr.render.session_models import ModelError


def edit_node(
    scene: Scene,
    key: int | str,
    *,
    transform: list[float] | None,
    visible: bool | None,
    color: tuple[float, float, float, float] | None,
    clear_color: bool,
) -> dict[str, Any]:
    """Apply the edit and return the node as ``node.set``'s answer shows it; raises ModelError
    ``NodeNotFound`` or ``BadMessage``."""
    try:
        node = scene.node(key)
    except KeyError:
        raise ModelError("NodeNotFound", f"no node {key!r} in the scene") from None
    if transform is not None:
        # glTF matrices are column-major; ours are row-major.
        node.transform = np.array(transform, dtype=np.float64).reshape(4, 4).T
    if visible is not None:
        node.visible = visible
    if clear_color:
        node.color = None
    elif color is not None:
        try:
            node.color = color
        except ValueError as exc:
            raise ModelError("BadMessage", str(exc)) from None
    return node_json(node)
