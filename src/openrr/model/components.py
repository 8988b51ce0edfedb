"""What a client can attach to an entity (ARR's components) and the scene-wide settings of a connection.

The data only: ``Scene`` stores components per node (at most one of each type, as ARR) and resolves them
in world space (``WorldState.cut_planes``, ``.lights``); the renderer draws them. The protocol's names
for these (``openrr.protocol.scene_api``) map one to one onto the fields here.

* ``StateOverride`` is ARR's ``HierarchicalStateOverrideComponent``: each flag is ``True`` (ForceOn),
  ``False`` (ForceOff) or absent (InheritFromParent).
* ``CutPlane``: the plane through the entity's origin, normal in the entity's space; the side the normal
  points to is cut away.
* ``Light``: point, spot or directional; spot and directional lights shine along the entity's -Z axis.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

RGB = tuple[float, float, float]
RGBA = tuple[float, float, float, float]
ALL_BITS = 0xFFFFFFFF


class StateFlag(enum.Enum):
    """The flags of ``StateOverride``, by their protocol names."""

    HIDDEN = "hidden"
    SEE_THROUGH = "seeThrough"
    SELECTED = "selected"
    TINT = "tint"
    DISABLE_COLLISION = "disableCollision"
    USE_CUT_PLANE_FILTER_MASK = "useCutPlaneFilterMask"


@dataclass
class StateOverride:
    """ARR's ``HierarchicalStateOverrideComponent``. ``flags``: ForceOn (True) / ForceOff (False) per flag;
    a flag not in it inherits from the parent. ``tint_color``'s alpha is the tint's strength."""

    flags: dict[StateFlag, bool] = field(default_factory=dict)
    tint_color: RGBA = (1.0, 1.0, 1.0, 1.0)
    cut_plane_filter_mask: int = ALL_BITS


AXES: dict[str, tuple[float, float, float]] = {
    "X": (1.0, 0.0, 0.0),
    "-X": (-1.0, 0.0, 0.0),
    "Y": (0.0, 1.0, 0.0),
    "-Y": (0.0, -1.0, 0.0),
    "Z": (0.0, 0.0, 1.0),
    "-Z": (0.0, 0.0, -1.0),
}


@dataclass
class CutPlane:
    """ARR's ``CutPlaneComponent``. ``normal``: an axis name of ``AXES`` or a free vector (entity space)."""

    normal: str | tuple[float, float, float] = "X"
    fade_color: RGBA = (0.5, 0.5, 0.5, 1.0)
    fade_length: float = 0.0
    object_filter_mask: int = ALL_BITS
    enabled: bool = True

    def local_normal(self) -> NDArray[np.float64]:
        vector = np.array(
            AXES[self.normal] if isinstance(self.normal, str) else self.normal, dtype=np.float64
        )
        unit: NDArray[np.float64] = vector / np.linalg.norm(vector)
        return unit


LightKind = Literal["PointLight", "SpotLight", "DirectionalLight"]


@dataclass
class Light:
    """ARR's point, spot and directional light components. ``range``: 0 means unbounded. Cone angles are
    half angles in degrees (spot lights only)."""

    kind: LightKind
    color: RGB = (1.0, 1.0, 1.0)
    intensity: float = 1.0
    range: float = 0.0
    inner_cone_angle: float = 20.0
    outer_cone_angle: float = 30.0
    enabled: bool = True


Component = StateOverride | CutPlane | Light
STATE_OVERRIDE = "HierarchicalStateOverride"
CUT_PLANE = "CutPlane"
LIGHT_KINDS: tuple[LightKind, ...] = ("PointLight", "SpotLight", "DirectionalLight")


@dataclass(frozen=True)
class WorldCutPlane:
    """An enabled cut plane in world space: ``plane`` (a, b, c, d) with a point p cut away when
    a*x + b*y + c*z + d > 0; (a, b, c) is unit length."""

    entity: int
    plane: tuple[float, float, float, float]
    fade_color: RGBA
    fade_length: float
    object_filter_mask: int


@dataclass(frozen=True)
class WorldLight:
    """An enabled light in world space. ``direction``: where the light travels (unit; spot, directional);
    ``color``: colour times intensity; ``cos_inner``/``cos_outer``: of the spot's cone half angles."""

    entity: int
    kind: LightKind
    position: tuple[float, float, float]
    direction: tuple[float, float, float]
    color: RGB
    range: float
    cos_inner: float
    cos_outer: float


@dataclass
class OutlineSettings:
    """ARR's ``OutlineSettings``: the selection outline's colour, pulse rate (Hz) and pulse intensity."""

    color: RGB = (1.0, 0.6, 0.0)
    pulse_rate: float = 0.0
    pulse_intensity: float = 0.5


@dataclass
class ShellSettings:
    """ARR's ``ShellRenderingSettings``: how see-through entities look."""

    desaturation: float = 0.5
    opacity: float = 0.25
