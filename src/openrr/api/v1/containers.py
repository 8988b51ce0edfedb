"""How the v1 API names blob containers: by ``{storageAccountName, blobContainerName}`` rather than by URI.

A name linked to the calling account or configured on the service uses its endpoint; ``local`` names the
calling account's folders in the ``file:`` container roots; any other name is Azure's
``https://NAME.blob.core.windows.net``. A v1 quirk, so it lives in ``api/v1``: below ``api/`` containers are
URIs only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from openrr.storage import BadBlobName, LinkedAccount, StorageAccess, azure_account_name, safe_relative
from openrr.storage.local import is_file_uri

LOCAL_ACCOUNT = "local"


def container_uri(
    access: StorageAccess,
    account_id: str,
    linked: Sequence[LinkedAccount],
    account_name: str,
    container_name: str,
) -> str:
    """The URI of a v1 ``{storageAccountName, blobContainerName}`` pair, for ``account_id``.

    ``local`` names the account's folders in the container roots: the container is the folder of that
    name in the first root that has one (or the first root, for a new one). Raises BadBlobName for a
    container name that is not one folder name.
    """
    if account_name == LOCAL_ACCOUNT and access.container_roots:
        relative = safe_relative(container_name, what="blob container name")
        if len(relative.parts) != 1:
            raise BadBlobName("The blob container name must not contain '/'.")
        roots = access.account_roots(account_id)
        root = next((r for r in roots if (r / container_name).is_dir()), roots[0])
        return (root.resolve() / container_name).as_uri()
    for account in access.endpoints(linked):
        if account.name == account_name:
            return f"{account.blob_endpoint}/{container_name}"
    return f"https://{account_name}.blob.core.windows.net/{container_name}"


def container_names(access: StorageAccess, uri: str, linked: Sequence[LinkedAccount] = ()) -> tuple[str, str]:
    """(storageAccountName, blobContainerName) of a container URI, for v1 responses."""
    if is_file_uri(uri):
        return LOCAL_ACCOUNT, Path(unquote(urlsplit(uri).path)).name
    base = uri.rstrip("/")
    for account in access.endpoints(linked):
        if base.lower().startswith(account.blob_endpoint.lower() + "/"):
            return account.name, base[len(account.blob_endpoint) + 1 :]
    parts = urlsplit(base)
    container = parts.path.rsplit("/", 1)[-1]
    return azure_account_name(parts.hostname) or parts.hostname or "", container
