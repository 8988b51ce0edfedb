"""Files and directories that only the service's own user may read: the data directory (0700), the SQLite
store with its ``-wal``/``-shm`` files and ``arrconfig.json`` (0600). Each is created with its mode (``mkdir``
and ``os.open`` with a mode: no moment when another user could open it); one found looser, from an older
openrr or made by hand, is tightened with a warning."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter, its parents created as usual."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=DIR_MODE)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist; tighten it if it does."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data`` in a file that is 0600 from its creation."""
    _replace(path, data, FILE_MODE)


def write_public(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data`` that anyone may read (a certificate)."""
    _replace(path, data, 0o644)


def _replace(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def private_sqlite(database: str) -> None:
    """The SQLite file ``database`` (and its -wal and -shm files, which SQLite creates with the database
    file's mode) readable by its owner only."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite itself reports that it cannot open the file, as it always did
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            _tighten(side, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        tightened = (current & 0o700) | (mode & 0o700)
        log.warning("%s was open to other users (mode %o): now %o", path, current, tightened)
        path.chmod(tightened)
