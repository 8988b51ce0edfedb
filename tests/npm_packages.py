"""Test-time tools from the npm registry (Azurite, the WebXR emulation runtime), pinned by a
``package.json`` and ``package-lock.json`` in the folder of the tests that use them.

``install(folder, name)`` runs ``npm ci`` with those two files into ``build/<name>`` (git-ignored) once, and
again only when the lock file changes. Node.js and npm must be installed (``scripts/setup`` installs
Debian's ``nodejs`` and ``npm``); the tests fail, not skip, without them.
"""

from __future__ import annotations

import fcntl
import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def install(folder: Path, name: str, wanted: str) -> Path:
    """``build/<name>/<wanted>`` after installing the lock file of ``folder`` there if it is not yet;
    ``wanted`` is the path (under the install folder) that must exist once it is installed."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(
            f"the tests that use {name} need Node.js and npm (Debian: apt-get install nodejs npm; "
            "scripts/setup installs them)",
            pytrace=False,
        )
    cache = REPO / "build" / name
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / wanted
    with open(cache / ".install-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock_file = cache / "package-lock.json"
        current = (
            target.exists() and lock_file.exists() and filecmp.cmp(lock_file, folder / "package-lock.json")
        )
        if not current:
            for file in ("package.json", "package-lock.json"):
                shutil.copyfile(folder / file, cache / file)
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                cwd=cache,
                capture_output=True,
                text=True,
                timeout=600,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0 or not target.exists():
                pytest.fail(
                    f"npm ci of {name} failed ({done.returncode}):\n{done.stderr[-3000:]}", pytrace=False
                )
    return target
