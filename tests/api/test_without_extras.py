"""The control plane runs without the optional extras: ``pip install openrr`` alone serves the APIs.

Each check runs in a child Python whose imports of the extras' libraries (numpy, moderngl, trimesh, Pillow,
PyAV, aiortc, Ray, the Azure SDK) are refused by a ``sys.meta_path`` finder, as on a machine that never
installed them. What needs an extra then fails with an error that names it, in the API's own error format
or as the CLI's one-line error, never with an ImportError traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

# Runs first in the child: from here on the extras' libraries cannot be imported.
_REFUSE_EXTRAS = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = {"numpy", "moderngl", "trimesh", "PIL", "av", "aiortc", "ray", "azure"}


    class RefuseExtras(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
            return None


    assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], "imported before the finder"
    sys.meta_path.insert(0, RefuseExtras())
    """
)

_SERVE = textwrap.dedent(
    """
    import asyncio
    import json
    import sys

    import httpx

    from openrr.api.app import create_app
    from openrr.config.settings import Settings
    from openrr.errors import OpenRRError
    from openrr.services.runtime import Runtime, open_host

    V = {"api-version": "2021-01-01"}


    async def main(data_dir: str) -> dict[str, object]:
        seen: dict[str, object] = {}
        runtime = await Runtime.open(Settings.load({"data_dir": data_dir}))
        try:
            created = await runtime.accounts.create("no-extras")
            account, key = created.account_id, created.primary_key
            transport = httpx.ASGITransport(app=create_app(runtime))
            async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
                keyed = {"Authorization": f"Bearer {account}:{key}"}
                sts = await client.get(f"/accounts/{account}/token", headers=keyed)
                seen["sts"] = sts.status_code
                auth = {"Authorization": f"Bearer {sts.json()['AccessToken']}"}
                listed = await client.get(f"/accounts/{account}/sessions", params=V, headers=auth)
                seen["sessions"] = [listed.status_code, listed.json()]
                seen["openapi"] = (await client.get("/openapi.json")).status_code
                blob = "https://someaccount.blob.core.windows.net"
                body = {
                    "settings": {
                        "inputLocation": {
                            "storageContainerUri": f"{blob}/input",
                            "storageContainerReadListSas": "sv=2021-01-01&sig=x",
                            "relativeInputAssetPath": "box.glb",
                        },
                        "outputLocation": {
                            "storageContainerUri": f"{blob}/output",
                            "storageContainerWriteSas": "sv=2021-01-01&sig=x",
                        },
                    }
                }
                path = f"/accounts/{account}/conversions/c1"
                conversion = await client.put(path, params=V, json=body, headers=auth)
                seen["azure"] = [conversion.status_code, conversion.json()]
        finally:
            await runtime.close()
        ray = Settings.load({"data_dir": data_dir, "host_backend": "ray", "ray_address": "127.0.0.1:1"})
        try:
            await open_host(ray)
        except OpenRRError as exc:
            seen["ray"] = [type(exc).__name__, exc.message]
        return seen


    seen = asyncio.run(main(sys.argv[1]))
    seen["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps(seen))
    """
)

_CLI = textwrap.dedent(
    """
    from openrr.cli.main import cli

    cli(prog_name="openrr")
    """
)


def _run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _REFUSE_EXTRAS + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_the_control_plane_serves_without_the_extras(tmp_path: Path) -> None:
    done = _run(_SERVE, str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert seen["loaded"] == []
    assert seen["sts"] == 200
    assert seen["sessions"] == [200, {"sessions": []}]
    assert seen["openapi"] == 200
    status, body = seen["azure"]
    assert status == 500
    assert "pip install 'openrr[azure]'" in body["error"]["message"]
    assert seen["ray"][0] == "MissingExtra"
    assert "--host-backend ray" in seen["ray"][1]
    assert "pip install 'openrr[ray]'" in seen["ray"][1]


def test_serve_with_the_ray_host_names_the_missing_extra(tmp_path: Path) -> None:
    options = ["--data-dir", str(tmp_path / "data"), "--host-backend", "ray", "--ray-address", "127.0.0.1:1"]
    done = _run(_CLI, "serve", *options, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "pip install 'openrr[ray]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_render_server_without_the_render_extra_says_which_to_install(tmp_path: Path) -> None:
    # What the local host starts (python -m openrr.render): its stderr is the log a failed session quotes.
    done = _run("import runpy; runpy.run_module('openrr.render', run_name='__main__')", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "A render server needs" in done.stderr
    assert "pip install 'openrr[render]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_converter_without_the_render_extra_fails_its_conversion_saying_which_to_install(
    tmp_path: Path,
) -> None:
    result = tmp_path / "result.json"
    job = {
        "input": str(tmp_path / "box.glb"),
        "outputDir": str(tmp_path / "out"),
        "outputName": "box",
        "resultFile": str(result),
        "memoryBytes": None,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _REFUSE_EXTRAS + "import runpy; runpy.run_module('openrr.assets.worker', run_name='__main__')",
        ],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr  # EXIT_FAILED: a result the control plane reads
    assert "pip install 'openrr[render]'" in done.stdout  # the conversion's log
    written = json.loads(result.read_text())
    assert written["ok"] is False
    assert written["code"] == "InternalError"
    assert "pip install 'openrr[render]'" in written["message"]


def test_openrr_connect_without_the_render_extra_names_it(tmp_path: Path) -> None:
    options = ["--endpoint", "https://127.0.0.1:1", "--account-id", "a", "--account-key", "k"]
    done = _run(_CLI, "connect", "some-session", *options, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "pip install 'openrr[render]'" in done.stderr
    assert "Traceback" not in done.stderr
