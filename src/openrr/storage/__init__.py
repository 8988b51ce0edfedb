"""Blob containers for conversions: which ones the service may use, and with which credential.

``StorageAccess.open(uri, sas, account_id=…, linked=…)`` returns a ``Container`` or raises ``NoAccess``. The
rules, ARR's plus the ones a self-hosted service needs so that clients cannot make it fetch arbitrary URLs
nor reach another account's data:

* ``file:///PATH`` containers: folders inside the calling account's own folder of a configured root
  (``--container-root ROOT``: ``ROOT/<accountId>/CONTAINER``); no SAS needed. Another account's folder, or
  anything a symlink or ``..`` leads to outside the caller's folder, is NoAccess. The model library's folders
  (``library_roots``: ``MODEL_ROOT/<accountId>/library``) are such containers too, of their account alone.
* Containers of a storage account linked to the calling account (``openrr accounts link-storage``, ARR's
  linked storage; ``linked``): with the SAS from the request if there is one, else with the link's key; a
  link without a key needs a SAS. Storage linked to other accounts is never used.
* Containers at an endpoint the service names for everyone (``--storage-account NAME@ENDPOINT``, no key:
  an Azurite or a private endpoint) and on Azure's public endpoints
  (``https://NAME.blob.core.windows.net/CONTAINER``): with a SAS only.
* Anything else: NoAccess. ``azure-storage-blob`` is imported only when a blob container is opened.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from openrr.domain.library import LIBRARY_FOLDER
from openrr.extras import needs
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
    "azure_account_name",
    "parse_linked_account",
    "safe_relative",
]

_AZURE_HOST = re.compile(r"([a-z0-9]{3,24})\.blob\.core\.windows\.net", re.ASCII)
# Azure's container names (3-63 of a-z, 0-9, "-") plus the special ones; Azurite follows the same rules.
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]|\$root|\$web|\$logs", re.ASCII)


@dataclasses.dataclass(frozen=True)
class StorageAccess:
    """``container_roots``: where ``file:`` containers may be (a folder per account in each).
    ``accounts``: endpoints every account may use with a SAS; they never carry a key (keys are linked to one
    account each, in the store)."""

    container_roots: tuple[Path, ...] = ()
    accounts: tuple[LinkedAccount, ...] = ()
    # Model roots whose account folders hold the model library (ROOT/<accountId>/library): the library's
    # conversions read uploads and write assets there, as file: containers of that account alone.
    library_roots: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if any(account.key for account in self.accounts):
            # A key here would let every account's conversions use that storage without a SAS.
            raise ValueError("service-wide storage accounts cannot have a key: link it to an account")

    def describe(self) -> str:
        roots = ", ".join(str(r) for r in self.container_roots) or "none"
        accounts = "; ".join(str(a) for a in self.accounts) or "none"
        return (
            f"file: containers under {roots} (a folder per account); endpoints for SAS: {accounts}; storage "
            "linked per account; Azure endpoints with a SAS"
        )

    def account_roots(self, account_id: str) -> tuple[Path, ...]:
        """The account's own folder in each container root: the only places its ``file:`` containers are."""
        folder = safe_relative(account_id, what="account id")
        if len(folder.parts) != 1:
            raise NoAccess("The account id cannot name a folder.")
        return tuple(root / account_id for root in self.container_roots) + tuple(
            root / account_id / LIBRARY_FOLDER for root in self.library_roots
        )

    def endpoints(self, linked: Sequence[LinkedAccount]) -> tuple[LinkedAccount, ...]:
        """Where the account's containers may be: its own links, then the service-wide endpoints."""
        # The account's own links first: where a link and a service-wide endpoint share an endpoint, the
        # link (which may have a key) decides.
        return (*linked, *self.accounts)

    def open(
        self,
        uri: str,
        sas: str | None,
        *,
        account_id: str,
        linked: Sequence[LinkedAccount] = (),
        transfers: bool = True,
    ) -> Container:
        """The container at ``uri`` for ``account_id``, with the best credential there is; NoAccess if none.

        ``linked``: the storage linked to that account (``Store.linked_storage``), and only to it.
        ``transfers``: patient retries for a conversion's downloads and uploads; without, fast checks.
        """
        if is_file_uri(uri):
            return self._open_file(uri, account_id)
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NoAccess("The storage container URI must be an https:// (or file:) URI.")
        if parts.query or parts.fragment:
            raise NoAccess("The storage container URI must not have a query: pass a SAS in its own field.")
        base = f"{parts.scheme}://{parts.netloc}".lower() + parts.path.rstrip("/")
        sas = sas.strip() if sas else None
        for account in self.endpoints(linked):
            endpoint = account.blob_endpoint.lower()
            if base.lower().startswith(endpoint + "/"):
                self._check_container_name(base[len(endpoint) + 1 :])
                return _blob(base, _credential(account, sas), transfers)
        name = azure_account_name(parts.hostname)
        if parts.scheme == "https" and name and parts.port is None:
            self._check_container_name(unquote(parts.path.strip("/")))
            if sas:
                return _blob(base, _sas(sas), transfers)
            raise NoAccess(
                f"No shared access signature was given, and the storage account {name} is not "
                "linked to this account (openrr accounts link-storage)."
            )
        raise NoAccess(
            "The storage endpoint is neither an Azure blob endpoint nor a storage account linked to this "
            "account or configured on this service (--storage-account NAME@ENDPOINT)."
        )

    def _open_file(self, uri: str, account_id: str) -> LocalContainer:
        roots = self.account_roots(account_id)
        if roots and not any(root.is_dir() for root in roots):
            raise NoAccess(
                "This account has no folder in the service's container roots: file: containers are "
                "ROOT/<accountId>/CONTAINER, made by the operator."
            )
        return LocalContainer(uri, container_folder(uri, roots))

    @staticmethod
    def _check_container_name(name: str) -> None:
        if not _CONTAINER.fullmatch(name):
            raise NoAccess(
                "The storage container URI must name one container: 3 to 63 lower-case letters, digits "
                "and hyphens after the account's endpoint."
            )


def azure_account_name(hostname: str | None) -> str | None:
    """The storage account of an Azure blob endpoint's host name (``NAME.blob.core.windows.net``), or None."""
    host = _AZURE_HOST.fullmatch(hostname or "")
    return host.group(1) if host else None


def _credential(account: LinkedAccount, sas: str | None) -> str | dict[str, str]:
    """The request's SAS if there is one, else the account's key; NoAccess if neither."""
    if sas:
        return _sas(sas)
    if account.key:
        return {"account_name": account.name, "account_key": account.key}
    raise NoAccess(
        f"No shared access signature was given, and the storage account {account.name} is not "
        "linked to this account with a key."
    )


def _sas(sas: str) -> str:
    with needs("azure", "An Azure Blob Storage container"):
        from openrr.storage.blob import normalise_sas

    return normalise_sas(sas)


def _blob(uri: str, credential: str | dict[str, str], transfers: bool) -> BlobContainer:
    with needs("azure", "An Azure Blob Storage container"):
        from openrr.storage.blob import BlobContainer  # azure-storage-blob only when a blob container is used

    return BlobContainer(uri, credential, transfers=transfers)
