"""One run of one conversion: download the input under its prefix to a scratch folder, convert (a
``Runner``), upload the outputs with the ``.arrAsset`` last, and only then mark the conversion Succeeded:
nothing is Succeeded with a partial output. A failure uploads the logs and a result file instead.

Apart from the queue (which decides what runs, and when) because this is the part that touches blobs and
files; the queue hands it a conversion it has claimed and awaits it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import uuid
from pathlib import Path, PurePosixPath

from openrr.domain.clock import Clock
from openrr.domain.conversion import (
    ASSET_SUFFIX,
    CHECK_LOGS,
    INPUT_DENIED,
    INTERNAL_ERROR,
    OUTPUT_DENIED,
    PROCESS_FAILED,
    Conversion,
    ConversionStatus,
    Event,
)
from openrr.errors import NotFound
from openrr.log_redaction import redact
from openrr.services.accounts import linked_accounts
from openrr.services.conversion_config import ConversionConfig
from openrr.services.conversion_runner import JobFailed, Runner
from openrr.storage import BadBlobName, StorageAccess, StorageError, safe_relative
from openrr.storage.base import AccessDenied, Container, NoAccess
from openrr.store.base import StaleWrite, Store

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 20


class JobLog:
    """The service's log of one run (download, converter process, upload), uploaded to the output container
    as ``<name>.service.log`` beside the converter's own ``<name>.log``."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock

    def __call__(self, line: str) -> None:
        stamp = self._clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(f"{stamp} {redact(line)}\n")  # it is uploaded: no URL query string (log_redaction)


async def open_container(
    store: Store, access: StorageAccess, account_id: str, uri: str, sas: str | None, *, transfers: bool = True
) -> Container:
    """The container at ``uri`` for ``account_id``, with the storage linked to that account (and only it)."""
    linked = linked_accounts(await store.linked_storage(account_id))
    return access.open(uri, sas, account_id=account_id, linked=linked, transfers=transfers)


class ConversionJob:
    """Runs claimed conversions for the process ``worker_id``; a result is stored only while the conversion
    is still this process's (a conversion taken over meanwhile keeps its new owner's result)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        access: StorageAccess,
        config: ConversionConfig,
        runner: Runner,
        worker_id: str,
    ) -> None:
        self._store = store
        self._clock = clock
        self._access = access
        self._config = config
        self._runner = runner
        self._worker_id = worker_id

    async def run(self, c: Conversion) -> None:
        """Run ``c`` (claimed: Running by this process) to its end in a scratch folder removed afterwards.

        Raises StaleWrite if the result could not be stored, and whatever else escaped; a cancelled run
        stores nothing.
        """
        scratch = self._config.work_dir / uuid.uuid4().hex
        try:
            await self._run_in(c, scratch)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _run_in(self, c: Conversion, scratch: Path) -> None:
        (scratch / "input").mkdir(parents=True)
        (scratch / "output").mkdir()
        job_log = JobLog(scratch / "conversion.log", self._clock)
        try:
            output_uri = await self._convert(c, scratch, job_log)
        except JobFailed as failed:
            job_log(f"failed: {failed.code}: {failed.message}")
            await self._upload_logs(c, scratch, failed)
            await self._finish(c, Event.FAIL, error_code=failed.code, error_message=failed.message)
        except (asyncio.CancelledError, StaleWrite):
            raise
        except Exception:
            log.exception("conversion %s/%s failed unexpectedly", c.account_id, c.id)
            await self._finish(
                c,
                Event.FAIL,
                error_code=INTERNAL_ERROR,
                error_message="Unexpected internal server error encountered.",
            )
        else:
            await self._finish(c, Event.SUCCEED, output_uri=output_uri)

    async def _finish(self, c: Conversion, event: Event, **changes: object) -> None:
        for _ in range(_CAS_ATTEMPTS):
            current = await self._store.get_conversion(c.account_id, c.id)
            if current is None:
                raise NotFound(f"No conversion with id '{c.id}' exists in this account.")
            if current.status is not ConversionStatus.RUNNING or current.worker != self._worker_id:
                log.warning("conversion %s/%s was taken over; its result is dropped", c.account_id, c.id)
                return
            try:
                await self._store.update_conversion(current.apply(event, self._clock.now(), **changes))
                return
            except StaleWrite:
                continue
        raise StaleWrite(f"conversion {c.id} kept changing under us")

    async def _open(self, c: Conversion, uri: str, sas: str | None) -> Container:
        return await open_container(self._store, self._access, c.account_id, uri, sas)

    async def _convert(self, c: Conversion, scratch: Path, job_log: JobLog) -> str:
        job_log(f"conversion {c.id}: attempt {c.attempts}")
        model = await self._download(c, scratch / "input", job_log)
        name = PurePosixPath(c.output.asset_filename[: -len(ASSET_SUFFIX)]).name
        job_log(f"converting {c.input.asset_path}")
        await self._runner(model, scratch / "output", name, job_log.path, self._config.timeout_s)
        asset = scratch / "output" / (name + ASSET_SUFFIX)
        if not asset.is_file():
            raise JobFailed(INTERNAL_ERROR, "The converter wrote no asset.")
        return await self._upload_outputs(c, scratch, job_log)

    async def _download(self, c: Conversion, dest: Path, job_log: JobLog) -> Path:
        prefix = c.input.blob_prefix
        try:
            async with await self._open(c, c.input.container_uri, c.input_sas) as container:
                blobs = await container.list_blobs(prefix)
                total = sum(b.size for b in blobs)
                job_log(f"input: {len(blobs)} blobs, {total} bytes under '{prefix}'")
                if total > self._config.max_input_bytes:
                    raise JobFailed(
                        PROCESS_FAILED,
                        f"The input under the blob prefix has {total} bytes; this service converts at most "
                        f"{self._config.max_input_bytes}.",
                    )
                for blob in blobs:
                    target = _download_target(dest, blob.name, prefix, job_log)
                    if target is not None:
                        await container.download(blob.name, target)
        except (AccessDenied, NoAccess) as exc:
            raise JobFailed(
                INPUT_DENIED,
                "Access to the input blob container was denied. Invalid access rights or invalid shared "
                f"access signature. ({exc.message})",
            ) from None
        except StorageError as exc:
            raise JobFailed(
                PROCESS_FAILED, f"Could not download the input: {exc.message} {CHECK_LOGS}"
            ) from None
        model = dest.joinpath(*safe_relative(c.input.asset_path).parts)
        if not model.is_file():
            job_log(f"the input asset '{c.input.asset_path}' is not among the blobs under '{prefix}'")
            raise JobFailed(
                PROCESS_FAILED,
                f"Invalid input provided: the input asset '{c.input.asset_path}' was not found. {CHECK_LOGS}",
            )
        return model

    async def _upload_outputs(self, c: Conversion, scratch: Path, job_log: JobLog) -> str:
        name = c.output.asset_filename[: -len(ASSET_SUFFIX)]
        outputs = _outputs(scratch, name)
        job_log(f"uploading {len(outputs)} outputs")
        try:
            async with await self._open(c, c.output.container_uri, c.output_sas) as container:
                for blob, path in outputs:
                    await container.upload(c.output.blob_prefix + blob, path)
                return container.blob_uri(c.output.blob_prefix + c.output.asset_filename)
        except (AccessDenied, NoAccess) as exc:
            raise JobFailed(
                OUTPUT_DENIED,
                "Access to the output blob container was denied. Invalid access rights or invalid shared "
                f"access signature. ({exc.message})",
            ) from None
        except StorageError as exc:
            raise JobFailed(INTERNAL_ERROR, f"Could not upload the outputs: {exc.message}") from None

    async def _upload_logs(self, c: Conversion, scratch: Path, failed: JobFailed) -> None:
        """After a failure: the logs and a result.json go to the output container, if it can be written."""
        name = c.output.asset_filename[: -len(ASSET_SUFFIX)]
        result = scratch / "output" / f"{name}.result.json"
        if not result.is_file():
            result.write_text(
                json.dumps(
                    [
                        {"conversionId": c.id},
                        {"error": failed.code, "title": "Conversion failed", "details": failed.message},
                        {"result": "failed"},
                    ],
                    indent=2,
                )
            )
        asset = scratch / "output" / (name + ASSET_SUFFIX)
        asset.unlink(missing_ok=True)  # a failed conversion publishes no asset, complete or not
        try:
            async with await self._open(c, c.output.container_uri, c.output_sas) as container:
                for blob, path in _outputs(scratch, name):
                    await container.upload(c.output.blob_prefix + blob, path)
        except StorageError as exc:
            log.info("conversion %s/%s: its logs could not be uploaded: %s", c.account_id, c.id, exc.message)


def _download_target(dest: Path, blob_name: str, prefix: str, job_log: JobLog) -> Path | None:
    """Where blob ``blob_name`` goes below ``dest`` (its parent folders made), or None to skip it."""
    try:
        relative = safe_relative(blob_name[len(prefix) :], what="blob name")
    except BadBlobName:
        job_log(f"skipped blob {blob_name!r}: its name is not a safe relative path")
        return None
    target = dest.joinpath(*relative.parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        job_log(f"skipped blob {blob_name!r}: a blob of the same name is in the way")
        return None
    if target.exists():
        job_log(f"skipped blob {blob_name!r}: a folder of the same name is in the way")
        return None
    return target


def _outputs(scratch: Path, name: str) -> list[tuple[str, Path]]:
    """(blob name under the prefix, file) for every output, the asset last; the service log included."""
    out = scratch / "output"
    files = sorted(p for p in out.rglob("*") if p.is_file())
    asset = out / (name + ASSET_SUFFIX)
    found = [(p.relative_to(out).as_posix(), p) for p in files if p != asset]
    found.append((f"{name}.service.log", scratch / "conversion.log"))
    if asset.is_file():
        found.append((asset.name, asset))
    return found
