"""Settings of render servers: their addresses and TLS, where models may come from, video, ICE, per-size
limits; and of the hosts they run on (local processes or a Ray cluster), and how many.

Declared as in ``openrr.config.control_plane``: a field per option, its ``Option`` holding the help.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from openrr.config.option import Option, SettingsGroup, existing_directories
from openrr.config.per_size import (
    DEFAULT_RENDER_LIMITS,
    RENDER_LIMIT_FIELDS,
    default_limit_text,
    derived_local_slots,
    parse_per_size,
)
from openrr.domain.session import Size
from openrr.protocol.handshake import RenderLimits

# The STUN/TURN URL shapes aiortc parses (openrr.render.ice.IceSettings checks them with aiortc itself).
# They are checked here with a regex because the control plane never imports the render stack (aiortc
# alone takes half a second to import): a typo is still reported at start, not when the first session fails.
_STUN_URL = re.compile(r"stun:[^?:/\s@]+(:(?P<port>[0-9]{1,5}))?")
_TURN_URL = re.compile(r"turns?:[^?:/\s@]+(:(?P<port>[0-9]{1,5}))?(\?transport=(udp|tcp))?")
_VIDEO = "The video a client gets when its offer asks for no size."


class RenderServerSettings(SettingsGroup):
    """Render servers: their addresses, where models may come from, video, ICE, and per-size limits."""

    render_host: Annotated[str, Option("Address render servers bind to.")] = "127.0.0.1"
    render_advertise_host: Annotated[
        str | None,
        Option("Hostname reported to clients for render servers.", default_text="--render-host"),
    ] = None
    # TLS on the render servers' handshake and inspector ports: paths as the render nodes see them.
    render_tls_cert: Annotated[
        Path | None,
        Option(
            "Certificate (PEM, chain first) render servers serve their handshake and inspector ports with, "
            "as a path on the render nodes; with --render-tls-key.",
            default_text="plain HTTP",
            path="file",
            doc="For networks where the path to render nodes is untrusted: a certificate for "
            "`--render-advertise-host` (on Ray, the same path on every node). The connect token's answer "
            "then says `https` (`handshakeUrl`, `inspectorUrl`), and `openrr.client`/`openrr connect` check "
            "the certificate with the CA bundle they use for the control plane.",
        ),
    ] = None
    render_tls_key: Annotated[Path | None, Option("Its private key (PEM).", path="file")] = None
    # What the control plane (its offer relay) trusts render servers' certificates with; default: the cert.
    render_tls_ca: Annotated[
        Path | None,
        Option(
            "CA file the offer relay checks render servers' certificates with.",
            default_text="the certificate itself",
            path="file",
        ),
    ] = None
    # Where models may come from (openrr.model.sources). The default root lies under --data-dir, a server
    # setting: Settings fills it in (and serve creates it); a root that was given must exist.
    model_roots: Annotated[
        tuple[Path, ...],
        Option(
            "Directory clients may load local model files from, a folder per account: ROOT/ACCOUNT_ID/...; "
            "repeatable.",
            default_text="DATA_DIR/models, created at start",
            flag="--model-root",
            path="dir",
            doc="A session loads local model files (relative paths, looked up in its folder of each root and "
            "then in the library, or `file:` URLs) only from its own account's folders; `..`, symlinks out "
            "of them and other accounts' folders are refused.",
        ),
    ] = ()
    model_libraries: Annotated[
        tuple[Path, ...],
        Option(
            "Directory of models every account may load (read only); repeatable.",
            default_text="none",
            flag="--model-library",
            path="dir",
            doc="openrr never writes or lists them.",
        ),
    ] = ()
    allow_private_model_urls: Annotated[
        bool,
        Option(
            "Let clients load models from loopback, private and link-local addresses (by default only public "
            "ones: a client must not reach the service's own network through a render server)."
        ),
    ] = False
    standard_polygon_limit: Annotated[
        int,
        Field(ge=1),
        Option(
            "Polygons a standard session may show before a checkerboard replaces the scene; premium sessions "
            "are unlimited.",
            doc="As in ARR.",
        ),
    ] = 20_000_000
    video_width: Annotated[
        int, Field(ge=160, le=3840), Option("Default video width, even, 160..3840.", doc=_VIDEO)
    ] = 1280
    video_height: Annotated[int, Field(ge=120, le=2160), Option("Default video height, even, 120..2160.")] = (
        720
    )
    video_fps: Annotated[float, Field(ge=1, le=60), Option("Default frames per second, 1..60.")] = 30.0
    video_bitrate: Annotated[
        int, Field(ge=100_000, le=50_000_000), Option("Default video bit/s, 100000..50000000.")
    ] = 3_000_000
    frame_budget_ms: Annotated[
        float,
        Field(ge=5, le=1000),
        Option(
            "Render milliseconds a frame may take while the camera moves, 5..1000: big models are then drawn "
            "at a coarser level of detail that fits, and at full detail once the camera stops.",
            doc="About 25 fps with the encoder alongside on 2 CPU cores (llvmpipe).",
        ),
    ] = 28.0
    stun_urls: Annotated[
        tuple[str, ...],
        Option(
            "STUN server for render servers' WebRTC, stun:HOST[:PORT]; repeatable.",
            default_text="none",
            flag="--stun-url",
            doc="For real networks; only the first STUN and the first usable TURN URL are used.",
        ),
    ] = ()
    turn_urls: Annotated[
        tuple[str, ...],
        Option(
            "TURN server, turn:HOST[:PORT][?transport=udp|tcp] or turns:...; repeatable, needs "
            "--turn-username and --turn-credential.",
            default_text="none",
            flag="--turn-url",
        ),
    ] = ()
    turn_username: Annotated[str | None, Option("User name for the TURN servers.")] = None
    turn_credential: Annotated[
        str | None,
        Field(repr=False),
        Option("Password for the TURN servers; prefer the variable (command lines are visible in ps)."),
    ] = None
    # Per-size limits of a session's render server (DEFAULT_RENDER_LIMITS); SIZE=N, N with K/M/G/T.
    max_texture_pixels: Annotated[
        tuple[str, ...],
        Option(
            "SIZE=N: decoded texture pixels one model may have (K/M/G suffixes: powers of 1024); counted "
            "from image headers before decoding. Repeatable; 0 is unlimited.",
            default_text=default_limit_text("max_texture_pixels"),
            doc="A small PNG that decodes to gigabytes is refused with `ModelLoadFailed`.",
        ),
    ] = ()
    max_session_texture_pixels: Annotated[
        tuple[str, ...],
        Option(
            "SIZE=N: decoded texture pixels of all of a session's models together.",
            default_text=default_limit_text("max_session_texture_pixels"),
        ),
    ] = ()
    max_models: Annotated[
        tuple[str, ...],
        Option(
            "SIZE=N: models a session may have loaded (or loading) at once.",
            default_text=default_limit_text("max_models"),
        ),
    ] = ()
    max_scene_bytes: Annotated[
        tuple[str, ...],
        Option(
            "SIZE=N: bytes of geometry (vertices and indices) of all of a session's models.",
            default_text=default_limit_text("max_scene_bytes"),
            doc="Float32 vertex attributes, uint32 indices, levels of detail.",
        ),
    ] = ()
    render_memory: Annotated[
        tuple[str, ...],
        Option(
            "SIZE=N: memory ceiling (RLIMIT_DATA) of a session's render server; past it the session ends in "
            "Error, OutOfMemory.",
            default_text=default_limit_text("render_memory"),
            doc="An idle 1280x720 render server uses about 280 MiB.",
        ),
    ] = ()

    @field_validator("model_roots", "model_libraries")
    @classmethod
    def _directories(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        return existing_directories(roots)

    @field_validator("video_width", "video_height")
    @classmethod
    def _even(cls, size: int) -> int:
        # H.264 with 4:2:0 chroma needs even frame dimensions.
        if size % 2:
            raise ValueError(f"must be even, not {size}")
        return size

    @field_validator("stun_urls")
    @classmethod
    def _stun_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        return _check_ice_urls(urls, _STUN_URL, "stun:HOST[:PORT]")

    @field_validator("turn_urls")
    @classmethod
    def _turn_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        return _check_ice_urls(urls, _TURN_URL, "turn:HOST[:PORT][?transport=udp|tcp] or turns:...")

    @field_validator(*RENDER_LIMIT_FIELDS)
    @classmethod
    def _per_size_amounts(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        parse_per_size(values, amounts=True)
        return values

    @property
    def scheme(self) -> str:
        """How clients and the offer relay reach render servers: https with --render-tls-cert."""
        return "https" if self.render_tls_cert is not None else "http"

    @property
    def trust(self) -> Path | None:
        """The CA file the offer relay checks render servers' certificates with (None: plain HTTP)."""
        return self.render_tls_ca or self.render_tls_cert

    @property
    def limits(self) -> dict[Size, RenderLimits]:
        """The defaults with what the per-size options changed; 0 given for a size means unlimited."""
        changes: dict[Size, dict[str, int | None]] = {size: {} for size in Size}
        for setting, field in RENDER_LIMIT_FIELDS.items():
            for size, value in parse_per_size(getattr(self, setting), amounts=True).items():
                changes[size][field] = value or None
        return {size: dataclasses.replace(DEFAULT_RENDER_LIMITS[size], **changes[size]) for size in Size}


class HostSettings(SettingsGroup):
    """Hosts: where render servers run (openrr.hosts) and how many."""

    host_backend: Annotated[
        Literal["local", "ray"],
        Option(
            "Where render servers run: local processes, or actors on a Ray cluster.",
            doc='See "Scaling out".',
        ),
    ] = "local"
    ray_address: Annotated[
        str | None, Option("HOST:PORT of the Ray head's GCS, with --host-backend ray.")
    ] = None
    ray_namespace: Annotated[
        str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$"), Option("Ray namespace of this service's actors.")
    ] = "openrr"
    ray_auth_token_file: Annotated[
        Path | None,
        Option(
            "File holding the Ray cluster's auth token (RAY_AUTH_MODE=token).",
            default_text="Ray's own RAY_AUTH_* variables",
        ),
    ] = None
    ray_allow_unauthenticated: Annotated[
        bool,
        Option(
            "With --host-backend ray: use a Ray cluster that does not require token authentication (by "
            "default such a cluster is refused: anyone who can reach it can run code on its nodes)."
        ),
    ] = False
    local_slots: Annotated[
        tuple[str, ...],
        Option(
            "SIZE=N: render servers of a size this machine may run at once, e.g. standard=4; repeatable. "
            "Creates beyond it get 503 CapacityExhausted.",
            default_text="from this machine: standard = min(2 x cores, GiB of memory), premium = min(cores, "
            "GiB / 4), at least 1",
            doc="Local host only; Ray nodes declare theirs.",
        ),
    ] = ()
    warm_pool: Annotated[
        tuple[str, ...],
        Option(
            "SIZE=N: render servers kept started and waiting, so a create is Ready in well under a second; "
            "each session still gets a fresh one. Repeatable.",
            default_text="none",
        ),
    ] = ()

    @field_validator("ray_auth_token_file")
    @classmethod
    def _token_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
        return path

    @field_validator("local_slots", "warm_pool")
    @classmethod
    def _per_size(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        parse_per_size(values)
        return values

    @property
    def local_slot_counts(self) -> dict[str, int]:
        """``--local-slots``, and for each size it leaves out, ``derived_local_slots()``'s."""
        given = parse_per_size(self.local_slots)
        derived = derived_local_slots()
        return {size.value.lower(): given.get(size, derived[size]) for size in Size}

    @property
    def warm_pool_targets(self) -> dict[Size, int]:
        return parse_per_size(self.warm_pool)


def _check_ice_urls(urls: tuple[str, ...], shape: re.Pattern[str], example: str) -> tuple[str, ...]:
    for url in urls:
        match = shape.fullmatch(url)
        if match is None:
            raise ValueError(f"{url!r} is not of the form {example}")
        if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
            raise ValueError(f"{url!r}: the port must be 1..65535")
    return urls
