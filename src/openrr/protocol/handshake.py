"""The contract between the control plane and a render server: the only module both sides import.

Launch: the host layer starts ``python -m openrr.render`` with a ``RenderSpec`` as JSON in the environment
variable ``OPENRR_RENDER_SPEC`` (environment, not argv, so the callback credential does not show in ``ps``).
Nothing else of the control plane's environment is passed on but an allow-list (``openrr.child_env``): the
spec is how a render server gets what it needs, the TURN credential for its own ICE included.

Ready: the render server binds its handshake and inspector ports itself (in ARR's range 49152–65534), then
POSTs a ``ReadyReport`` to ``spec.callback_url + READY_SUFFIX`` with ``Authorization: Bearer
spec.callback_token``, retrying until the control plane answers. A 2xx means "serve"; 404/409/410 mean "this
session is gone or belongs to another instance: exit". The same URL + ``FAILED_SUFFIX`` reports a failure
(``{"code", "message"}``) that puts the session into Error.

Handshake: clients call ``HANDSHAKE_PATH`` on ``hostname:handshakePort`` with ``Authorization: Bearer <connect
token>``. A connect token comes from the control plane (``POST /openrr/accounts/{accountId}/sessions/
{sessionId}/connectToken`` with the account's access token): an HS256 JWT signed with ``spec.connect_secret``,
audience ``CONNECT_AUDIENCE``, subject the session id, short-lived. The render server checks it with
``check_connect_token``; an account's access token, or another session's connect token, gets 401. Every
authenticated route of the render server and its inspector takes the same token and nothing else.

Signalling (WebRTC offer/answer, no trickle ICE): the client POSTs ``OFFER_PATH`` on the same port, with the
same bearer token, a JSON body ``{"type": "offer", "sdp": ..., "video": {...}?}`` after its ICE gathering is
complete. ``video`` may ask for ``width``, ``height``, ``fps``, ``bitrate`` (bit/s) and ``codec``
(``"h264"``/``"vp8"``) within the server's limits. The offer must hold one video transceiver the client
receives on and one data channel (label ``DATA_CHANNEL_LABEL``, ordered). The answer is ``{"type": "answer",
"sdp": ..., "video": {the settings in effect}}``. Errors are ``{"error": {"code", "message"}}``: 400
``BadRequest``, 401 ``Unauthorized``, 403 ``Forbidden``, 409 ``ClientAlreadyConnected`` (one client at a
time, as in ARR), 503 ``NotReady``/``Stopping``. The data-channel messages are in ``protocol.datachannel``.

Pooled start (a warm pool, see ``openrr.hosts.base``): with ``POOL_ENV=1`` the spec in ``SPEC_ENV`` is a
*template* (blank session fields). The server warms up (GL context, shaders, one frame), then reads one
line from stdin: the session's full ``RenderSpec`` as JSON, whose shared fields (size, settings,
polygon_limit, limits, bind_host, advertise_host, teraflops) must equal the template's. From there it starts
as any render server does. End of input before that line means "not needed": it exits 0.

Idle stop: when ``RenderSettings.idle_stop_s`` is set, a server that has had no client for that long (since
it became ready or since its last client left) POSTs ``{"instance", "idleSeconds"}`` to ``callback_url +
IDLE_SUFFIX``; the control plane stops the session and records why.

Lease (a session ends when its lease does, whether or not its control plane is there to end it): the spec
carries the session's ``lease_minutes``, which counts from Ready. The answer to the ready callback and to
every heartbeat carries ``{"status", "leaseRemainingSeconds"}``: the seconds left until the lease ends, as the
control plane sees it now (relative, so the clocks of the two machines need not agree; null while the lease
has not started). The server keeps its own deadline from the latest answer; an answer without the field (or
no answer yet) leaves it at ready + ``lease_minutes``.

Heartbeat: once ready, the server POSTs ``{"instance"}`` to ``callback_url + HEARTBEAT_SUFFIX`` (same bearer
credential) every ``settings.heartbeat_s`` seconds, and once more when its deadline comes, so a renewal
(``maxLeaseTimeMinutes`` raised by a PATCH) made just before the old end is never missed. 404/409/410 mean the
session is over or served by another instance: exit ``EXIT_REJECTED`` (3). Otherwise the server stops itself:

* ``EXIT_LEASE_ENDED`` (6) when its deadline has passed and the last heartbeat did not move it (renewals
  reach it through the answers);
* ``EXIT_CONTROL_PLANE_UNREACHABLE`` (7) when no heartbeat has been answered with a 2xx for longer than
  ``settings.control_plane_grace_s`` (``openrr serve --control-plane-grace``), counted from the last answer
  (or from ready).

Both log one WARNING line ``self-stop <reason>: <why>`` (``SELF_STOP_LOG``, reason ``LEASE_ENDED`` or
``CONTROL_PLANE_UNREACHABLE``) and stop as after SIGTERM (a connected client gets a ``bye``); the same line
is repeated as the log's last line before they exit. The host layer
reads the reason from the exit code, or from that log line when the exit code is lost (a server adopted by a
restarted control plane is not its child). A control plane that finds such a server gone records the
session as Expired (lease ended) or Error ``ControlPlaneUnreachable`` with the server's explanation.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jwt

SPEC_ENV = "OPENRR_RENDER_SPEC"
READY_SUFFIX = "/ready"
FAILED_SUFFIX = "/failed"
IDLE_SUFFIX = "/idle"
HEARTBEAT_SUFFIX = "/heartbeat"
# Exit codes of a render server that stopped itself (see "Lease" above), and the reasons they stand for.
EXIT_REJECTED = 3
EXIT_LEASE_ENDED = 6
EXIT_CONTROL_PLANE_UNREACHABLE = 7
LEASE_ENDED = "LeaseEnded"
CONTROL_PLANE_UNREACHABLE = "ControlPlaneUnreachable"
SELF_STOP_EXITS = {EXIT_LEASE_ENDED: LEASE_ENDED, EXIT_CONTROL_PLANE_UNREACHABLE: CONTROL_PLANE_UNREACHABLE}
SELF_STOP_LOG = "self-stop"
# The longest lease there is (1440 minutes) plus slack: a larger leaseRemainingSeconds is not believed.
MAX_LEASE_REMAINING_S = 1441 * 60.0
POOL_ENV = "OPENRR_RENDER_POOL"
# The RenderSpec fields a pooled server warmed up with; its session's spec must carry the same values.
SHARED_FIELDS = ("size", "settings", "polygon_limit", "limits", "bind_host", "advertise_host", "teraflops")
HANDSHAKE_PATH = "/handshake"
HEALTH_PATH = "/health"
PROTOCOL = "openrr-render/1"
OFFER_PATH = "/offer"
DATA_CHANNEL_LABEL = "openrr"
PORT_RANGE = (49152, 65534)
CONNECT_AUDIENCE = "openrr-session"


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """The render-server settings of ``openrr serve``, the same for every session it starts."""

    # Where models may come from (see ``openrr.model.sources``): local files only under these roots;
    # http(s) URLs only to public addresses unless private ones are allowed.
    model_roots: tuple[str, ...] = ()  # a session reads only its account's folder in each
    allow_private_model_urls: bool = False
    # Video settings a client gets when its offer asks for none.
    video_width: int = 1280
    video_height: int = 720
    video_fps: float = 30.0
    video_bitrate: int = 3_000_000
    # Render time a frame may take while the camera moves: coarser levels of detail keep to it.
    frame_budget_ms: float = 28.0
    # STUN/TURN for real networks (``openrr.render.ice.IceSettings``).
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_credential: str | None = dataclasses.field(default=None, repr=False)
    # TLS on the handshake and inspector ports: certificate and key files on the render node (None: HTTP).
    tls_cert: str | None = None
    tls_key: str | None = None
    # Stop a session that has had no client connected for this many seconds (None: never).
    idle_stop_s: float | None = None
    # Seconds between heartbeats of a ready server, and how long it keeps serving without an answer.
    heartbeat_s: float = 10.0
    control_plane_grace_s: float = 600.0
    # Shared read-only model folders every account's sessions may load from (``--model-library``).
    model_libraries: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenderSettings:
        fields = dict(data)
        for key in ("model_roots", "stun_urls", "turn_urls", "model_libraries"):
            fields[key] = tuple(fields.get(key) or ())
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class RenderLimits:
    """What one session's render server may use, by its size (``openrr serve``'s per-size limits); None is
    unlimited. Textures count decoded pixels (checked from image headers before decoding); scene bytes count
    the models' geometry as the renderer holds it; ``memory_bytes`` is the process's RLIMIT_DATA, set before
    anything else is imported (see ``openrr.render.__main__``)."""

    texture_pixels_per_model: int | None = None
    texture_pixels_per_session: int | None = None
    models_per_session: int | None = None
    scene_bytes: int | None = None
    memory_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class RenderSpec:
    account_id: str
    session_id: str
    instance: str
    size: str
    models: tuple[str, ...]
    bind_host: str
    advertise_host: str
    teraflops: float
    callback_url: str
    callback_token: str
    callback_ca: str | None
    # The key of this session's connect tokens (see check_connect_token); blank in a pooled template.
    connect_secret: str = dataclasses.field(repr=False)
    ready_deadline_s: float
    # What every render server of this control plane shares (``openrr serve``'s options).
    settings: RenderSettings = dataclasses.field(default_factory=lambda: RenderSettings())
    # Triangles this session may show before the checkerboard replaces the scene; None is unlimited.
    polygon_limit: int | None = None
    # The session's lease, counted from Ready (see "Lease" above); None: not known (a pool's template).
    lease_minutes: int | None = None
    limits: RenderLimits = dataclasses.field(default_factory=lambda: RenderLimits())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RenderSpec:
        data: dict[str, Any] = json.loads(text)
        data["models"] = tuple(data.get("models") or ())
        data["settings"] = RenderSettings.from_json(data.get("settings") or {})
        data["limits"] = RenderLimits(**(data.get("limits") or {}))
        return cls(**data)


class ConnectTokenRefused(Exception):
    """A bearer token that is not a valid connect token of this session (the message says why)."""


def check_connect_token(token: str, *, secret: str, session_id: str) -> dict[str, Any]:
    """The claims of ``token`` if it is a current connect token for ``session_id`` signed with ``secret``.

    Only HS256 is accepted: an account's access token (EdDSA) or any other algorithm is refused, so a key
    meant for another purpose can never stand in for the secret.
    """
    if not secret:
        raise ConnectTokenRefused("this render server has no session yet")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=CONNECT_AUDIENCE,
            issuer="openrr",
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.InvalidAlgorithmError:
        raise ConnectTokenRefused(
            "it is not a connect token; ask the control plane for one (POST .../sessions/{id}/connectToken)"
        ) from None
    except jwt.PyJWTError as exc:
        raise ConnectTokenRefused(str(exc)) from None
    if claims.get("sub") != session_id:
        raise ConnectTokenRefused("it was issued for another session")
    return claims


@dataclasses.dataclass(frozen=True)
class ReadyReport:
    instance: str
    hostname: str
    handshake_port: int
    inspector_port: int
    teraflops: float
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "hostname": self.hostname,
            "handshakePort": self.handshake_port,
            "arrInspectorPort": self.inspector_port,
            "teraflops": self.teraflops,
            "pid": self.pid,
        }
