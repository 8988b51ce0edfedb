"""The first step of every reading of an ``.arrAsset``: its header checked and its JSON manifest parsed
(``read_manifest``), and what the manifest alone gives, ARR's ``conversionHash``.

Apart from the reader because the converter hashes the asset it just wrote without building a scene,
and because these are the checks that tell a foreign file (glTF, Microsoft's own ``.arrAsset``) from a
damaged one; ``Corrupt`` and the small typed getters are what the reader raises and uses past them.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from typing import Any

from openrr.model.arrasset.layout import (
    HEADER,
    HEADER_CHECKED,
    HEADER_SIZE,
    MAGIC,
    READABLE_VERSIONS,
)
from openrr.model.errors import ModelLoadError


class Corrupt(Exception):
    """Raised inside the reader; ``read_asset`` turns it (and any slip on a malformed manifest) into
    a ``ModelLoadError``."""


def read_manifest(view: memoryview, label: str, verify: bool) -> tuple[dict[str, Any], int, int]:
    """The manifest of the asset in ``view``, the data's offset and its length. ``label`` names the
    source in messages; ``verify`` checks the manifest's CRC-32 (the header's is always checked).
    Raises ``ModelLoadError``."""
    _check_kind(view, label)
    size = len(view)
    if size < HEADER_SIZE:
        raise ModelLoadError(f"{label}: truncated .arrAsset ({size} bytes, shorter than its header)")
    (_, _, _, m_off, m_len, m_crc, _, d_off, d_len, h_crc, _) = HEADER.unpack_from(view, 0)
    if zlib.crc32(view[:HEADER_CHECKED]) != h_crc:
        raise ModelLoadError(f"{label}: corrupt .arrAsset (header checksum mismatch)")
    _check_extent(size, m_off, m_len, d_off, d_len, label)
    text = view[m_off : m_off + m_len]
    if verify and zlib.crc32(text) != m_crc:
        raise ModelLoadError(f"{label}: corrupt .arrAsset (manifest checksum mismatch)")
    try:
        manifest = json.loads(bytes(text))
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ModelLoadError(f"{label}: corrupt .arrAsset (manifest: {exc})") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{label}: corrupt .arrAsset (the manifest is not an object)")
    return manifest, d_off, d_len


def _check_kind(view: memoryview, label: str) -> None:
    """An openrr ``.arrAsset`` of a version this reader knows, or a message saying what it is instead."""
    if len(view) < 12 or bytes(view[:8]) != MAGIC:
        if bytes(view[:4]) == b"glTF" or bytes(view[:1]) == b"{":
            raise ModelLoadError(f"{label}: this is a glTF file, not an .arrAsset")
        raise ModelLoadError(
            f"{label}: not an openrr .arrAsset (Microsoft's own .arrAsset files cannot be read: "
            "convert the source model with openrr)"
        )
    version = struct.unpack_from("<I", view, 8)[0]
    if version not in READABLE_VERSIONS:
        raise ModelLoadError(
            f"{label}: .arrAsset format version {version} is not supported (this openrr reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}): convert the model again with this version"
        )


def _check_extent(size: int, m_off: int, m_len: int, d_off: int, d_len: int, label: str) -> None:
    """The data ends the file exactly, and the manifest lies between the header and the data."""
    if d_off + d_len > size:
        raise ModelLoadError(f"{label}: truncated .arrAsset ({size} bytes, {d_off + d_len} expected)")
    if d_off + d_len < size:
        raise ModelLoadError(f"{label}: corrupt .arrAsset ({size - d_off - d_len} bytes after its end)")
    if not (m_off >= HEADER_SIZE and m_off + m_len <= d_off):
        raise ModelLoadError(f"{label}: corrupt .arrAsset (manifest outside the file)")


def conversion_hash(data: bytes | memoryview) -> str:
    """ARR's ``conversionHash``: 16 hex digits over what affects rendering (nodes, meshes, materials,
    images and the buffers' CRC-32s; not the generator, the source, the statistics or the nodes'
    object metadata)."""
    manifest = read_manifest(memoryview(data), "asset", verify=True)[0]
    kept = {k: manifest.get(k) for k in ("nodes", "meshes", "materials", "images", "buffers")}
    if isinstance(kept["nodes"], list):
        kept["nodes"] = [
            {k: v for k, v in n.items() if k != "metadata"} if isinstance(n, dict) else n
            for n in kept["nodes"]
        ]
    return hashlib.blake2b(json.dumps(kept, sort_keys=True).encode(), digest_size=8).hexdigest().upper()


def list_of(container: Any, key: str) -> list[Any]:
    """``container[key]``, which must be a list (missing: empty); ``Corrupt`` otherwise."""
    value = container.get(key, []) if isinstance(container, dict) else None
    if not isinstance(value, list):
        raise Corrupt(f"'{key}' is not a list")
    return value


def floats(values: Any, count: int) -> list[float]:
    """``values`` as ``count`` finite floats; ``Corrupt`` otherwise."""
    if not isinstance(values, list) or len(values) != count:
        raise Corrupt(f"expected {count} numbers, got {values!r}")
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise Corrupt(f"non-finite numbers {values!r}")
    return out
