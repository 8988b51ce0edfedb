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
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.domain.conversion import CHECK_LOGS, PROCESS_FAILED, ConversionStatus
from openrr.services.conversion_runner import JobFailed, Runner
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
        data = await asyncio.to_thread(model.read_bytes)
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


OpenRuntime = Callable[..., Awaitable[Runtime]]


@pytest.fixture(name="open_runtime")
async def open_runtime_fixture(
    settings_factory: Callable[..., Settings],
    store_url: str,
    fake_host: FakeHost,
    clock: ManualClock,
    container_root: Path,
) -> AsyncIterator[OpenRuntime]:
    """Opens in-process control planes on the test's store, fake host and clock, with the container root:
    ``await open_runtime(runner, **settings)``, ``runner`` None for the real converter process. Every one
    opened is closed after the test, the last opened first."""
    opened: list[Runtime] = []

    async def open_runtime(runner: Runner | None = None, **settings: Any) -> Runtime:
        config = settings_factory(store_url=store_url, container_roots=(container_root,), **settings)
        rt = await Runtime.open(config, host=fake_host, clock=clock, conversion_runner=runner)
        opened.append(rt)
        return rt

    yield open_runtime
    for rt in reversed(opened):
        await rt.close()


@pytest.fixture(name="runtime")
async def runtime_fixture(
    open_runtime: OpenRuntime, fake_host: FakeHost, converter: FakeConverter
) -> Runtime:
    """conftest's runtime with a container root, small list pages and the fake converter."""
    rt = await open_runtime(converter, list_page_size=2)
    fake_host.attach(rt.sessions)
    return rt


async def run_queue(rt: Runtime, *, timeout_s: float = 240.0) -> None:
    """Drive ``rt``'s real conversion queue until it has nothing left to do, as its dispatcher would but
    without its timer (``conversions.start`` runs the dispatcher itself).

    Each round is one dispatcher pass (``queue.tick``: requeue orphans, claim and start queued conversions),
    then a wait, polling, until the jobs it started are over: none of the store's conversions is Running by
    this process, and their scratch folders are gone. Rounds go on while any conversion is queued. Bounded: a
    queue that does not settle within ``timeout_s`` fails the test.
    """
    queue, work_dir = rt.conversions.queue, rt.conversions.config.work_dir
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s

    async def jobs_over() -> bool:
        running = await rt.store.conversions_with_status([ConversionStatus.RUNNING], limit=1000)
        scratch = work_dir.is_dir() and any(work_dir.iterdir())
        return not scratch and not any(c.worker == queue.worker_id for c in running)

    while True:
        await queue.tick()
        while not await jobs_over():
            assert loop.time() < deadline, "the conversions did not end in time"
            await asyncio.sleep(0.01)
        if not await rt.store.conversions_with_status([ConversionStatus.NOT_STARTED], limit=1):
            return
        assert loop.time() < deadline, "queued conversions were not started in time"
        await asyncio.sleep(0.01)


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
