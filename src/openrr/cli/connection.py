"""Where the CLI finds the service and the credentials: flags, then ``OPENRR_*`` variables, then an
arrconfig.json in the shape of ARR's sample scripts (``--config``, ``$OPENRR_CONFIG``, ``./arrconfig.json``
or ``./openrr-data/arrconfig.json``, the first that exists).
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
            return json.loads(candidate.read_text(encoding="utf-8-sig")), candidate
        except (OSError, json.JSONDecodeError) as exc:
            raise click.UsageError(f"cannot read the config file {candidate}: {exc}") from None
    return {}, None


def _url(value: str | None, what: str) -> str | None:
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise click.UsageError(
            f"{what} '{value}' is an Azure region name; openrr needs the URL of your service "
            "(for example https://127.0.0.1:8443)."
        )
    return value.rstrip("/")


def resolve(
    endpoint: str | None,
    account_id: str | None,
    account_key: str | None,
    ca_cert: str | None,
    config_path: Path | None,
) -> Connection:
    config, found = load_config(config_path)
    account = config.get("accountSettings", {})
    rendering = config.get("renderingSessionSettings", {})
    extra = config.get("openrr", {})
    endpoint = _url(endpoint, "--endpoint") or _url(
        rendering.get("remoteRenderingDomain"), "remoteRenderingDomain"
    )
    sts = _url(account.get("arrAccountDomain"), "arrAccountDomain") or endpoint
    account_id = account_id or account.get("arrAccountId")
    account_key = account_key or account.get("arrAccountKey")
    ca_cert = ca_cert or extra.get("caCertificate") or os.environ.get("SSL_CERT_FILE") or None
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
    assert endpoint and account_id and account_key
    return Connection(
        endpoint=endpoint,
        sts_endpoint=sts if endpoint is not None and sts is not None else endpoint,
        account_id=account_id,
        account_key=account_key,
        ca_cert=ca_cert,
        vm_size=rendering.get("vmSize") or "standard",
        max_lease_time=rendering.get("maxLeaseTime") or "01:00:00",
    )


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
        "--endpoint", envvar="OPENRR_ENDPOINT", help="Service URL, e.g. https://127.0.0.1:8443."
    )(f)
    return f
