"""glTF 2.0 (``.gltf`` with its buffers and textures, ``.glb``), read by the render server's own loader
(``openrr.model.loader``) so that a converted model draws exactly like the raw one."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.metadata import MetadataKeeper

MAX_INPUT_BYTES = 8 << 30  # a model plus its buffers and textures; the converter checks the file first
FORMATS = {".gltf": "glTF 2.0", ".glb": "glTF 2.0 binary (GLB)"}


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """Nodes keep their ``extras`` as ``metadata`` selects; materials keep their ``doubleSided``."""
    try:
        scene = load_model(path, max_bytes=MAX_INPUT_BYTES, metadata=metadata)
    except ModelLoadError as exc:
        raise ConversionFailed(exc.message.replace(str(path), path.name)) from None
    version, generator = _header(path)
    return Source(scene, {}, FORMATS[extension], version, generator, sidedness_in_file=True)


def _header(path: Path) -> tuple[str, str]:
    """glTF's ``asset.version`` and ``asset.generator`` for info.json (empty where unreadable)."""
    try:
        with path.open("rb") as f:
            head = f.read(20)
            if head[:4] == b"glTF":
                length, kind = struct.unpack_from("<II", head, 12)
                document = json.loads(f.read(length)) if kind == 0x4E4F534A else {}
            else:
                document = json.loads(head + f.read())
        asset = document.get("asset", {})
        return str(asset.get("version", "")), str(asset.get("generator", ""))
    except (OSError, ValueError, AttributeError, struct.error):
        return "", ""


READER = Reader(FORMATS, read)
