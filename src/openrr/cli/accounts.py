"""``openrr accounts``: manage accounts directly in the store (run on the control plane's machine)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from openrr.cli.output import console, fail, print_json, print_table
from openrr.config.settings import Settings
from openrr.domain.clock import SystemClock
from openrr.errors import OpenRRError
from openrr.private import private_dir
from openrr.services.accounts import AccountService
from openrr.store.sql import SqlStore, open_store

T = TypeVar("T")


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--store-url", envvar="OPENRR_STORE_URL", help="Store URL (default: SQLite in the data directory)."
    )(f)
    f = click.option(
        "--data-dir",
        envvar="OPENRR_DATA_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("openrr-data"),
        show_default=True,
    )(f)
    return f


def with_store(data_dir: Path, store_url: str | None, action: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Run ``action`` on the service's store (the CLI commands that work on it directly); errors end the
    command with their message."""

    async def go() -> T:
        settings = Settings.load({"data_dir": data_dir, "store_url": store_url})
        private_dir(settings.server.data_dir)  # as openrr serve makes it: its user's only (openrr.private)
        store = await open_store(settings.server.resolved_store_url)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except OpenRRError as exc:
        fail(exc.message)


def _run(data_dir: Path, store_url: str | None, action: Callable[[AccountService], Awaitable[T]]) -> T:
    return with_store(data_dir, store_url, lambda store: action(AccountService(store, SystemClock())))


@click.group()
def accounts() -> None:
    """Create, list and re-key accounts."""


@accounts.command()
@store_options
@click.option("--name", default="", help="A label for the account.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(data_dir: Path, store_url: str | None, name: str, as_json: bool) -> None:
    """Create an account and print its id and both keys (shown only this once)."""
    created = _run(data_dir, store_url, lambda svc: svc.create(name))
    if as_json:
        print_json(created.as_json())
        return
    console.print(f"account id     {created.account_id}")
    console.print(f"primary key    {created.primary_key}")
    console.print(f"secondary key  {created.secondary_key}")
    console.print("[dim]The keys are stored hashed; keep them now.[/]")


@accounts.command(name="list")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(data_dir: Path, store_url: str | None, as_json: bool) -> None:
    """List accounts (ids and names; keys are never shown)."""
    found = _run(data_dir, store_url, lambda svc: svc.list())
    rows = [{"accountId": a.id, "name": a.name, "created": a.created_at.isoformat()} for a in found]
    if as_json:
        print_json(rows)
    else:
        print_table("accounts", ["account id", "name", "created"], [list(r.values()) for r in rows])


@accounts.command(name="rotate-key")
@store_options
@click.argument("account_id")
@click.argument("slot", type=click.Choice(["primary", "secondary"]))
@click.option(
    "--revoke-tokens",
    is_flag=True,
    help="Also refuse every access token issued so far (within 5 s on every control plane); clients must "
    "ask the STS again, with the other key or the new one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rotate_key(
    data_dir: Path, store_url: str | None, account_id: str, slot: str, revoke_tokens: bool, as_json: bool
) -> None:
    """Replace one key of ACCOUNT_ID with a new one; the other key keeps working meanwhile."""
    key = _run(data_dir, store_url, lambda svc: svc.rotate_key(account_id, slot, revoke_tokens=revoke_tokens))
    if as_json:
        print_json({"accountId": account_id, "slot": slot, "key": key, "tokensRevoked": revoke_tokens})
    else:
        console.print(f"new {slot} key  {key}")
        if revoke_tokens:
            console.print("access tokens issued before now are refused")


@accounts.command(name="link-storage")
@store_options
@click.argument("account_id")
@click.argument("storage")
@click.option(
    "--key-stdin",
    is_flag=True,
    help="Read the storage key from standard input (STORAGE is then NAME or NAME@ENDPOINT), so that it "
    "shows neither in the process list nor in the shell's history.",
)
def link_storage(
    data_dir: Path, store_url: str | None, account_id: str, storage: str, key_stdin: bool
) -> None:
    """Link a storage account to ACCOUNT_ID: STORAGE is NAME=KEY[@ENDPOINT] or NAME@ENDPOINT (SAS only).

    Conversions of that account (and of no other) may then use its containers without a SAS. Linking a
    name again replaces the link.
    """
    if key_stdin:
        if "=" in storage:
            fail(
                "With --key-stdin, give STORAGE as NAME or NAME@ENDPOINT: the key comes from standard input."
            )
        key = sys.stdin.readline().strip()
        if not key:
            fail("No key was read from standard input.")
        name, at, endpoint = storage.partition("@")
        storage = f"{name}={key}{at}{endpoint}"
    linked = _run(data_dir, store_url, lambda svc: svc.link_storage(account_id, storage))
    console.print(f"linked {linked} to account {account_id}")


@accounts.command(name="unlink-storage")
@store_options
@click.argument("account_id")
@click.argument("name")
def unlink_storage(data_dir: Path, store_url: str | None, account_id: str, name: str) -> None:
    """Remove the storage account NAME from ACCOUNT_ID's linked storage."""
    _run(data_dir, store_url, lambda svc: svc.unlink_storage(account_id, name))
    console.print(f"unlinked {name} from account {account_id}")


@accounts.command(name="list-storage")
@store_options
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_storage(data_dir: Path, store_url: str | None, account_id: str, as_json: bool) -> None:
    """List ACCOUNT_ID's linked storage: names, endpoints and whether a key is kept (never the key)."""
    found = _run(data_dir, store_url, lambda svc: svc.linked_storage(account_id))
    rows = [{"name": a.name, "endpoint": a.blob_endpoint, "hasKey": a.key is not None} for a in found]
    if as_json:
        print_json(rows)
    else:
        table = [[r["name"], r["endpoint"], "key" if r["hasKey"] else "SAS only"] for r in rows]
        print_table("linked storage", ["name", "endpoint", "credential"], table)
