"""Object metadata: the key/value pairs a model's nodes carry (glTF node ``extras``), as ARR kept them.

ARR's ``QueryMetadataAsync`` answered an entity's metadata as named entries of type bool, integer, float
or string; its converter kept the keys ``metadataKeys`` named (exact, or ``ABC*`` for every key starting
with ``ABC``), and none when that setting was absent. Here:

* ``metadata_value`` turns a JSON value into one of those types: objects, arrays, null, integers past
  int64 and non-finite numbers are kept as their JSON text;
* ``KeyPatterns`` matches keys against ``metadataKeys`` (``*`` stands for any run of characters, anywhere
  in a pattern, a superset of ARR's trailing wildcard; matching is case-sensitive, as JSON keys are);
* ``MetadataKeeper`` selects and bounds one model's metadata: at most ``limit`` bytes (the compact JSON
  text of each node's kept pairs, summed) in all. Past it, the nodes that follow keep nothing and
  ``overflow`` counts them, so that a loader can warn and a converter can fail with a clear message.

Apart from the loaders because both the glTF walk (``openrr.model.trimesh_scene``) and the converter
(``openrr.assets``) select with it, and the ``.arrAsset`` reader checks what it reads with it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_METADATA_BYTES = 16 << 20  # all the metadata one model keeps, as JSON text
MAX_PATTERNS = 1000  # metadataKeys entries
MAX_PATTERN_LENGTH = 1000
_INT64 = 1 << 63
# trimesh files a glTF node's ``extensions`` under this key of the node's metadata: not extras.
TRIMESH_EXTENSIONS_KEY = "gltf_extensions"

MetadataValue = bool | int | float | str


def metadata_value(value: Any) -> MetadataValue:
    """``value`` (parsed JSON) as one of ARR's metadata types; anything else as its JSON text."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int) and -_INT64 <= value < _INT64:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def metadata_bytes(metadata: Mapping[str, MetadataValue]) -> int:
    """What one node's metadata counts against a model's limit: the length of its JSON text (UTF-8)."""
    return len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())


class KeyPatterns:
    """``metadataKeys``: keys kept by name, ``*`` matching any run of characters. An empty list keeps no
    key (ARR's default); ``KeyPatterns.everything()`` keeps every key."""

    def __init__(self, patterns: Sequence[str] | None) -> None:
        self.patterns = None if patterns is None else tuple(patterns)
        if self.patterns is None:
            self._regex: re.Pattern[str] | None = None
            return
        if len(self.patterns) > MAX_PATTERNS:
            raise ValueError(f"metadataKeys has {len(self.patterns)} entries, more than {MAX_PATTERNS}")
        for pattern in self.patterns:
            if len(pattern) > MAX_PATTERN_LENGTH:
                raise ValueError(f"a metadataKeys entry is longer than {MAX_PATTERN_LENGTH} characters")
        alternatives = ("(?:" + ".*".join(map(re.escape, p.split("*"))) + ")" for p in self.patterns)
        self._regex = re.compile("|".join(alternatives), re.DOTALL) if self.patterns else None

    @classmethod
    def everything(cls) -> KeyPatterns:
        return cls(None)

    def __call__(self, key: str) -> bool:
        if self.patterns is None:
            return True
        return self._regex is not None and self._regex.fullmatch(key) is not None


class MetadataKeeper:
    """One model's metadata: each node's pairs normalised (``metadata_value``), filtered by ``keys`` and
    counted against ``limit`` bytes. ``used``: bytes kept; ``kept``: nodes with metadata; ``overflow``:
    nodes that had selected metadata but kept none because the limit was reached before them."""

    def __init__(self, keys: KeyPatterns | None = None, limit: int = MAX_METADATA_BYTES) -> None:
        self.keys = keys or KeyPatterns.everything()
        self.limit = limit
        self.used = 0
        self.kept = 0
        self.overflow = 0

    def keep(self, raw: Mapping[Any, Any] | None) -> dict[str, MetadataValue]:
        """The selected pairs of ``raw`` (a node's extras), or {} once the limit is reached (all of a
        node's pairs or none: a node never keeps part of its metadata)."""
        if not raw:
            return {}
        selected = {
            str(k): metadata_value(v)
            for k, v in raw.items()
            if k != TRIMESH_EXTENSIONS_KEY and self.keys(str(k))
        }
        if not selected:
            return {}
        size = metadata_bytes(selected)
        if self.overflow or self.used + size > self.limit:
            self.overflow += 1
            return {}
        self.used += size
        self.kept += 1
        return selected

    def summary(self) -> str:
        """The overflow, in words, for a log or an error message."""
        return (
            f"object metadata past {self.limit} bytes: {self.overflow} node(s) kept none "
            f"({self.kept} kept {self.used} bytes)"
        )
