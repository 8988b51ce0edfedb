"""The inspector page in Chromium, against a real render server with a client streaming from it.

Playwright's sync API cannot run inside a running asyncio loop, so the render server (as
``tests.render.live`` starts it), its inspector app and an orbiting ``openrr.client`` client run on
an event loop of their own in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from openrr.client.connection import connect
from openrr.render.logbuffer import LogBuffer
from tests.render import fixtures
from tests.render.live import live_server

WARNING_TEXT = "inspector browser test: a warning line"


class Streaming:
    """The server, its inspector and a client orbiting the camera, on a background event loop."""

    def __init__(self, model_root: Path, logs: LogBuffer) -> None:
        self.model_root = model_root
        self.logs = logs
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.url = ""
        self.token = ""
        self.thread = threading.Thread(target=self._run, name="inspector-test-loop", daemon=True)

    def __enter__(self) -> Streaming:
        self.thread.start()
        if not self.ready.wait(60) or self.error is not None:
            self.stop.set()
            raise RuntimeError(f"the render server did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the background loop did not stop"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which re-raises it in __exit__
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        async with live_server(self.model_root, models=("two_nodes.glb",)) as live:
            live.server.inspector.logs = self.logs
            runner = web.AppRunner(live.server.inspector_app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            try:
                async with await connect("127.0.0.1", live.port, live.token()) as conn:
                    await conn.wait_frames(3, timeout=15)
                    self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
                    self.token = live.token()
                    self.ready.set()
                    while not self.stop.is_set():
                        await conn.orbit(4.0)
                        await asyncio.sleep(0.1)
            finally:
                await runner.cleanup()


@pytest.fixture
def streaming(tmp_path: Path) -> Iterator[Streaming]:
    fixtures.two_node_glb(tmp_path)
    logs = LogBuffer()
    logger = logging.getLogger("openrr")
    logger.addHandler(logs)
    logger.setLevel(logging.INFO)
    try:
        with Streaming(tmp_path, logs) as running:
            yield running
    finally:
        logger.removeHandler(logs)
        logger.setLevel(logging.NOTSET)


def _points(page: Page, plot: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """(id) => {
            const data = document.getElementById(id).data;
            const x = data[0].x;
            return {count: x.length, last: x.length ? new Date(x[x.length - 1]).getTime() : 0,
                    values: data[0].y.slice(-3), traces: data.length};
        }""",
        plot,
    )
    return result


def test_the_inspector_page(
    browser: BrowserContext, streaming: Streaming, shot: Callable[[Page, str], Path], tmp_path: Path
) -> None:
    problems: list[str] = []
    page = browser.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # Opened as the dashboard links it: the token in the fragment, which the page takes out.
    page.goto(f"{streaming.url}/#token={streaming.token}")
    expect(page.locator("#content")).to_be_visible()
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('openrr.inspector.token')") == streaming.token
    expect(page.locator("#session-id")).to_have_text("live-session")
    expect(page.locator("#status")).to_contain_text("a client is connected", timeout=10_000)
    page.wait_for_function("document.getElementById('plot-fps').data !== undefined")
    shot(page, "opened")

    # The plots get new points as samples arrive (one a second).
    page.wait_for_function("document.getElementById('plot-fps').data[0].x.length >= 1", timeout=10_000)
    before = {plot: _points(page, plot) for plot in ("plot-frame", "plot-fps", "plot-bitrate", "plot-cpu")}
    page.wait_for_timeout(3200)
    after = {plot: _points(page, plot) for plot in before}
    for plot in before:
        assert after[plot]["count"] >= before[plot]["count"] + 2, (plot, before[plot], after[plot])
        assert after[plot]["last"] > before[plot]["last"], plot
    assert after["plot-frame"]["traces"] == 3
    assert after["plot-cpu"]["traces"] == 2
    assert all(v is not None and v > 0 for v in after["plot-fps"]["values"]), after["plot-fps"]
    assert all(v is not None and v > 0 for v in after["plot-bitrate"]["values"]), after["plot-bitrate"]
    expect(page.locator("#tile-client")).to_have_text("connected")
    expect(page.locator("#tile-polygons")).to_have_text("1,292")
    shot(page, "plots")

    # The log shows lines, and the level filter works.
    logging.getLogger("openrr.render.test").warning(WARNING_TEXT)
    lines = page.locator("#log-lines li")
    expect(lines.filter(has_text=WARNING_TEXT)).to_have_count(1, timeout=10_000)
    expect(lines.filter(has_text="client connection connected")).not_to_have_count(0)
    page.locator("#log").evaluate("el => el.scrollIntoView()")
    shot(page, "log-info")
    page.select_option("#log-level", "WARNING")
    expect(lines.filter(has_text="client connection connected")).to_have_count(0)
    expect(lines.filter(has_text=WARNING_TEXT)).to_have_count(1)
    levels = page.eval_on_selector_all("#log-lines li", "items => items.map(li => li.dataset.level)")
    assert levels, levels
    assert set(levels) <= {"WARNING", "ERROR", "CRITICAL"}, levels
    shot(page, "log-warnings")
    page.select_option("#log-level", "INFO")
    expect(lines.filter(has_text="client connection connected")).not_to_have_count(0)

    # The scene hierarchy.
    tree = page.locator("#scene-tree")
    expect(tree).to_contain_text("RedBox")
    expect(tree).to_contain_text("BlueSphere")
    expect(page.locator("#scene-models")).to_contain_text("two_nodes.glb")
    expect(page.locator("#scene-summary")).to_contain_text("3 nodes, 1,292 polygons")
    page.locator("#scene").evaluate("el => el.scrollIntoView()")
    shot(page, "scene")

    # The timing capture downloads as Chrome tracing JSON.
    with page.expect_download() as download:
        page.click("#download-trace")
    assert download.value.suggested_filename.startswith("openrr-trace-live-session-")
    saved = tmp_path / "trace.json"
    download.value.save_as(saved)
    trace = json.loads(saved.read_text())
    kinds = {(e["ph"], e.get("cat")) for e in trace["traceEvents"]}
    assert {("X", "render"), ("X", "encode"), ("i", "command")} <= kinds, kinds
    expect(page.locator("#trace-status")).to_contain_text("Saved openrr-trace-live-session-")
    shot(page, "trace-downloaded")

    # A phone's width: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "phone")
    page.locator("#log").evaluate("el => el.scrollIntoView()")
    shot(page, "phone-log")
    assert not problems, problems


def test_the_inspector_asks_for_a_token(
    browser: BrowserContext, streaming: Streaming, shot: Callable[[Page, str], Path]
) -> None:
    page = browser.new_page()
    page.goto(streaming.url + "/")
    expect(page.locator("#token-panel")).to_be_visible()
    expect(page.locator("#content")).to_be_hidden()
    shot(page, "no-token")

    page.fill("#token-input", "not-a-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-error")).to_contain_text("not valid")
    expect(page.locator("#token-panel")).to_be_visible()
    expect(page.locator("#sections")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('openrr.inspector.token')") is None  # not kept
    shot(page, "refused")

    page.fill("#token-input", streaming.token)
    page.press("#token-input", "Enter")
    expect(page.locator("#content")).to_be_visible()
    expect(page.locator("#scene-tree")).to_contain_text("RedBox")
    page.click("#forget-token")
    expect(page.locator("#token-panel")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('openrr.inspector.token')") is None
