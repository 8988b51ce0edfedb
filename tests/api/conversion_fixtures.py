"""Fixtures for the in-process conversion tests: ``file:`` containers and a converter fake.

``FakeConverter`` stands in for the converter process (it is a test double, never shipped): what it does
depends on the model's first bytes, so a test says what should happen by what it uploads.

* ``b"corrupt"``: fails like a corrupt model, after writing its log and result (as the converter does);
* ``b"partial"``: writes half an asset, then fails;
* ``b"hang"``: waits until cancelled;
* anything else: writes ``<name>.arrAsset`` (the model's bytes), ``.info.json``, ``.result.json``, ``.log``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.services.conversions import CHECK_LOGS, PROCESS_FAILED, JobFailed
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

V = {"api-version": "2021-01-01"}


class FakeConverter:
    def __init__(self) -> None:
        self.calls: list[tuple[Path, str]] = []
        self.seen_files: list[list[str]] = []

    async def __call__(
        self, model: Path, output_dir: Path, name: str, log_file: Path, timeout: float
    ) -> None:
        self.calls.append((model, name))
        root = model.parent
        while root.name != "input":
            root = root.parent
        self.seen_files.append(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))
        data = model.read_bytes()
        if data.startswith(b"hang"):
            await asyncio.Event().wait()
        (output_dir / f"{name}.log").write_text("fake converter\n")
        if data.startswith(b"partial"):
            (output_dir / f"{name}.arrAsset").write_bytes(data[:3])
            raise JobFailed(PROCESS_FAILED, f"Invalid input provided: broken half way. {CHECK_LOGS}")
        if data.startswith(b"corrupt"):
            (output_dir / f"{name}.result.json").write_text(json.dumps([{"error": "InvalidInput"}]))
            raise JobFailed(PROCESS_FAILED, f"Invalid input provided: {model.name} is corrupt. {CHECK_LOGS}")
        (output_dir / f"{name}.info.json").write_text(json.dumps({"files": {"input": model.name}}))
        (output_dir / f"{name}.result.json").write_text(json.dumps([{"result": "succeeded"}]))
        (output_dir / f"{name}.arrAsset").write_bytes(data)


# Registered under the names tests use; imported by test modules under these (so that ruff sees no
# redefinition when a test takes the fixture as a parameter).
@pytest.fixture(name="container_root")
def container_root_fixture(tmp_path: Path) -> Path:
    """The service's container root (``--container-root``): a folder per account below it."""
    root = tmp_path / "containers"
    root.mkdir()
    return root


@pytest.fixture(name="containers")
def containers_fixture(container_root: Path, account: Account) -> Path:
    """The test account's folder in the container root, with the containers ``input`` and ``output``."""
    root = container_root / account.id
    (root / "input").mkdir(parents=True)
    (root / "output").mkdir()
    return root


@pytest.fixture(name="converter")
def converter_fixture() -> FakeConverter:
    return FakeConverter()


@pytest.fixture(name="runtime")
async def runtime_fixture(
    settings_factory: Callable[..., Settings],
    store_url: str,
    fake_host: FakeHost,
    clock: ManualClock,
    container_root: Path,
    converter: FakeConverter,
) -> AsyncIterator[Runtime]:
    """conftest's runtime with a container root, small list pages and the fake converter."""
    settings = settings_factory(store_url=store_url, container_roots=(container_root,), list_page_size=2)
    rt = await Runtime.open(settings, host=fake_host, clock=clock, conversion_runner=converter)
    fake_host.attach(rt.sessions)
    yield rt
    await rt.close()


def put_blob(container: Path, name: str, data: bytes = b"glTF model") -> None:
    path = container / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def settings_body(
    containers: Path,
    asset: str = "box.glb",
    *,
    input_prefix: str | None = "models",
    output_prefix: str | None = "out",
    filename: str | None = None,
    input_sas: str | None = None,
    output_sas: str | None = None,
    input_uri: str | None = None,
    output_uri: str | None = None,
) -> dict[str, object]:
    inp: dict[str, object] = {"storageContainerUri": input_uri or (containers / "input").as_uri()}
    if input_sas is not None:
        inp["storageContainerReadListSas"] = input_sas
    if input_prefix is not None:
        inp["blobPrefix"] = input_prefix
    inp["relativeInputAssetPath"] = asset
    out: dict[str, object] = {"storageContainerUri": output_uri or (containers / "output").as_uri()}
    if output_sas is not None:
        out["storageContainerWriteSas"] = output_sas
    if output_prefix is not None:
        out["blobPrefix"] = output_prefix
    if filename is not None:
        out["outputAssetFilename"] = filename
    return {"settings": {"inputLocation": inp, "outputLocation": out}}
