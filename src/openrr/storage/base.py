"""Blob containers as conversions see them: list, download, upload, and the errors they raise.

A ``Container`` is one blob container, named by the URI clients send (``storageContainerUri``) and opened
with whatever credential the service has for it (a SAS from the request, a linked storage account's key,
or the service's own disk for ``file:`` containers). Blob names are ``/``-separated paths, as in Azure.

Every error is a ``StorageError`` whose ``message`` is fit for a client and for the conversion's log: it
never repeats a SAS, an account key or a server-side path outside the container.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol


class StorageError(Exception):
    """A container operation failed; ``message`` is safe to show to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoAccess(StorageError):
    """The service has no credential for the container (no SAS, not linked, outside the roots)."""


class AccessDenied(StorageError):
    """The container refused the credential (a wrong or expired SAS, missing permissions)."""


class Unreachable(StorageError):
    """The container does not exist or its storage endpoint cannot be reached."""


class BadBlobName(StorageError):
    """A blob name that cannot be a relative path (``..``, absolute, empty segments, control characters)."""


@dataclasses.dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int


class Container(Protocol):
    """One blob container, opened with a credential. Use as an async context manager."""

    @property
    def uri(self) -> str:
        """The container's URI, without any credential."""
        ...

    async def __aenter__(self) -> Container: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def blob_uri(self, name: str) -> str:
        """The URI of blob ``name`` (without any credential)."""
        ...

    async def check_read(self, prefix: str) -> None:
        """Raise unless blobs under ``prefix`` can be listed and read."""
        ...

    async def check_write(self, name: str) -> None:
        """Raise unless blob ``name`` could be written; leaves nothing visible behind."""
        ...

    async def list_blobs(self, prefix: str) -> Sequence[BlobInfo]:
        """The blobs whose names start with ``prefix``, ordered by name."""
        ...

    async def download(self, name: str, dest: Path) -> None:
        """Write blob ``name`` to the local file ``dest`` (whose folder exists)."""
        ...

    async def upload(self, name: str, source: Path) -> None:
        """Write the local file ``source`` to blob ``name``, replacing it; readers see all or nothing."""
        ...


def is_clean_text(value: str) -> bool:
    """No control characters and no lone surrogates: text every store, path and log can hold."""
    return value.isprintable()


def safe_relative(name: str, *, what: str = "path") -> PurePosixPath:
    """``name`` as a relative path that stays below its base: no ``..``, no absolute, no empty segments.

    Raises BadBlobName (whose message does not repeat the name: it may come from anywhere).
    """
    # Control characters and backslashes have no business in a path: Windows tools would read "\\" as a
    # separator, and a NUL ends a path in every C library.
    if not name or not is_clean_text(name) or "\\" in name:
        raise BadBlobName(f"The {what} is empty or contains control characters or backslashes.")
    if len(name) > 1024:  # Azure's limit for blob names
        raise BadBlobName(f"The {what} is longer than 1024 characters.")
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise BadBlobName(
            f"The {what} must be relative, without empty, '.' or '..' segments and without a leading '/'."
        )
    return PurePosixPath(*parts)


@dataclasses.dataclass(frozen=True)
class LinkedAccount:
    """A storage account configured on the server: ARR's "linked storage account".

    With a ``key``, the service reads and writes its containers without a SAS. Without one, it only names
    the account's endpoint, so that requests may use SAS for containers there (an Azurite or a storage
    account on a private network: ``--storage-account NAME@ENDPOINT``).
    """

    name: str
    key: str | None = dataclasses.field(default=None, repr=False)
    endpoint: str = ""

    @property
    def blob_endpoint(self) -> str:
        return (self.endpoint or f"https://{self.name}.blob.core.windows.net").rstrip("/")

    def __str__(self) -> str:
        return f"{self.name} at {self.blob_endpoint} ({'key' if self.key else 'SAS only'})"


_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}|devstoreaccount1", re.ASCII)
_ENDPOINT = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?", re.ASCII)


def parse_linked_account(text: str) -> LinkedAccount:
    """Parse ``NAME=KEY``, ``NAME=KEY@ENDPOINT`` or ``NAME@ENDPOINT``; raises ValueError saying why.

    KEY is the account key (base64, so it never contains ``@``). ENDPOINT is the blob service URL, e.g.
    ``http://127.0.0.1:10000/devstoreaccount1`` for Azurite; the default is Azure's
    ``https://NAME.blob.core.windows.net``.
    """
    rest, at, endpoint = text.rpartition("@") if "@" in text else (text, "", "")
    name, eq, key = rest.partition("=")
    if not _ACCOUNT_NAME.fullmatch(name):
        raise ValueError("the account name must be 3 to 24 lower-case letters and digits")
    if eq and not key:
        raise ValueError(f"the key of {name} is empty")
    if not eq and not at:
        raise ValueError(f"{name}: give NAME=KEY, NAME=KEY@ENDPOINT or NAME@ENDPOINT")
    if at and not _ENDPOINT.fullmatch(endpoint):
        raise ValueError(f"the endpoint of {name} must be an http(s) URL without a query")
    return LinkedAccount(name, key or None, endpoint.rstrip("/"))
