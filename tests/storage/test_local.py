"""file: containers: confined to the calling account's folders of the container roots, nothing read or written
outside the container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openrr.storage import BadBlobName, NoAccess, StorageAccess, StorageError, Unreachable
from openrr.storage.base import Container
from openrr.storage.local import LocalContainer

ACCOUNT = "6f1c1f3e-0b4d-4e8e-9d7c-1a2b3c4d5e6f"
OTHER = "0b9e2a55-7d0c-4f65-8a3e-9f8e7d6c5b4a"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The account's folder in the container root ``tmp_path/root``."""
    root = tmp_path / "root" / ACCOUNT
    (root / "c" / "models" / "sub").mkdir(parents=True)
    (root / "c" / "models" / "box.glb").write_bytes(b"box")
    (root / "c" / "models" / "sub" / "tex.png").write_bytes(b"png")
    (root / "c" / "other.glb").write_bytes(b"other")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    return root


class access:
    """StorageAccess with the container root above the account folder ``root``, opening as ACCOUNT."""

    def __init__(self, root: Path) -> None:
        self.access = StorageAccess(container_roots=(root.parent,))

    def open(self, uri: str, sas: str | None) -> Container:
        return self.access.open(uri, sas, account_id=ACCOUNT)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc",
        "file:///",
        "file://otherhost/srv/c",
        "file:///srv/c?x=1",
        "file:relative/path",
    ],
)
def test_containers_outside_the_roots_are_refused(root: Path, uri: str) -> None:
    with pytest.raises(NoAccess):
        access(root).open(uri, None)


def test_traversal_and_symlinks_out_of_the_roots_are_refused(root: Path, tmp_path: Path) -> None:
    with pytest.raises(NoAccess):
        access(root).open((root / "c").as_uri() + "/../../outside", None)
    os.symlink(tmp_path / "outside", root / "link")
    with pytest.raises(NoAccess):
        access(root).open((root / "link").as_uri(), None)
    with pytest.raises(NoAccess):
        StorageAccess().open(
            (root / "c").as_uri(), None, account_id=ACCOUNT
        )  # no roots: no file: containers at all
    assert isinstance(access(root).open((root / "c").as_uri(), None), LocalContainer)
    assert isinstance(access(root).open(root.as_uri(), None), LocalContainer)


async def test_list_download_upload(root: Path, tmp_path: Path) -> None:
    async with access(root).open((root / "c").as_uri(), None) as container:
        await container.check_read("models/")
        listed = await container.list_blobs("models/")
        assert [(b.name, b.size) for b in listed] == [("models/box.glb", 3), ("models/sub/tex.png", 3)]
        assert [b.name for b in await container.list_blobs("")] == [
            "models/box.glb",
            "models/sub/tex.png",
            "other.glb",
        ]
        assert [b.name for b in await container.list_blobs("mod")] == ["models/box.glb", "models/sub/tex.png"]
        assert await container.list_blobs("nothing/") == []
        dest = tmp_path / "box.glb"
        await container.download("models/box.glb", dest)
        assert dest.read_bytes() == b"box"
        await container.check_write("out/deep/x.arrAsset")
        await container.upload("out/deep/x.arrAsset", dest)
        assert (root / "c" / "out" / "deep" / "x.arrAsset").read_bytes() == b"box"
        assert not list((root / "c" / "out" / "deep").glob(".upload-*"))  # no temporary left behind
        assert container.blob_uri("out/a b.arrAsset") == (root / "c").as_uri() + "/out/a%20b.arrAsset"


@pytest.mark.parametrize(
    "name", ["../outside/secret.txt", "/etc/passwd", "a/../../x", "a\\b", "a\x00b", "", "a//b"]
)
async def test_blob_names_that_leave_the_container_are_refused(root: Path, tmp_path: Path, name: str) -> None:
    async with access(root).open((root / "c").as_uri(), None) as container:
        with pytest.raises(BadBlobName):
            await container.download(name, tmp_path / "x")
        with pytest.raises(BadBlobName):
            await container.upload(name, root / "c" / "other.glb")
        with pytest.raises(BadBlobName):
            await container.check_write(name)


async def test_symlinks_inside_a_container_do_not_lead_out(root: Path, tmp_path: Path) -> None:
    container_dir = root / "c"
    os.symlink(tmp_path / "outside" / "secret.txt", container_dir / "models" / "leak.txt")
    os.symlink(tmp_path / "outside", container_dir / "models" / "out")
    async with access(root).open(container_dir.as_uri(), None) as container:
        names = [b.name for b in await container.list_blobs("models/")]
        assert names == ["models/box.glb", "models/sub/tex.png"]
        with pytest.raises(NoAccess):
            await container.download("models/leak.txt", tmp_path / "x")
        with pytest.raises(NoAccess):
            await container.download("models/out/secret.txt", tmp_path / "x")
        with pytest.raises(NoAccess):
            await container.upload("models/out/planted.txt", container_dir / "other.glb")
    assert not (tmp_path / "outside" / "planted.txt").exists()


async def test_missing_containers_and_blobs(root: Path, tmp_path: Path) -> None:
    async with access(root).open((root / "missing").as_uri(), None) as container:
        with pytest.raises(Unreachable):
            await container.check_read("")
        with pytest.raises(Unreachable):
            await container.check_write("x")
        with pytest.raises(Unreachable):
            await container.list_blobs("")
    async with access(root).open((root / "c").as_uri(), None) as container:
        with pytest.raises(StorageError):
            await container.download("models/nope.glb", tmp_path / "x")


def test_another_accounts_folder_and_the_root_itself_are_refused(root: Path, tmp_path: Path) -> None:
    containers = root.parent
    (containers / OTHER / "c").mkdir(parents=True)
    (containers / OTHER / "c" / "theirs.glb").write_bytes(b"theirs")
    for uri in (
        (containers / OTHER / "c").as_uri(),  # another account's container
        (containers / OTHER).as_uri(),
        containers.as_uri(),  # the root above every account's folder
        (root / "c").as_uri() + f"/../../{OTHER}/c",  # traversal into the other account
    ):
        with pytest.raises(NoAccess):
            access(root).open(uri, None)
    # a symlink inside the caller's folder to the other account's container leads out: refused
    os.symlink(containers / OTHER / "c", root / "theirs")
    with pytest.raises(NoAccess):
        access(root).open((root / "theirs").as_uri(), None)
    # the same container, opened as its owner, is fine
    own = StorageAccess(container_roots=(containers,)).open(
        (containers / OTHER / "c").as_uri(), None, account_id=OTHER
    )
    assert isinstance(own, LocalContainer)


def test_an_account_without_a_folder_gets_a_clear_refusal(tmp_path: Path) -> None:
    containers = tmp_path / "containers"
    (containers / OTHER / "c").mkdir(parents=True)
    with pytest.raises(NoAccess) as info:
        StorageAccess(container_roots=(containers,)).open(
            (containers / ACCOUNT / "c").as_uri(), None, account_id=ACCOUNT
        )
    assert "no folder" in info.value.message
    with pytest.raises(BadBlobName):  # an account id is one folder name, never a path
        StorageAccess(container_roots=(containers,)).account_roots("../x")
