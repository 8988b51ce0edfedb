"""Asset conversions: create and read them; the queue (``conversion_queue``) runs them.

Creating a conversion checks everything that can be checked at once, so that clients get synchronous errors
as ARR gave them: 400 for bad settings (``conversion_settings``: unsupported extension, a path that leaves
its prefix, an output name without ``.arrAsset``); 403 ``DelegatedResourceAccessError`` when the service
cannot use a container (no SAS and not linked, a denied SAS, a container that does not exist or cannot be
reached). What only the run shows fails the conversion with ``ConversionProcessFailed`` (missing input
asset, a corrupt model, a bad settings file), with the reason in the logs written to the output container.

Limits: an account may have ``max_per_account`` conversions queued or running (403 ``QuotaExceeded`` past
it). The converter process runs under a memory ceiling (``memory_bytes``) and is killed after ``timeout_s``
(``conversion_runner``). The lifecycle table is ``openrr.domain.conversion``'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from openrr.domain.clock import Clock
from openrr.domain.conversion import (
    ACCESS_ERROR,
    Conversion,
    ConversionInput,
    ConversionOutput,
    ConversionStatus,
    Event,
)
from openrr.domain.ids import check_resource_id
from openrr.errors import Conflict, Forbidden, NotFound, QuotaExceeded
from openrr.services.accounts import linked_accounts
from openrr.services.conversion_config import ConversionConfig
from openrr.services.conversion_job import ConversionJob
from openrr.services.conversion_queue import ConversionQueue, worker_identity
from openrr.services.conversion_runner import Runner, SubprocessRunner
from openrr.services.conversion_settings import check_sas, normalise_input, normalise_output
from openrr.storage import StorageAccess, StorageError
from openrr.storage.base import LinkedAccount
from openrr.store.base import Admission, StaleWrite, Store

CANCELLED = "Cancelled"  # the error code of a conversion ended by ``cancel``


class ConversionService:
    """The conversions of every account: ``create``, ``get``, ``list_conversions``; ``start`` and ``close``
    run this process's queue (``queue``)."""

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
        worker_id = worker_identity()
        job = ConversionJob(
            store, clock, access, config, runner or SubprocessRunner(config.memory_bytes), worker_id
        )
        self.queue = ConversionQueue(store, clock, config, job, worker_id)

    def start(self) -> None:
        """Run the queue's dispatcher until ``close``."""
        self.queue.start()

    async def close(self) -> None:
        """Stop the queue; conversions running here go back to it."""
        await self.queue.close()

    # ---- queries ------------------------------------------------------------------------------------
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

    # ---- create -------------------------------------------------------------------------------------
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
        check_sas(input_sas, "settings.inputLocation.storageContainerReadListSas")
        check_sas(output_sas, "settings.outputLocation.storageContainerWriteSas")
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
                self.queue.wake()
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

    # ---- cancel -------------------------------------------------------------------------------------
    async def cancel(self, account_id: str, conversion_id: str, message: str) -> None:
        """End the conversion if it has not ended (Failed, ``Cancelled``, with ``message``), so it no longer
        counts against the account's limit, and stop its run in this process. A run in another process
        finds it ended when it finishes, and drops its result; what it wrote meanwhile stays written."""
        for _ in range(20):
            current = await self._store.get_conversion(account_id, conversion_id)
            if current is None or current.status.terminal:
                break
            ended = current.apply(Event.FAIL, self._clock.now(), error_code=CANCELLED, error_message=message)
            try:
                await self._store.update_conversion(ended)
                break
            except StaleWrite:
                continue  # it changed meanwhile (started, heartbeat): look again
        await self.queue.stop(account_id, conversion_id)

    # ---- retention ----------------------------------------------------------------------------------
    async def purge(self, retention: dt.timedelta) -> int:
        return await self._store.purge_conversions_ended_before(self._clock.now() - retention)
