"""The converter process runs under ``--converter-memory``: a model that needs more fails its conversion
with a message saying so, and the control plane goes on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from openrr.services.runtime import Runtime
from tests.api.conversion_fixtures import (  # noqa: F401
    OpenRuntime,
    container_root_fixture,
    containers_fixture,
    open_runtime_fixture,
)
from tests.api.test_conversions_converter import convert
from tests.conftest import Account
from tests.render import fixtures


@pytest.fixture
async def runtime(open_runtime: OpenRuntime) -> Runtime:
    return await open_runtime(conversion_timeout=120, converter_memory="400M")  # the real converter process


async def test_a_model_past_the_converters_memory_ceiling_fails_its_conversion(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, containers: Path
) -> None:
    models = containers / "input" / "models"
    models.mkdir()
    # 12000 x 12000: within the loader's texture ceiling (256 Mpx), but 550 MiB as RGBA pixels.
    source = fixtures.texture_bomb_gltf(models, side=12000)
    done = await convert(client, account, runtime, containers, source.name)
    assert done["status"] == "Failed", done
    assert done["error"]["code"] == "ConversionProcessFailed"
    assert "(the converter's memory ceiling is 400 MiB: --converter-memory)" in done["error"]["message"]
