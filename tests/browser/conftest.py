"""Fixtures for browser tests: Debian's Chromium driven by Playwright, headless, on loopback only.

Chromium is installed by ``scripts/setup`` (``apt-get install chromium``); Playwright drives it through
``executable_path``, so no browser is downloaded. Screenshots of each step go to
``test-artifacts/screenshots/<test>/`` (kept after the run; CI can collect them).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.e2e.conftest import openrr_factory, openrr_server  # noqa: F401  (fixtures shared with e2e)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# WebRTC on loopback: Chromium gathers no loopback candidates and hides host addresses behind mDNS
# names unless told otherwise (see the notes on the stack); autoplay so <video> starts unattended.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@contextmanager
def chromium(
    profile: Path, *, width: int = 1280, height: int = 800, timeout_ms: int = 15_000
) -> Iterator[BrowserContext]:
    """A fresh headless Chromium profile in ``profile`` that trusts the test servers' self-signed
    certificates, closed afterwards."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup, which installs Debian's chromium package")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            ignore_https_errors=True,
            viewport={"width": width, "height": height},
        )
        context.set_default_timeout(timeout_ms)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh headless Chromium (see :func:`chromium`)."""
    with chromium(tmp_path / "chromium-profile") as context:
        yield context


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """``shot(page, "step")`` saves a numbered screenshot of the step for this test."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    count = [0]

    def take(page: Page, step: str) -> Path:
        count[0] += 1
        path = folder / f"{count[0]:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', step)}.png"
        page.screenshot(path=str(path))
        return path

    return take
