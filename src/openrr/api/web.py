"""The browser pages (``/ui/``) and the offer relay they connect through (an openrr extension).

Pages: ``openrr/web/static`` is served at ``/ui/`` (``/`` redirects there), with a content security policy
that lets a page talk to this control plane only. Nothing is fetched from the internet.

The relay: ``POST /openrr/accounts/{accountId}/sessions/{sessionId}/offer``. A page served over HTTPS cannot
call a render server's plain-HTTP handshake port itself (mixed content, private network access), so the
control plane forwards the WebRTC offer (``openrr.protocol.handshake``) for it:

* authorised like the 2021-01-01 session API: a bearer access token of the account in the path, and a
  token from the account's data-plane throttle (no ``api-version``: this is not an ARR operation);
* the body must be an offer, ``{"type": "offer", "sdp": "...", "video": {...}?}`` (400 ``BadRequest``
  otherwise, 413 ``PayloadTooLarge`` past ``--max-offer-kib``); it is forwarded as it came, so the render
  server decides the limits of ``video``;
* the session must exist (404 ``SessionNotFound``) and be Ready (409 ``SessionNotReady``, with its status);
* the body goes to ``http://{hostname}:{handshakePort}/offer`` with a connect token of the session (never the
  caller's account token: render servers accept only their own session's connect tokens), and
  the render server's status and JSON body come back as they are: 200 with the answer, or its errors
  (``{"error": {"code", "message"}}``: 400, 401, 403, 409 ``ClientAlreadyConnected``, 503 ``NotReady`` /
  ``Stopping``);
* a render server that cannot be reached gives 502 ``RenderServerUnreachable``; one that does not answer
  within 15 s, 504 ``RenderServerTimeout``; one whose answer is not JSON, 502 ``RenderServerBadAnswer``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import ssl
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from openrr.api.deps import AuthorizedAccount, runtime
from openrr.api.errors import error_response
from openrr.api.responses import ArrJSON
from openrr.api.v2021.schemas import error_responses
from openrr.config.render_servers import RenderServerSettings
from openrr.domain.ids import check_resource_id
from openrr.errors import InvalidInput
from openrr.protocol.handshake import OFFER_PATH
from openrr.web import STATIC_DIR

log = logging.getLogger(__name__)

UI_PREFIX = "/ui"
RELAY_PATH = "/openrr/accounts/{account_id}/sessions/{session_id}/offer"
RELAY_TIMEOUT_S = 15.0
# The relay's body limit (--max-offer-kib, 512 KiB by default: the render server takes SDPs up to 256 KiB)
# applies to the paths this pattern matches.
RELAY_PATTERN = r"/openrr/accounts/[^/]+/sessions/[^/]+/offer"

# Everything a page loads or calls is on this origin; WebRTC media is not subject to connect-src.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate (ETag), so an upgrade's pages and modules arrive together
}

router = APIRouter(tags=["openrr"])

_VIDEO_TYPES: dict[str, tuple[type, ...]] = {
    "width": (int,),
    "height": (int,),
    "fps": (int,),
    "bitrate": (int,),
    "codec": (str,),
}
_OFFER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "sdp"],
    "properties": {
        "type": {"type": "string", "enum": ["offer"]},
        "sdp": {"type": "string", "minLength": 1, "description": "The complete offer (ICE gathered)."},
        "video": {
            "type": ["object", "null"],
            "description": "Optional video settings; the render server checks their limits.",
            "properties": {
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "fps": {"type": "integer"},
                "bitrate": {"type": "integer", "description": "bit/s"},
                "codec": {"type": "string", "enum": ["h264", "vp8"]},
            },
        },
    },
}
_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["answer"]},
        "sdp": {"type": "string"},
        "video": {"type": "object", "description": "The video settings in effect."},
    },
}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The render server's answer.",
        "content": {"application/json": {"schema": _ANSWER_SCHEMA}},
    },
    **error_responses(
        {
            400: "The body is not an offer, or the render server refused it.",
            404: "No session with this id.",
            409: "The session is not Ready (SessionNotReady), or another client is connected to it "
            "(ClientAlreadyConnected).",
            413: "The body is larger than the relay's limit (--max-offer-kib, 512 KiB by default).",
            502: "The render server could not be reached, or gave an answer that is not JSON.",
            503: "The render server is not ready yet or is stopping.",
            504: "The render server did not answer in time.",
        },
        *(400, 401, 403, 404, 409, 413, 429, 502, 503, 504),
    ),
}


def render_url(render: RenderServerSettings, hostname: str, port: int) -> str:
    """Where a render server's port is: https with --render-tls-cert, plain http otherwise."""
    return f"{render.scheme}://{url_host(hostname)}:{port}"


@functools.lru_cache(maxsize=4)
def render_trust_context(ca_file: str) -> ssl.SSLContext:
    """The client context the relay checks render servers' certificates with (loaded once)."""
    return ssl.create_default_context(cafile=ca_file)


def url_host(host: str) -> str:
    """A hostname as it goes into a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_offer(raw: bytes) -> None:
    """Raise InvalidInput unless ``raw`` is a JSON offer of the shape ``protocol.handshake`` describes."""
    try:
        body = json.loads(raw)
    # ValueError: malformed or not UTF-8, or an integer longer than int() converts; RecursionError: too deep.
    except (ValueError, RecursionError):
        raise InvalidInput("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object: an offer.")
    if body.get("type") != "offer":
        raise InvalidInput('The body\'s type must be "offer".', target="type")
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise InvalidInput("The body's sdp must be a non-empty string.", target="sdp")
    video = body.get("video")
    if video is None:
        return
    if not isinstance(video, dict):
        raise InvalidInput("The body's video must be an object.", target="video")
    for key, types in _VIDEO_TYPES.items():
        value = video.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            kind = "a string" if types == (str,) else "an integer" if types == (int,) else "a number"
            raise InvalidInput(f"video.{key} must be {kind}.", target=f"video.{key}")


@router.post(
    RELAY_PATH,
    summary="Relay a WebRTC offer to the session's render server",
    description=(
        "An openrr extension for clients that cannot reach a render server's handshake port themselves "
        "(browser pages served over HTTPS). The body is the offer of `protocol.handshake`; it is forwarded "
        "unchanged with a connect token of the session, and the render server's status and JSON body are "
        "returned unchanged. Needs no api-version."
    ),
    response_class=ArrJSON,
    responses=_RESPONSES,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _OFFER_SCHEMA}}}
    },
)
async def relay_offer(request: Request, account: AuthorizedAccount, session_id: str) -> Response:
    raw = await request.body()  # bounded by --max-offer-kib before the route runs (openrr.api.limits)
    check_offer(raw)
    check_resource_id(session_id)
    # The render server takes only a connect token of its own session, never the caller's account token.
    session, token, _expires = await runtime(request).sessions.connect_token(account, session_id)
    endpoint = session.endpoint
    assert endpoint is not None  # a Ready session has one
    render = runtime(request).settings.render
    url = render_url(render, endpoint.hostname, endpoint.handshake_port) + OFFER_PATH
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    trust = render.trust
    verify: ssl.SSLContext | bool = render_trust_context(str(trust)) if trust is not None else True
    # trust_env=False: a proxy from the environment must not see the token or misroute loopback traffic.
    async with httpx.AsyncClient(
        timeout=RELAY_TIMEOUT_S, trust_env=False, follow_redirects=False, verify=verify
    ) as http:
        try:
            answer = await http.post(url, content=raw, headers=headers)
        except (httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            log.warning("offer relay: %s is unreachable: %r", url, exc)
            return error_response(
                request,
                502,
                "RenderServerUnreachable",
                f"The render server of session '{session_id}' could not be reached.",
            )
        except httpx.TimeoutException:
            return error_response(
                request,
                504,
                "RenderServerTimeout",
                f"The render server of session '{session_id}' did not answer within {RELAY_TIMEOUT_S:g} s.",
            )
        except httpx.HTTPError as exc:
            log.warning("offer relay: %s failed: %r", url, exc)
            return error_response(
                request,
                502,
                "RenderServerUnreachable",
                f"The render server of session '{session_id}' could not be reached.",
            )
    try:
        json.loads(answer.content)
    except (ValueError, RecursionError):
        return error_response(
            request,
            502,
            "RenderServerBadAnswer",
            f"The render server answered {answer.status_code} without a JSON body.",
        )
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type="application/json; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


EXAMPLES_DIR = STATIC_DIR / "examples"
_INLINE_SCRIPT = re.compile(r"<script[^>]*>(.*?)</script>", re.DOTALL)


@functools.lru_cache(maxsize=16)
def example_policy(path: Path, _mtime_ns: int) -> str:
    """The pages' policy, plus the hashes of the inline scripts of the example page ``path``: an example
    is one file to copy, so its script is inline, and only that exact script may run."""
    digests = (
        hashlib.sha256(script.encode("utf-8")).digest()
        for script in _INLINE_SCRIPT.findall(path.read_text(encoding="utf-8"))
    )
    allowed = " ".join(f"'sha256-{base64.b64encode(d).decode('ascii')}'" for d in digests)
    policy = _PAGE_HEADERS["Content-Security-Policy"]
    return policy.replace("script-src 'self'", f"script-src 'self' {allowed}".rstrip(), 1)


# The browser client any page may import (a module script is fetched in CORS mode): it holds no secret, so
# every origin may read it. What it calls is opened to other origins by --cors-origin only (api.cors).
EMBEDDABLE = frozenset({STATIC_DIR / "js" / "openrr.js"})


class _Pages(StaticFiles):
    """Static files with the pages' security headers."""

    def file_response(self, full_path: Any, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(full_path, *args, **kwargs)
        response.headers.update(_PAGE_HEADERS)
        path = Path(full_path)
        if path.parent == EXAMPLES_DIR and path.suffix == ".html":
            policy = example_policy(path, path.stat().st_mtime_ns)
            response.headers["Content-Security-Policy"] = policy
        if path in EMBEDDABLE:
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return response


def install(app: FastAPI) -> None:
    """Add the offer relay, the pages at ``/ui/`` and the redirect from ``/``."""
    app.include_router(router)
    app.mount(UI_PREFIX, _Pages(directory=STATIC_DIR, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        # Relative, so that it also works behind a proxy that serves openrr under a path prefix.
        return RedirectResponse("ui/", status_code=307)
