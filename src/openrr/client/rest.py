"""A small synchronous client of the STS and the 2021-01-01 session API (used by the CLI and benchmarks).

Errors come back as ``ApiError`` with the status and the ARR error code and message; 429 is retried after
its Retry-After, up to ``max_throttle_wait`` seconds in all.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx

API_VERSION = "2021-01-01"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ArrClient:
    def __init__(
        self,
        endpoint: str,
        account_id: str,
        account_key: str,
        *,
        sts_endpoint: str | None = None,
        verify: str | bool = True,
        timeout: float = 30.0,
        max_throttle_wait: float = 60.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.sts_endpoint = (sts_endpoint or endpoint).rstrip("/")
        self.account_id = account_id
        self._key = account_key
        # A CA bundle path becomes a context: httpx deprecated verify=<path>.
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.Client(verify=context, timeout=timeout)
        self._token: str | None = None
        self._max_throttle_wait = max_throttle_wait

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ArrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            resp = self._send(
                "GET",
                f"{self.sts_endpoint}/accounts/{self.account_id}/token",
                headers={"Authorization": f"Bearer {self.account_id}:{self._key}"},
            )
            self._token = resp.json()["AccessToken"]
        return self._token

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        waited = 0.0
        while True:
            try:
                resp = self._http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                raise ApiError(0, "ConnectionFailed", f"{url}: {exc}") from None
            if resp.status_code == 429 and waited < self._max_throttle_wait:
                delay = float(resp.headers.get("Retry-After", "1"))
                time.sleep(delay)
                waited += delay
                continue
            if resp.status_code >= 400:
                raise _api_error(resp)
            return resp

    def _call(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        url = f"{self.endpoint}/accounts/{self.account_id}{path}"
        return self._send(
            method,
            url,
            params=params or {"api-version": API_VERSION},
            json=json,
            headers={"Authorization": f"Bearer {self.token()}"},
        )

    # ---- sessions ---------------------------------------------------------------------------------------
    def connect_token(self, session_id: str) -> str:
        """A connect token for the session's render server: the only credential render servers accept."""
        url = f"{self.endpoint}/openrr/accounts/{self.account_id}/sessions/{session_id}/connectToken"
        resp = self._send("POST", url, headers={"Authorization": f"Bearer {self.token()}"})
        return str(resp.json()["token"])

    def create_session(self, session_id: str, size: str, lease_minutes: int) -> tuple[dict[str, Any], bool]:
        resp = self._call(
            "PUT", f"/sessions/{session_id}", {"maxLeaseTimeMinutes": lease_minutes, "size": size}
        )
        return resp.json(), resp.status_code == 201

    def get_session(self, session_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/sessions/{session_id}").json())

    def update_session(self, session_id: str, lease_minutes: int) -> dict[str, Any]:
        return dict(
            self._call("PATCH", f"/sessions/{session_id}", {"maxLeaseTimeMinutes": lease_minutes}).json()
        )

    def stop_session(self, session_id: str) -> None:
        self._call("POST", f"/sessions/{session_id}/:stop")

    def list_sessions(self) -> Iterator[dict[str, Any]]:
        return self._pages("/sessions", "sessions")

    def _pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged list. Only the query of ``@nextLink`` is followed, on this client's own
        endpoint: a link that names another host (a proxy's inner name, or a hostile server's pick) never
        receives the bearer token."""
        page = self._call("GET", path).json()
        while True:
            yield from page[key]
            link = page.get("@nextLink")
            if not link:
                return
            params = dict(httpx.URL(str(link)).params)
            params["api-version"] = API_VERSION
            page = self._call("GET", path, params=params).json()


def _api_error(resp: httpx.Response) -> ApiError:
    code, message = "Error", resp.reason_phrase or f"HTTP {resp.status_code}"
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code", code))
        message = str(body["error"].get("message", message))
    elif resp.status_code == 401:
        code, message = "Unauthorized", "The account id or key was not accepted."
    return ApiError(resp.status_code, code, message)
