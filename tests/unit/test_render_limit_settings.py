"""The per-size limits of a session's render server: finite defaults, ``SIZE=N`` options with K/M/G, and the
limits a session's RenderSpec carries to its render server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from openrr.config.per_size import DEFAULT_RENDER_LIMITS, derived_local_slots
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.domain.session import Size
from openrr.errors import InvalidInput
from openrr.protocol.handshake import RenderLimits, RenderSpec
from openrr.services.runtime import Runtime
from tests.fakes import FakeHost


def test_every_limit_is_finite_by_default(settings_factory: Callable[..., Settings]) -> None:
    limits = settings_factory().render.limits
    assert limits == DEFAULT_RENDER_LIMITS
    for size in Size:
        assert all(value is not None and value > 0 for value in limits[size].__dict__.values()), size


def test_options_change_one_size_and_zero_is_unlimited(settings_factory: Callable[..., Settings]) -> None:
    limits = settings_factory(
        max_texture_pixels=("standard=16M", "premium=1g"),
        max_session_texture_pixels=("standard=32MiB",),
        max_models=("premium=0",),
        max_scene_bytes=("standard=512K",),
        render_memory=("standard=2GB,premium=3G",),
    ).render.limits
    assert limits[Size.STANDARD] == RenderLimits(
        texture_pixels_per_model=16 << 20,
        texture_pixels_per_session=32 << 20,
        models_per_session=32,
        scene_bytes=512 << 10,
        memory_bytes=2 << 30,
    )
    premium = limits[Size.PREMIUM]
    assert (premium.texture_pixels_per_model, premium.models_per_session, premium.memory_bytes) == (
        1 << 30,
        None,
        3 << 30,
    )


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("max_texture_pixels", ("standard=lots",), "--max-texture-pixels"),
        ("max_models", ("huge=3",), "--max-models"),
        ("render_memory", ("standard=1G", "standard=2G"), "--render-memory"),
        ("max_scene_bytes", ("standard=-1",), "--max-scene-bytes"),
    ],
)
def test_bad_values_name_their_option(
    settings_factory: Callable[..., Settings], field: str, value: tuple[str, ...], flag: str
) -> None:
    with pytest.raises(InvalidInput, match=f"^{flag}: "):
        settings_factory(**{field: value})


def test_serve_takes_the_options_and_their_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openrr.cli import serve as serve_cli

    seen: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        seen.append(settings)

    monkeypatch.setattr(serve_cli, "_serve", fake_serve)
    args = ["--data-dir", str(tmp_path / "d"), "--max-models", "standard=4", "--max-models", "premium=8"]
    env = {"OPENRR_RENDER_MEMORY": "standard=1G premium=2G"}
    result = CliRunner().invoke(serve_cli.serve, args, env=env)
    assert result.exit_code == 0, result.output
    limits = seen[0].render.limits
    assert (limits[Size.STANDARD].models_per_session, limits[Size.PREMIUM].models_per_session) == (4, 8)
    assert (limits[Size.STANDARD].memory_bytes, limits[Size.PREMIUM].memory_bytes) == (1 << 30, 2 << 30)
    result = CliRunner().invoke(serve_cli.serve, ["--max-scene-bytes", "standard=big"])
    assert result.exit_code == 2
    assert "--max-scene-bytes: 'standard=big' is not of the form" in result.output


async def test_each_sizes_spec_carries_its_limits(
    settings_factory: Callable[..., Settings], store_url: str, fake_host: FakeHost, clock: ManualClock
) -> None:
    settings = settings_factory(store_url=store_url, max_models=("standard=5",))
    rt = await Runtime.open(settings, host=fake_host, clock=clock)
    fake_host.attach(rt.sessions)
    try:
        account = await rt.accounts.create("test")
        await rt.sessions.create(account.account_id, "standard-one", Size.STANDARD, 30)
        await rt.sessions.create(account.account_id, "premium-one", Size.PREMIUM, 30)
        await fake_host.settle()
        for session, size in (("standard-one", Size.STANDARD), ("premium-one", Size.PREMIUM)):
            spec = RenderSpec.from_json(fake_host.server(session).spec.to_json())  # as the server sees it
            assert spec.limits == settings.render.limits[size]
        assert (
            RenderSpec.from_json(fake_host.server("standard-one").spec.to_json()).limits.models_per_session
            == 5
        )
    finally:
        await rt.close()


def test_quotas_and_slots_are_finite_by_default(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    assert (settings.limits.max_sessions_per_account, settings.limits.max_conversions_per_account) == (10, 20)
    assert settings.conversions.converter_memory_bytes == 8 << 30
    cores = len(os.sched_getaffinity(0))
    memory_gib = psutil.virtual_memory().total >> 30
    derived = derived_local_slots()
    assert derived == {
        Size.STANDARD: max(1, min(2 * cores, memory_gib)),
        Size.PREMIUM: max(1, min(cores, memory_gib // 4)),
    }
    assert settings.hosts.local_slot_counts == {
        "standard": derived[Size.STANDARD],
        "premium": derived[Size.PREMIUM],
    }
    # A size given keeps its count; the other is still derived.
    given = settings_factory(local_slots=("standard=3",)).hosts.local_slot_counts
    assert given == {"standard": 3, "premium": derived[Size.PREMIUM]}
    with pytest.raises(InvalidInput, match=r"^--converter-memory: "):
        settings_factory(converter_memory="lots")
