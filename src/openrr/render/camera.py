"""A perspective camera with orbit/pan/zoom helpers, plus view-frustum tests for culling.

Conventions (glTF's): right-handed, +Y up, the camera looks down its local -Z with +Y up. Quaternions are
(x, y, z, w) like glTF and the data-channel protocol. Matrices are 4x4 float64 for column vectors
(``clip = projection @ view @ world_point``); projection maps depth to OpenGL's -1..1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
Vec = Sequence[float] | F64
WORLD_UP = np.array([0.0, 1.0, 0.0])


def quat_multiply(a: Vec, b: Vec) -> F64:
    """The rotation ``a`` after ``b`` (Hamilton product, xyzw)."""
    ax, ay, az, aw = (float(c) for c in a)
    bx, by, bz, bw = (float(c) for c in b)
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def quat_from_axis_angle(axis: Vec, degrees: float) -> F64:
    direction = np.asarray(axis, dtype=np.float64)
    direction = direction / np.linalg.norm(direction)
    half = math.radians(degrees) / 2
    return np.array([*(direction * math.sin(half)), math.cos(half)])


def quat_to_matrix(q: Vec) -> F64:
    """The 3x3 rotation matrix of a (not necessarily unit) quaternion."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(np.asarray(q, dtype=np.float64))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_from_matrix(m: F64) -> F64:
    """The unit quaternion of a 3x3 rotation matrix (Shepperd's method, stable for all angles)."""
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = math.sqrt(trace + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    result = np.array(q)
    unit: F64 = result / np.linalg.norm(result)
    return unit


def look_rotation(forward: Vec, up: Vec = WORLD_UP) -> F64:
    """The orientation whose -Z points along ``forward`` with +Y as close to ``up`` as possible."""
    f = np.asarray(forward, dtype=np.float64)
    f = f / np.linalg.norm(f)
    right = np.cross(f, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:  # looking straight up or down: any right vector will do
        right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return quat_from_matrix(np.column_stack([right, np.cross(right, f), -f]))


# The direction a newly loaded model is seen from (``Camera.frame_from_above``): to the front right and
# above, as glTF viewers and CAD tools open a model, in degrees.
VIEW_AZIMUTH = 40.0
VIEW_ELEVATION = 28.0


class Camera:
    """Pose (position, orientation), vertical field of view in degrees, and an orbit ``target``.

    ``near``/``far`` of None mean "fit the scene bounds each frame" (see ``clip_planes``). ``frustum``, when
    set, is an asymmetric field of view (a headset's eye): the (left, right, bottom, top) tangents at
    distance 1, which the projection uses instead of ``fov`` and the aspect ratio.
    """

    def __init__(
        self,
        position: Vec = (0.0, 0.0, 5.0),
        orientation: Vec = (0.0, 0.0, 0.0, 1.0),
        fov: float = 60.0,
        target: Vec | None = None,
        near: float | None = None,
        far: float | None = None,
        frustum: tuple[float, float, float, float] | None = None,
    ) -> None:
        self.position = np.array(position, dtype=np.float64)
        self.orientation = np.array(orientation, dtype=np.float64)
        self.orientation /= np.linalg.norm(self.orientation)
        if not 1.0 < fov < 179.0:
            raise ValueError("the field of view must be between 1 and 179 degrees")
        self.fov = float(fov)
        self.target = self.position + self.forward * 5.0 if target is None else np.array(target, float)
        self.near = near
        self.far = far
        self.frustum = frustum

    @classmethod
    def eye(
        cls,
        position: Vec,
        orientation: Vec,
        frustum: tuple[float, float, float, float],
        near: float,
        far: float,
    ) -> Camera:
        """A headset eye's camera: its own asymmetric ``frustum``, ``fov`` its vertical extent (which level
        of detail and point size follow)."""
        fov = math.degrees(math.atan(frustum[3]) - math.atan(frustum[2]))
        return cls(position, orientation, min(178.0, max(1.5, fov)), near=near, far=far, frustum=frustum)

    @classmethod
    def look_at(cls, eye: Vec, target: Vec, up: Vec = WORLD_UP, fov: float = 60.0) -> Camera:
        eye_ = np.asarray(eye, dtype=np.float64)
        return cls(eye_, look_rotation(np.asarray(target, dtype=np.float64) - eye_, up), fov, target)

    def copy(self) -> Camera:
        return Camera(
            self.position, self.orientation, self.fov, self.target, self.near, self.far, self.frustum
        )

    def set_pose(self, position: Vec, orientation: Vec, fov: float | None = None) -> None:
        """Set the pose directly; the orbit target stays at the same distance in front of the camera."""
        distance = self.distance
        self.position = np.array(position, dtype=np.float64)
        self.orientation = np.array(orientation, dtype=np.float64) / np.linalg.norm(orientation)
        self.target = self.position + self.forward * distance
        if fov is not None:
            self.fov = float(fov)

    @property
    def rotation(self) -> F64:
        return quat_to_matrix(self.orientation)

    @property
    def forward(self) -> F64:
        return -self.rotation[:, 2]

    @property
    def right(self) -> F64:
        return self.rotation[:, 0]

    @property
    def up(self) -> F64:
        return self.rotation[:, 1]

    @property
    def distance(self) -> float:
        return max(float(np.linalg.norm(self.target - self.position)), 1e-9)

    def view_matrix(self) -> F64:
        rotation_t = self.rotation.T
        view = np.eye(4)
        view[:3, :3] = rotation_t
        view[:3, 3] = -rotation_t @ self.position
        return view

    def projection_matrix(self, aspect: float, near: float, far: float) -> F64:
        proj = np.zeros((4, 4))
        if self.frustum is not None:
            left, right, bottom, top = self.frustum
            proj[0, 0], proj[0, 2] = 2 / (right - left), (right + left) / (right - left)
            proj[1, 1], proj[1, 2] = 2 / (top - bottom), (top + bottom) / (top - bottom)
        else:
            f = 1.0 / math.tan(math.radians(self.fov) / 2)
            proj[0, 0] = f / aspect
            proj[1, 1] = f
        proj[2, 2] = (far + near) / (near - far)
        proj[2, 3] = 2 * far * near / (near - far)
        proj[3, 2] = -1.0
        return proj

    def clip_planes(self, bounds: F64 | None) -> tuple[float, float]:
        """(near, far): the explicit values, or ones enclosing ``bounds`` (2, 3) with little waste.

        A near/far ratio of at most 1/2000 keeps 24-bit depth precise enough even from inside the model.
        """
        if bounds is None:
            near, far = 0.05, 1000.0
        else:
            centre = (bounds[0] + bounds[1]) / 2
            radius = max(float(np.linalg.norm(bounds[1] - bounds[0])) / 2, 1e-6)
            distance = float(np.linalg.norm(self.position - centre))
            far = (distance + radius) * 1.01
            near = max((distance - radius) * 0.99, far / 2000)
        return (self.near if self.near is not None else near, self.far if self.far is not None else far)

    def orbit(self, yaw: float, pitch: float) -> None:
        """Rotate around ``target``: ``yaw`` degrees about world +Y, then ``pitch`` degrees about the
        camera's right axis (positive pitch raises the camera, so it looks further down)."""
        turn = quat_multiply(quat_from_axis_angle(WORLD_UP, yaw), quat_from_axis_angle(self.right, -pitch))
        self.position = self.target + quat_to_matrix(turn) @ (self.position - self.target)
        self.orientation = quat_multiply(turn, self.orientation)
        self.orientation /= np.linalg.norm(self.orientation)

    def pan(self, dx: float, dy: float, aspect: float = 1.0) -> None:
        """Move camera and target sideways by fractions of the view at the target's distance
        (positive ``dx`` moves the camera right, so the picture moves left; positive ``dy`` moves it up)."""
        height = 2 * self.distance * math.tan(math.radians(self.fov) / 2)
        shift = self.right * dx * height * aspect + self.up * dy * height
        self.position = self.position + shift
        self.target = self.target + shift

    def zoom(self, factor: float) -> None:
        """Divide the distance to ``target`` by ``factor`` (> 1 moves closer)."""
        if factor <= 0:
            raise ValueError("the zoom factor must be positive")
        self.position = self.target - self.forward * max(self.distance / factor, 1e-6)

    def frame_from_above(
        self,
        bounds: F64 | None,
        aspect: float = 1.0,
        azimuth: float = VIEW_AZIMUTH,
        elevation: float = VIEW_ELEVATION,
    ) -> None:
        """Look at ``bounds`` (2, 3) the way model viewers open a model, then ``frame`` it: from
        ``elevation`` degrees above the horizon and ``azimuth`` degrees round +Y from the front (+Z
        towards +X), so a box shows its top, front and side rather than one face."""
        if bounds is None:
            return
        a, e = math.radians(azimuth), math.radians(elevation)
        towards_eye = np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
        self.orientation = look_rotation(-towards_eye)
        self.frame(bounds, aspect)

    def frame(self, bounds: F64 | None, aspect: float = 1.0, margin: float = 1.05) -> None:
        """Keep the viewing direction; move so the sphere around ``bounds`` (2, 3) fills the view."""
        if bounds is None:
            return
        centre = (bounds[0] + bounds[1]) / 2
        radius = max(float(np.linalg.norm(bounds[1] - bounds[0])) / 2, 1e-6)
        half_v = math.radians(self.fov) / 2
        half = min(half_v, math.atan(math.tan(half_v) * aspect))
        self.target = centre
        self.position = centre - self.forward * (radius / math.sin(half) * margin)


def frustum_planes(view_projection: F64) -> F64:
    """The 6 planes (a, b, c, d), normals pointing inwards, of a view-projection (Gribb/Hartmann)."""
    m = view_projection
    planes = np.stack([m[3] + m[0], m[3] - m[0], m[3] + m[1], m[3] - m[1], m[3] + m[2], m[3] - m[2]])
    normalised: F64 = planes / np.linalg.norm(planes[:, :3], axis=1, keepdims=True)
    return normalised


def boxes_in_frustum(planes: F64, boxes: F64) -> NDArray[np.bool_]:
    """For AABBs (K, 2, 3): False where a box lies wholly outside some plane (conservative test)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    normals = planes[:, :3]  # (6, 3)
    # The box corner furthest along each plane's normal: if even it is outside, the whole box is.
    far_corner = np.where(normals[None] > 0, boxes[:, None, 1], boxes[:, None, 0])  # (K, 6, 3)
    distance = np.einsum("kpj,pj->kp", far_corner, normals) + planes[:, 3]
    inside: NDArray[np.bool_] = (distance >= 0).all(axis=1)
    return inside
