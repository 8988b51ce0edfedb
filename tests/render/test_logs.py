"""A real render server's log shows no URL query string (``openrr.log_redaction``): model URLs carry SAS
tokens there."""

from __future__ import annotations

from pathlib import Path

from tests.render import fixtures
from tests.render.control_plane import CallbackReceiver, Keys, template
from tests.render.processes import RenderProcesses


async def test_a_model_urls_query_never_reaches_the_log(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    with fixtures.serve_directory(models) as base:
        url = f"{base}two_nodes.glb?sv=2021&sig=SECRET-SIGNATURE"
        spec = receiver.session(
            template(models, allow_private_model_urls=True), Keys(), "logged", models=(url,)
        )
        server = await render.start(spec, pooled=False)
        await receiver.wait("logged", "ready", timeout=90)
    log = server.log_text()
    assert "preloaded" in log, log
    assert f"{base}two_nodes.glb?[redacted]" in log, log
    assert "SECRET" not in log
