"""The model library: each account's uploaded models, converted into its own model folder.

A model's files live in ``MODEL_ROOT/<accountId>/library/<modelId>/`` (the first model root): the upload in
``source/``, the conversion's outputs in ``asset/`` (``model.arrAsset``, ``model.info.json``, the logs). The
conversion is an ordinary one of the account (``ConversionService``: its queue, quota and converter
process), whose ``file:`` containers are that folder (``StorageAccess.library_roots``). A session of the
account loads the asset by the relative path ``library/<modelId>/asset/model.arrAsset``, which render servers
look up in the account's own folders only; no other account can reach it, nor any call here with another
account's id (every store query names the account).

Upload: the files are written to ``library/<modelId>.upload/`` (staging); once the model's row is in the
store it is moved to ``library/<modelId>/source/`` and the conversion is created. Deleting a model cancels
its conversion first (``ConversionService.cancel``). A folder in ``library/``
that no row owns and no upload of this process is writing (left by a crash, a failed removal, or a
conversion that wrote on after its model was deleted) is removed at start-up and before the account's next
upload (``sweep``).

Quota: an account's library holds at most ``max_library_bytes`` of uploads and conversion outputs
(``asset/``, as found on disk when an upload starts) and ``max_library_models`` models. The bytes and models
of uploads in flight are reserved in this process (``_Usage``), so parallel uploads of one account share
what is left; several control-plane replicas each reserve only their own, so each can take what is left. A
replica's sweep does not know the other replicas' uploads either: one whose staging folder it removed
fails (503) rather than being recorded with files missing.

Status: ``Queued`` and ``Converting`` while the conversion is NotStarted or Running, then ``Succeeded`` or
``Failed``. The end is copied into the store once seen, because conversions are purged after the retention
period while library models stay until deleted. The row is written before its conversion is created, so a
missing conversion is taken as gone only once the retention period has passed since the model was created:
until then it cannot have been purged, and is still being created.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from openrr.domain.clock import Clock
from openrr.domain.conversion import ConversionInput, ConversionOutput, ConversionStatus
from openrr.domain.library import LIBRARY_FOLDER, LibraryModel, check_model_name, name_from_file
from openrr.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    Unavailable,
)
from openrr.services.conversion_settings import SUPPORTED_EXTENSIONS
from openrr.services.conversions import ConversionService
from openrr.services.model_folders import (
    STAGING_SUFFIX,
    account_folders,
    asset_bytes,
    is_model_id,
    library_entries,
    place_upload,
    read_details,
)
from openrr.services.model_upload import UploadFolder, UploadLimits, storage_errors
from openrr.store.base import Store

log = logging.getLogger(__name__)

ASSET_NAME = "model.arrAsset"
CONVERSION_PREFIX = "model-"
_STATUS = {
    ConversionStatus.NOT_STARTED: ("Queued", 0.0),
    ConversionStatus.RUNNING: ("Converting", 0.5),
    ConversionStatus.SUCCEEDED: ("Succeeded", 1.0),
    ConversionStatus.FAILED: ("Failed", 1.0),
    ConversionStatus.CANCELLED: ("Failed", 1.0),
}


@dataclasses.dataclass(frozen=True)
class ModelState:
    """A library model as the API shows it: ``progress`` is the conversion's phase (0 queued, 0.5 converting,
    1 ended); ``url`` the path a session of the account loads it by, once it Succeeded."""

    model: LibraryModel
    status: str
    progress: float
    error_code: str | None
    error_message: str | None
    url: str | None


class LibraryUnavailable(Unavailable):
    code = "ModelLibraryUnavailable"


@dataclasses.dataclass
class _Usage:
    """One account's library as this process counts it: what the store holds (read at each upload's start,
    then kept up to date by this process's own changes) and what its uploads in flight have reserved.
    ``guard`` makes a store read and this process's inserts and deletes of rows happen one after the other,
    so that the count read is never one that a change of ours is then added to again."""

    guard: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    stored_bytes: int = 0
    stored_models: int = 0
    held_bytes: int = 0
    held_models: int = 0


class ModelLibrary:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        conversions: ConversionService,
        root: Path | None,
        limits: UploadLimits,
        *,
        retention: dt.timedelta,
    ) -> None:
        self._store = store
        self._clock = clock
        self._conversions = conversions
        self._root = root
        self.limits = limits
        self._retention = retention  # how long ended conversions are kept before they are purged
        # Uploads write in worker threads (``reserve``) while the event loop starts and ends others.
        self._lock = threading.Lock()
        self._usage: dict[str, _Usage] = {}
        self._in_flight: set[tuple[str, str]] = set()  # (account, model) uploads and their recording

    # ---- paths --------------------------------------------------------------------------------------
    def _library(self, account_id: str) -> Path:
        if self._root is None:
            raise LibraryUnavailable("This service has no model root: the model library is not available.")
        return self._root / account_id / LIBRARY_FOLDER

    def folder(self, account_id: str, model_id: str) -> Path:
        return self._library(account_id) / model_id

    @staticmethod
    def url(model_id: str) -> str:
        """The relative path a session of the model's account loads its asset by."""
        return f"{LIBRARY_FOLDER}/{model_id}/asset/{ASSET_NAME}"

    # ---- upload -------------------------------------------------------------------------------------
    async def begin_upload(self, account_id: str) -> tuple[str, UploadFolder]:
        """A new model id and the empty staging folder its upload is written to (``finish_upload`` or
        ``abort``), bounded by the upload limits and by what is left of the account's library quota."""
        library = self._library(account_id)
        await self.sweep(account_id)
        usage = self._usage.setdefault(account_id, _Usage())
        async with usage.guard:
            models, size = await self._store.library_usage(account_id)
            assets = await asyncio.to_thread(asset_bytes, library)
            with self._lock:
                usage.stored_models, usage.stored_bytes = models, size + assets
                if usage.stored_models + usage.held_models >= self.limits.max_library_models:
                    raise QuotaExceeded(_models_message(self.limits.max_library_models))
                if usage.stored_bytes + usage.held_bytes >= self.limits.max_library_bytes:
                    raise QuotaExceeded(_quota_message(self.limits.max_library_bytes))
                usage.held_models += 1
        model_id = uuid.uuid4().hex
        self._in_flight.add((account_id, model_id))
        upload = UploadFolder(
            library / (model_id + STAGING_SUFFIX), self.limits, lambda n: self._reserve(account_id, n)
        )
        try:
            with storage_errors():
                await asyncio.to_thread(upload.folder.mkdir, parents=True)
        except BaseException:
            await self.abort(account_id, model_id, upload)
            raise
        return model_id, upload

    def _reserve(self, account_id: str, size: int) -> None:
        """Hold ``size`` more bytes of the account's quota for an upload in flight, or refuse them (413)."""
        with self._lock:
            usage = self._usage[account_id]
            if usage.stored_bytes + usage.held_bytes + size > self.limits.max_library_bytes:
                raise PayloadTooLarge(
                    f"The upload does not fit in what is left of the account's library quota "
                    f"({self.limits.max_library_bytes >> 20} MiB, --max-library-mib, with its other uploads "
                    "in progress)."
                )
            usage.held_bytes += size

    def _release(self, account_id: str, model_id: str, upload: UploadFolder) -> None:
        """End the reservation of an upload that was not recorded."""
        with self._lock:
            self._in_flight.discard((account_id, model_id))
            usage = self._usage[account_id]
            usage.held_bytes -= upload.size
            usage.held_models -= 1

    def _record(self, account_id: str, size: int, models: int) -> None:
        """Move ``models`` (1: an upload's row was inserted; -1: deleted again) from the reserved to the
        stored counts. Called under the account's ``guard``, with the store's change."""
        with self._lock:
            usage = self._usage[account_id]
            usage.held_bytes -= size * models
            usage.held_models -= models
            usage.stored_bytes += size * models
            usage.stored_models += models

    async def abort(self, account_id: str, model_id: str, upload: UploadFolder) -> None:
        """Drop an upload that will not become a model: its files and its reservation."""
        try:
            await asyncio.to_thread(shutil.rmtree, upload.folder, True)
            await asyncio.to_thread(shutil.rmtree, self.folder(account_id, model_id), True)
        finally:
            self._release(account_id, model_id, upload)

    async def finish_upload(
        self, account_id: str, model_id: str, upload: UploadFolder, name: str | None, entry: str | None
    ) -> ModelState:
        """Record the uploaded model and start its conversion; the files are removed if either fails."""
        try:
            state = await self._finish(account_id, model_id, upload, name, entry)
        except BaseException:
            await self.abort(account_id, model_id, upload)
            raise
        self._in_flight.discard((account_id, model_id))  # its reservation counts as stored now
        return state

    async def _finish(
        self, account_id: str, model_id: str, upload: UploadFolder, name: str | None, entry: str | None
    ) -> ModelState:
        chosen = _entry(upload.files, entry)
        folder = self.folder(account_id, model_id)
        folder_uri = folder.resolve().as_uri()
        model = LibraryModel(
            account_id=account_id,
            id=model_id,
            name="",
            entry=chosen,
            files=len(upload.files),
            size=upload.size,
            conversion_id=CONVERSION_PREFIX + model_id,
            created_at=self._clock.now(),
        )
        usage = self._usage[account_id]
        async with usage.guard:
            model = await self._insert(model, name)
            self._record(account_id, upload.size, 1)
        try:
            # In place only now that a row owns it: a folder in the library without one is swept away.
            with storage_errors():
                await asyncio.to_thread(place_upload, upload.folder, folder, upload.files)
            await self._conversions.create(
                account_id,
                model.conversion_id,
                ConversionInput(folder_uri, "source/", chosen),
                ConversionOutput(folder_uri, "asset/", ASSET_NAME),
            )
        except BaseException:
            async with usage.guard:
                await self._store.delete_model(account_id, model_id)
                self._record(account_id, upload.size, -1)
            raise
        return await self.state(model)

    async def _insert(self, model: LibraryModel, name: str | None) -> LibraryModel:
        """Insert under ``name``; without one, under the file's name, numbered when it is taken."""
        if name is not None:
            named = dataclasses.replace(model, name=check_model_name(name))
            if await self._store.insert_model(named):
                return named
            raise Conflict(f"This account already has a model named '{named.name}'.", code="ModelNameTaken")
        base = name_from_file(model.entry)
        for number in range(1, 1000):
            candidate = base if number == 1 else f"{base[:90]} ({number})"
            named = dataclasses.replace(model, name=candidate)
            if await self._store.insert_model(named):
                return named
        raise Conflict(
            f"This account has too many models named '{base}'; give a name.", code="ModelNameTaken"
        )

    # ---- reads --------------------------------------------------------------------------------------
    async def get(self, account_id: str, model_id: str) -> LibraryModel:
        model = await self._store.get_model(account_id, model_id) if is_model_id(model_id) else None
        if model is None:
            raise NotFound(f"No model with id '{model_id}' exists in this account.", code="ModelNotFound")
        return model

    async def list_models(self, account_id: str) -> Sequence[ModelState]:
        return [await self.state(m) for m in await self._store.list_models(account_id)]

    async def state(self, model: LibraryModel) -> ModelState:
        """The model's status, from its conversion while it runs and from the store once it ended."""
        if model.status is None:
            model = await self._settle(model)
        if model.status is not None:
            url = self.url(model.id) if model.status == "Succeeded" else None
            return ModelState(model, model.status, 1.0, model.error_code, model.error_message, url)
        conversion = await self._store.get_conversion(model.account_id, model.conversion_id)
        status, progress = _STATUS[conversion.status] if conversion else ("Queued", 0.0)
        return ModelState(model, status, progress, None, None, None)

    async def _settle(self, model: LibraryModel) -> LibraryModel:
        """Copy an ended conversion's result into the store (a purged one's from the files it left)."""
        conversion = await self._store.get_conversion(model.account_id, model.conversion_id)
        if conversion is not None and not conversion.status.terminal:
            return model
        if conversion is not None:
            status, _ = _STATUS[conversion.status]
            code, message = conversion.error_code, conversion.error_message
        elif self._clock.now() - model.created_at < self._retention:
            # Not purged (it would have had to end more than the retention period ago, and it was created
            # after the model): it is being created, by this process or another. Queued until then.
            return model
        else:
            asset = self.folder(model.account_id, model.id) / "asset" / ASSET_NAME
            status = "Succeeded" if await asyncio.to_thread(asset.is_file) else "Failed"
            code = message = None if status == "Succeeded" else "ConversionNotFound"
            if message:
                message = "The model's conversion record is gone and it left no asset."
        await self._store.end_model(model.account_id, model.id, status, code, message)
        return dataclasses.replace(model, status=status, error_code=code, error_message=message)

    async def details(self, model: LibraryModel) -> dict[str, Any]:
        """The conversion's statistics (from its info.json) and the end of its logs."""
        asset = self.folder(model.account_id, model.id) / "asset"
        return await asyncio.to_thread(read_details, asset)

    # ---- changes ------------------------------------------------------------------------------------
    async def rename(self, account_id: str, model_id: str, name: str) -> ModelState:
        model = await self.get(account_id, model_id)
        new = check_model_name(name)
        renamed = await self._store.rename_model(account_id, model_id, new)
        if renamed is None:
            raise NotFound(f"No model with id '{model_id}' exists in this account.", code="ModelNotFound")
        if not renamed:
            raise Conflict(f"This account already has a model named '{new}'.", code="ModelNameTaken")
        return await self.state(dataclasses.replace(model, name=new))

    async def delete(self, account_id: str, model_id: str) -> None:
        """Delete the model: cancel its conversion (so that it frees its place in the account's conversion
        limit and writes nothing more into the folder), then its row and its folder (upload and asset).
        Sessions that loaded the asset keep what they loaded."""
        model = await self.get(account_id, model_id)
        await self._conversions.cancel(
            account_id, model.conversion_id, "The conversion was cancelled: its library model was deleted."
        )
        usage = self._usage.setdefault(account_id, _Usage())
        async with usage.guard:
            if await self._store.delete_model(account_id, model_id):
                with self._lock:
                    usage.stored_bytes -= model.size
                    usage.stored_models -= 1
        await asyncio.to_thread(shutil.rmtree, self.folder(account_id, model_id), True)

    # ---- leftovers ----------------------------------------------------------------------------------
    async def sweep(self, account_id: str | None = None) -> int:
        """Remove the library folders (of ``account_id``, or of every account) that no model row owns and no
        upload of this process is writing; returns how many. A crash mid-upload, a removal that failed, or
        a conversion that wrote on after its model was deleted leaves them."""
        if self._root is None:
            return 0
        if account_id is None:
            accounts = await asyncio.to_thread(account_folders, self._root)
        else:
            accounts = [account_id]
        removed = 0
        for account in accounts:
            library = self._library(account)
            found = await asyncio.to_thread(library_entries, library)
            if not found:
                continue
            owned = {m.id for m in await self._store.list_models(account)}
            for name, model_id in found:
                if (account, model_id) in self._in_flight or (name == model_id and model_id in owned):
                    continue
                await asyncio.to_thread(shutil.rmtree, library / name, True)
                removed += 1
        if removed:
            log.info("removed %d model library folders that no model owned", removed)
        return removed


def _quota_message(quota: int) -> str:
    return (
        f"This account's model library holds {quota >> 20} MiB of uploads and converted assets, the most "
        "this service allows "
        "(--max-library-mib); delete models to upload more."
    )


def _models_message(most: int) -> str:
    return (
        f"This account's model library holds {most} models, the most this service allows "
        "(--max-library-models); delete models to upload more."
    )


def _entry(files: dict[str, int], entry: str | None) -> str:
    """Which uploaded file is the model: ``entry`` if given, else the only file of a supported format."""
    if not files:
        raise InvalidInput("The upload has no file.", code="NoModelFile", target="file")
    if entry is not None:
        if entry not in files:
            raise InvalidInput(f"The entry '{entry}' is not among the uploaded files.", target="entry")
        candidates = [entry]
    else:
        candidates = [name for name in files if PurePosixPath(name).suffix.lower() in SUPPORTED_EXTENSIONS]
    if not candidates:
        raise InvalidInput(
            "The upload has no model file; supported: " + ", ".join(SUPPORTED_EXTENSIONS) + ".",
            code="NoModelFile",
            target="file",
        )
    if len(candidates) > 1:
        raise InvalidInput(
            "The upload has several model files (" + ", ".join(sorted(candidates)[:5]) + "); name the one to "
            "convert in the entry field.",
            code="SeveralModelFiles",
            target="entry",
        )
    if PurePosixPath(candidates[0]).suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidInput(
            "The entry has an unsupported format; supported: " + ", ".join(SUPPORTED_EXTENSIONS) + ".",
            target="entry",
        )
    return candidates[0]
