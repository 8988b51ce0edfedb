"""ICE settings for the render server: the STUN/TURN servers a peer connection may use on real networks.

Loopback-only runs (tests, a server bound to 127.0.0.1) also need loopback host candidates, which aioice
leaves out: that adaptation lives in :mod:`openrr.compat.aioice`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
