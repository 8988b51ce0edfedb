"""Azure Blob Storage containers through azure-storage-blob (asyncio), with a SAS or a linked account's key.

Works against Azure and against Azurite (path-style URLs such as ``http://127.0.0.1:10000/devstoreaccount1/
input``). Errors are translated here, once: the SDK's own messages carry request URLs and the service's XML
(which can quote the SAS's signature), so none of them reaches a client.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.storage.blob.aio import ContainerClient, LinearRetry

from openrr.storage.base import AccessDenied, BlobInfo, StorageError, Unreachable

# Checks run while a client waits for its PUT: fail fast. Transfers run in the background: be patient.
# use_env_settings=False: proxies from the environment are ignored (aiohttp's trust_env), as for every
# outbound request of openrr; a proxy would see the SAS of plain-http endpoints (Azurite) in its URLs.
# Connections are not pinned to checked addresses as model downloads are: a container is only ever on
# Azure's own endpoints (https://NAME.blob.core.windows.net, whose DNS clients do not control) or on an
# endpoint the operator named (--storage-account, openrr accounts link-storage), never on a host a client
# chose, so there is no client-chosen name to rebind.
_CHECK_OPTIONS: dict[str, Any] = {
    "retry_policy": LinearRetry(backoff=1, retry_total=1, random_jitter_range=0),
    "connection_timeout": 5,
    "read_timeout": 10,
    "use_env_settings": False,
}
_TRANSFER_OPTIONS: dict[str, Any] = {
    "retry_policy": LinearRetry(backoff=2, retry_total=3, random_jitter_range=1),
    "connection_timeout": 10,
    "read_timeout": 120,
    "use_env_settings": False,
}


def normalise_sas(sas: str) -> str:
    """A SAS as the SDK takes it: the query string alone (clients send ``?sv=…``, ``sv=…`` or a whole URL)."""
    sas = sas.strip()
    if "?" in sas:
        sas = sas.split("?", 1)[1]
    return sas


class BlobContainer:
    """A container at ``uri``; ``credential`` is a SAS query string or ``{"account_name", "account_key"}``."""

    def __init__(self, uri: str, credential: str | dict[str, str], *, transfers: bool = True) -> None:
        self._uri = uri.rstrip("/")
        self._credential = credential
        self._options = _TRANSFER_OPTIONS if transfers else _CHECK_OPTIONS
        self._client: ContainerClient | None = None

    @property
    def uri(self) -> str:
        return self._uri

    async def __aenter__(self) -> BlobContainer:
        try:
            self._client = ContainerClient.from_container_url(
                self._uri, credential=self._credential, **self._options
            )
        except ValueError:
            raise Unreachable("The storage container URI is not one azure-storage-blob accepts.") from None
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    @property
    def client(self) -> ContainerClient:
        assert self._client is not None, "use the container as an async context manager"
        return self._client

    def blob_uri(self, name: str) -> str:
        return f"{self._uri}/{quote(name)}"

    async def check_read(self, prefix: str) -> None:
        async with _translated("list the container"):
            pages = self.client.list_blobs(name_starts_with=prefix or None, results_per_page=1).by_page()
            async for page in pages:
                async for _blob in page:
                    break
                break

    async def check_write(self, name: str) -> None:
        # An uncommitted block is invisible to readers and listings, dropped when the blob is next written,
        # and garbage-collected by the service after a week: a write check that leaves nothing behind.
        block_id = base64.b64encode(b"openrr-check-" + secrets.token_hex(8).encode()).decode()
        async with _translated("write to the container"):
            await self.client.get_blob_client(name).stage_block(block_id, b"\0", length=1)

    async def list_blobs(self, prefix: str) -> Sequence[BlobInfo]:
        found: list[BlobInfo] = []
        async with _translated("list the container"):
            async for blob in self.client.list_blobs(name_starts_with=prefix or None):
                found.append(BlobInfo(blob.name, int(blob.size or 0)))
        found.sort(key=lambda b: b.name)
        return found

    async def download(self, name: str, dest: Path) -> None:
        async with _translated("read a blob"):
            stream = await self.client.download_blob(name, max_concurrency=2)
            out = await asyncio.to_thread(dest.open, "wb")  # opening a file blocks: not on the event loop
            with out:
                await stream.readinto(out)

    async def upload(self, name: str, source: Path) -> None:
        async with _translated("write a blob"):
            data = await asyncio.to_thread(source.open, "rb")
            with data:
                await self.client.upload_blob(name, data, overwrite=True, max_concurrency=2)


@asynccontextmanager
async def _translated(action: str) -> AsyncIterator[None]:
    """Turn the SDK's exceptions into StorageErrors with messages that quote nothing from the request."""
    try:
        yield
    except ResourceNotFoundError as exc:
        what = "container" if "Container" in _code(exc) else "blob or container"
        raise Unreachable(f"Could not {action}: the {what} does not exist.") from None
    except HttpResponseError as exc:
        if exc.status_code in (401, 403):
            raise AccessDenied(
                f"Could not {action}: access was denied (invalid access rights or an invalid or expired "
                "shared access signature)."
            ) from None
        code = f" ({_code(exc)})" if _code(exc) else ""
        raise StorageError(
            f"Could not {action}: the storage service answered {exc.status_code}{code}."
        ) from None
    except ServiceRequestError:
        raise Unreachable(f"Could not {action}: the storage endpoint cannot be reached.") from None
    except AzureError as exc:
        raise StorageError(f"Could not {action}: {type(exc).__name__}.") from None
    except OSError as exc:  # a local file (download target, upload source)
        raise StorageError(f"Could not {action}: {exc.strerror or type(exc).__name__}.") from None


def _code(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None)  # set by azure-storage-blob's error processing
    return str(getattr(code, "value", code or ""))
