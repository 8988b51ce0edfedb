"""``file:`` containers: folders on the service's own disk, for single-machine use.

A container is a folder named by a ``file:`` URI (``file:///srv/openrr/containers/input``) that lies inside
one of the configured roots (``--container-root``), after ``..`` and symlinks are resolved. Its blobs are the
regular files below it; a blob's name is its path relative to the folder, with ``/`` separators. Nothing is
ever read or written outside the container's folder: blob names are checked with ``safe_relative``, and a
file or folder that resolves elsewhere (a symlink out of the container) is neither listed nor followed.

Uploads go to a temporary file beside the target, renamed into place, so readers never see half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from openrr.storage.base import BlobInfo, NoAccess, StorageError, Unreachable, safe_relative


def is_file_uri(uri: str) -> bool:
    return uri[:5].lower() == "file:"


def container_folder(uri: str, roots: Sequence[Path]) -> Path:
    """The folder of a ``file:`` container URI, resolved; NoAccess unless it lies inside a root.

    The folder need not exist (``LocalContainer`` reports a missing one as Unreachable). Messages do not
    repeat where a path resolved to.
    """
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise NoAccess(
            "A file: container URI must be file:///ABSOLUTE/PATH, without host, query or fragment."
        )
    raw = unquote(parts.path)
    if not raw.startswith("/") or "\x00" in raw:
        raise NoAccess("A file: container URI must name an absolute path.")
    if not roots:
        raise NoAccess("This service has no container roots: file: containers are not available.")
    folder = Path(os.path.realpath(raw))
    for root in roots:
        resolved_root = Path(os.path.realpath(root))
        if folder == resolved_root or folder.is_relative_to(resolved_root):
            return folder
    raise NoAccess("The file: container is outside this account's folders in the service's container roots.")


class LocalContainer:
    def __init__(self, uri: str, folder: Path) -> None:
        self._uri = uri.rstrip("/")
        self.folder = folder

    @property
    def uri(self) -> str:
        return self._uri

    async def __aenter__(self) -> LocalContainer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def blob_uri(self, name: str) -> str:
        return f"{self._uri}/{quote(name)}"

    # ---- checks -----------------------------------------------------------------------------------------
    def _require_folder(self) -> None:
        if not self.folder.is_dir():
            raise Unreachable("The file: container does not exist (it must be an existing folder).")

    def _path(self, name: str) -> Path:
        """Where blob ``name`` lives; refuses names and symlinks that lead out of the container."""
        relative = safe_relative(name, what="blob name")
        path = self.folder.joinpath(*relative.parts)
        # A symlinked folder on the way would take the path elsewhere: compare the resolved parent.
        parent = Path(os.path.realpath(path.parent))
        if parent != self.folder and not parent.is_relative_to(self.folder):
            raise NoAccess("The blob's folder leads out of the file: container.")
        return path

    async def check_read(self, prefix: str) -> None:
        await asyncio.to_thread(self._check_read)

    def _check_read(self) -> None:
        self._require_folder()
        if not os.access(self.folder, os.R_OK | os.X_OK):
            raise NoAccess("The service may not read the file: container.")

    async def check_write(self, name: str) -> None:
        await asyncio.to_thread(self._check_write, name)

    def _check_write(self, name: str) -> None:
        self._require_folder()
        path = self._path(name)
        # The nearest existing folder on the way must be writable (the rest is created on upload).
        existing = path.parent
        while not existing.exists() and existing != self.folder:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise NoAccess("The service may not write to the file: container.")

    # ---- blobs ------------------------------------------------------------------------------------------
    async def list_blobs(self, prefix: str) -> Sequence[BlobInfo]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> list[BlobInfo]:
        self._require_folder()
        found: list[BlobInfo] = []
        # Walk only the part of the tree the prefix can match: "a/b/c" starts in a/b.
        start = self.folder
        head = prefix.rpartition("/")[0]
        if head:
            try:
                start = self._path(head)
            except StorageError:
                return []
            if not start.is_dir():
                return []
        for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
            base = Path(dirpath)
            # Symlinked folders are not followed (os.walk lists them as dirnames but does not enter them).
            dirnames.sort()
            for filename in sorted(filenames):
                path = base / filename
                name = path.relative_to(self.folder).as_posix()
                if not name.startswith(prefix):
                    continue
                try:
                    real = Path(os.path.realpath(path))
                    if not real.is_relative_to(self.folder) or not real.is_file():
                        continue  # a symlink out of the container, or to something that is not a file
                    size = real.stat().st_size
                except OSError:
                    continue
                found.append(BlobInfo(name, size))
        found.sort(key=lambda b: b.name)
        return found

    async def download(self, name: str, dest: Path) -> None:
        await asyncio.to_thread(self._download, name, dest)

    def _download(self, name: str, dest: Path) -> None:
        path = self._path(name)
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.folder):
            raise NoAccess("The blob leads out of the file: container.")
        try:
            shutil.copyfile(real, dest)
        except FileNotFoundError:
            raise Unreachable("A blob of the file: container disappeared while it was read.") from None
        except OSError as exc:
            raise StorageError(f"Reading a blob of the file: container failed: {exc.strerror}.") from None

    async def upload(self, name: str, source: Path) -> None:
        await asyncio.to_thread(self._upload, name, source)

    def _upload(self, name: str, source: Path) -> None:
        self._require_folder()
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # mkdir may have followed a symlink created meanwhile: check again before writing.
            path = self._path(name)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise StorageError(f"Writing to the file: container failed: {exc.strerror}.") from None
