"""Routes of the v1 conversion API (notes §4.2; shared/reference/arr/v1-draft-2021-03-01-ga).

``POST …/conversions/create`` (linked storage) and ``…/createWithSharedAccessSignature`` (container SAS)
take ``{"input": {storageAccountName, blobContainerName, folderPath?, inputAssetPath[, containerReadListSas]},
"output": {storageAccountName, blobContainerName, folderPath?, outputAssetFilename?[, containerWriteSas]}}``
and answer 202 ``{"conversionId"}`` with ``Location``. The action is matched case-insensitively and the
singular ``/conversion/`` works too, as the documentation's versions disagree; JSON keys are matched
case-insensitively (ASP.NET did), including the examples' ``outputAsssetFileName``.

Storage accounts are named, not addressed: a name linked to the calling account (``openrr accounts
link-storage``) or configured on the service (``--storage-account NAME@ENDPOINT``) uses its endpoint,
``local`` names the calling account's folders in the ``file:`` container roots, any other name is Azure's
``https://NAME.blob.core.windows.net``. States are v1's: Created, Running, Success, Failure (Aborted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from openrr.api.deps import AuthorizedAccount, runtime
from openrr.api.responses import ArrJSON
from openrr.api.v1.containers import container_names, container_uri
from openrr.api.v1.wire import parse_body
from openrr.domain.conversion import Conversion, ConversionInput, ConversionOutput, ConversionStatus
from openrr.domain.ids import check_resource_id, new_uuid
from openrr.errors import InvalidInput
from openrr.storage import BadBlobName, LinkedAccount, StorageAccess

router = APIRouter(prefix="/v1/accounts/{account_id}", tags=["conversions (v1)"])

V1_STATUS = {
    ConversionStatus.NOT_STARTED: "Created",
    ConversionStatus.RUNNING: "Running",
    ConversionStatus.SUCCEEDED: "Success",
    ConversionStatus.FAILED: "Failure",
    ConversionStatus.CANCELLED: "Aborted",
}
_LINKED, _SAS = "create", "createwithsharedaccesssignature"

_STRING = {"type": "string"}
_LOCATION = {"storageAccountName": _STRING, "blobContainerName": _STRING, "folderPath": _STRING}


def _body_doc(sas: bool) -> dict[str, Any]:
    inp: dict[str, Any] = {**_LOCATION, "inputAssetPath": {"type": "string", "example": "box.glb"}}
    out: dict[str, Any] = {**_LOCATION, "outputAssetFilename": {"type": "string", "example": "box.arrAsset"}}
    in_required = ["storageAccountName", "blobContainerName", "inputAssetPath"]
    out_required = ["storageAccountName", "blobContainerName"]
    if sas:
        inp["containerReadListSas"] = _STRING
        out["containerWriteSas"] = _STRING
        in_required.append("containerReadListSas")
        out_required.append("containerWriteSas")
    schema = {
        "type": "object",
        "properties": {
            "input": {"type": "object", "properties": inp, "required": in_required},
            "output": {"type": "object", "properties": out, "required": out_required},
        },
        "required": ["input", "output"],
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _section(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise InvalidInput(f"The {key} field is required and must be an object.", target=key)
    return {str(k).lower(): v for k, v in value.items()}


def _text(section: dict[str, Any], where: str, key: str, *, required: bool = True) -> str:
    value = section.get(key.lower())
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(
            f"The {where}.{key} field is required and must be a string.", target=f"{where}.{key}"
        )
    return value


def _container(
    access: StorageAccess,
    owner: str,
    linked: Sequence[LinkedAccount],
    section: dict[str, Any],
    where: str,
) -> str:
    account = _text(section, where, "storageAccountName")
    container = _text(section, where, "blobContainerName")
    try:
        return container_uri(access, owner, linked, account, container)
    except BadBlobName as exc:
        raise InvalidInput(exc.message, target=f"{where}.blobContainerName") from None


def _folder(section: dict[str, Any], where: str) -> str:
    # The v1 documentation writes folders with and without slashes ("/geometry/sphere/", "geometry/sphere").
    return _text(section, where, "folderPath", required=False).strip("/")


async def _create(request: Request, account: str, action: str) -> Response:
    kind = action.lower()
    if kind not in (_LINKED, _SAS):
        # Any other POST under /conversions/ names a conversion, which only GET reads.
        raise HTTPException(405, headers={"Allow": "GET"})
    body = parse_body(await request.body())
    inp, out = _section(body, "input"), _section(body, "output")
    rt = runtime(request)
    access = rt.conversions.access
    filename = _text(out, "output", "outputAssetFilename", required=False) or _text(
        out,
        "output",
        "outputAsssetFileName",
        required=False,  # sic: the v1 examples' spelling
    )
    sas = kind == _SAS
    conversion_id = new_uuid()
    linked = await rt.conversions.linked_storage(account)
    await rt.conversions.create(
        account,
        conversion_id,
        ConversionInput(
            _container(access, account, linked, inp, "input"),
            _folder(inp, "input"),
            _text(inp, "input", "inputAssetPath"),
        ),
        ConversionOutput(
            _container(access, account, linked, out, "output"), _folder(out, "output"), filename
        ),
        input_sas=_text(inp, "input", "containerReadListSas") if sas else None,
        output_sas=_text(out, "output", "containerWriteSas") if sas else None,
    )
    return ArrJSON(
        {"conversionId": conversion_id},
        status_code=202,
        headers={"Location": f"/v1/accounts/{account}/conversions/{conversion_id}"},
    )


def conversion_body_v1(
    c: Conversion, access: StorageAccess, linked: Sequence[LinkedAccount]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "conversionId": c.id,
        "status": V1_STATUS[c.status],
        "error": c.error_message
        if c.status in (ConversionStatus.FAILED, ConversionStatus.CANCELLED)
        else None,
    }
    if c.status is ConversionStatus.SUCCEEDED:
        account, container = container_names(access, c.output.container_uri, linked)
        body["convertedAsset"] = {
            "storageAccountName": account,
            "blobContainerName": container,
            "assetFilePath": c.output.blob_prefix + c.output.asset_filename,
        }
    return body


_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted: {conversionId}, with Location."}
}


@router.post(
    "/conversions/create",
    status_code=202,
    response_class=ArrJSON,
    openapi_extra=_body_doc(sas=False),
    responses=_ACCEPTED,
    summary="Start a conversion (linked storage)",
)
async def create_linked(request: Request, account: AuthorizedAccount) -> Response:
    return await _create(request, account, _LINKED)


@router.post(
    "/conversions/createWithSharedAccessSignature",
    status_code=202,
    response_class=ArrJSON,
    openapi_extra=_body_doc(sas=True),
    responses=_ACCEPTED,
    summary="Start a conversion (container SAS)",
)
async def create_with_sas(request: Request, account: AuthorizedAccount) -> Response:
    return await _create(request, account, _SAS)


# The spellings the documentation and scripts used besides those two: any letter case, "/conversion/"
# (one version of the documentation) and a trailing "/".
for _collection in ("conversions", "conversion"):
    for _slash in ("", "/"):

        @router.post(f"/{_collection}/{{action}}{_slash}", status_code=202, include_in_schema=False)
        async def create_alias(request: Request, account: AuthorizedAccount, action: str) -> Response:
            return await _create(request, account, action)


_PROBLEM = {"application/json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}


@router.get(
    "/conversions/{conversion_id}",
    response_class=ArrJSON,
    summary="Get a conversion",
    responses={404: {"description": "No conversion with this id.", "content": _PROBLEM}},
)
async def get_conversion(request: Request, account: AuthorizedAccount, conversion_id: str) -> Response:
    check_resource_id(conversion_id, what="conversion")
    service = runtime(request).conversions
    conversion = await service.get(account, conversion_id)
    linked = await service.linked_storage(account)
    return ArrJSON(conversion_body_v1(conversion, service.access, linked))


async def _list(request: Request, account: str) -> Response:
    service = runtime(request).conversions
    found = await service.list_conversions(account, limit=10_000)
    linked = await service.linked_storage(account)
    return ArrJSON({"conversions": [conversion_body_v1(c, service.access, linked) for c in found]})


@router.get("/conversions", response_class=ArrJSON, summary="List conversions")
async def list_conversions(request: Request, account: AuthorizedAccount) -> Response:
    return await _list(request, account)


@router.get("/conversions/", response_class=ArrJSON, include_in_schema=False)
async def list_conversions_slash(request: Request, account: AuthorizedAccount) -> Response:
    return await _list(request, account)
