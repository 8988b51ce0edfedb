"""Where the CLI finds the service and the credentials.

Each field comes from the first of: a flag, its ``OPENRR_*`` variable, an arrconfig.json in the shape of ARR's
sample scripts (``--config``, ``$OPENRR_CONFIG``, ``./arrconfig.json`` or ``./openrr-data/arrconfig.json``,
the first that exists). A file describes one service: its account domain (where tokens are asked for), its CA
certificate and its account key apply only when the endpoint in use is that file's own. So an endpoint given
as a flag or variable gets the token request and the key too, never the file's domain, and a file's key is
never sent to a server the file does not name.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import click

from openrr.client.rest import ArrClient

_DEFAULT_CONFIGS = (Path("arrconfig.json"), Path("openrr-data") / "arrconfig.json")


@dataclasses.dataclass(frozen=True)
class Connection:
    endpoint: str
    sts_endpoint: str
    account_id: str
    account_key: str
    ca_cert: str | None
    vm_size: str = "standard"
    max_lease_time: str = "01:00:00"

    def client(self) -> ArrClient:
        return ArrClient(
            self.endpoint,
            self.account_id,
            self.account_key,
            sts_endpoint=self.sts_endpoint,
            verify=self.ca_cert or True,
        )


def load_config(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    candidates = [path] if path is not None else [p for p in _DEFAULT_CONFIGS if p.is_file()]
    for candidate in candidates:
        try:
            config = json.loads(candidate.read_text(encoding="utf-8-sig"))
        except (OSError, json.JSONDecodeError) as exc:
            raise click.UsageError(f"cannot read the config file {candidate}: {exc}") from None
        if not isinstance(config, dict):
            raise click.UsageError(f"the config file {candidate} is not a JSON object")
        return config, candidate
    return {}, None


def _url(value: object, what: str) -> str | None:
    if not value:
        return None
    if not isinstance(value, str):
        raise click.UsageError(f"{what} must be a string, not {value!r}")
    if not value.startswith(("http://", "https://")):
        raise click.UsageError(
            f"{what} '{value}' is an Azure region name; openrr needs the URL of your service "
            "(for example https://127.0.0.1:8443)."
        )
    return value.rstrip("/")


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def resolve_options(opts: dict[str, Any]) -> Connection:
    """The connection of a command declared with ``@connection_options``."""
    return resolve(
        opts["endpoint"],
        opts["account_id"],
        opts["account_key"],
        opts["ca_cert"],
        opts["config_path"],
        account_domain=opts.get("account_domain"),
    )


def resolve(
    endpoint: str | None,
    account_id: str | None,
    account_key: str | None,
    ca_cert: str | None,
    config_path: Path | None,
    *,
    account_domain: str | None = None,
) -> Connection:
    """Flags and variables arrive here already merged by click (a flag beats its variable); the file fills
    in what they leave empty, within the limits in the module docstring."""
    config, found = load_config(config_path)
    account = _section(config, "accountSettings")
    rendering = _section(config, "renderingSessionSettings")
    extra = _section(config, "openrr")
    file_endpoint = _url(rendering.get("remoteRenderingDomain"), "remoteRenderingDomain")
    file_domain = _url(account.get("arrAccountDomain"), "arrAccountDomain") or file_endpoint
    endpoint = _url(endpoint, "--endpoint") or file_endpoint
    # The file's account domain pairs with the file's endpoint only: for any other endpoint the token is
    # asked of that endpoint (openrr serves the STS and the session API on one origin).
    from_file = endpoint is not None and endpoint == file_endpoint
    sts = _url(account_domain, "--account-domain") or (file_domain if from_file else None) or endpoint
    account_id = account_id or _text(account.get("arrAccountId"))
    file_key = _text(account.get("arrAccountKey"))
    if not account_key and file_key:
        # A file that names no service lends its key to the endpoint the user named.
        if file_domain is not None and sts is not None and sts not in (file_domain, file_endpoint):
            raise click.UsageError(
                f"the account key in {found} is for {file_domain}, not for {sts}; "
                "give --account-key (or OPENRR_ACCOUNT_KEY) for that service."
            )
        account_key = file_key
    file_ca = _text(extra.get("caCertificate")) if from_file else None
    ca_cert = ca_cert or file_ca or os.environ.get("SSL_CERT_FILE") or None
    missing = [
        name
        for name, value in (
            ("--endpoint", endpoint),
            ("--account-id", account_id),
            ("--account-key", account_key),
        )
        if not value
    ]
    if missing:
        where = f" (read {found})" if found else " (no arrconfig.json found)"
        raise click.UsageError(
            f"missing {', '.join(missing)}{where}; give flags, OPENRR_* variables or --config."
        )
    assert endpoint
    assert sts
    assert account_id
    assert account_key
    return Connection(
        endpoint=endpoint,
        sts_endpoint=sts,
        account_id=account_id,
        account_key=account_key,
        ca_cert=ca_cert,
        vm_size=_text(rendering.get("vmSize")) or "standard",
        max_lease_time=_text(rendering.get("maxLeaseTime")) or "01:00:00",
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def connection_options(f: Any) -> Any:
    f = click.option(
        "--config",
        "config_path",
        envvar="OPENRR_CONFIG",
        type=click.Path(dir_okay=False, path_type=Path),
        help="arrconfig.json to read.",
    )(f)
    f = click.option(
        "--ca-cert", envvar="OPENRR_CA_CERT", help="CA bundle that signs the service's certificate."
    )(f)
    f = click.option("--account-key", envvar="OPENRR_ACCOUNT_KEY", help="Account key.")(f)
    f = click.option("--account-id", envvar="OPENRR_ACCOUNT_ID", help="Account id.")(f)
    f = click.option(
        "--account-domain",
        envvar="OPENRR_ACCOUNT_DOMAIN",
        help="URL of the STS that issues tokens. [default: the endpoint; a config file's arrAccountDomain "
        "only with that file's endpoint]",
    )(f)
    f = click.option(
        "--endpoint", envvar="OPENRR_ENDPOINT", help="Service URL, e.g. https://127.0.0.1:8443."
    )(f)
    return f
