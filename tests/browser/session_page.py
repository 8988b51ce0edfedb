"""One control plane with one Ready session of the red box / blue sphere model's account, and a headless
Chromium for it: what the module-scoped browser tests (the viewer's tools, the headset) share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext

from tests.browser.conftest import chromium
from tests.browser.test_dashboard_viewer import create_2021
from tests.e2e.server import OpenRRServer
from tests.render import fixtures


@contextmanager
def session_browser(
    base: Path, session: str, *, width: int = 1280, height: int = 720, timeout_ms: int = 15_000
) -> Iterator[tuple[OpenRRServer, BrowserContext]]:
    """A server (video 640x360) whose account's folder holds ``two_nodes.glb``, session ``session`` Ready
    in it, and a Chromium context of ``width`` x ``height``; everything stopped afterwards, and a process
    left behind fails the test."""
    models = base / "models"
    models.mkdir()
    fixtures.two_node_glb(models)
    root = base / "model-root"
    root.mkdir()
    server = OpenRRServer(base / "data", model_root=str(root), video_width=640, video_height=360)
    try:
        server.start()
        (root / server.account.id).symlink_to(models, target_is_directory=True)
        create_2021(server, session, lease=30)
        with server.api() as api:
            api.wait_status(session, "Ready", timeout=20)
        with chromium(
            base / "chromium-profile", width=width, height=height, timeout_ms=timeout_ms
        ) as context:
            yield server, context
    finally:
        _running, left = server.cleanup()
        assert not left, f"processes left behind: {left}"
