"""The rules a conversion's settings follow, shared by both API versions: checked when a conversion is
created, so that a client gets ARR's synchronous 400 rather than a conversion that fails later.

Apart from the service because they are pure checks of one request (no store, no storage opened): input and
output locations normalised (``blobPrefix`` ending with "/", the default output name), paths that stay
inside their prefix, container URIs without a query, SAS that are query strings.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

from openrr.domain.conversion import ASSET_SUFFIX, ConversionInput, ConversionOutput
from openrr.errors import InvalidInput
from openrr.storage import BadBlobName, safe_relative
from openrr.storage.base import is_clean_text

# ARR's input formats and openrr's own (OBJ, STEP, IFC, OpenUSD). Anything else is refused at once. The
# converter's own list is openrr.assets.readers, which the control plane does not import (numpy, trimesh,
# the format libraries); a test keeps them equal.
SUPPORTED_EXTENSIONS = (
    ".fbx",
    ".gltf",
    ".glb",
    ".obj",
    ".ply",
    ".xyz",
    ".e57",
    ".las",
    ".laz",
    ".step",
    ".stp",
    ".ifc",
    ".usd",
    ".usda",
    ".usdc",
    ".usdz",
)

_MAX_TEXT = 2048  # URIs and SAS; Azure's blob names are at most 1024 characters


def normalise_prefix(prefix: str | None, *, where: str) -> str:
    """ "" for none; else a safe relative folder ending with "/" (ARR normalised "Input" to "Input/")."""
    if not prefix:
        return ""
    try:
        safe_relative(prefix.rstrip("/") if prefix.endswith("/") else prefix, what="blob prefix")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, target=f"{where}.blobPrefix") from None
    return prefix if prefix.endswith("/") else prefix + "/"


def check_sas(sas: str | None, target: str) -> None:
    """InvalidInput unless ``sas`` is None or looks like a URL query string (it is never shown or logged)."""
    if sas is not None and (len(sas) > _MAX_TEXT or not is_clean_text(sas) or " " in sas.strip()):
        raise InvalidInput("The shared access signature must be a URL query string.", target=target)


def _check_container_uri(uri: str, where: str) -> None:
    target = f"{where}.storageContainerUri"
    if len(uri) > _MAX_TEXT or not is_clean_text(uri):
        raise InvalidInput(
            "The storage container URI is too long or contains control characters.", target=target
        )
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise InvalidInput("The storage container URI is not a URI.", target=target) from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not parts.path.startswith("/"):
            raise InvalidInput("A file: container URI must be file:///ABSOLUTE/PATH.", target=target)
    elif scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") == "":
        raise InvalidInput(
            "The storage container URI must be https://ACCOUNT.blob.core.windows.net/CONTAINER (or file:).",
            target=target,
        )
    if parts.query or parts.fragment:
        raise InvalidInput(
            "The storage container URI must not have a query: pass a shared access signature in its own "
            "field.",
            target=target,
        )


def normalise_input(inp: ConversionInput) -> ConversionInput:
    where = "settings.inputLocation"
    _check_container_uri(inp.container_uri, where)
    prefix = normalise_prefix(inp.blob_prefix, where=where)
    try:
        relative = safe_relative(inp.asset_path, what="relativeInputAssetPath")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, target=f"{where}.relativeInputAssetPath") from None
    if relative.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidInput(
            "Invalid input provided: the input asset has an unsupported file format; allowed types are: "
            + ",".join(SUPPORTED_EXTENSIONS)
            + ".",
            target=f"{where}.relativeInputAssetPath",
        )
    return ConversionInput(inp.container_uri, prefix, inp.asset_path)


def normalise_output(out: ConversionOutput, inp: ConversionInput) -> ConversionOutput:
    """The output with its prefix normalised and the default file name (the input's stem + .arrAsset)."""
    where = "settings.outputLocation"
    container_uri, prefix, filename = out.container_uri, out.blob_prefix, out.asset_filename
    _check_container_uri(container_uri, where)
    prefix = normalise_prefix(prefix, where=where)
    if not filename:
        filename = PurePosixPath(inp.asset_path).stem + ASSET_SUFFIX
    try:
        name = safe_relative(filename, what="outputAssetFilename")
    except BadBlobName as exc:
        raise InvalidInput(exc.message, target=f"{where}.outputAssetFilename") from None
    if len(name.parts) != 1 or not filename.endswith(ASSET_SUFFIX) or filename == ASSET_SUFFIX:
        raise InvalidInput(
            "The outputAssetFilename must be a file name (without '/') that ends in '.arrAsset'.",
            target=f"{where}.outputAssetFilename",
        )
    return ConversionOutput(container_uri, prefix, filename)
