"""How the v1 API names containers (``openrr.api.v1.containers``): a storage account name and a container
name, to a container URI and back."""

from __future__ import annotations

from pathlib import Path

from openrr.api.v1.containers import container_names, container_uri
from openrr.storage import LinkedAccount, StorageAccess

KEY = "a2V5a2V5a2V5+/=="
AZURITE = "http://127.0.0.1:10000/devstoreaccount1"
ACCOUNT = "6f1c1f3e-0b4d-4e8e-9d7c-1a2b3c4d5e6f"
OTHER = "0b9e2a55-7d0c-4f65-8a3e-9f8e7d6c5b4a"


def test_v1_names() -> None:
    access = StorageAccess(accounts=(LinkedAccount("devstoreaccount1", None, AZURITE),))
    assert container_uri(access, ACCOUNT, (), "devstoreaccount1", "input") == f"{AZURITE}/input"
    assert container_uri(access, ACCOUNT, (), "acct1", "input") == "https://acct1.blob.core.windows.net/input"
    linked = (LinkedAccount("mine", KEY, "http://127.0.0.1:10001/mine"),)
    assert container_uri(access, ACCOUNT, linked, "mine", "c") == "http://127.0.0.1:10001/mine/c"
    assert container_names(access, "http://127.0.0.1:10001/mine/c", linked) == ("mine", "c")
    assert container_names(access, f"{AZURITE}/input") == ("devstoreaccount1", "input")
    assert container_names(access, "https://acct1.blob.core.windows.net/input") == ("acct1", "input")
    assert container_names(access, "file:///srv/containers/output") == ("local", "output")


def test_v1_local_names_the_callers_folder(tmp_path: Path) -> None:
    root = tmp_path / "root" / ACCOUNT  # the account's folder in the container root
    (root / "c").mkdir(parents=True)
    service = StorageAccess(container_roots=(root.parent,))
    assert container_uri(service, ACCOUNT, (), "local", "c") == (root / "c").resolve().as_uri()
    assert container_uri(service, OTHER, (), "local", "c") == (root.parent / OTHER / "c").resolve().as_uri()
