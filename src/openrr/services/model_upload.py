"""One model upload being written to disk: the files of one request, bounded and checked as they arrive.

Apart from the library (``openrr.services.models``) because this is the part that turns names from a client
into paths: each name must be a safe relative path (no ``..``, no absolute path, no backslash or control
character, no folder where a file is or the other way round), and nothing is written outside the upload's
folder. The HTTP layer (``openrr.api.model_upload``) feeds it chunks as the body streams in; the folder's
size and file count are bounded by ``UploadLimits`` before a byte past them is written.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from openrr.errors import InvalidInput, PayloadTooLarge
from openrr.storage.base import BadBlobName, safe_relative


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    max_bytes: int  # all files together
    max_files: int
    max_library_bytes: int  # everything an account's library holds


class UploadFolder:
    """Files written below ``folder`` (which exists and is empty), one at a time: ``start(name)``, ``write``
    chunks, ``end()``. ``files`` maps each relative name to its size."""

    def __init__(self, folder: Path, limits: UploadLimits) -> None:
        self.folder = folder
        self.limits = limits
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
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL and O_NOFOLLOW: a name never lands on something already there, least of all a symlink.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self._out = os.fdopen(fd, "wb")
        self._name = key
        self.files[key] = 0

    def write(self, data: bytes) -> None:
        if self._out is None:
            return
        self.size += len(data)
        if self.size > self.limits.max_bytes:
            raise PayloadTooLarge(
                f"The upload is larger than {_mib(self.limits.max_bytes)}, the most it may have "
                "(--max-upload-mib, or what is left of the account's library quota, --max-library-mib)."
            )
        self._out.write(data)
        self.files[self._name] += len(data)

    def end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def close(self) -> None:
        self.end()


def _checked_name(name: str) -> PurePosixPath:
    """A client's file name as a path below the upload's folder, or InvalidInput (400)."""
    try:
        relative = safe_relative(name, what="file name")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, code="InvalidFileName", target="file") from None
    if any(len(part.encode()) > 255 for part in relative.parts) or len(relative.parts) > 32:
        raise InvalidInput(
            "A file name has a part longer than 255 bytes or more than 32 folders.",
            code="InvalidFileName",
            target="file",
        )
    return relative


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"
