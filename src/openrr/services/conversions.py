"""Asset conversions: create, read, and the worker queue that runs them.

Lifecycle (one table, ``TRANSITIONS``; every change is a compare-and-set on the conversion's version)::

    NotStarted ──start──▶ Running ──succeed──▶ Succeeded
        │                  │  └─────fail────▶ Failed
        └──────fail──────▶ Failed (never started: interrupted too often)
                           └──requeue──▶ NotStarted  (its control plane died; run again)

Creating a conversion checks everything that can be checked at once, so that clients get synchronous errors
as ARR gave them: 400 for bad settings (unsupported extension, a path that leaves its prefix, an output name
without ``.arrAsset``); 403 ``DelegatedResourceAccessError`` when the service cannot use a container (no SAS
and not linked, a denied SAS, a container that does not exist or cannot be reached). What only the run
shows fails the conversion with ``ConversionProcessFailed`` (missing input asset, a corrupt model, a bad
settings file), with the reason in the logs written to the output container.

Limits: an account may have ``max_per_account`` conversions queued or running (403 ``QuotaExceeded`` past
it), and the dispatcher takes queued conversions in turn across accounts: the account with the fewest
conversions running in this process first, oldest first within an account, so one account's backlog does not
hold up the others. The converter process runs under a memory ceiling (``memory_bytes``).

Running: a dispatcher claims NotStarted conversions (in turn, as above) while fewer than ``workers`` run in
this process, downloads the input under its prefix to a scratch folder, converts in a separate process
(``openrr.services.conversion_worker``, killed after ``timeout_s``), uploads the outputs with the
``.arrAsset`` last, and only then marks the conversion Succeeded: nothing is Succeeded with a partial output.

Restarts: a running conversion carries the id of its control-plane process and a heartbeat. A conversion
whose process is gone (same host, pid no longer that process) or whose heartbeat is stale (another host) is
requeued, at most ``max_attempts`` times in all; then it fails with the reason. On a clean shutdown a
process requeues its own conversions at once. A conversion is never left Running by a dead process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import logging
import shutil
import socket
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlsplit

import psutil

from openrr.child_env import child_env
from openrr.domain.clock import Clock
from openrr.domain.ids import check_resource_id
from openrr.errors import Conflict, Forbidden, IllegalTransition, InvalidInput, NotFound, QuotaExceeded
from openrr.log_redaction import redact
from openrr.services.accounts import linked_accounts
from openrr.storage import BadBlobName, StorageAccess, StorageError, safe_relative
from openrr.storage.base import AccessDenied, Container, LinkedAccount, NoAccess, is_clean_text
from openrr.store.base import (
    Admission,
    Conversion,
    ConversionInput,
    ConversionOutput,
    ConversionStatus,
    StaleWrite,
    Store,
)

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 20
ASSET_SUFFIX = ".arrAsset"
# ARR's input formats, and openrr's (its converter adds .obj and explains, when it runs, why it cannot read
# .fbx, .e57, .las and .laz). Anything else is refused at once. The converter's own lists are in
# openrr.assets.convert, which the control plane does not import (numpy, trimesh); a test keeps them equal.
SUPPORTED_EXTENSIONS = (".fbx", ".gltf", ".glb", ".obj", ".ply", ".xyz", ".e57", ".las", ".laz")

ACCESS_ERROR = "DelegatedResourceAccessError"
PROCESS_FAILED = "ConversionProcessFailed"
INTERNAL_ERROR = "InternalServerError"
INPUT_DENIED = "InputContainerAccessDenied"
OUTPUT_DENIED = "OutputContainerAccessDenied"
CHECK_LOGS = "Check logs in output container for details."


class Event(enum.StrEnum):
    START = "start"
    SUCCEED = "succeed"
    FAIL = "fail"
    REQUEUE = "requeue"


S = ConversionStatus
TRANSITIONS: dict[tuple[ConversionStatus, Event], ConversionStatus] = {
    (S.NOT_STARTED, Event.START): S.RUNNING,
    (S.NOT_STARTED, Event.FAIL): S.FAILED,
    (S.RUNNING, Event.SUCCEED): S.SUCCEEDED,
    (S.RUNNING, Event.FAIL): S.FAILED,
    (S.RUNNING, Event.REQUEUE): S.NOT_STARTED,
}


def apply(c: Conversion, event: Event, now: dt.datetime, **changes: object) -> Conversion:
    """``c`` after ``event``: the table's next status, timestamps, and the given field changes."""
    status = TRANSITIONS.get((c.status, event))
    if status is None:
        raise IllegalTransition(f"A {c.status.value} conversion cannot take the event {event.value!r}.")
    fields: dict[str, object] = {"status": status}
    if status is S.RUNNING:
        fields["started_at"] = now
    if status.terminal:
        # The SAS are needed only to run: they do not outlive the conversion.
        fields.update(ended_at=now, input_sas=None, output_sas=None, worker=None, heartbeat_at=None)
    if status is S.NOT_STARTED:
        fields.update(worker=None, heartbeat_at=None)
    fields.update(changes)
    return dataclasses.replace(c, **fields)  # type: ignore[arg-type]


class JobFailed(Exception):
    """A conversion failed: ``code`` and ``message`` are what the API shows; the log says more."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Runner(Protocol):
    async def __call__(
        self, model: Path, output_dir: Path, name: str, log_file: Path, timeout: float
    ) -> None:
        """Convert ``model`` into ``output_dir`` (``name``.arrAsset and the rest), appending to ``log_file``.

        Raises JobFailed.
        """


@dataclasses.dataclass(frozen=True)
class ConversionConfig:
    work_dir: Path
    workers: int = 2
    timeout_s: float = 3600.0
    max_input_bytes: int = 4096 << 20
    heartbeat_s: float = 10.0
    stale_after_s: float = 60.0
    max_attempts: int = 3
    poll_s: float = 1.0
    max_per_account: int | None = None  # conversions queued or running per account (None: no limit)
    memory_bytes: int | None = None  # the converter process's RLIMIT_DATA (None: none)


def worker_identity() -> str:
    """This process, as other control planes can check it: ``host/pid/create-time``."""
    me = psutil.Process()
    return f"{socket.gethostname()}/{me.pid}/{me.create_time():.3f}"


def worker_is_dead(identity: str) -> bool:
    """Whether the control-plane process ``identity`` is known to be gone (only decidable on its host)."""
    host, _, rest = identity.partition("/")
    pid, _, created = rest.partition("/")
    if host != socket.gethostname():
        return False
    try:
        proc = psutil.Process(int(pid))
        dead: bool = abs(proc.create_time() - float(created)) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE
        return dead
    except (psutil.Error, ValueError):
        return True


class SubprocessRunner:
    """Runs ``openrr.services.conversion_worker`` in a child process (see its docstring), under a memory
    ceiling of ``memory_bytes`` when given."""

    def __init__(self, memory_bytes: int | None = None) -> None:
        self.memory_bytes = memory_bytes

    async def __call__(
        self, model: Path, output_dir: Path, name: str, log_file: Path, timeout: float
    ) -> None:
        result_file = output_dir.parent / "worker-result.json"
        job = {
            "input": str(model),
            "outputDir": str(output_dir),
            "outputName": name,
            "resultFile": str(result_file),
            "memoryBytes": self.memory_bytes,
        }
        # The converter handles untrusted files: it gets none of the service's secrets (openrr.child_env).
        env = child_env()
        with open(log_file, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "openrr.services.conversion_worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=output_dir.parent,
            )
        try:
            await asyncio.wait_for(proc.communicate(json.dumps(job).encode()), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise JobFailed(
                PROCESS_FAILED, f"The conversion did not finish within {timeout:g} s. {CHECK_LOGS}"
            ) from None
        except BaseException:  # cancelled (shutdown): the converter must not outlive its job
            if proc.returncode is None:
                proc.kill()
                await asyncio.shield(proc.wait())
            raise
        try:
            result = json.loads(result_file.read_text())
        except (OSError, ValueError):
            result = None
        if proc.returncode == 0 and isinstance(result, dict) and result.get("ok"):
            return
        if isinstance(result, dict) and result.get("ok") is False:
            if result.get("code") == "InternalError":  # the converter's own bug, not the input's fault
                raise JobFailed(INTERNAL_ERROR, f"Unexpected internal server error encountered. {CHECK_LOGS}")
            if result.get("code") == "OutOfMemory":
                raise JobFailed(PROCESS_FAILED, f"{result.get('message')}. {CHECK_LOGS}")
            raise JobFailed(PROCESS_FAILED, f"Invalid input provided: {result.get('message')}. {CHECK_LOGS}")
        raise JobFailed(
            PROCESS_FAILED,
            f"The converter stopped unexpectedly (exit status {proc.returncode}). {CHECK_LOGS}",
        )


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


class ConversionService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        access: StorageAccess,
        config: ConversionConfig,
        *,
        runner: Runner | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.access = access
        self.config = config
        self._runner: Runner = runner or SubprocessRunner(config.memory_bytes)
        self.worker_id = worker_identity()
        self._jobs: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Turns between accounts (fair_order): when each account last had a conversion started here.
        self._starts = 0
        self._last_started: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False

    def now(self) -> dt.datetime:
        return self._clock.now()

    # ---- queries ----------------------------------------------------------------------------------------
    async def get(self, account_id: str, conversion_id: str) -> Conversion:
        conversion = await self._store.get_conversion(account_id, conversion_id)
        if conversion is None:
            raise NotFound(
                f"No conversion with id '{conversion_id}' exists in this account.", code="ConversionNotFound"
            )
        return conversion

    async def list_conversions(
        self, account_id: str, *, after_id: str | None = None, limit: int = 100
    ) -> Sequence[Conversion]:
        return await self._store.list_conversions(account_id, after_id=after_id, limit=limit)

    async def linked_storage(self, account_id: str) -> tuple[LinkedAccount, ...]:
        """The storage linked to ``account_id``: the only storage its conversions may use without a SAS."""
        return linked_accounts(await self._store.linked_storage(account_id))

    async def _open(self, c: Conversion, uri: str, sas: str | None) -> Container:
        linked = await self.linked_storage(c.account_id)
        return self.access.open(uri, sas, account_id=c.account_id, linked=linked)

    # ---- create -----------------------------------------------------------------------------------------
    async def create(
        self,
        account_id: str,
        conversion_id: str,
        input: ConversionInput,
        output: ConversionOutput,
        *,
        input_sas: str | None = None,
        output_sas: str | None = None,
    ) -> tuple[Conversion, bool]:
        """Create a conversion; returns (conversion, created).

        ``output.asset_filename`` "" takes the default (the input's stem + .arrAsset). Idempotent: the same id
        with the same normalised settings returns the existing conversion with created=False, whatever SAS
        come with it; other settings raise Conflict.
        """
        check_resource_id(conversion_id, what="conversion")
        _check_sas(input_sas, "settings.inputLocation.storageContainerReadListSas")
        _check_sas(output_sas, "settings.outputLocation.storageContainerWriteSas")
        inp = normalise_input(input)
        conversion = Conversion(
            account_id=account_id,
            id=conversion_id,
            input=inp,
            output=normalise_output(output, inp),
            status=ConversionStatus.NOT_STARTED,
            created_at=self._clock.now(),
            input_sas=input_sas or None,
            output_sas=output_sas or None,
        )
        existing = await self._store.get_conversion(account_id, conversion_id)
        if existing is None:
            await self._check_access(conversion)
            most = self.config.max_per_account
            admission = await self._store.insert_conversion(conversion, max_pending_per_account=most)
            if admission is Admission.INSERTED:
                self._wake.set()
                return conversion, True
            if admission is Admission.OVER_QUOTA:
                raise QuotaExceeded(
                    f"This account already has {most} conversions queued or running, the most this service "
                    "allows (--max-conversions-per-account); create more once some have ended."
                )
            existing = await self.get(account_id, conversion_id)
        if existing.same_request(conversion):
            return existing, False
        raise Conflict("A conversion already exists under the given ID with other settings.")

    async def _check_access(self, c: Conversion) -> None:
        """403 DelegatedResourceAccessError unless both containers can be used, as ARR answered at once."""
        linked = await self.linked_storage(c.account_id)
        args = (c.account_id, linked)
        await self._check(*args, "input", c.input.container_uri, c.input_sas, c.input.blob_prefix, None)
        target = c.output.blob_prefix + c.output.asset_filename
        await self._check(*args, "output", c.output.container_uri, c.output_sas, None, target)

    async def _check(
        self,
        account_id: str,
        linked: Sequence[LinkedAccount],
        which: str,
        uri: str,
        sas: str | None,
        read: str | None,
        write: str | None,
    ) -> None:
        try:
            opened = self.access.open(uri, sas, account_id=account_id, linked=linked, transfers=False)
            async with opened as container:
                if read is not None:
                    await container.check_read(read)
                if write is not None:
                    await container.check_write(write)
        except StorageError as exc:
            raise Forbidden(
                f"Error accessing the {which} storage container: {exc.message}",
                code=ACCESS_ERROR,
                target=f"settings.{which}Location.storageContainerUri",
            ) from None

    # ---- the queue --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the dispatcher until ``close``: it claims and runs conversions, and requeues orphans."""
        if self._dispatcher is None:
            # Scratch folders left by a process that died are of no use: their conversions start afresh.
            shutil.rmtree(self.config.work_dir, ignore_errors=True)
            self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="openrr-conversions")

    async def _dispatch_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("conversion dispatcher pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_s)
            self._wake.clear()

    async def tick(self) -> None:
        """One pass: requeue conversions whose process died, heartbeat our own, start queued ones."""
        await self._recover()
        await self._dispatch()

    async def run_pending(self) -> None:
        """Run queued conversions until none is left or running (tests; no dispatcher needed)."""
        while True:
            await self.tick()
            if not self._jobs:
                return
            await asyncio.gather(*list(self._jobs.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop the dispatcher and the running jobs; their conversions go back to the queue."""
        self._closing = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    async def _dispatch(self) -> None:
        free = self.config.workers - len(self._jobs)
        if free <= 0 or self._closing:
            return
        queue = await self._store.conversions_with_status([S.NOT_STARTED], limit=_FAIR_WINDOW)
        for queued in fair_order(queue, [account for account, _ in self._jobs], self._last_started)[:free]:
            key = (queued.account_id, queued.id)
            if key in self._jobs:
                continue
            now = self._clock.now()
            try:
                claimed = await self._store.update_conversion(
                    apply(
                        queued,
                        Event.START,
                        now,
                        attempts=queued.attempts + 1,
                        worker=self.worker_id,
                        heartbeat_at=now,
                    )
                )
            except StaleWrite:
                continue  # another process claimed it
            self._starts += 1
            self._last_started[queued.account_id] = self._starts
            task = asyncio.create_task(self._execute(claimed), name=f"conversion {queued.id}")
            self._jobs[key] = task
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        for key, job in list(self._jobs.items()):
            if job is task:
                del self._jobs[key]
        self._wake.set()

    async def _recover(self) -> None:
        now = self._clock.now()
        stale = dt.timedelta(seconds=self.config.stale_after_s)
        for c in await self._store.conversions_with_status([S.RUNNING], limit=1000):
            mine = c.worker == self.worker_id
            if mine and (c.account_id, c.id) in self._jobs:
                if c.heartbeat_at is None or now - c.heartbeat_at >= dt.timedelta(
                    seconds=self.config.heartbeat_s
                ):
                    with contextlib.suppress(StaleWrite):
                        await self._store.update_conversion(dataclasses.replace(c, heartbeat_at=now))
                continue
            orphaned = mine or c.worker is None or worker_is_dead(c.worker)
            if not orphaned and c.heartbeat_at is not None and now - c.heartbeat_at < stale:
                continue
            with contextlib.suppress(StaleWrite):
                await self._requeue(c, "its control-plane process stopped")

    async def _requeue(self, c: Conversion, why: str) -> Conversion:
        now = self._clock.now()
        if c.attempts >= self.config.max_attempts:
            log.warning("conversion %s/%s failed: %s, %d times", c.account_id, c.id, why, c.attempts)
            return await self._store.update_conversion(
                apply(
                    c,
                    Event.FAIL,
                    now,
                    error_code=INTERNAL_ERROR,
                    error_message=f"The conversion was interrupted {c.attempts} times ({why}); "
                    "it is not run again.",
                )
            )
        log.info("conversion %s/%s requeued: %s", c.account_id, c.id, why)
        return await self._store.update_conversion(apply(c, Event.REQUEUE, now))

    # ---- one run ----------------------------------------------------------------------------------------
    async def _execute(self, c: Conversion) -> None:
        scratch = self.config.work_dir / uuid.uuid4().hex
        try:
            await self._execute_in(c, scratch)
        except asyncio.CancelledError:
            if self._closing:  # a clean shutdown: back to the queue, and this attempt does not count
                with contextlib.suppress(Exception):
                    current = await self.get(c.account_id, c.id)
                    if current.status is S.RUNNING and current.worker == self.worker_id:
                        await self._store.update_conversion(
                            apply(current, Event.REQUEUE, self._clock.now(), attempts=current.attempts - 1)
                        )
            raise
        except Exception:
            log.exception("conversion %s/%s: the run failed unexpectedly", c.account_id, c.id)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _execute_in(self, c: Conversion, scratch: Path) -> None:
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
            current = await self.get(c.account_id, c.id)
            if current.status is not S.RUNNING or current.worker != self.worker_id:
                log.warning("conversion %s/%s was taken over; its result is dropped", c.account_id, c.id)
                return
            try:
                await self._store.update_conversion(apply(current, event, self._clock.now(), **changes))
                return
            except StaleWrite:
                continue
        raise StaleWrite(f"conversion {c.id} kept changing under us")

    async def _convert(self, c: Conversion, scratch: Path, job_log: JobLog) -> str:
        job_log(f"conversion {c.id}: attempt {c.attempts}")
        model = await self._download(c, scratch / "input", job_log)
        name = PurePosixPath(c.output.asset_filename[: -len(ASSET_SUFFIX)]).name
        job_log(f"converting {c.input.asset_path}")
        await self._runner(model, scratch / "output", name, job_log.path, self.config.timeout_s)
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
                if total > self.config.max_input_bytes:
                    raise JobFailed(
                        PROCESS_FAILED,
                        f"The input under the blob prefix has {total} bytes; this service converts at most "
                        f"{self.config.max_input_bytes}.",
                    )
                for blob in blobs:
                    try:
                        relative = safe_relative(blob.name[len(prefix) :], what="blob name")
                    except BadBlobName:
                        job_log(f"skipped blob {blob.name!r}: its name is not a safe relative path")
                        continue
                    target = dest.joinpath(*relative.parts)
                    try:
                        target.parent.mkdir(parents=True, exist_ok=True)
                    except OSError:
                        job_log(f"skipped blob {blob.name!r}: a blob of the same name is in the way")
                        continue
                    if target.exists():
                        job_log(f"skipped blob {blob.name!r}: a folder of the same name is in the way")
                        continue
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

    def _outputs(self, scratch: Path, name: str) -> list[tuple[str, Path]]:
        """(blob name under the prefix, file) for every output, the asset last; the service log included."""
        out = scratch / "output"
        files = sorted(p for p in out.rglob("*") if p.is_file())
        asset = out / (name + ASSET_SUFFIX)
        found = [(p.relative_to(out).as_posix(), p) for p in files if p != asset]
        found.append((f"{name}.service.log", scratch / "conversion.log"))
        if asset.is_file():
            found.append((asset.name, asset))
        return found

    async def _upload_outputs(self, c: Conversion, scratch: Path, job_log: JobLog) -> str:
        name = c.output.asset_filename[: -len(ASSET_SUFFIX)]
        outputs = self._outputs(scratch, name)
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
                for blob, path in self._outputs(scratch, name):
                    await container.upload(c.output.blob_prefix + blob, path)
        except StorageError as exc:
            log.info("conversion %s/%s: its logs could not be uploaded: %s", c.account_id, c.id, exc.message)

    # ---- retention --------------------------------------------------------------------------------------
    async def purge(self, retention: dt.timedelta) -> int:
        return await self._store.purge_conversions_ended_before(self._clock.now() - retention)


# ---- settings rules, shared by both API versions --------------------------------------------------------
# How many queued conversions (oldest first) the dispatcher looks at to take them in turn across accounts.
_FAIR_WINDOW = 500


def fair_order(
    queued: Sequence[Conversion], running_accounts: Sequence[str], last_started: Mapping[str, int]
) -> list[Conversion]:
    """``queued`` (oldest first) in the order to start them, one account at a time: first the accounts with
    fewer conversions running (``running_accounts``: one entry per running conversion), then the one that
    started a conversion least recently (``last_started``: a rising number per start), then the one whose
    oldest queued conversion is older; oldest first within an account."""
    by_account: dict[str, list[Conversion]] = {}
    for c in queued:
        by_account.setdefault(c.account_id, []).append(c)
    running = {account: running_accounts.count(account) for account in by_account}
    last = {account: last_started.get(account, -1) for account in by_account}
    order: list[Conversion] = []
    turn = max(last_started.values(), default=0)
    while by_account:
        account = min(by_account, key=lambda a: (running[a], last[a], by_account[a][0].created_at))
        order.append(by_account[account].pop(0))
        running[account] += 1
        turn += 1
        last[account] = turn
        if not by_account[account]:
            del by_account[account]
    return order


def normalise_prefix(prefix: str | None, *, where: str) -> str:
    """ "" for none; else a safe relative folder ending with "/" (ARR normalised "Input" to "Input/")."""
    if not prefix:
        return ""
    try:
        safe_relative(prefix.rstrip("/") if prefix.endswith("/") else prefix, what="blob prefix")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, target=f"{where}.blobPrefix") from None
    return prefix if prefix.endswith("/") else prefix + "/"


_MAX_TEXT = 2048  # URIs and SAS; Azure's blob names are at most 1024 characters


def _check_sas(sas: str | None, target: str) -> None:
    if sas is not None and (len(sas) > _MAX_TEXT or not is_clean_text(sas) or " " in sas.strip()):
        raise InvalidInput("The shared access signature must be a URL query string.", target=target)


def _check_container_uri(uri: str, where: str) -> None:
    target = f"{where}.storageContainerUri"
    if len(uri) > _MAX_TEXT or not is_clean_text(uri):
        raise InvalidInput(
            "The storage container URI is too long or contains control characters.", target=target
        )
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise InvalidInput("The storage container URI is not a URI.", target=target) from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not parts.path.startswith("/"):
            raise InvalidInput("A file: container URI must be file:///ABSOLUTE/PATH.", target=target)
    elif scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") == "":
        raise InvalidInput(
            "The storage container URI must be https://ACCOUNT.blob.core.windows.net/CONTAINER (or file:).",
            target=target,
        )
    if parts.query or parts.fragment:
        raise InvalidInput(
            "The storage container URI must not have a query: pass a shared access signature in its own "
            "field.",
            target=target,
        )


def normalise_input(inp: ConversionInput) -> ConversionInput:
    where = "settings.inputLocation"
    _check_container_uri(inp.container_uri, where)
    prefix = normalise_prefix(inp.blob_prefix, where=where)
    try:
        relative = safe_relative(inp.asset_path, what="relativeInputAssetPath")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, target=f"{where}.relativeInputAssetPath") from None
    if relative.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidInput(
            "Invalid input provided: the input asset has an unsupported file format; allowed types are: "
            + ",".join(SUPPORTED_EXTENSIONS)
            + ".",
            target=f"{where}.relativeInputAssetPath",
        )
    return ConversionInput(inp.container_uri, prefix, inp.asset_path)


def normalise_output(out: ConversionOutput, inp: ConversionInput) -> ConversionOutput:
    """The output with its prefix normalised and the default file name (the input's stem + .arrAsset)."""
    where = "settings.outputLocation"
    container_uri, prefix, filename = out.container_uri, out.blob_prefix, out.asset_filename
    _check_container_uri(container_uri, where)
    prefix = normalise_prefix(prefix, where=where)
    if not filename:
        filename = PurePosixPath(inp.asset_path).stem + ASSET_SUFFIX
    try:
        name = safe_relative(filename, what="outputAssetFilename")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, target=f"{where}.outputAssetFilename") from None
    if len(name.parts) != 1 or not filename.endswith(ASSET_SUFFIX) or filename == ASSET_SUFFIX:
        raise InvalidInput(
            "The outputAssetFilename must be a file name (without '/') that ends in '.arrAsset'.",
            target=f"{where}.outputAssetFilename",
        )
    return ConversionOutput(container_uri, prefix, filename)
