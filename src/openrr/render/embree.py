"""Intel Embree 4, the ray-tracing kernels the spatial queries run on, called through ``ctypes``.

The library is the one the ``embreex`` package ships (trimesh's Embree binding; pinned in constraints.txt;
``openrr.compat.embreex`` finds it).
Why not embreex's own Python API: its ``TriangleMesh`` copies every vertex and index with a Python-level
item access (about 7 µs a triangle here: 10 s and more for a 1.3M-triangle model), and its ``run`` builds
the BVH while holding the GIL (0.7-2.7 s of a frozen render thread), and it cannot start a ray past
``tnear = 0``. Through ``ctypes`` the mesh's index buffers are shared (the positions copied once, with
the padding Embree needs), the build releases the GIL, and a ray has its ``tnear``. Only the few calls
below are used; their signatures and enum values are Embree 4's (``rtcore_*.h``), and
``tests/render/test_spatial.py`` checks the answers against known geometry.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.compat.embreex import EmbreeUnavailable, embree_library

_GEOMETRY_TYPE_TRIANGLE = 0
_BUFFER_TYPE_INDEX = 0
_BUFFER_TYPE_VERTEX = 1
_FORMAT_UINT3 = 0x5003
_FORMAT_FLOAT3 = 0x9003
_SCENE_FLAG_ROBUST = 1 << 2  # watertight: a ray through a shared edge hits one of its triangles
_SCENE_FLAG_COMPACT = 1 << 1  # leaves index the shared vertices: 78 bytes a triangle, not 106; as fast here
_INVALID = 0xFFFFFFFF
# RTCRayHit: RTCRay (12 x 4 bytes) then RTCHit (Ng, u, v, primID, geomID, instID[...], ...), 16-aligned.
# The hit's tail depends on Embree's build options, so the buffer is larger than any layout of it.
_RAYHIT_WORDS = 32
_TFAR, _PRIM, _GEOM = 8, 17, 18


class _Library:
    """The loaded library and one device for the process (Embree devices are thread-safe)."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(str(embree_library()))
        except OSError as exc:
            raise EmbreeUnavailable(f"Embree could not be loaded: {exc}") from None
        vp, uint, size = ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t
        signatures: dict[str, tuple[Any, list[Any]]] = {
            "rtcNewDevice": (vp, [ctypes.c_char_p]),
            "rtcGetDeviceError": (ctypes.c_int, [vp]),
            "rtcNewScene": (vp, [vp]),
            "rtcSetSceneFlags": (None, [vp, ctypes.c_int]),
            "rtcCommitScene": (None, [vp]),
            "rtcReleaseScene": (None, [vp]),
            "rtcNewGeometry": (vp, [vp, ctypes.c_int]),
            "rtcSetSharedGeometryBuffer": (
                None,
                [vp, ctypes.c_int, uint, ctypes.c_int, vp, size, size, size],
            ),
            "rtcCommitGeometry": (None, [vp]),
            "rtcAttachGeometryByID": (None, [vp, vp, uint]),
            "rtcReleaseGeometry": (None, [vp]),
            "rtcIntersect1": (None, [vp, vp, vp]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        self.lib = lib
        # Half the cores at most: a build must leave the render thread (and llvmpipe's) room to go on.
        threads = max(1, (os.cpu_count() or 2) // 2)
        self.device = lib.rtcNewDevice(f"threads={threads}".encode())
        if not self.device:
            raise EmbreeUnavailable("Embree could not create a device (a CPU without SSE4.2?)")

    def check(self, what: str) -> None:
        code = self.lib.rtcGetDeviceError(self.device)
        if code != 0:
            raise RuntimeError(f"Embree failed to {what} (RTCError {code})")


_loaded: _Library | None = None
_load_lock = threading.Lock()


def _library() -> _Library:
    global _loaded
    with _load_lock:
        if _loaded is None:
            _loaded = _Library()
        return _loaded


class TriangleScene:
    """A committed Embree scene over triangle meshes, one geometry per part (its ``geomID`` is the part).

    ``parts``: (positions (N, 3) float32, indices (T, 3) uint32) each. Building releases the GIL, so it can
    run on a background thread while the render thread goes on. Not for concurrent use: ``intersect``
    reuses one ray buffer (the spatial queries run on one thread).
    """

    def __init__(self, parts: Sequence[tuple[NDArray[np.float32], NDArray[np.uint32]]]) -> None:
        library = _library()
        lib = library.lib
        self._keep: list[NDArray[Any]] = []  # buffers Embree reads for the scene's life
        self.copied_bytes = 0  # of those, the ones copied here (the BVH itself is Embree's own memory)
        scene = lib.rtcNewScene(library.device)
        if not scene:
            library.check("create a scene")
        weakref.finalize(self, lib.rtcReleaseScene, scene)
        lib.rtcSetSceneFlags(scene, _SCENE_FLAG_ROBUST | _SCENE_FLAG_COMPACT)
        for part, (positions, indices) in enumerate(parts):
            # Embree reads vertices with 16-byte loads: the buffer needs one float of padding at its end.
            vertices = np.zeros(positions.size + 1, dtype=np.float32)
            vertices[:-1] = positions.reshape(-1)
            triangles = np.ascontiguousarray(indices, dtype=np.uint32)  # the mesh's own, as a rule
            geometry = lib.rtcNewGeometry(library.device, _GEOMETRY_TYPE_TRIANGLE)
            lib.rtcSetSharedGeometryBuffer(
                geometry, _BUFFER_TYPE_INDEX, 0, _FORMAT_UINT3, triangles.ctypes.data, 0, 12, len(triangles)
            )
            lib.rtcSetSharedGeometryBuffer(
                geometry, _BUFFER_TYPE_VERTEX, 0, _FORMAT_FLOAT3, vertices.ctypes.data, 0, 12, len(positions)
            )
            lib.rtcCommitGeometry(geometry)
            lib.rtcAttachGeometryByID(scene, geometry, part)
            lib.rtcReleaseGeometry(geometry)
            self._keep += [vertices, triangles]
            self.copied_bytes += vertices.nbytes + (triangles.nbytes if triangles is not indices else 0)
        lib.rtcCommitScene(scene)  # the BVH build; ctypes releases the GIL for it
        library.check("build a BVH")
        self._lib = lib
        self._scene = scene
        # Embree wants the RTCRayHit 16-byte aligned: a numpy buffer, cut at an aligned offset.
        spare = np.zeros(_RAYHIT_WORDS + 4, dtype=np.float32)
        skip = (-spare.ctypes.data % 16) // 4
        self._floats = spare[skip : skip + _RAYHIT_WORDS]
        self._words = self._floats.view(np.uint32)
        self._address = self._floats.ctypes.data

    def intersect(
        self, origin: NDArray[np.float64], direction: NDArray[np.float64], tnear: float, tfar: float
    ) -> tuple[float, int, int] | None:
        """The first hit along origin + t * direction with tnear <= t <= tfar: (t, part, triangle)."""
        floats, words = self._floats, self._words
        floats[:] = 0.0
        floats[0:3] = origin
        floats[3] = tnear
        floats[4:7] = direction
        floats[8] = min(tfar, 3.0e38)
        words[9] = _INVALID  # the ray's mask: every geometry
        words[_PRIM:] = _INVALID  # primID, geomID, instance ids: "no hit"
        self._lib.rtcIntersect1(self._scene, self._address, None)
        if words[_GEOM] == _INVALID:
            return None
        return float(floats[_TFAR]), int(words[_GEOM]), int(words[_PRIM])
