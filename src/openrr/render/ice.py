"""ICE settings for the render server: STUN/TURN servers for real networks, loopback for tests.

aiortc gathers host candidates through ``aioice.ice.get_host_addresses``, which deliberately leaves
out ``127.0.0.1``.  Two peers on one machine therefore pair over whatever other interface exists, and
inside a network namespace that has only ``lo`` they gather nothing and never connect.
:func:`loopback_host_candidates` swaps that function for one returning fixed addresses while its
``with`` block runs.  It is a process-wide patch (aioice has no per-connection hook), restored on
exit; use it in tests and in single-session server processes started for loopback-only runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri


@dataclass(frozen=True)
class IceSettings:
    """STUN/TURN servers for a peer connection.

    ``stun_urls`` like ``"stun:stun.example.org:3478"``; ``turn_urls`` like
    ``"turn:turn.example.org:3478?transport=udp"`` or ``"turns:..."``, all sharing
    ``turn_username``/``turn_credential``.  Empty settings mean host candidates only.  aiortc 1.16
    uses only the first STUN URL and the first usable TURN URL (``turn:`` over udp/tcp, ``turns:``
    over tcp) and ignores the rest, so list the preferred server first.
    """

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_credential: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for url, schemes in [(u, ("stun",)) for u in self.stun_urls] + [
            (u, ("turn", "turns")) for u in self.turn_urls
        ]:
            try:
                parsed = parse_stun_turn_uri(url)
            except ValueError as exc:
                raise ValueError(f"bad ICE server URL {url!r}: {exc}") from None
            if parsed["scheme"] not in schemes:
                raise ValueError(f"expected a {'/'.join(schemes)} URL, got {url!r}")
        if self.turn_urls and (self.turn_username is None or self.turn_credential is None):
            raise ValueError("TURN servers need turn_username and turn_credential")

    def rtc_configuration(self) -> RTCConfiguration:
        """The ``RTCConfiguration`` to build ``RTCPeerConnection(configuration=...)`` with."""
        servers: list[RTCIceServer] = []
        if self.stun_urls:
            servers.append(RTCIceServer(urls=list(self.stun_urls)))
        if self.turn_urls:
            servers.append(
                RTCIceServer(
                    urls=list(self.turn_urls), username=self.turn_username, credential=self.turn_credential
                )
            )
        # An empty list, not None: aiortc's default (None) adds Google's public STUN server, which a
        # self-hosted service must not contact without being told to.
        return RTCConfiguration(iceServers=servers)


@contextmanager
def loopback_host_candidates(addresses: Sequence[str] = ("127.0.0.1",)) -> Iterator[None]:
    """Within the block, aioice offers exactly ``addresses`` as host candidates (see module doc).

    Nesting restores the previous function on each exit; not meant for concurrent use from threads.
    """
    fixed = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    with mock.patch.object(aioice.ice, "get_host_addresses", host_addresses):
        yield
