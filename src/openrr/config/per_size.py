"""Settings given per session size (``standard=4``, ``premium=64M``): their parsing, and the defaults.

Apart from the groups because the render-server limits, the local slots and the warm pool all read them,
and the README shows the per-size defaults written from ``DEFAULT_RENDER_LIMITS`` itself.
"""

from __future__ import annotations

import os
import re

import psutil

from openrr.domain.session import Size
from openrr.errors import InvalidInput
from openrr.protocol.handshake import RenderLimits

_MI, _GI = 1 << 20, 1 << 30
# What one session's render server may use, by size: finite by default, each changeable per size with the
# ``--max-texture-pixels``, ``--max-session-texture-pixels``, ``--max-models``, ``--max-scene-bytes`` and
# ``--render-memory`` options. Measured at 1280x720 on llvmpipe, an idle render server's data segment is
# about 280 MiB; the memory ceilings leave room for the scene limits twice over (the renderer's own copy and
# the GL driver's).
DEFAULT_RENDER_LIMITS = {
    Size.STANDARD: RenderLimits(
        texture_pixels_per_model=64 * _MI,
        texture_pixels_per_session=128 * _MI,
        models_per_session=32,
        scene_bytes=1 * _GI,
        memory_bytes=4 * _GI,
    ),
    Size.PREMIUM: RenderLimits(
        texture_pixels_per_model=128 * _MI,
        texture_pixels_per_session=256 * _MI,
        models_per_session=64,
        scene_bytes=4 * _GI,
        memory_bytes=12 * _GI,
    ),
}
# Settings field → RenderLimits field of the per-size limit options.
RENDER_LIMIT_FIELDS = {
    "max_texture_pixels": "texture_pixels_per_model",
    "max_session_texture_pixels": "texture_pixels_per_session",
    "max_models": "models_per_session",
    "max_scene_bytes": "scene_bytes",
    "render_memory": "memory_bytes",
}

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_AMOUNT = re.compile(r"([0-9]{1,15})\s*([KMGT]?)I?B?", re.IGNORECASE)


def parse_per_size(values: tuple[str, ...], *, amounts: bool = False) -> dict[Size, int]:
    """``("standard=4", "premium=1")`` (any letter case; also comma-separated) → counts by size. With
    ``amounts``, a number may end in K, M, G or T (powers of 1024, an optional "iB" or "B" after it)."""
    counts: dict[Size, int] = {}
    for value in (part.strip() for item in values for part in item.split(",") if part.strip()):
        name, sep, number = value.partition("=")
        match = _AMOUNT.fullmatch(number.strip()) if amounts else None
        if not sep or not (match or number.strip().isdigit()):
            example = "standard=64M" if amounts else "standard=4"
            raise ValueError(f"{value!r} is not of the form SIZE=COUNT, e.g. {example}")
        try:
            size = Size.parse(name)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        if size in counts:
            raise ValueError(f"{size.value} is given twice")
        counts[size] = int(match[1]) * _UNITS[match[2].upper()] if match else int(number)
    return counts


def amount(text: str) -> int:
    """``"8G"`` → bytes (powers of 1024)."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an amount such as 8G")
    return int(match[1]) * _UNITS[match[2].upper()]


def default_limit_text(setting: str) -> str:
    """How a per-size limit option's default reads in help and README: ``standard=64M, premium=128M``."""
    field = RENDER_LIMIT_FIELDS[setting]
    parts = []
    for size in Size:
        value = getattr(DEFAULT_RENDER_LIMITS[size], field)
        unit = next((u for u in "TGMK" if value % _UNITS[u] == 0), "") if setting != "max_models" else ""
        parts.append(f"{size.value.lower()}={value // _UNITS[unit]}{unit}")
    return ", ".join(parts)


def derived_local_slots() -> dict[Size, int]:
    """Render servers this machine runs at once by default: a standard one per half core (most sessions
    are idle or light between bursts; a streaming one takes about a core on llvmpipe) and per GiB of
    memory, whichever gives fewer; a premium one per core and per 4 GiB. At least one of each."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    memory_gib = psutil.virtual_memory().total >> 30
    return {
        Size.STANDARD: max(1, min(2 * cores, memory_gib)),
        Size.PREMIUM: max(1, min(cores, memory_gib // 4)),
    }
