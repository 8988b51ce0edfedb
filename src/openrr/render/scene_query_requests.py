"""The spatial-query requests of protocol v2 as dispatch handlers: ``raycast`` and ``query.*``, each run on
the GL thread by ``scene_queries.answer_query``.

Apart from ``scene_queries`` (the answers' content, over the spatial index): this is only their place in
the dispatch, where the BVHs still building are awaited off the GL thread first, as the v1 pick does, so
rendering goes on meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from openrr.render import spatial
from openrr.render.scene_context import SceneContext
from openrr.render.scene_queries import SpatialRequest, answer_query

Answer = tuple[str, dict[str, Any]]


async def spatial_query(ctx: SceneContext, request: SpatialRequest) -> Answer:
    builds = await ctx.gl(lambda: spatial.pending_builds(ctx.scene), changes=False)
    if builds:
        await asyncio.wait([asyncio.wrap_future(b) for b in builds], timeout=spatial.BUILD_WAIT_S)
    return await ctx.gl(lambda: answer_query(ctx.scene, request), changes=False)
