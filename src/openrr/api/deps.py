"""Request dependencies: the runtime, bearer-token authorisation with throttling, and api-version checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from openrr.api.responses import SUPPORTED_API_VERSIONS
from openrr.domain.ids import parse_account_id
from openrr.errors import AuthenticationFailed, Forbidden, InvalidInput
from openrr.services.runtime import Runtime
from openrr.services.tokens import ACCOUNT_AUDIENCE


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.scope["app"].state.runtime  # request.app, one call less on every request
    return rt


def bearer(request: Request) -> str:
    # ``request.headers.get("authorization", "")`` without building the Headers object: the first field of
    # that (ASGI: lower-case) name, as Latin-1.
    header = ""
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("The request has no bearer token in its Authorization header.")
    return token.strip()


async def authorize(request: Request, account_id: str) -> str:
    """Check the access token against the account in the path and take a throttle token; returns the id."""
    rt = runtime(request)
    account = parse_account_id(account_id)
    claims = await rt.verify(bearer(request), audience=ACCOUNT_AUDIENCE)
    if claims.get("sub") != account:
        raise Forbidden("The access token was issued for another account.")
    await rt.accounts.check_not_revoked(account, claims)
    rt.throttle.take(account)
    return account


async def check_api_version(request: Request) -> str:
    return supported_api_version(request.query_params.get("api-version"))


def supported_api_version(version: str | None) -> str:
    """The ``api-version`` query parameter's value, if it is one of ``SUPPORTED_API_VERSIONS``."""
    if version is None:
        raise InvalidInput(
            "The api-version query parameter is required; supported versions: "
            + ", ".join(SUPPORTED_API_VERSIONS)
            + ".",
            code="MissingApiVersionParameter",
            target="api-version",
        )
    if version not in SUPPORTED_API_VERSIONS:
        raise InvalidInput(
            f"The api-version '{version}' is not supported; supported versions: "
            + ", ".join(SUPPORTED_API_VERSIONS)
            + ".",
            code="UnsupportedApiVersion",
            target="api-version",
        )
    return version


async def _authorized_account(request: Request, account_id: str) -> str:
    return await authorize(request, account_id)


# Dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` ones in a worker thread, which costs
# more than their work.
# A route parameter that is the path's account id, once the bearer token has been checked against it.
# As a dependency it runs before the body is parsed: an unauthenticated caller learns nothing about bodies.
AuthorizedAccount = Annotated[str, Depends(_authorized_account)]
