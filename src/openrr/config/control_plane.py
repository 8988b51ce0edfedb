"""Settings of the control plane itself: where it listens and keeps its data, how sessions live, its limits.

One model per group of ``openrr serve`` options (``openrr.config.settings.Settings`` holds them together).
A field's name is its option's name (``data_dir``: ``--data-dir``, ``OPENRR_DATA_DIR``), its default is the
option's, and its ``Option`` holds the help: ``openrr serve --help`` and the README's table
(``scripts/options-table``) are both written from these declarations. Field validators check one value;
checks that combine settings live in ``Settings``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from openrr.config.option import Option, Port, Positive, SettingsGroup

# An origin as browsers send it: scheme, host, optional port; no path, no wildcard, no userinfo.
_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)(:[0-9]{1,5})?$")


def web_origin(origin: str) -> str:
    """``origin`` lower-cased, as a browser's ``Origin`` header carries it; ValueError for anything else."""
    value = origin.strip().lower()
    if not _ORIGIN.match(value):
        raise ValueError(
            f"{origin!r} is not an origin: give scheme://host[:port] (e.g. https://app.example.com), "
            "without a path or a wildcard"
        )
    port = value.rpartition(":")[2] if value.count(":") > 1 and not value.endswith("]") else None
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"{origin!r} has a port outside 1..65535")
    # Browsers leave the scheme's default port out of Origin: so must the list, or it never matches.
    for scheme, default in (("http://", ":80"), ("https://", ":443")):
        if value.startswith(scheme) and value.endswith(default):
            return value.removesuffix(default)
    return value


class ServerSettings(SettingsGroup):
    """Server: where the control plane listens, its TLS, store, data and logs."""

    host: Annotated[str, Option("Address to listen on.")] = "127.0.0.1"
    port: Annotated[Port, Option("Port to listen on.")] = 8443
    data_dir: Annotated[
        Path,
        Option(
            "Store, certificates, logs.",
            default_text="./openrr-data",
            path="dir",
            doc="SQLite store, `tls/`, `logs/sessions/<account>/<session>.log`, `arrconfig.json`.",
        ),
    ] = Path("openrr-data")
    store_url: Annotated[
        str | None,
        Option("sqlite:///FILE or postgresql://USER:PASS@HOST/DB.", default_text="SQLite in the data dir"),
    ] = None
    insecure_http: Annotated[
        bool,
        Option("Serve plain HTTP (for a proxy that terminates TLS); the stock Azure SDK needs HTTPS."),
    ] = False
    cert: Annotated[
        Path | None,
        Option(
            "TLS certificate (PEM).",
            default_text="self-signed in DATA_DIR/tls",
            doc="The development certificate is created on first start.",
        ),
    ] = None
    key: Annotated[Path | None, Option("TLS private key (PEM), with --cert.")] = None
    public_url: Annotated[
        str | None,
        Option("URL render servers use to reach this service.", default_text="derived from host and port"),
    ] = None
    dev_account: Annotated[
        bool, Option("On a store without accounts, create one and write DATA_DIR/arrconfig.json.")
    ] = True
    metrics: Annotated[
        bool,
        Option(
            "Serve Prometheus metrics at /metrics, unauthenticated: aggregate numbers only, no account or "
            "session ids.",
            default_text="on",
            doc="See below.",
        ),
    ] = True
    log_level: Annotated[
        str,
        Field(pattern="^(critical|error|warning|info|debug)$"),
        Option("critical, error, warning, info or debug."),
    ] = "info"
    list_page_size: Annotated[
        int, Field(ge=1, le=1000), Option("Sessions per list page before @nextLink.")
    ] = 100
    cors_origins: Annotated[
        tuple[str, ...],
        Option(
            "Origin (scheme://host[:port]) whose pages may call the session, connectToken and offer "
            "routes with a bearer token (CORS); repeatable.",
            default_text="none",
            flag="--cors-origin",
            doc="For pages that embed `ui/js/openrr.js` from another origin. Only the listed origins, never "
            "a wildcard, and no cookies: the token travels in the Authorization header. The STS is never "
            "opened to them: keep account keys on a server.",
        ),
    ] = ()

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

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(web_origin(origin) for origin in origins)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return url

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"

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


class SessionSettings(SettingsGroup):
    """Sessions: their lifecycle timings, leases and keeping."""

    start_timeout: Annotated[Positive, Option("Seconds a session may stay Starting before Error.")] = 60.0
    stop_grace: Annotated[Positive, Option("Seconds between SIGTERM and SIGKILL of a render server.")] = 5.0
    reaper_interval: Annotated[Positive, Option("Seconds between lease/health passes.")] = 1.0
    retention_days: Annotated[Positive, Option("Days ended sessions stay queryable.")] = 30.0
    purge_interval: Positive = 3600.0  # seconds between purges of ended sessions past retention
    max_lease_minutes: Annotated[
        int,
        Field(ge=1, le=1440),
        Option("Longest lease a session may have, at create or by renewals, 1..1440."),
    ] = 1440
    idle_stop_minutes: Annotated[
        Positive | None,
        Option("Stop a session with no client connected for this long.", default_text="never"),
    ] = None
    # Render servers heartbeat this often and stop themselves after this long without an answer.
    heartbeat_interval: Annotated[
        float,
        Field(ge=0.05, le=3600),
        Option(
            "Seconds between a render server's heartbeats.", doc="The answer carries the session's lease end."
        ),
    ] = 10.0
    control_plane_grace: Annotated[
        float,
        Field(gt=0, le=7 * 86400),
        Option(
            "Seconds a render server keeps serving while this service does not answer its heartbeats; then "
            "it stops itself (its session ends as Error)."
        ),
    ] = 600.0
    connect_token_minutes: Annotated[
        int,
        Field(ge=1, le=1440),
        Option(
            "Longest life of a connect token (a client's credential for one session's render server; never "
            "past the lease), 1..1440."
        ),
    ] = 30
    # What a Ready session reports as its render server's compute, by size (ARR's numbers).
    teraflops_standard: Positive = 8.1
    teraflops_premium: Positive = 16.2


class LimitSettings(SettingsGroup):
    """Limits: throttling, per-account quotas, and request bounds (see openrr.api.limits)."""

    throttle_rate: Annotated[
        float,
        Field(ge=0),
        Option("Data-plane requests per second per account (0 = off).", doc='See "Throttling".'),
    ] = 2.0
    throttle_burst: Annotated[int, Field(ge=1), Option("Data-plane burst per account.")] = 60
    sts_throttle_rate: Annotated[
        float, Field(ge=0), Option("Token requests per second per account (0 = off).")
    ] = 0.5
    sts_throttle_burst: Annotated[int, Field(ge=1), Option("Token request burst per account.")] = 20
    sts_failure_rate: Annotated[
        float,
        Field(ge=0),
        Option(
            "Failed key checks per second per client address before the STS answers 429 without checking "
            "(0 = off)."
        ),
    ] = 0.2
    sts_failure_burst: Annotated[int, Field(ge=1), Option("Failed key check burst per client address.")] = 10
    max_sessions_per_account: Annotated[
        int, Field(ge=1), Option("Active sessions an account may have at once (403 QuotaExceeded).")
    ] = 10
    max_conversions_per_account: Annotated[
        int,
        Field(ge=1),
        Option(
            "Conversions an account may have queued or running at once (403 QuotaExceeded); queued ones "
            "start in turn across accounts.",
            doc="Fewest running first, then the account that started one least recently; not first come, "
            "first served.",
        ),
    ] = 20
    # Request bounds, enforced before a route (or authentication) does any work: see openrr.api.limits.
    max_body_kib: Annotated[
        int,
        Field(ge=1, le=65536),
        Option(
            "Largest request body of the JSON APIs, in KiB.",
            doc="Larger ones get 413 in the API's error format before authentication, parsing or reading (a "
            "declared `Content-Length` is refused unread; a chunked body is read only up to the limit).",
        ),
    ] = 64
    max_offer_kib: Annotated[
        int,
        Field(ge=1, le=65536),
        Option(
            "Largest WebRTC offer the browser pages' relay takes, in KiB.",
            doc="Render servers take offers up to 256 KiB and no body on their inspector.",
        ),
    ] = 512
    max_upload_mib: Annotated[
        int,
        Field(ge=1, le=1048576),
        Option(
            "Largest model upload (all its files together, in one request to the model library), in MiB.",
            doc="Only the upload route takes more than `--max-body-kib`; its body is streamed to disk as it "
            "arrives, never held whole in memory, and refused with 413 once past the limit.",
        ),
    ] = 1024
    max_library_mib: Annotated[
        int,
        Field(ge=1),
        Option(
            "Uploads and converted assets an account's model library may hold in all, in MiB (403 "
            "QuotaExceeded past it).",
            doc="Counted from the sizes uploaded, uploads in progress included (in each control-plane "
            "replica: replicas do not see each other's), and the conversions' outputs on disk. Deleting "
            "models frees it.",
        ),
    ] = 10240
    max_library_models: Annotated[
        int,
        Field(ge=1, le=1000000),
        Option(
            "Models an account's model library may hold, 1..1000000 (403 QuotaExceeded past it).",
            doc="Uploads in progress count; deleting models frees places.",
        ),
    ] = 1000
    max_upload_files: Annotated[
        int,
        Field(ge=1, le=10000),
        Option(
            "Files one model upload may have (a .gltf with its buffers and textures), 1..10000.",
            doc="Past it, 413.",
        ),
    ] = 256
    max_header_kib: Annotated[
        int,
        Field(ge=1, le=1024),
        Option(
            "Largest request line and headers of one request, in KiB.",
            doc="Past it, 431 and the connection closes.",
        ),
    ] = 32
    max_header_fields: Annotated[
        int,
        Field(ge=8, le=1000),
        Option(
            "Most header fields of one request.",
            doc="Past it, 431 and the connection closes (render servers: 8 KiB a field, 100 fields, 400 past "
            "either).",
        ),
    ] = 100
