"""The few GL calls that take long, made through ctypes so that they run without Python's GIL.

moderngl holds the GIL for the whole of every GL call. On llvmpipe the expensive work happens inside
exactly two kinds of call: draw calls (vertex processing and binning run in the calling thread) and the
read-back of the frame (which waits for the rasterizer threads to finish the frame). Holding the GIL
through them stalls every other Python thread of the render server: the encoder thread and the event
loop that sends the video and answers the data channel; measured with an 82k-triangle model at 720p, a
thread ticking every millisecond stalled 22 ms at the median, so rendering and encoding ran one after the
other instead of side by side. ctypes releases the GIL around foreign calls, so these calls go through it.

The functions are looked up with ``eglGetProcAddress`` from the EGL library the context was made with;
they act on the context current on the calling thread, i.e. the renderer's. Every other GL call
(state, uniforms, uploads) stays with moderngl; moderngl binds the program and vertex array it uses at
each of its own calls, so calls made here do not confuse it.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

GL_TRIANGLES = 0x0004
GL_UNSIGNED_INT = 0x1405
GL_RGB = 0x1907
GL_UNSIGNED_BYTE = 0x1401
GL_PACK_ALIGNMENT = 0x0D05
GL_DEPTH_COMPONENT = 0x1902
GL_FLOAT = 0x1406


class GLCalls:
    """Draw and read back without the GIL. ``load()`` returns None where the functions cannot be found,
    and the renderer then uses moderngl for these too."""

    def __init__(self, lookup: Any) -> None:
        def fn(name: str, *argtypes: Any) -> Any:
            address = lookup(name.encode())
            if not address:
                raise OSError(f"{name} not found")
            return ctypes.CFUNCTYPE(None, *argtypes)(address)

        self._use_program = fn("glUseProgram", ctypes.c_uint)
        self._bind_vertex_array = fn("glBindVertexArray", ctypes.c_uint)
        self._draw_elements = fn(
            "glDrawElements", ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p
        )
        self._pixel_store = fn("glPixelStorei", ctypes.c_uint, ctypes.c_int)
        self._read_pixels = fn(
            "glReadPixels",
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
        )

    @classmethod
    def load(cls) -> GLCalls | None:
        try:
            egl = ctypes.CDLL("libEGL.so.1")
            lookup = egl.eglGetProcAddress
            lookup.restype = ctypes.c_void_p
            lookup.argtypes = [ctypes.c_char_p]
            return cls(lookup)
        except (OSError, AttributeError) as exc:
            log.warning("GL calls keep the GIL (%s): rendering will stall other threads", exc)
            return None

    def draw_triangles(self, program: Any, vertex_array: Any, index_count: int) -> None:
        """``vertex_array.render(TRIANGLES)`` for a vertex array with a uint32 index buffer."""
        self._use_program(program.glo)
        self._bind_vertex_array(vertex_array.glo)
        self._draw_elements(GL_TRIANGLES, index_count, GL_UNSIGNED_INT, None)
        self._bind_vertex_array(0)

    def read_rgb(self, frame: NDArray[np.uint8]) -> None:
        """Read the bound framebuffer's colour into ``frame`` (H, W, 3), bottom row of GL first."""
        height, width = frame.shape[:2]
        if not frame.flags.c_contiguous:
            raise ValueError("the frame must be C-contiguous")
        self._pixel_store(GL_PACK_ALIGNMENT, 1)
        self._read_pixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, frame.ctypes.data)

    def read_depth(self, depth: NDArray[np.float32]) -> None:
        """Read the bound framebuffer's depth into ``depth`` (H, W) float32, bottom row of GL first.

        Unlike moderngl's ``read(attachment=-1)``, which leaves the framebuffer's read buffer at GL_NONE
        (so the next colour read fails), a depth read needs no read buffer at all."""
        height, width = depth.shape
        if not depth.flags.c_contiguous or depth.dtype != np.float32:
            raise ValueError("the depth must be a C-contiguous float32 array")
        self._pixel_store(GL_PACK_ALIGNMENT, 1)
        self._read_pixels(0, 0, width, height, GL_DEPTH_COMPONENT, GL_FLOAT, depth.ctypes.data)
