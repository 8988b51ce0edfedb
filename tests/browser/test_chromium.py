"""The browser set-up itself: Chromium starts headless, loads a page from a local server, screenshots it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, Page

from tests.e2e.server import OpenRRServer


def test_chromium_opens_the_control_planes_docs(
    browser: BrowserContext, openrr_server: OpenRRServer, shot: Callable[[Page, str], Path]
) -> None:
    page = browser.new_page()
    page.goto(f"{openrr_server.url}/docs")
    page.wait_for_selector(".swagger-ui .info")
    assert shot(page, "docs").stat().st_size > 1000
