"""The allow-listed environment of openrr's child processes (``openrr.child_env``), and a real converter
process started with it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from openrr.child_env import child_env
from openrr.services.conversion_runner import SubprocessRunner
from tests.render import fixtures

SECRETS = {
    "OPENRR_STORE_URL": "postgresql://openrr:store-secret@127.0.0.1/openrr",
    "OPENRR_STORAGE_ACCOUNTS": "acct=storage-secret",
    "OPENRR_TURN_CREDENTIAL": "turn-secret",
    "AZURE_STORAGE_KEY": "azure-secret",
    "SECRET_X": "x-secret",
    "HTTP_PROXY": "http://user:proxy-secret@127.0.0.1:9",
    "RAY_AUTH_TOKEN": "ray-secret",
}


def test_only_allowed_variables_pass_and_openrrs_own_are_added() -> None:
    kept = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MESA_GL_VERSION_OVERRIDE": "3.3",
        "__EGL_VENDOR_LIBRARY_FILENAMES": "/usr/share/glvnd/egl_vendor.d/50_mesa.json",
        "LP_NUM_THREADS": "2",
        "CUDA_VISIBLE_DEVICES": "0",
        "OMP_NUM_THREADS": "1",
    }
    env = child_env({"OPENRR_RENDER_SPEC": "{}"}, source={**SECRETS, **kept})
    assert env == {**kept, "OPENRR_RENDER_SPEC": "{}", "PYTHONUNBUFFERED": "1"}


async def test_a_converter_process_inherits_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sitecustomize on PYTHONPATH (an allowed variable) records the converter's environment from inside it.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import json, os\nwith open('child-env.json', 'w') as f:\n    json.dump(dict(os.environ), f)\n"
    )
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    models = tmp_path / "in"
    models.mkdir()
    model = fixtures.two_node_glb(models)
    work = tmp_path / "job"
    output = work / "out"
    output.mkdir(parents=True)
    await SubprocessRunner()(model, output, "model", work / "worker.log", 120.0)
    env = json.loads((work / "child-env.json").read_text())  # written in the converter's working directory
    assert not set(SECRETS) & set(env)
    assert not [name for name, value in env.items() if any(s in value for s in SECRETS.values())]
    assert env["PYTHONPATH"] == path
