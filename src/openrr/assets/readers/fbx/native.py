"""The assimp library as the FBX reader uses it: a file imported from memory with the import options it
needs, and the parts of assimp's C structures it reads, turned into numpy arrays and Python values.

Apart from the reader because this is the only module that touches C memory. It reads assimp's structures
through pyassimp's ctypes declarations (matching Debian's libassimp5) and not through pyassimp's own
conversion, which copies every array element by element (36 s and 1.1 GiB for a 1M-triangle model, against
under 6 s here, most of it assimp's own parsing). Importing from memory with the ``fbx`` hint runs only
assimp's FBX importer and lets it open no other file: the textures a model names are read by the reader,
confined to the model's folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.assets import ConversionFailed

# aiProcess_Triangulate | aiProcess_JoinIdenticalVertices (welded vertices: levels of detail need them) |
# aiProcess_SortByPType (points and lines apart, then removed by PP_SBP_REMOVE).
PROCESS = 0x8 | 0x2 | 0x8000
# Import properties (assimp's config.h): pivots, pre/post rotations and the other FBX transform parts are
# folded into each node's transform instead of helper nodes; no animation is read.
IMPORT_OPTIONS = {
    b"IMPORT_FBX_PRESERVE_PIVOTS": 0,
    b"IMPORT_FBX_READ_ANIMATIONS": 0,
    b"PP_SBP_REMOVE": 0x1 | 0x2,  # aiPrimitiveType_POINT | aiPrimitiveType_LINE
}
MAX_METADATA_ENTRIES = 4096  # per node; FBX nodes carry a few dozen


def bindings() -> ModuleType:
    """pyassimp's ctypes declarations, with a clear ``ConversionFailed`` where pyassimp or the assimp
    library it loads (Debian's libassimp5) is missing."""
    try:
        return importlib.import_module("pyassimp.core")
    except ImportError:
        raise ConversionFailed(
            "reading FBX needs the Python package 'pyassimp', which is not installed here: "
            "pip install 'openrr[formats]'",
            code="UnsupportedFormat",
        ) from None
    except Exception as exc:  # noqa: BLE001 - pyassimp raises its AssimpError when no library is found
        raise ConversionFailed(
            f"reading FBX needs the assimp library (Debian's libassimp5): {exc}", code="UnsupportedFormat"
        ) from None


@contextlib.contextmanager
def imported(data: bytes, name: str) -> Iterator[Any]:
    """The assimp scene (``structs.Scene``) of the FBX file ``data``, released on exit. ``ConversionFailed``
    with assimp's message when it cannot import it."""
    if not data:  # assimp aborts the process on an empty buffer
        raise ConversionFailed(f"{name}: invalid FBX data: the file is empty")
    core = bindings()
    dll = core._assimp_lib.dll
    scene_type = ctypes.POINTER(core.structs.Scene)
    dll.aiCreatePropertyStore.restype = ctypes.c_void_p
    dll.aiImportFileFromMemoryWithProperties.restype = scene_type
    dll.aiImportFileFromMemoryWithProperties.argtypes = [
        ctypes.c_char_p,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_char_p,
        ctypes.c_void_p,
    ]
    dll.aiGetErrorString.restype = ctypes.c_char_p
    store = dll.aiCreatePropertyStore()
    try:
        for key, value in IMPORT_OPTIONS.items():
            dll.aiSetImportPropertyInteger(ctypes.c_void_p(store), key, ctypes.c_int(value))
        scene = dll.aiImportFileFromMemoryWithProperties(data, len(data), PROCESS, b"fbx", store)
    finally:
        dll.aiReleasePropertyStore(ctypes.c_void_p(store))
    if not scene:
        reason = (dll.aiGetErrorString() or b"").decode("utf-8", "replace").strip() or "unknown error"
        raise ConversionFailed(f"{name}: invalid FBX data: {reason}")
    try:
        yield scene.contents
    finally:
        dll.aiReleaseImport(scene)


def text(value: Any) -> str:
    """An ``aiString`` as text."""
    return bytes(value.data[: min(int(value.length), len(value.data))]).decode("utf-8", "replace")


def matrix(value: Any) -> NDArray[np.float64]:
    """An ``aiMatrix4x4`` (row-major, translation in the last column) as openrr's 4x4 matrix."""
    return np.array([getattr(value, f"{r}{c}") for r in "abcd" for c in "1234"], np.float64).reshape(4, 4)


def floats(pointer: Any, rows: int, width: int) -> NDArray[np.float32]:
    """``rows`` x ``width`` float32 values from a C array, copied."""
    array = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(rows * width,))
    return np.array(array, dtype=np.float32).reshape(rows, width)


def triangles(mesh: Any) -> NDArray[np.uint32]:
    """The mesh's faces, all triangles after ``PROCESS``, as an (N, 3) index array.

    assimp allocates each face's three indices on its own, so they are gathered by address: a view spans
    the lowest to the highest face address and only the indices at the faces' addresses are read (a loop
    over a million faces in Python would take seconds)."""
    count = int(mesh.mNumFaces)
    if count == 0:
        return np.zeros((0, 3), np.uint32)
    # aiFace: unsigned int mNumIndices, then (after padding) unsigned int *mIndices: 16 bytes on 64-bit.
    raw = np.ctypeslib.as_array(ctypes.cast(mesh.mFaces, ctypes.POINTER(ctypes.c_uint64)), shape=(count * 2,))
    sizes = raw[0::2] & 0xFFFFFFFF
    if not (sizes == 3).all():
        raise ConversionFailed("a mesh still has faces that are not triangles after triangulation")
    addresses = raw[1::2]
    low = int(addresses.min())
    words = (int(addresses.max()) - low) // 4 + 3
    view = np.ctypeslib.as_array(ctypes.cast(ctypes.c_void_p(low), ctypes.POINTER(ctypes.c_uint32)), (words,))
    first = ((addresses - np.uint64(low)) // np.uint64(4)).astype(np.int64)
    return np.stack([view[first], view[first + 1], view[first + 2]], axis=1).astype(np.uint32)


# aiMetadataType: AI_BOOL, AI_INT32, AI_UINT64, AI_FLOAT, AI_DOUBLE, AI_AISTRING, AI_AIVECTOR3D,
# AI_AIMETADATA (nested: skipped), AI_INT64, AI_UINT32.
_METADATA_TYPES: dict[int, Any] = {
    0: ctypes.c_bool,
    1: ctypes.c_int32,
    2: ctypes.c_uint64,
    3: ctypes.c_float,
    4: ctypes.c_double,
    6: ctypes.c_float * 3,
    8: ctypes.c_int64,
    9: ctypes.c_uint32,
}


def metadata(pointer: Any) -> dict[str, Any]:
    """An ``aiMetadata`` as a dict (strings, numbers, booleans, 3-lists); nested entries are skipped."""
    if not pointer:
        return {}
    core = bindings()
    table = pointer.contents
    out: dict[str, Any] = {}
    for i in range(min(int(table.mNumProperties), MAX_METADATA_ENTRIES)):
        entry = table.mValues[i]
        if not entry.mData:
            continue
        kind = int(entry.mType)
        if kind == 5:
            value: Any = text(ctypes.cast(entry.mData, ctypes.POINTER(core.structs.String)).contents)
        elif kind in _METADATA_TYPES:
            raw = ctypes.cast(entry.mData, ctypes.POINTER(_METADATA_TYPES[kind])).contents
            value = [float(v) for v in raw] if kind == 6 else raw.value
        else:
            continue
        out[text(table.mKeys[i])] = value
    return out


# aiPropertyTypeInfo: aiPTI_Float, aiPTI_Double, aiPTI_String, aiPTI_Integer, aiPTI_Buffer.
_PROPERTY_ARRAYS: dict[int, Any] = {1: ctypes.c_float, 2: ctypes.c_double, 4: ctypes.c_int32}


def material_properties(material: Any, limit: int) -> dict[tuple[str, int], Any]:
    """A material's properties by (key, texture type): tuples of numbers, or strings (at most ``limit``)."""
    core = bindings()
    out: dict[tuple[str, int], Any] = {}
    for i in range(min(int(material.mNumProperties), limit)):
        prop = material.mProperties[i].contents
        key = (text(prop.mKey), int(prop.mSemantic))
        kind, size = int(prop.mType), int(prop.mDataLength)
        if kind == 3 and size >= 4:
            out[key] = text(ctypes.cast(prop.mData, ctypes.POINTER(core.structs.String)).contents)
        elif kind in _PROPERTY_ARRAYS:
            element = _PROPERTY_ARRAYS[kind]
            count = size // ctypes.sizeof(element)
            values = ctypes.cast(prop.mData, ctypes.POINTER(element * count)).contents
            out[key] = tuple(values)
    return out


def embedded_texture(texture: Any) -> tuple[str, bytes | NDArray[np.uint8]]:
    """An embedded texture's file name and content: the image file's bytes, or RGBA pixels where assimp
    decoded them itself (``mHeight`` > 0: BGRA texels)."""
    name = text(texture.mFilename)
    width, height = int(texture.mWidth), int(texture.mHeight)
    if height == 0:
        return name, ctypes.string_at(texture.pcData, width)
    texels = np.ctypeslib.as_array(
        ctypes.cast(texture.pcData, ctypes.POINTER(ctypes.c_uint8)), shape=(width * height * 4,)
    )
    bgra = np.array(texels, np.uint8).reshape(height, width, 4)
    return name, np.ascontiguousarray(bgra[:, :, [2, 1, 0, 3]])
