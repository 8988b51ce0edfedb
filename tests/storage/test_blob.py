"""Blob containers through azure-storage-blob against Azurite: SAS and linked account, and what fails how."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openrr.storage import AccessDenied, LinkedAccount, StorageAccess, StorageError, Unreachable
from openrr.storage.base import Container
from tests.azurite import ACCOUNT, KEY, Azurite


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        server.create_container("input")
        server.create_container("output")
        server.put("input", "models/box.glb", b"glTF box")
        server.put("input", "models/sub/tex.png", b"png")
        server.put("input", "other.glb", b"other")
        yield server
    finally:
        server.stop()


OWNER = "6f1c1f3e-0b4d-4e8e-9d7c-1a2b3c4d5e6f"  # the openrr account the storage is linked to


class Opener:
    """Opens containers as OWNER, with the storage linked to it."""

    def __init__(self, access: StorageAccess, linked: tuple[LinkedAccount, ...] = ()) -> None:
        self.access, self.linked = access, linked

    def open(self, uri: str, sas: str | None, *, transfers: bool = True) -> Container:
        return self.access.open(uri, sas, account_id=OWNER, linked=self.linked, transfers=transfers)


def sas_only(azurite: Azurite) -> Opener:
    return Opener(StorageAccess(accounts=(LinkedAccount(ACCOUNT, None, azurite.endpoint),)))


def linked(azurite: Azurite) -> Opener:
    return Opener(StorageAccess(), (LinkedAccount(ACCOUNT, KEY, azurite.endpoint),))


async def test_read_with_a_read_list_sas(azurite: Azurite, tmp_path: Path) -> None:
    uri = f"{azurite.endpoint}/input"
    async with sas_only(azurite).open(uri, "?" + azurite.sas("input", "rl")) as container:
        await container.check_read("models/")
        listed = await container.list_blobs("models/")
        assert [(b.name, b.size) for b in listed] == [("models/box.glb", 8), ("models/sub/tex.png", 3)]
        await container.download("models/box.glb", tmp_path / "box.glb")
        assert (tmp_path / "box.glb").read_bytes() == b"glTF box"
        # a read/list SAS cannot write
        with pytest.raises(AccessDenied):
            await container.check_write("x.arrAsset")
        with pytest.raises(AccessDenied):
            await container.upload("x.arrAsset", tmp_path / "box.glb")
        with pytest.raises(Unreachable):
            await container.download("models/nope.glb", tmp_path / "nope")


async def test_write_with_a_write_only_sas_leaves_nothing_from_the_check(
    azurite: Azurite, tmp_path: Path
) -> None:
    source = tmp_path / "asset"
    source.write_bytes(b"asset")
    uri = f"{azurite.endpoint}/output"
    async with sas_only(azurite).open(uri, azurite.sas("output", "w")) as container:
        await container.check_write("checked/box.arrAsset")
        assert azurite.names("output", "checked/") == []  # the write check leaves no blob
        with pytest.raises(AccessDenied):
            await container.check_read("")  # write-only: no listing
        await container.upload("out/box.arrAsset", source)
        assert container.blob_uri("out/box.arrAsset") == f"{uri}/out/box.arrAsset"
    assert azurite.get("output", "out/box.arrAsset") == b"asset"


async def test_linked_account_needs_no_sas(azurite: Azurite, tmp_path: Path) -> None:
    async with linked(azurite).open(f"{azurite.endpoint}/input", None) as container:
        assert [b.name for b in await container.list_blobs("")] == [
            "models/box.glb",
            "models/sub/tex.png",
            "other.glb",
        ]
    source = tmp_path / "x"
    source.write_bytes(b"x")
    async with linked(azurite).open(f"{azurite.endpoint}/output", None) as container:
        await container.upload("linked/x", source)
    assert azurite.get("output", "linked/x") == b"x"


async def test_denied_missing_and_unreachable(azurite: Azurite) -> None:
    access = sas_only(azurite)
    forged = "sv=2021-08-06&sr=c&sp=rl&se=2099-01-01T00%3A00%3A00Z&sig=Zm9yZ2VkZm9yZ2VkZm9yZ2Vk"
    expired = azurite.sas("input", "rl", hours=-1)
    other_container = azurite.sas("output", "rl")
    for sas in (forged, expired, other_container):
        with pytest.raises(AccessDenied) as info:
            async with access.open(f"{azurite.endpoint}/input", sas) as container:
                await container.check_read("")
        assert "sig=" not in info.value.message
        assert "Zm9yZ2Vk" not in info.value.message
    with pytest.raises(Unreachable):
        async with linked(azurite).open(f"{azurite.endpoint}/missing", None) as container:
            await container.check_read("")
    gone = Opener(StorageAccess(), (LinkedAccount(ACCOUNT, KEY, "http://127.0.0.1:9/devstoreaccount1"),))
    with pytest.raises(StorageError) as unreachable:
        async with gone.open("http://127.0.0.1:9/devstoreaccount1/input", None, transfers=False) as container:
            await container.check_read("")
    assert isinstance(unreachable.value, Unreachable)
