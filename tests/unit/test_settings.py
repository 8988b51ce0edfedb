"""Settings validation: every problem reported at once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.domain.session import Size
from openrr.errors import InvalidInput
from openrr.protocol.handshake import RenderSpec
from openrr.services.runtime import Runtime
from tests.fakes import FakeHost


def test_defaults() -> None:
    s = Settings.load({})
    assert s.server.port == 8443
    assert s.server.scheme == "https"
    assert s.server.local_address == "https://127.0.0.1:8443"
    assert s.server.resolved_store_url.startswith("sqlite:///")
    assert s.server.resolved_store_url.endswith("openrr.db")


def test_all_errors_at_once(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        Settings.load({"port": 0, "throttle_rate": -1, "log_level": "loud", "store_url": "mysql://x"})
    lines = info.value.message.splitlines()
    assert len(lines) == 4, lines
    assert any(line.startswith("--port:") for line in lines)
    assert any(line.startswith("--store-url:") for line in lines)


def test_cert_and_key_together(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(InvalidInput, match="together"):
        Settings.load({"cert": cert})
    with pytest.raises(InvalidInput, match="not a readable file"):
        Settings.load({"cert": cert, "key": tmp_path / "missing.pem"})


def test_render_tls_options_go_together(tmp_path: Path) -> None:
    cert, key = tmp_path / "r.pem", tmp_path / "r.key"
    with pytest.raises(InvalidInput, match="--render-tls-cert and --render-tls-key must be given together"):
        Settings.load({"render_tls_cert": cert})
    with pytest.raises(InvalidInput, match="--render-tls-ca needs --render-tls-cert"):
        Settings.load({"render_tls_ca": cert})
    plain = Settings.load({})
    assert plain.render.scheme == "http"
    assert plain.render.trust is None
    tls = Settings.load({"render_tls_cert": cert, "render_tls_key": key})
    assert tls.render.scheme == "https"
    assert tls.render.trust == cert
    assert (
        Settings.load({"render_tls_cert": cert, "render_tls_key": key, "render_tls_ca": key}).render.trust
        == key
    )


def test_addresses() -> None:
    assert Settings.load({"host": "0.0.0.0", "port": 9}).server.local_address == "https://127.0.0.1:9"
    assert Settings.load({"host": "::", "insecure_http": True}).server.local_address == "http://[::1]:8443"
    assert (
        Settings.load({"public_url": "https://rr.example/"}).server.callback_base_url == "https://rr.example"
    )


# ---- render server settings ---------------------------------------------------------------------------
def test_render_defaults(tmp_path: Path) -> None:
    s = Settings.load({"data_dir": tmp_path / "d"})
    assert s.render.model_roots == (tmp_path / "d" / "models",) == (s.server.default_model_root,)
    assert s.render.allow_private_model_urls is False
    assert s.render.standard_polygon_limit == 20_000_000
    assert (s.render.video_width, s.render.video_height, s.render.video_fps, s.render.video_bitrate) == (
        1280,
        720,
        30.0,
        3_000_000,
    )
    assert (s.render.stun_urls, s.render.turn_urls, s.render.turn_username, s.render.turn_credential) == (
        (),
        (),
        None,
        None,
    )


def test_render_settings_errors_name_their_flags(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        Settings.load(
            {
                "model_roots": (tmp_path, tmp_path / "missing"),
                "model_libraries": (tmp_path / "no-library",),
                "standard_polygon_limit": 0,
                "video_width": 1281,
                "video_height": 4000,
                "video_fps": 0,
                "video_bitrate": 10,
                "stun_urls": ("stun:stun.example.org:3478", "turn:turn.example.org"),
                "turn_urls": ("turn:turn.example.org?transport=sctp",),
            }
        )
    lines = info.value.message.splitlines()
    assert len(lines) == 9, lines
    assert f"--model-root: {tmp_path / 'missing'}: not an existing directory" in lines
    assert f"--model-library: {tmp_path / 'no-library'}: not an existing directory" in lines
    assert "--video-width: must be even, not 1281" in lines
    for flag in ("--standard-polygon-limit", "--video-height", "--video-fps", "--video-bitrate"):
        assert any(line.startswith(flag + ": ") for line in lines), flag
    assert any(line.startswith("--stun-url: 'turn:turn.example.org'") for line in lines)
    assert any(line.startswith("--turn-url: 'turn:turn.example.org?transport=sctp'") for line in lines)


def test_turn_needs_credentials() -> None:
    with pytest.raises(InvalidInput) as info:
        Settings.load({"turn_urls": ("turns:turn.example.org:5349",), "turn_username": "u"})
    assert info.value.message == "--turn-url needs --turn-username and --turn-credential"
    s = Settings.load(
        {"turn_urls": ("turns:turn.example.org:5349",), "turn_username": "u", "turn_credential": "s3cr3t"}
    )
    assert s.render.turn_credential == "s3cr3t"
    assert "s3cr3t" not in repr(s)


def test_combination_problems_reported_together(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(InvalidInput) as info:
        Settings.load({"cert": cert, "turn_urls": ("turn:t.example",)})
    assert len(info.value.message.splitlines()) == 2


@pytest.mark.parametrize(
    ("stun", "turn"),
    [
        (("stun:stun.example.org", "stun:192.0.2.1:3478"), ()),
        ((), ("turn:turn.example.org", "turn:t.example:3478?transport=tcp", "turns:t.example:5349")),
    ],
)
def test_ice_urls_accepted_here_are_accepted_by_the_render_server(
    stun: tuple[str, ...], turn: tuple[str, ...]
) -> None:
    from openrr.render.ice import IceSettings  # aiortc: only this test needs it

    s = Settings.load({"stun_urls": stun, "turn_urls": turn, "turn_username": "u", "turn_credential": "p"})
    IceSettings(s.render.stun_urls, s.render.turn_urls, s.render.turn_username, s.render.turn_credential)


def test_serve_reads_flags_and_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from openrr.cli import serve as serve_cli

    seen: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        seen.append(settings)

    monkeypatch.setattr(serve_cli, "_serve", fake_serve)
    for name in [n for n in os.environ if n.startswith("OPENRR_")]:
        monkeypatch.delenv(name)  # the developer's own settings must not leak in
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    env = {
        "OPENRR_MODEL_ROOTS": f"{a}:{b}",
        "OPENRR_STUN_URLS": "stun:one.example stun:two.example:3479",
        "OPENRR_ALLOW_PRIVATE_MODEL_URLS": "1",
        "OPENRR_VIDEO_FPS": "60",
        "OPENRR_TURN_CREDENTIAL": "secret",
    }
    args = ["--data-dir", str(tmp_path / "d"), "--video-width", "1920", "--video-height", "1080"]
    args += ["--turn-url", "turn:t.example", "--turn-url", "turns:t.example", "--turn-username", "u"]
    result = CliRunner().invoke(serve_cli.serve, args, env=env)
    assert result.exit_code == 0, result.output
    (s,) = seen
    assert s.render.model_roots == (a, b)
    assert s.render.allow_private_model_urls
    assert s.render.stun_urls == ("stun:one.example", "stun:two.example:3479")
    assert s.render.turn_urls == ("turn:t.example", "turns:t.example")
    assert (s.render.turn_username, s.render.turn_credential) == ("u", "secret")
    assert (s.render.video_width, s.render.video_height, s.render.video_fps) == (1920, 1080, 60.0)

    # Flags override variables; without any, the default root under the data dir.
    seen.clear()
    result = CliRunner().invoke(serve_cli.serve, ["--data-dir", str(tmp_path / "d"), "--model-root", str(b)])
    assert result.exit_code == 0, result.output
    assert seen[0].render.model_roots == (b,)
    seen.clear()
    result = CliRunner().invoke(
        serve_cli.serve, ["--data-dir", str(tmp_path / "d")], env={"OPENRR_MODEL_ROOTS": None}
    )
    assert result.exit_code == 0, result.output
    assert seen[0].render.model_roots == (tmp_path / "d" / "models",)
    assert not seen[0].render.allow_private_model_urls

    result = CliRunner().invoke(serve_cli.serve, ["--video-bitrate", "1"], env={"OPENRR_VIDEO_WIDTH": "99"})
    assert result.exit_code == 2
    assert "--video-width:" in result.output
    assert "--video-bitrate:" in result.output


async def test_render_spec_carries_the_settings(
    settings_factory: Callable[..., Settings],
    store_url: str,
    fake_host: FakeHost,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    library = tmp_path / "library"
    library.mkdir()
    settings = settings_factory(
        store_url=store_url,
        model_roots=(models,),
        model_libraries=(library,),
        allow_private_model_urls=True,
        standard_polygon_limit=1000,
        video_width=640,
        video_height=480,
        video_fps=24,
        video_bitrate=1_000_000,
        frame_budget_ms=40,
        stun_urls=("stun:stun.example.org",),
        turn_urls=("turn:turn.example.org:3478?transport=udp",),
        turn_username="user",
        turn_credential="pass",
    )
    rt = await Runtime.open(settings, host=fake_host, clock=clock)
    fake_host.attach(rt.sessions)
    try:
        account = await rt.accounts.create("test")
        await rt.sessions.create(account.account_id, "standard-one", Size.STANDARD, 30)
        await rt.sessions.create(account.account_id, "premium-one", Size.PREMIUM, 30)
        await fake_host.settle()
        spec = RenderSpec.from_json(fake_host.server("standard-one").spec.to_json())  # as the server sees it
        render = spec.settings
        assert render.model_roots == (str(models.resolve()),)
        assert render.model_libraries == (str(library.resolve()),)
        assert spec.account_id == account.account_id  # whose folder of each model root the session reads
        assert render.allow_private_model_urls is True
        assert spec.polygon_limit == 1000
        assert (render.video_width, render.video_height, render.video_fps, render.video_bitrate) == (
            640,
            480,
            24,
            1_000_000,
        )
        assert render.frame_budget_ms == 40
        assert render.stun_urls == ("stun:stun.example.org",)
        assert render.turn_urls == ("turn:turn.example.org:3478?transport=udp",)
        assert (render.turn_username, render.turn_credential) == ("user", "pass")
        assert fake_host.server("premium-one").spec.polygon_limit is None
    finally:
        await rt.close()


async def test_default_model_root_is_absolute_in_the_spec(runtime: Runtime, fake_host: FakeHost) -> None:
    account = await runtime.accounts.create("test")
    await runtime.sessions.create(account.account_id, "s", Size.STANDARD, 30)
    await fake_host.settle()
    spec = fake_host.server("s").spec
    assert spec.settings.model_roots == (str(runtime.settings.server.default_model_root.resolve()),)
    assert Path(spec.settings.model_roots[0]).is_absolute()
    assert spec.polygon_limit == 20_000_000


def test_metrics_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from openrr.cli import serve as serve_cli

    assert Settings.load({}).server.metrics is True
    assert Settings.load({"metrics": False}).server.metrics is False
    seen: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        seen.append(settings)

    monkeypatch.setattr(serve_cli, "_serve", fake_serve)
    monkeypatch.delenv("OPENRR_METRICS", raising=False)
    data = ["--data-dir", str(tmp_path / "d")]
    for args, env, expected in (
        ([], {}, True),
        (["--no-metrics"], {}, False),
        ([], {"OPENRR_METRICS": "0"}, False),
        (["--metrics"], {"OPENRR_METRICS": "false"}, True),
    ):
        result = CliRunner().invoke(serve_cli.serve, data + args, env=env)
        assert result.exit_code == 0, result.output
        assert seen.pop().server.metrics is expected, (args, env)


def test_serve_refuses_a_service_wide_storage_key_and_keeps_keyless_endpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old ``--storage-account NAME=KEY`` gave every account the storage: ``openrr serve`` stops at once
    and says how to link it to one account; ``NAME@ENDPOINT`` (SAS only) still starts; so do libraries."""
    from click.testing import CliRunner

    from openrr.cli import serve as serve_cli

    seen: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        seen.append(settings)

    monkeypatch.setattr(serve_cli, "_serve", fake_serve)
    for name in [n for n in os.environ if n.startswith("OPENRR_")]:
        monkeypatch.delenv(name)
    key = "c3RvcmFnZWtleQ=="
    data = ["--data-dir", str(tmp_path / "d")]
    for how in (["--storage-account", f"mystore={key}"], []):
        env = {} if how else {"OPENRR_STORAGE_ACCOUNTS": f"mystore={key}@http://127.0.0.1:10000/mystore"}
        result = CliRunner().invoke(serve_cli.serve, [*data, *how], env=env)
        assert result.exit_code == 2, result.output
        words = " ".join(result.output.split())  # however the console wrapped it
        assert "openrr accounts link-storage ACCOUNT mystore=KEY" in words
        assert key not in result.output
        assert not seen
    library = tmp_path / "library"
    library.mkdir()
    endpoint = "devstoreaccount1@http://127.0.0.1:10000/devstoreaccount1"
    result = CliRunner().invoke(
        serve_cli.serve, [*data, "--storage-account", endpoint, "--model-library", str(library)]
    )
    assert result.exit_code == 0, result.output
    assert seen[0].conversions.storage_accounts == (endpoint,)
    assert seen[0].render.model_libraries == (library,)


def test_lease_keeping_and_ray_auth_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from openrr.cli import serve as serve_cli

    s = Settings.load({})
    assert (
        s.sessions.heartbeat_interval,
        s.sessions.control_plane_grace,
        s.hosts.ray_allow_unauthenticated,
    ) == (10.0, 600.0, False)
    with pytest.raises(InvalidInput) as info:
        Settings.load({"heartbeat_interval": 5, "control_plane_grace": 5})
    assert "--control-plane-grace must be longer than --heartbeat-interval" in info.value.message
    with pytest.raises(InvalidInput, match="--heartbeat-interval:"):
        Settings.load({"heartbeat_interval": 0})

    seen: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        seen.append(settings)

    monkeypatch.setattr(serve_cli, "_serve", fake_serve)
    for name in [n for n in os.environ if n.startswith("OPENRR_")]:
        monkeypatch.delenv(name)
    args = ["--data-dir", str(tmp_path / "d"), "--heartbeat-interval", "0.5", "--ray-allow-unauthenticated"]
    result = CliRunner().invoke(serve_cli.serve, args, env={"OPENRR_CONTROL_PLANE_GRACE": "30"})
    assert result.exit_code == 0, result.output
    (got,) = seen
    assert (
        got.sessions.heartbeat_interval,
        got.sessions.control_plane_grace,
        got.hosts.ray_allow_unauthenticated,
    ) == (
        0.5,
        30.0,
        True,
    )
