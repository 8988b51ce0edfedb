"""One model upload being written to disk: the files of one request, bounded and checked as they arrive.

Apart from the library (``openrr.services.models``) because this is the part that turns names from a client
into paths: each name must be a safe relative path (no ``..``, no absolute path, no backslash or control
character, no folder where a file is or the other way round), and nothing is written outside the upload's
folder. The HTTP layer (``openrr.api.model_upload``) feeds it chunks as the body streams in; the folder's
size and file count are bounded by ``UploadLimits`` before a byte past them is written, and each chunk is
first reserved against the account's library quota (``reserve``, which the library shares between the
account's uploads in flight). File-system errors a client can cause or cannot help become the API's own:
a name too long for the file system (400 ``InvalidFileName``), a full disk (507 ``InsufficientStorage``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from openrr.errors import InsufficientStorage, InvalidInput, PayloadTooLarge
from openrr.storage.base import BadBlobName, safe_relative


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    max_bytes: int  # all files together
    max_files: int
    max_library_bytes: int  # everything an account's library holds
    max_library_models: int = 1000  # models an account's library holds


# A relative name's bytes in all: with the model root's own path in front it stays well under Linux's
# PATH_MAX (4096), so no name that passes here fails with ENAMETOOLONG.
MAX_NAME_BYTES = 1024


class UploadFolder:
    """Files written below ``folder`` (which exists and is empty), one at a time: ``start(name)``, ``write``
    chunks, ``end()``. ``files`` maps each relative name to its size. ``reserve(n)`` is called before ``n``
    more bytes are written, and raises to refuse them."""

    def __init__(
        self, folder: Path, limits: UploadLimits, reserve: Callable[[int], None] | None = None
    ) -> None:
        self.folder = folder
        self.limits = limits
        self._reserve = reserve
        self.files: dict[str, int] = {}
        self.size = 0
        self._out: BinaryIO | None = None
        self._name = ""

    def start(self, name: str) -> None:
        """Begin the file ``name`` (a relative path with ``/`` separators)."""
        self.end()
        relative = _checked_name(name)
        key = relative.as_posix()
        if key in self.files:
            raise InvalidInput(
                f"The upload has the file '{key}' twice.", code="InvalidFileName", target="file"
            )
        if len(self.files) >= self.limits.max_files:
            raise PayloadTooLarge(f"An upload may have at most {self.limits.max_files} files.")
        for other in self.files:  # "a" and "a/b" cannot both be: one would be a file and a folder
            if other.startswith(key + "/") or key.startswith(other + "/"):
                raise InvalidInput(
                    f"The upload's file '{key}' and file '{other}' are a file and a folder of the same name.",
                    code="InvalidFileName",
                    target="file",
                )
        path = self.folder.joinpath(*relative.parts)
        with storage_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self._open(path)
        self._name = key
        self.files[key] = 0

    def _open(self, path: Path) -> BinaryIO:
        """The new file ``path``, open for writing (tests put a writer of their own here)."""
        # O_EXCL and O_NOFOLLOW: a name never lands on something already there, least of all a symlink.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        return os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if self._out is None:
            return
        if self.size + len(data) > self.limits.max_bytes:
            raise PayloadTooLarge(
                f"The upload is larger than {_mib(self.limits.max_bytes)}, the most it may have "
                "(--max-upload-mib)."
            )
        if self._reserve is not None:
            self._reserve(len(data))
        self.size += len(data)  # counted once reserved: what is released when the upload ends
        with storage_errors():
            self._out.write(data)
        self.files[self._name] += len(data)

    def end(self) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            with storage_errors():
                out.close()  # the last buffered bytes are written here

    def close(self) -> None:
        self.end()


def _checked_name(name: str) -> PurePosixPath:
    """A client's file name as a path below the upload's folder, or InvalidInput (400)."""
    try:
        relative = safe_relative(name, what="file name")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, code="InvalidFileName", target="file") from None
    parts = relative.parts
    if any(len(p.encode()) > 255 for p in parts) or len(parts) > 32 or len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidInput(
            f"A file name is at most {MAX_NAME_BYTES} bytes (UTF-8), each part at most 255, in at most 32 "
            "folders.",
            code="InvalidFileName",
            target="file",
        )
    return relative


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turns the file-system errors of an upload into the API's: a name the file system finds too long
    (400), a full disk or disk quota (507). Others stay as they are: they are the service's own faults."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise InvalidInput(
                "A file name is too long for the service's file system.",
                code="InvalidFileName",
                target="file",
            ) from None
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(
                "The service's disk is full: the upload was not kept. Try again later or ask its operator."
            ) from None
        raise


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"
