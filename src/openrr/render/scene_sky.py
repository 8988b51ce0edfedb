"""The sky in protocol v2: ``sky.set`` (a builtin, one image or six cube faces) and ``sky.list``.

Apart from the materials (``scene_materials``), whose image reading it shares: a sky is not a texture
(it is resampled into a panorama, ``openrr.model.skies``, and belongs to the scene, not to a material).
Images are read, decoded and prefiltered on a worker thread under the session's model source policy,
within ``MAX_SKY_PIXELS`` for all of one request's images; only the finished ``Sky`` takes a turn on the
GL thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from openrr.model.budget import Allowance, pixels_text
from openrr.model.skies import BUILTIN_SKIES, DEFAULT_SKY, Sky, builtin_sky, sky_from_faces, sky_from_image
from openrr.model.sources import display_name
from openrr.protocol import scene_api as api
from openrr.render.scene_context import SceneContext, SceneError
from openrr.render.scene_materials import MAX_TEXTURE_LOADS, load_image
from openrr.render.sky import prefiltered

Answer = tuple[str, dict[str, Any]]
BUILTIN = "builtin://"
MAX_SKY_PIXELS = 64 * 2**20  # decoded pixels of one sky.set's images (a 8192 x 4096 panorama fits twice)


def _builtin(url: str) -> Sky:
    try:
        return builtin_sky(url[len(BUILTIN) :])
    except KeyError:
        raise SceneError("SkyNotFound", f"no sky {url!r}; sky.list names the builtin ones") from None


def read_sky(ctx: SceneContext, request: api.SkySet) -> Sky:
    """The sky ``request`` names (blocking: a worker thread). Raises ``SceneError``: ``SkyNotFound``,
    ``ModelSourceRefused`` or ``TextureLoadFailed``."""
    if request.url is not None and request.url.startswith(BUILTIN):
        return _builtin(request.url)
    allowance = Allowance(
        texture_pixels=MAX_SKY_PIXELS, texture_limit=f"the {pixels_text(MAX_SKY_PIXELS)} a sky may take"
    )
    try:
        if request.url is not None:
            return sky_from_image(display_name(request.url), load_image(ctx, request.url, allowance))
        assert request.faces is not None
        faces = [load_image(ctx, url, allowance) for url in request.faces]
        return sky_from_faces(display_name(request.faces[0]), faces)
    except ValueError as exc:  # not a panorama, cross or strip; faces not square or not of one size
        raise SceneError("TextureLoadFailed", str(exc)) from None


async def sky_set(ctx: SceneContext, request: api.SkySet) -> Answer:
    if ctx.texture_loads >= MAX_TEXTURE_LOADS:
        raise SceneError("Busy", f"at most {MAX_TEXTURE_LOADS} texture and sky loads at once")
    ctx.texture_loads += 1
    try:
        sky = await asyncio.to_thread(read_sky, ctx, request)
        # Its mip chain and irradiance too (about 0.3 s for a big panorama), so that the GL thread, which
        # renders the next frame with it, finds them ready instead of stalling the picture.
        await asyncio.to_thread(prefiltered, sky)
    finally:
        ctx.texture_loads -= 1

    def show() -> None:
        ctx.scene.sky = sky
        ctx.scene.changed()

    await ctx.gl(show)
    return "sky", {"sky": sky.name}


async def sky_list(ctx: SceneContext, request: api.SkyList) -> Answer:
    def current() -> str:
        sky = ctx.scene.sky
        return DEFAULT_SKY if sky is None else sky.name

    return "skies", {"skies": list(BUILTIN_SKIES), "current": await ctx.gl(current, changes=False)}
