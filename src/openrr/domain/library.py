"""The model library: one account's uploaded models, what the store keeps of each, and the rules for names.

A library model is an upload (one model file, or a .gltf with its buffers and textures) kept in the
account's own model folder, and the conversion that turns it into an ``.arrAsset`` there. Its status and
statistics are the conversion's (``openrr.services.models`` reads them); the store keeps what cannot be
derived from files without guessing: the name people gave it, which file is the model, the upload's size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from openrr.errors import InvalidInput

# The library's folder in each account's folder of the first model root: MODEL_ROOT/<accountId>/library/<id>/
# holds a model's upload (``source/``) and its conversion's outputs (``asset/``).
LIBRARY_FOLDER = "library"
MAX_NAME = 100
# Printable text without path separators or quotes: a name shows in lists, on a command line and in the
# dashboard, and is never part of a path (the model's folder is named by its id).
_NAME = re.compile(r"[^\x00-\x1f\x7f/\\\"<>]{1,100}")
_NOT_IN_NAME = re.compile(r"[\x00-\x1f\x7f/\\\"<>]+")


@dataclasses.dataclass(frozen=True)
class LibraryModel:
    account_id: str
    id: str  # 32 hex digits: the model's folder, and (prefixed) its conversion's id
    name: str  # unique within the account
    entry: str  # the model file, relative to the upload's folder ("scene.gltf", "car/car.gltf")
    files: int  # files uploaded
    size: int  # bytes uploaded
    conversion_id: str
    created_at: dt.datetime
    # The conversion's end, once the library has seen it (conversions are purged; library models stay).
    status: str | None = None  # "Succeeded" or "Failed"; None while converting
    error_code: str | None = None
    error_message: str | None = None


def check_model_name(name: str) -> str:
    """``name`` without surrounding spaces, if it is 1 to 100 printable characters without ``/ \\ " < >``."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f'A model name is 1 to {MAX_NAME} printable characters, without / \\ " < > or control '
            "characters.",
            code="InvalidModelName",
            target="name",
        )
    return name


def name_from_file(entry: str) -> str:
    """The default name of a model uploaded as ``entry``: the file's name without its folder or extension,
    with what a name may not hold (``" < >``, control characters) replaced by ``_``: it passes
    ``check_model_name`` whatever the file was called."""
    stem = entry.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return _NOT_IN_NAME.sub("_", stem)[:MAX_NAME].strip() or "model"
