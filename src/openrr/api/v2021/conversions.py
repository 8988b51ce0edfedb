"""Routes and wire format of the 2021-01-01 conversion API (reference/arr/stable-2021-01-01/mr-arr.json).

Bodies follow what the real service sent (notes §2.4): keys in the order id, creationTime, settings, output,
error, status; ``error`` always present (null unless Failed); ``output`` only when Succeeded; SAS never
echoed; ``blobPrefix`` ending with ``/`` and the default ``outputAssetFilename`` filled in.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from openrr.api.deps import AuthorizedAccount, check_api_version, runtime
from openrr.api.responses import ArrJSON
from openrr.api.v2021.paging import SkipToken, check_skip_token, page
from openrr.api.v2021.schemas import ErrorDetail, error_responses, iso
from openrr.domain.conversion import Conversion, ConversionInput, ConversionOutput, ConversionStatus
from openrr.domain.ids import check_resource_id

router = APIRouter(
    tags=["conversions (2021-01-01)"],
    dependencies=[Depends(check_api_version)],
)

ApiVersion = Annotated[
    str,
    Query(
        alias="api-version",
        description="2021-01-01 or 2021-01-01-preview",
        json_schema_extra={"enum": ["2021-01-01", "2021-01-01-preview"]},
    ),
]


# ---- request bodies ---------------------------------------------------------------------------------------
class InputSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")
    storageContainerUri: str = Field(
        description="https://ACCOUNT.blob.core.windows.net/CONTAINER, a container of a storage account "
        "linked to this account or configured on the service, or file:///ROOT/ACCOUNT_ID/CONTAINER in a "
        "container root."
    )
    storageContainerReadListSas: str | None = Field(
        default=None, description="Container SAS with read and list rights; never returned."
    )
    blobPrefix: str | None = Field(default=None, description="Only blobs under this prefix are downloaded.")
    relativeInputAssetPath: str = Field(
        description="The model, relative to blobPrefix.", examples=["box.glb"]
    )


class OutputSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")
    storageContainerUri: str
    storageContainerWriteSas: str | None = Field(
        default=None, description="Container SAS with write rights; never returned."
    )
    blobPrefix: str | None = None
    outputAssetFilename: str | None = Field(
        default=None, description="Ends in .arrAsset; default: the input's name with .arrAsset."
    )


class ConversionSettingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inputLocation: InputSettings
    outputLocation: OutputSettings


class CreateConversionSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")
    settings: ConversionSettingsBody


# ---- response bodies (documentation; the routes write them with conversion_body) ------------------------
class InputLocation(BaseModel):
    storageContainerUri: str
    blobPrefix: str | None = None
    relativeInputAssetPath: str


class OutputLocation(BaseModel):
    storageContainerUri: str
    blobPrefix: str | None = None
    outputAssetFilename: str


class Locations(BaseModel):
    inputLocation: InputLocation
    outputLocation: OutputLocation


class ConversionOutputBody(BaseModel):
    outputAssetUri: str


class ConversionProperties(BaseModel):
    id: str
    creationTime: str
    settings: Locations
    output: ConversionOutputBody | None = None
    error: ErrorDetail | None
    status: Literal["NotStarted", "Running", "Cancelled", "Failed", "Succeeded"]


class ConversionList(BaseModel):
    conversions: list[ConversionProperties]
    next_link: str | None = Field(default=None, alias="@nextLink")


def conversion_body(c: Conversion) -> dict[str, Any]:
    inp: dict[str, Any] = {"storageContainerUri": c.input.container_uri}
    if c.input.blob_prefix:
        inp["blobPrefix"] = c.input.blob_prefix
    inp["relativeInputAssetPath"] = c.input.asset_path
    out: dict[str, Any] = {"storageContainerUri": c.output.container_uri}
    if c.output.blob_prefix:
        out["blobPrefix"] = c.output.blob_prefix
    out["outputAssetFilename"] = c.output.asset_filename
    body: dict[str, Any] = {
        "id": c.id,
        "creationTime": iso(c.created_at),
        "settings": {"inputLocation": inp, "outputLocation": out},
    }
    if c.status is ConversionStatus.SUCCEEDED and c.output_uri:
        body["output"] = {"outputAssetUri": c.output_uri}
    # A non-null error makes the SDK's poller raise: only on failures (and Cancelled, which it would
    # otherwise poll forever; openrr never cancels).
    failed = c.status in (ConversionStatus.FAILED, ConversionStatus.CANCELLED)
    body["error"] = (
        {"code": c.error_code or "InternalServerError", "message": c.error_message or ""} if failed else None
    )
    body["status"] = c.status.value
    return body


_DESCRIBED = {
    400: "The request was malformed: a missing field, an unsupported input format, a path that leaves "
    "its prefix, an output name without .arrAsset.",
    403: "The access token was issued for another account; or DelegatedResourceAccessError: the service "
    "cannot use a storage container (no SAS and not linked, a denied SAS, a missing container).",
    404: "No conversion with this id.",
    409: "A conversion with this id exists with other settings.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(_DESCRIBED, *codes)


@router.put(
    "/accounts/{account_id}/conversions/{conversion_id}",
    summary="Create an asset conversion",
    response_class=ArrJSON,
    status_code=201,
    responses={
        200: {"model": ConversionProperties, "description": "The same conversion was created before."},
        201: {"model": ConversionProperties, "description": "Created; the conversion is NotStarted."},
        **_errors(400, 401, 403, 409, 429),
    },
)
async def create_conversion(
    request: Request,
    account: AuthorizedAccount,
    conversion_id: str,
    body: CreateConversionSettings,
    api_version: ApiVersion,
) -> Response:
    check_resource_id(conversion_id, what="conversion")
    inp, out = body.settings.inputLocation, body.settings.outputLocation
    conversion, created = await runtime(request).conversions.create(
        account,
        conversion_id,
        ConversionInput(inp.storageContainerUri, inp.blobPrefix or "", inp.relativeInputAssetPath),
        ConversionOutput(out.storageContainerUri, out.blobPrefix or "", out.outputAssetFilename or ""),
        input_sas=inp.storageContainerReadListSas,
        output_sas=out.storageContainerWriteSas,
    )
    return ArrJSON(conversion_body(conversion), status_code=201 if created else 200)


@router.get(
    "/accounts/{account_id}/conversions/{conversion_id}",
    summary="Get an asset conversion",
    response_class=ArrJSON,
    responses={200: {"model": ConversionProperties}, **_errors(400, 401, 403, 404, 429)},
)
async def get_conversion(
    request: Request, account: AuthorizedAccount, conversion_id: str, api_version: ApiVersion
) -> Response:
    check_resource_id(conversion_id, what="conversion")
    return ArrJSON(conversion_body(await runtime(request).conversions.get(account, conversion_id)))


@router.get(
    "/accounts/{account_id}/conversions",
    summary="List the conversions of an account",
    response_class=ArrJSON,
    responses={200: {"model": ConversionList}, **_errors(400, 401, 403, 429)},
)
async def list_conversions(
    request: Request,
    account: AuthorizedAccount,
    api_version: ApiVersion,
    skip_token: SkipToken = None,
) -> Response:
    check_skip_token(skip_token)
    rt = runtime(request)
    page_size = rt.settings.server.list_page_size
    found = await rt.conversions.list_conversions(account, after_id=skip_token, limit=page_size + 1)
    return ArrJSON(page(request, api_version, "conversions", found, page_size, conversion_body))
