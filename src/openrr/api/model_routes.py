"""``/openrr/accounts/{accountId}/models``: the account's model library (``openrr.services.models``).

Upload (``POST``, ``multipart/form-data``: ``file`` parts, the optional fields ``name`` and ``entry``; see
``openrr.api.model_upload``), list, show (with the conversion's statistics and log), rename (``PATCH``
``{"name"}``) and delete. Authorised like the 2021-01-01 session API (the account's bearer token, its
data-plane throttle) with its error body; no api-version, since these are not ARR operations. An upload is
the one route whose body may exceed ``--max-body-kib``: up to ``--max-upload-mib`` and ``--max-upload-files``,
streamed to disk (``openrr.api.limits`` hands it the body unread).

``GET /openrr/builtinModels`` lists the ``builtin://`` models every session can load (no credential: the
names are the same for everyone), for the dashboard's model picker.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from openrr.api.deps import AuthorizedAccount, runtime
from openrr.api.errors import error_response, status_of
from openrr.api.model_upload import UploadForm, read_upload
from openrr.api.responses import ArrJSON
from openrr.api.v2021.schemas import error_responses, iso
from openrr.errors import OpenRRError
from openrr.protocol.builtin_models import BUILTIN_MODELS
from openrr.services.models import ModelState

MODELS_PATH = "/openrr/accounts/{account_id}/models"
MODEL_PATH = MODELS_PATH + "/{model_id}"
UPLOAD_PATTERN = r"/openrr/accounts/[^/]+/models/?"

router = APIRouter(tags=["model library"])


class ModelError(BaseModel):
    code: str
    message: str


class Model(BaseModel):
    id: str = Field(description="The model's id (32 hex digits).")
    name: str = Field(description="Its name, unique in the account.")
    status: str = Field(description="Queued, Converting, Succeeded or Failed.")
    progress: float = Field(description="The conversion's phase: 0 queued, 0.5 converting, 1 ended.")
    size: int = Field(description="Bytes uploaded.")
    files: int = Field(description="Files uploaded.")
    entry: str = Field(description="The uploaded file that is the model.")
    createdOn: str = Field(description="When it was uploaded (UTC, ISO 8601).")
    conversionId: str = Field(description="Its conversion, in the account's conversions.")
    url: str | None = Field(description="Once Succeeded: the URL a session of this account loads it by.")
    error: ModelError | None = Field(description="Why the conversion failed.")


class ModelDetails(Model):
    statistics: dict[str, Any] | None = Field(
        description="From the conversion's info.json: format, triangles, vertices, points, materials, "
        "textures (null where the converter does not count them), meshes, nodes, bounds {min, max}, "
        "assetBytes; null before the conversion succeeded."
    )
    log: str = Field(description="The end of the conversion's logs (the service's, then the converter's).")


class ModelList(BaseModel):
    models: list[Model]


class Rename(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(description='The new name: 1 to 100 printable characters, without / \\ " < >.')


class BuiltinModel(BaseModel):
    url: str
    description: str


class BuiltinModels(BaseModel):
    models: list[BuiltinModel]


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "The model's files; each file name is its path in the model's folder "
                        "(a .gltf with its buffers and textures keeps its layout).",
                    },
                    "name": {"type": "string", "description": "The model's name (default: the file's)."},
                    "entry": {"type": "string", "description": "Which file is the model, when several are."},
                },
                "required": ["file"],
            }
        }
    },
}
_NOT_FOUND = {404: "No model with this id in the account (ModelNotFound)."}


def _body(state: ModelState) -> dict[str, Any]:
    m = state.model
    error = {"code": state.error_code or "", "message": state.error_message or ""}
    return {
        "id": m.id,
        "name": m.name,
        "status": state.status,
        "progress": state.progress,
        "size": m.size,
        "files": m.files,
        "entry": m.entry,
        "createdOn": iso(m.created_at),
        "conversionId": m.conversion_id,
        "url": state.url,
        "error": error if state.status == "Failed" else None,
    }


@router.post(
    MODELS_PATH,
    summary="Upload a model into the account's library and start its conversion",
    status_code=201,
    response_class=ArrJSON,
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        201: {"model": Model, "description": "Uploaded; its conversion is queued."},
        **error_responses(
            {
                400: "Not a multipart body; a bad file name or field; no model file, or several without an "
                "entry; a bad name.",
                403: "The access token was issued for another account; or QuotaExceeded: the account's "
                "library is full (--max-library-mib, --max-library-models), or it has the most conversions "
                "queued or running it may.",
                409: "The account already has a model of that name (ModelNameTaken).",
                413: "Larger than --max-upload-mib or than what is left of --max-library-mib, or more files "
                "than --max-upload-files.",
                503: "The service has no model root (ModelLibraryUnavailable).",
                507: "The service's disk is full (InsufficientStorage); nothing of the upload was kept.",
            },
            400,
            401,
            403,
            409,
            413,
            429,
            503,
            507,
        ),
    },
)
async def upload_model(request: Request, account: AuthorizedAccount) -> Response:
    library = runtime(request).models
    model_id, folder = await library.begin_upload(account)
    form = UploadForm(folder)
    try:
        await read_upload(request.stream(), request.headers.get("content-type"), form)
    except OpenRRError as exc:
        await library.abort(account, model_id, folder)
        # The rest of an unread body would be taken for the next request: this connection ends here.
        response = error_response(request, status_of(exc), exc.code, exc.message, target=exc.target)
        response.headers["connection"] = "close"
        return response
    except ClientDisconnect:
        await library.abort(account, model_id, folder)
        return Response(status_code=400)  # nobody is left to read it
    except BaseException:
        await library.abort(account, model_id, folder)
        raise
    state = await library.finish_upload(
        account, model_id, folder, form.fields.get("name"), form.fields.get("entry")
    )
    return ArrJSON(_body(state), status_code=201)


@router.get(
    MODELS_PATH,
    summary="List the account's models",
    response_class=ArrJSON,
    responses={200: {"model": ModelList, "description": "Every model, oldest first."}},
)
async def list_models(request: Request, account: AuthorizedAccount) -> Response:
    states = await runtime(request).models.list_models(account)
    return ArrJSON({"models": [_body(s) for s in states]})


@router.get(
    MODEL_PATH,
    summary="Show a model, with its conversion's statistics and log",
    response_class=ArrJSON,
    responses={
        200: {"model": ModelDetails, "description": "The model."},
        **error_responses(_NOT_FOUND, 404),
    },
)
async def get_model(request: Request, account: AuthorizedAccount, model_id: str) -> Response:
    library = runtime(request).models
    state = await library.state(await library.get(account, model_id))
    return ArrJSON(_body(state) | await library.details(state.model))


@router.patch(
    MODEL_PATH,
    summary="Rename a model",
    response_class=ArrJSON,
    responses={
        200: {"model": Model, "description": "Renamed."},
        **error_responses(
            {
                **_NOT_FOUND,
                400: "The name is not valid.",
                409: "The account already has a model of that name (ModelNameTaken).",
            },
            400,
            404,
            409,
        ),
    },
)
async def rename_model(request: Request, account: AuthorizedAccount, model_id: str, body: Rename) -> Response:
    state = await runtime(request).models.rename(account, model_id, body.name)
    return ArrJSON(_body(state))


@router.delete(
    MODEL_PATH,
    summary="Delete a model: its upload and its converted asset",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted."}, **error_responses(_NOT_FOUND, 404)},
)
async def delete_model(request: Request, account: AuthorizedAccount, model_id: str) -> Response:
    await runtime(request).models.delete(account, model_id)
    return Response(status_code=204)


@router.get(
    "/openrr/builtinModels",
    summary="List the builtin:// models every session can load",
    response_class=ArrJSON,
    responses={200: {"model": BuiltinModels, "description": "Their URLs and what each shows."}},
)
async def builtin_models() -> Response:
    models = [{"url": url, "description": text} for url, text in BUILTIN_MODELS.items()]
    return ArrJSON({"models": models}, headers={"Cache-Control": "max-age=300"})
