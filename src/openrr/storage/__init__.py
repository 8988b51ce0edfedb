"""Blob containers for conversions: which ones the service may use, and with which credential.

``StorageAccess.open(uri, sas)`` returns a ``Container`` or raises ``NoAccess``. The rules, ARR's plus the
ones a self-hosted service needs so that clients cannot make it fetch arbitrary URLs:

* ``file:///PATH`` containers: folders inside a configured root (``--container-root``); no SAS needed.
* Containers of a configured storage account (``--storage-account``, ARR's linked storage): with the SAS
  from the request if there is one, else with the account's key; an account configured without a key
  needs a SAS.
* Containers on Azure's public endpoints (``https://NAME.blob.core.windows.net/CONTAINER``): with a SAS.
* Anything else: NoAccess. ``azure-storage-blob`` is imported only when a blob container is opened.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from openrr.storage.base import (
    AccessDenied,
    BadBlobName,
    BlobInfo,
    Container,
    LinkedAccount,
    NoAccess,
    StorageError,
    Unreachable,
    parse_linked_account,
    safe_relative,
)
from openrr.storage.local import LocalContainer, container_folder, is_file_uri

if TYPE_CHECKING:
    from openrr.storage.blob import BlobContainer

__all__ = [
    "AccessDenied",
    "BadBlobName",
    "BlobInfo",
    "Container",
    "LinkedAccount",
    "NoAccess",
    "StorageAccess",
    "StorageError",
    "Unreachable",
    "parse_linked_account",
    "safe_relative",
]

_AZURE_HOST = re.compile(r"([a-z0-9]{3,24})\.blob\.core\.windows\.net", re.ASCII)
# Azure's container names (3-63 of a-z, 0-9, "-") plus the special ones; Azurite follows the same rules.
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]|\$root|\$web|\$logs", re.ASCII)
LOCAL_ACCOUNT = "local"


@dataclasses.dataclass(frozen=True)
class StorageAccess:
    container_roots: tuple[Path, ...] = ()
    accounts: tuple[LinkedAccount, ...] = ()

    def describe(self) -> str:
        roots = ", ".join(str(r) for r in self.container_roots) or "none"
        accounts = "; ".join(str(a) for a in self.accounts) or "none"
        return f"file: containers under {roots}; storage accounts: {accounts}; Azure endpoints with a SAS"

    def open(self, uri: str, sas: str | None, *, transfers: bool = True) -> Container:
        """The container at ``uri``, with the best credential there is; NoAccess if there is none.

        ``transfers``: patient retries for a conversion's downloads and uploads; without, fast checks.
        """
        if is_file_uri(uri):
            return LocalContainer(uri, container_folder(uri, self.container_roots))
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NoAccess("The storage container URI must be an https:// (or file:) URI.")
        if parts.query or parts.fragment:
            raise NoAccess("The storage container URI must not have a query: pass a SAS in its own field.")
        base = f"{parts.scheme}://{parts.netloc}".lower() + parts.path.rstrip("/")
        sas = sas.strip() if sas else None
        for account in self.accounts:
            endpoint = account.blob_endpoint.lower()
            if base.lower().startswith(endpoint + "/"):
                container = base[len(endpoint) + 1 :]
                self._check_container_name(container)
                if sas:
                    return _blob(base, _sas(sas), transfers)
                if account.key:
                    key = {"account_name": account.name, "account_key": account.key}
                    return _blob(base, key, transfers)
                raise NoAccess(
                    f"No shared access signature was given, and the storage account {account.name} is "
                    "configured on this service without a key."
                )
        host = _AZURE_HOST.fullmatch(parts.hostname or "")
        if parts.scheme == "https" and host and parts.port is None:
            self._check_container_name(unquote(parts.path.strip("/")))
            if sas:
                return _blob(base, _sas(sas), transfers)
            raise NoAccess(
                f"No shared access signature was given, and the storage account {host.group(1)} is not "
                "linked to this service (--storage-account)."
            )
        raise NoAccess(
            "The storage endpoint is neither an Azure blob endpoint nor a storage account configured on this "
            "service (--storage-account)."
        )

    @staticmethod
    def _check_container_name(name: str) -> None:
        if not _CONTAINER.fullmatch(name):
            raise NoAccess(
                "The storage container URI must name one container: 3 to 63 lower-case letters, digits "
                "and hyphens after the account's endpoint."
            )

    # ---- the v1 API names containers by account and container name -------------------------------------
    def v1_container_uri(self, account_name: str, container_name: str) -> str:
        """The URI of a v1 ``{storageAccountName, blobContainerName}`` pair.

        ``local`` names the container roots: the container is the folder of that name in the first root
        that has one (or the first root, for a new one).
        """
        if account_name == LOCAL_ACCOUNT and self.container_roots:
            relative = safe_relative(container_name, what="blob container name")
            if len(relative.parts) != 1:
                raise BadBlobName("The blob container name must not contain '/'.")
            roots = self.container_roots
            root = next((r for r in roots if (r / container_name).is_dir()), roots[0])
            return (root.resolve() / container_name).as_uri()
        for account in self.accounts:
            if account.name == account_name:
                return f"{account.blob_endpoint}/{container_name}"
        return f"https://{account_name}.blob.core.windows.net/{container_name}"

    def v1_names(self, uri: str) -> tuple[str, str]:
        """(storageAccountName, blobContainerName) of a container URI, for v1 responses."""
        if is_file_uri(uri):
            return LOCAL_ACCOUNT, Path(unquote(urlsplit(uri).path)).name
        base = uri.rstrip("/")
        for account in self.accounts:
            if base.lower().startswith(account.blob_endpoint.lower() + "/"):
                return account.name, base[len(account.blob_endpoint) + 1 :]
        parts = urlsplit(base)
        host = _AZURE_HOST.fullmatch(parts.hostname or "")
        container = parts.path.rsplit("/", 1)[-1]
        return (host.group(1) if host else parts.hostname or ""), container


def _sas(sas: str) -> str:
    from openrr.storage.blob import normalise_sas

    return normalise_sas(sas)


def _blob(uri: str, credential: str | dict[str, str], transfers: bool) -> BlobContainer:
    from openrr.storage.blob import BlobContainer  # azure-storage-blob only when a blob container is used

    return BlobContainer(uri, credential, transfers=transfers)
