"""Service settings for ``openrr serve``: one validated model, fed by CLI flags and ``OPENRR_*`` variables.

``Settings.load`` reports every invalid setting at once (pydantic collects them all).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from openrr.domain.session import Size
from openrr.errors import InvalidInput
from openrr.protocol.handshake import RenderLimits
from openrr.storage.base import LinkedAccount, parse_linked_account

Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[float, Field(gt=0)]

# Fields whose flag is not "--" + the field's name: the repeatable options are singular.
_FLAGS = {"model_roots": "--model-root", "stun_urls": "--stun-url", "turn_urls": "--turn-url"}
_FLAGS["model_libraries"] = "--model-library"
_FLAGS.update({"container_roots": "--container-root", "storage_accounts": "--storage-account"})
_FLAGS.update({"local_slots": "--local-slots", "warm_pool": "--warm-pool"})

_MI, _GI = 1 << 20, 1 << 30
# What one session's render server may use, by size: finite by default, each changeable per size with the
# ``--max-texture-pixels``, ``--max-session-texture-pixels``, ``--max-models``, ``--max-scene-bytes`` and
# ``--render-memory`` options. Measured at 1280x720 on llvmpipe, an idle render server's data segment is
# about 280 MiB; the memory ceilings leave room for the scene limits twice over (the renderer's own copy and
# the GL driver's).
DEFAULT_RENDER_LIMITS = {
    Size.STANDARD: RenderLimits(
        texture_pixels_per_model=64 * _MI,
        texture_pixels_per_session=128 * _MI,
        models_per_session=32,
        scene_bytes=1 * _GI,
        memory_bytes=4 * _GI,
    ),
    Size.PREMIUM: RenderLimits(
        texture_pixels_per_model=128 * _MI,
        texture_pixels_per_session=256 * _MI,
        models_per_session=64,
        scene_bytes=4 * _GI,
        memory_bytes=12 * _GI,
    ),
}
# Settings field → RenderLimits field of the per-size limit options.
_RENDER_LIMIT_FIELDS = {
    "max_texture_pixels": "texture_pixels_per_model",
    "max_session_texture_pixels": "texture_pixels_per_session",
    "max_models": "models_per_session",
    "max_scene_bytes": "scene_bytes",
    "render_memory": "memory_bytes",
}

# The STUN/TURN URL shapes aiortc parses (openrr.render.ice.IceSettings checks them with aiortc itself).
# They are checked here with a regex because the control plane never imports the render stack (aiortc
# alone takes half a second to import): a typo is still reported at start, not when the first session fails.
_STUN_URL = re.compile(r"stun:[^?:/\s@]+(:(?P<port>[0-9]{1,5}))?")
_TURN_URL = re.compile(r"turns?:[^?:/\s@]+(:(?P<port>[0-9]{1,5}))?(\?transport=(udp|tcp))?")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: Port = 8443
    data_dir: Path = Path("openrr-data")
    store_url: str | None = None
    insecure_http: bool = False
    cert: Path | None = None
    key: Path | None = None
    public_url: str | None = Field(
        default=None, description="Base URL render servers use to call the control plane back."
    )
    render_host: str = "127.0.0.1"
    # TLS on the render servers' handshake and inspector ports: paths as the render nodes see them.
    render_tls_cert: Path | None = None
    render_tls_key: Path | None = None
    # What the control plane (its offer relay) trusts render servers' certificates with; default: the cert.
    render_tls_ca: Path | None = None
    render_advertise_host: str | None = None
    start_timeout: Positive = 60.0
    stop_grace: Positive = 5.0
    reaper_interval: Positive = 1.0
    retention_days: Positive = 30.0
    purge_interval: Positive = 3600.0
    list_page_size: Annotated[int, Field(ge=1, le=1000)] = 100
    throttle_rate: Annotated[float, Field(ge=0)] = 2.0
    throttle_burst: Annotated[int, Field(ge=1)] = 60
    sts_throttle_rate: Annotated[float, Field(ge=0)] = 0.5
    sts_throttle_burst: Annotated[int, Field(ge=1)] = 20
    sts_failure_rate: Annotated[float, Field(ge=0)] = 0.2
    sts_failure_burst: Annotated[int, Field(ge=1)] = 10
    teraflops_standard: Positive = 8.1
    teraflops_premium: Positive = 16.2
    dev_account: bool = True
    metrics: bool = True  # GET /metrics (Prometheus) and per-request timing
    log_level: str = Field(default="info", pattern="^(critical|error|warning|info|debug)$")
    # Render servers: where models may come from (openrr.render.sources), limits, video and ICE.
    model_roots: tuple[Path, ...] = Field(
        # The default depends on data_dir (validated before, as it is declared before); serve creates it.
        default_factory=lambda data: (Path(data.get("data_dir") or "openrr-data") / "models",),
        description="Directories local model files may be loaded from, a folder per account in each.",
    )
    model_libraries: tuple[Path, ...] = Field(
        default=(), description="Directories of models every account may load (read only)."
    )
    allow_private_model_urls: bool = False
    standard_polygon_limit: Annotated[int, Field(ge=1)] = 20_000_000  # ARR's Standard; Premium: unlimited
    video_width: Annotated[int, Field(ge=160, le=3840)] = 1280
    video_height: Annotated[int, Field(ge=120, le=2160)] = 720
    video_fps: Annotated[float, Field(ge=1, le=60)] = 30.0
    video_bitrate: Annotated[int, Field(ge=100_000, le=50_000_000)] = 3_000_000
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str | None = None
    turn_credential: str | None = Field(default=None, repr=False)
    # Conversions: where containers may be (openrr.storage), and the workers that run them.
    container_roots: tuple[Path, ...] = Field(
        default=(), description="Directories file: containers may lie in; none: no file: containers."
    )
    storage_accounts: tuple[str, ...] = Field(
        default=(),
        repr=False,
        description="Storage endpoints every account may use with a SAS: NAME@ENDPOINT (keys are linked per "
        "account: openrr accounts link-storage).",
    )
    conversion_workers: Annotated[int, Field(ge=1, le=64)] = 2
    conversion_timeout: Positive = 3600.0
    conversion_max_input_mb: Annotated[int, Field(ge=1)] = 4096
    # Where render servers run (openrr.hosts), how many, and the limits on sessions.
    host_backend: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(default=None, description="HOST:PORT of the Ray cluster's head (GCS).")
    ray_namespace: str = Field(default="openrr", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    ray_auth_token_file: Path | None = None
    ray_allow_unauthenticated: bool = False  # join a Ray cluster without token authentication
    local_slots: tuple[str, ...] = Field(default=(), description="SIZE=N: local render servers per size.")
    warm_pool: tuple[str, ...] = Field(default=(), description="SIZE=N: pooled render servers per size.")
    # Per-size limits of a session's render server (DEFAULT_RENDER_LIMITS); SIZE=N, N with K/M/G/T.
    max_texture_pixels: tuple[str, ...] = ()
    max_session_texture_pixels: tuple[str, ...] = ()
    max_models: tuple[str, ...] = ()
    max_scene_bytes: tuple[str, ...] = ()
    render_memory: tuple[str, ...] = ()
    max_sessions_per_account: Annotated[int, Field(ge=1)] = 10
    max_conversions_per_account: Annotated[int, Field(ge=1)] = 20
    converter_memory: Annotated[str, Field(pattern=r"(?i)^[0-9]{1,15}\s*[KMGT]?I?B?$")] = "8G"
    idle_stop_minutes: Positive | None = None
    max_lease_minutes: Annotated[int, Field(ge=1, le=1440)] = 1440
    # Render servers heartbeat this often and stop themselves after this long without an answer.
    heartbeat_interval: Annotated[float, Field(ge=0.05, le=3600)] = 10.0
    control_plane_grace: Annotated[float, Field(gt=0, le=7 * 86400)] = 600.0
    connect_token_minutes: Annotated[int, Field(ge=1, le=1440)] = 30
    # Request bounds, enforced before a route (or authentication) does any work: see openrr.api.limits.
    max_body_kib: Annotated[int, Field(ge=1, le=65536)] = 64
    max_offer_kib: Annotated[int, Field(ge=1, le=65536)] = 512
    max_header_kib: Annotated[int, Field(ge=1, le=1024)] = 32
    max_header_fields: Annotated[int, Field(ge=8, le=1000)] = 100

    # Field validators run for every field even when others fail, so each problem is reported;
    # the model validator adds the combinations once the fields themselves are valid.
    @field_validator("cert", "key")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
        return path

    @field_validator("store_url")
    @classmethod
    def _store_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:", "postgresql", "postgres:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return url

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return url

    @field_validator("model_roots", "model_libraries")
    @classmethod
    def _directories(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        # Only roots that were given are checked (validators skip defaults): serve creates the default one.
        missing = [str(root) for root in roots if not root.is_dir()]
        if missing:
            raise ValueError(f"{', '.join(missing)}: not an existing directory")
        return roots

    @field_validator("container_roots")
    @classmethod
    def _container_directories(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        missing = [str(root) for root in roots if not root.is_dir()]
        if missing:
            raise ValueError(f"{', '.join(missing)}: not an existing directory")
        return roots

    @field_validator("storage_accounts")
    @classmethod
    def _storage_accounts(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        names = []
        for number, value in enumerate(values, 1):
            try:
                account = parse_linked_account(value)
            except ValueError as exc:  # its message never shows the key
                raise ValueError(f"entry {number}: {exc}") from None
            if account.key is not None:
                # A service-wide key let every account's conversions use that storage without a SAS. It is
                # refused rather than bound to some account by guess: the operator says which one.
                endpoint = f"@{account.endpoint}" if account.endpoint else ""
                raise ValueError(
                    f"entry {number}: a storage account key is no longer service-wide; link {account.name} "
                    f"to the one account whose conversions may use it: openrr accounts link-storage ACCOUNT "
                    f"{account.name}=KEY{endpoint} (or --key-stdin), then give --storage-account "
                    f"{account.name}@{account.blob_endpoint} here only if every account may use it with a SAS"
                )
            names.append(account.name)
        if len(set(names)) != len(names):
            raise ValueError("a storage account is given twice")
        return values

    @field_validator("local_slots", "warm_pool")
    @classmethod
    def _per_size(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        parse_per_size(values)
        return values

    @field_validator(*_RENDER_LIMIT_FIELDS)
    @classmethod
    def _per_size_amounts(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        parse_per_size(values, amounts=True)
        return values

    @field_validator("ray_auth_token_file")
    @classmethod
    def _token_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
        return path

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

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        problems = []
        if (self.cert is None) != (self.key is None):
            problems.append("--cert and --key must be given together")
        if (self.render_tls_cert is None) != (self.render_tls_key is None):
            problems.append("--render-tls-cert and --render-tls-key must be given together")
        if self.render_tls_ca is not None and self.render_tls_cert is None:
            problems.append("--render-tls-ca needs --render-tls-cert and --render-tls-key")
        if self.insecure_http and self.cert is not None:
            problems.append("--insecure-http cannot be combined with --cert/--key")
        if self.turn_urls and (not self.turn_username or not self.turn_credential):
            problems.append("--turn-url needs --turn-username and --turn-credential")
        if self.host_backend == "ray" and not self.ray_address:
            problems.append("--host-backend ray needs --ray-address HOST:PORT (the head's GCS address)")
        if self.host_backend == "ray" and self.local_slots:
            problems.append(
                "--local-slots applies to the local host; a Ray cluster's nodes declare their slots"
            )
        if self.control_plane_grace <= self.heartbeat_interval:
            problems.append("--control-plane-grace must be longer than --heartbeat-interval")
        if problems:
            raise ValueError("\n".join(problems))  # load() reports each line
        return self

    @classmethod
    def load(cls, values: dict[str, Any]) -> Settings:
        """Validate, raising InvalidInput whose message lists every problem on its own line."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                if err["type"] == "default_factory_not_called":
                    continue  # a default derived from a field that failed, and that failure is reported
                where = ""
                if err["loc"]:
                    field, *inner = (str(p) for p in err["loc"])
                    where = _FLAGS.get(field, "--" + field.replace("_", "-")) + "".join(
                        f"[{i}]" for i in inner
                    )
                msg = err["msg"].removeprefix("Value error, ")
                lines.append(f"{where}: {msg}" if where else msg)
            raise InvalidInput("\n".join(lines)) from None

    # ---- derived paths and URLs ---------------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"

    @property
    def render_scheme(self) -> str:
        """How clients and the offer relay reach render servers: https with --render-tls-cert."""
        return "https" if self.render_tls_cert is not None else "http"

    @property
    def render_trust(self) -> Path | None:
        """The CA file the offer relay checks render servers' certificates with (None: plain HTTP)."""
        return self.render_tls_ca or self.render_tls_cert

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.data_dir / 'openrr.db').resolve()}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def default_model_root(self) -> Path:
        return self.data_dir / "models"

    @property
    def linked_accounts(self) -> tuple[LinkedAccount, ...]:
        return tuple(parse_linked_account(value) for value in self.storage_accounts)

    @property
    def local_slot_counts(self) -> dict[str, int]:
        """``--local-slots``, and for each size it leaves out, ``derived_local_slots()``'s."""
        given = parse_per_size(self.local_slots)
        derived = derived_local_slots()
        return {size.value.lower(): given.get(size, derived[size]) for size in Size}

    @property
    def converter_memory_bytes(self) -> int:
        return _amount(self.converter_memory)

    @property
    def warm_pool_targets(self) -> dict[Size, int]:
        return parse_per_size(self.warm_pool)

    @property
    def render_limits(self) -> dict[Size, RenderLimits]:
        """The defaults with what the per-size options changed; 0 given for a size means unlimited."""
        changes: dict[Size, dict[str, int | None]] = {size: {} for size in Size}
        for setting, field in _RENDER_LIMIT_FIELDS.items():
            for size, value in parse_per_size(getattr(self, setting), amounts=True).items():
                changes[size][field] = value or None
        return {size: dataclasses.replace(DEFAULT_RENDER_LIMITS[size], **changes[size]) for size in Size}

    @property
    def conversion_dir(self) -> Path:
        """Scratch space of running conversions (their downloads and outputs)."""
        return self.data_dir / "conversions"

    @property
    def local_address(self) -> str:
        """An address of this service that local processes can reach."""
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def callback_base_url(self) -> str:
        return (self.public_url or self.local_address).rstrip("/")


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_AMOUNT = re.compile(r"([0-9]{1,15})\s*([KMGT]?)I?B?", re.IGNORECASE)


def parse_per_size(values: tuple[str, ...], *, amounts: bool = False) -> dict[Size, int]:
    """``("standard=4", "premium=1")`` (any letter case; also comma-separated) → counts by size. With
    ``amounts``, a number may end in K, M, G or T (powers of 1024, an optional "iB" or "B" after it)."""
    counts: dict[Size, int] = {}
    for value in (part.strip() for item in values for part in item.split(",") if part.strip()):
        name, sep, number = value.partition("=")
        match = _AMOUNT.fullmatch(number.strip()) if amounts else None
        if not sep or not (match or number.strip().isdigit()):
            example = "standard=64M" if amounts else "standard=4"
            raise ValueError(f"{value!r} is not of the form SIZE=COUNT, e.g. {example}")
        try:
            size = Size.parse(name)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        if size in counts:
            raise ValueError(f"{size.value} is given twice")
        counts[size] = int(match[1]) * _UNITS[match[2].upper()] if match else int(number)
    return counts


def _amount(text: str) -> int:
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an amount such as 8G")
    return int(match[1]) * _UNITS[match[2].upper()]


def derived_local_slots() -> dict[Size, int]:
    """Render servers this machine runs at once by default: a standard one per half core (most sessions
    are idle or light between bursts; a streaming one takes about a core on llvmpipe) and per GiB of
    memory, whichever gives fewer; a premium one per core and per 4 GiB. At least one of each."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    memory_gib = psutil.virtual_memory().total >> 30
    return {
        Size.STANDARD: max(1, min(2 * cores, memory_gib)),
        Size.PREMIUM: max(1, min(cores, memory_gib // 4)),
    }


def _check_ice_urls(urls: tuple[str, ...], shape: re.Pattern[str], example: str) -> tuple[str, ...]:
    for url in urls:
        match = shape.fullmatch(url)
        if match is None:
            raise ValueError(f"{url!r} is not of the form {example}")
        if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
            raise ValueError(f"{url!r}: the port must be 1..65535")
    return urls
