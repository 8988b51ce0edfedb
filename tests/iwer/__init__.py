"""IWER, Meta's Immersive Web Emulation Runtime: an emulated headset (Quest 3) in Chromium, for the WebXR
browser tests.

The version is pinned by ``package.json`` and ``package-lock.json`` in this folder and installed by
``tests.npm_packages``. :func:`install_into` injects its browser bundle into every page of a Playwright
context before the page's own scripts run, and creates the device as ``window.xrDevice``: stereo on (IWER's
default is off), installed over Chromium's own WebXR runtime (which has no immersive modes headless). The
tests move the head and the controllers through ``xrDevice`` (``position``, ``quaternion``,
``controllers.right``, ``updateButtonValue('trigger', 1)``); changes apply at the next XR frame.

What IWER does with the session's output: the page's WebGL canvas is moved into a full-window overlay,
sized to the window, the left eye on its left half and the right eye on its right half; a screenshot shows
both.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import BrowserContext

from tests import npm_packages

HERE = Path(__file__).resolve().parent
DEVICE = """
if (window === window.top) {
  window.xrDevice = new IWER.XRDevice(IWER.metaQuest3, { stereoEnabled: true });
  window.xrDevice.installRuntime({ forceInstall: true });
}
"""


def install() -> Path:
    """IWER's browser bundle (UMD: defines ``window.IWER``), installed from the lock file if it is not yet."""
    return npm_packages.install(HERE, "iwer", "node_modules/iwer/build/iwer.min.js")


def install_into(context: BrowserContext) -> None:
    """Every page of ``context`` gets the emulated headset as ``window.xrDevice``."""
    context.add_init_script(path=str(install()))
    context.add_init_script(script=DEVICE)
