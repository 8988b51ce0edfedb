"""Cross-origin access for pages that embed the browser client (``ui/js/openrr.js``) from other origins.

Off unless ``--cors-origin`` lists origins. Then only the routes a page needs to drive a session answer
CORS, and only for the listed origins: the 2021-01-01 session routes, ``connectToken`` and the offer relay.
Never a wildcard and never credentials (cookies): a page sends the account's token in the Authorization
header, which the preflight must allow by name. The STS, conversions and everything else stay same-origin,
so an account key never needs to be in another origin's page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

# /accounts/{id}/sessions[/{sid}[/:stop]] and /openrr/accounts/{id}/sessions/{sid}/(connectToken|offer)
SESSION_ROUTES = re.compile(
    r"^/(accounts/[^/]+/sessions(/[^/]+(/:stop)?)?|openrr/accounts/[^/]+/sessions/[^/]+/(connectToken|offer))$"
)
MAX_AGE_S = 600  # how long a browser may reuse a preflight's answer


class SessionCors:
    """CORS for ``SESSION_ROUTES`` and ``origins``; every other request passes through untouched."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["GET", "PUT", "PATCH", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
            allow_credentials=False,
            expose_headers=["Retry-After", "MS-CV"],
            max_age=MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and SESSION_ROUTES.match(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
