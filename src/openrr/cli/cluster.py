"""``openrr cluster status``: nodes, slots per size, sessions and the warm pool, as the service sees them.

Run it on a machine of the service: it reads the store's signing key (like ``openrr accounts``) to mint a
short-lived operator token, then asks the control plane at ``--endpoint``. With several replicas, the
slots, nodes and sessions are the whole cluster's; the warm pool is the answering replica's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import httpx

from openrr.api.cluster import CLUSTER_PATH
from openrr.cli.accounts import store_options
from openrr.cli.connection import load_config
from openrr.cli.output import console, fail, print_json, print_table
from openrr.config.settings import Settings
from openrr.domain.clock import SystemClock
from openrr.errors import OpenRRError
from openrr.services.tokens import TokenIssuer, new_signing_key
from openrr.store.sql import open_store


@click.group()
def cluster() -> None:
    """Where render servers run and how many more fit."""


@cluster.command()
@store_options
@click.option("--endpoint", envvar="OPENRR_ENDPOINT", help="Service URL. [default: from arrconfig.json]")
@click.option("--ca-cert", envvar="OPENRR_CA_CERT", help="CA bundle that signs the service's certificate.")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="arrconfig.json."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(
    data_dir: Path,
    store_url: str | None,
    endpoint: str | None,
    ca_cert: str | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Nodes, slots per size (total, free, sessions) and the warm pool."""
    if config_path is None and (data_dir / "arrconfig.json").is_file():
        config_path = data_dir / "arrconfig.json"
    config, _ = load_config(config_path)
    endpoint = endpoint or config.get("renderingSessionSettings", {}).get("remoteRenderingDomain")
    if not endpoint:
        fail("no --endpoint given and no arrconfig.json found; e.g. --endpoint https://127.0.0.1:8443")
    verify: str | bool = ca_cert or config.get("openrr", {}).get("caCertificate") or True
    try:
        token = asyncio.run(_operator_token(data_dir, store_url))
    except OpenRRError as exc:
        fail(exc.message)
    try:
        resp = httpx.get(
            endpoint.rstrip("/") + CLUSTER_PATH,
            headers={"Authorization": f"Bearer {token}"},
            verify=verify,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach the service at {endpoint}: {exc}")
    if resp.status_code != 200:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:500]
        fail(f"{resp.status_code}: {message}")
    data = resp.json()
    if as_json:
        print_json(data)
        return
    _print(data)


async def _operator_token(data_dir: Path, store_url: str | None) -> str:
    settings = Settings.load({"data_dir": data_dir, "store_url": store_url})
    store = await open_store(settings.server.resolved_store_url)
    try:
        clock = SystemClock()
        key = await store.signing_key(new_signing_key(clock.now()))
        return TokenIssuer([key], clock).issue_operator_token()
    finally:
        await store.close()


def _count(value: Any) -> str:
    return "unlimited" if value is None else str(value)


def _print(data: dict[str, Any]) -> None:
    console.print(f"host     {data['host']}")
    console.print(f"replica  {data['replica']} (answering)")
    console.print(f"reaper   {data['reaper'] or 'none'}")
    rows = []
    for size in data["sizes"]:
        pool = size["pool"] or {}
        rows.append(
            (
                size["size"],
                _count(size["total"]),
                _count(size["free"]),
                size["sessions"],
                f"{pool.get('idle', 0)}/{pool.get('target', 0)}"
                + (f" (+{pool['starting']})" if pool.get("starting") else ""),
                pool.get("taken", 0),
                pool.get("missed", 0),
            )
        )
    print_table("Slots", ("Size", "Total", "Free", "Sessions", "Pool idle/target", "From pool", "Cold"), rows)
    nodes = []
    for node in data["nodes"]:
        slots = ", ".join(
            f"{name} {_count(s['free'])} free of {_count(s['total'])}" for name, s in node["slots"].items()
        )
        nodes.append((node["address"], "alive" if node["alive"] else "dead", slots, node["nodeId"]))
    print_table("Nodes", ("Address", "State", "Slots", "Node id"), nodes)
