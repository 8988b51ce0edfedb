"""Service settings for ``openrr serve``: one validated model, fed by CLI flags and ``OPENRR_*`` variables.

``Settings.load`` reports every invalid setting at once (pydantic collects them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from openrr.errors import InvalidInput

Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[float, Field(gt=0)]


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
    teraflops_standard: Positive = 8.1
    teraflops_premium: Positive = 16.2
    dev_account: bool = True
    log_level: str = Field(default="info", pattern="^(critical|error|warning|info|debug)$")

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

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        if (self.cert is None) != (self.key is None):
            raise ValueError("--cert and --key must be given together")
        if self.insecure_http and self.cert is not None:
            raise ValueError("--insecure-http cannot be combined with --cert/--key")
        return self

    @classmethod
    def load(cls, values: dict[str, Any]) -> Settings:
        """Validate, raising InvalidInput whose message lists every problem on its own line."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                where = "--" + "-".join(str(p) for p in err["loc"]).replace("_", "-") if err["loc"] else ""
                msg = err["msg"].removeprefix("Value error, ")
                lines.append(f"{where}: {msg}" if where else msg)
            raise InvalidInput("\n".join(lines)) from None

    # ---- derived paths and URLs ---------------------------------------------------------------------------
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
