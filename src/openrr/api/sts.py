"""The Secure Token Service: ``Bearer {accountId}:{accountKey}`` in, a 24-hour access token out (notes §3)."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from openrr.api.deps import bearer, runtime
from openrr.api.responses import STS_API_VERSIONS, ArrJSON
from openrr.domain.ids import parse_account_id
from openrr.errors import AuthenticationFailed, InvalidInput, Throttled

router = APIRouter(tags=["sts"])


class TokenResponse(BaseModel):
    AccessToken: str = Field(description="JWT for the data plane and the render servers; valid 24 hours.")


async def _token(request: Request, account_id: str, api_version: str | None) -> Response:
    rt = runtime(request)
    account = parse_account_id(account_id)
    if api_version is not None and api_version not in STS_API_VERSIONS:
        raise InvalidInput(
            f"The api-version '{api_version}' is not supported by the token service; "
            f"supported: {', '.join(STS_API_VERSIONS)}.",
            code="UnsupportedApiVersion",
        )
    # Wrong keys are throttled where they come from, before any check; the account's own bucket counts only
    # requests with its right key, so a flood of wrong ones from elsewhere cannot lock its owner out.
    address = request.client.host if request.client else "unknown"
    rt.sts_failures.check(address)
    header_account, sep, key = bearer(request).partition(":")
    if not sep or header_account.lower() != account or not await rt.accounts.verify_key(account, key):
        with contextlib.suppress(Throttled):
            rt.sts_failures.take(address)
        raise AuthenticationFailed("Invalid account id or key.")
    rt.sts_throttle.take(account)
    token, _expires = rt.tokens.issue_account_token(account)
    return ArrJSON({"AccessToken": token})  # ArrHeaders adds Cache-Control: no-store,no-cache


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": TokenResponse, "description": "A 24-hour access token."},
    401: {"description": "Wrong account id or key (empty body)."},
    429: {
        "description": "Too many token requests for this account, or too many failed ones from this client "
        "address; see Retry-After."
    },
}

ApiVersion = Annotated[str | None, Query(alias="api-version")]


@router.get("/accounts/{account_id}/token", response_class=ArrJSON, responses=_RESPONSES, summary="Get token")
async def get_token(request: Request, account_id: str, api_version: ApiVersion = None) -> Response:
    return await _token(request, account_id, api_version)


@router.get(
    "/Accounts/{account_id}/token", response_class=ArrJSON, responses=_RESPONSES, include_in_schema=False
)
async def get_token_capital(request: Request, account_id: str, api_version: ApiVersion = None) -> Response:
    # The SDK spells the path with a capital A; scripts and docs with a lower-case one.
    return await _token(request, account_id, api_version)
