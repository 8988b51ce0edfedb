"""The model loader's HTTP client: it connects only to the addresses the source policy checked.

The policy (``openrr.model.sources``) resolves a URL's host and checks every address; a client that then
connects by name resolves it again, and a DNS server that answers a public address to the check and
``127.0.0.1`` to the connection (DNS rebinding) would get the loader into the server's own network. So
here the name is never resolved again:

- a request hook calls the guard before every request (the model, each redirect, each buffer and image a
  .gltf references); the guard returns a ``CheckedURL`` naming the addresses that passed, which are pinned
  for that host and port;
- the connection pool's network backend connects to the pinned addresses only, in order, and refuses a
  host nothing was pinned for. TLS still goes to the name: httpcore sends the URL's host as SNI and checks
  the certificate against it, and the Host header is the URL's, so virtual hosts and HTTPS work as before;
- proxies from the environment (``HTTP_PROXY``, ``ALL_PROXY``…) are ignored (``trust_env=False``): a proxy
  would make its own connection, by name, to wherever the check did not look. ``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR`` are still honoured: they only add trust anchors the operator chose.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable

import httpcore
import httpx

from openrr.model.sources import CheckedURL, IPAddress, SourceRefused, system_resolver


class UncheckedHost(httpcore.ConnectError):
    """A connection to a host:port no guard has checked (httpx reports it as a ConnectError)."""


class Pins:
    """``(host, port)`` → the addresses last checked for it; filled by the request hook, read by the backend
    (possibly on another thread: the lock keeps each read whole)."""

    def __init__(self) -> None:
        self._pins: dict[tuple[str, int], tuple[IPAddress, ...]] = {}
        self._lock = threading.Lock()

    def pin(self, host: str, port: int, addresses: tuple[IPAddress, ...]) -> None:
        with self._lock:
            self._pins[(host.lower(), port)] = addresses

    def get(self, host: str, port: int) -> tuple[IPAddress, ...]:
        with self._lock:
            return self._pins.get((host.lower(), port), ())


class PinnedBackend(httpcore.SyncBackend):
    """Connects to the pinned addresses of a host instead of resolving its name."""

    def __init__(self, pins: Pins) -> None:
        self.pins = pins

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.pins.get(host, port)
        if not addresses:
            raise UncheckedHost(f"{host}:{port} was not checked by the model source policy")
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # as getaddrinfo ordered them, like a connection by name would try
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport with a connection pool on ``PinnedBackend``.

    httpx takes no network backend, so the pool it builds is replaced by one built with the same settings
    and the backend (``tests/model/test_fetch.py`` fails if a new httpx stops using it).
    """

    def __init__(self, pins: Pins) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=True),  # SSL_CERT_FILE/DIR, not proxies
            # httpx's default limits; one model's downloads never come near them.
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(pins),
        )


Guard = Callable[[str], object]


def unchecked(url: str) -> CheckedURL:
    """For a loader given no guard (tools, tests): every address the name resolves to, once, unjudged."""
    parts = httpx.URL(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = tuple(ipaddress.ip_address(a) for a in system_resolver(parts.host, port))
    except (OSError, UnicodeError) as exc:
        raise SourceRefused(f"the host of the model URL cannot be resolved ({exc})") from None
    return CheckedURL(url, parts.host, port, addresses)


def pinned_client(timeout: float, guard: Guard) -> httpx.Client:
    """A client whose every request is checked by ``guard`` first and connects to what the check saw.

    ``guard(url)`` raises to refuse; a ``CheckedURL`` it returns pins that URL's host. A guard that returns
    anything else (a plain check) leaves the host to be resolved once here, unjudged, and pinned.
    """
    pins = Pins()

    def check(request: httpx.Request) -> None:
        url = str(request.url)
        checked = guard(url)
        if not isinstance(checked, CheckedURL):
            checked = unchecked(url)
        # The key is what httpcore will connect to: the URL's host as sent (IDNA, no brackets) and port.
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        pins.pin(request.url.raw_host.decode("ascii"), port, checked.addresses)

    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        event_hooks={"request": [check]},
        transport=PinnedTransport(pins),
        trust_env=False,
    )
