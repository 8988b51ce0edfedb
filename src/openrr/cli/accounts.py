"""``openrr accounts``: manage accounts directly in the store (run on the control plane's machine)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from openrr.cli.output import console, fail, print_json, print_table
from openrr.config import Settings
from openrr.domain.clock import SystemClock
from openrr.errors import OpenRRError
from openrr.private import private_dir
from openrr.services.accounts import AccountService
from openrr.store.sql import open_store

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


def _run(data_dir: Path, store_url: str | None, action: Callable[[AccountService], Awaitable[T]]) -> T:
    async def go() -> T:
        settings = Settings.load({"data_dir": data_dir, "store_url": store_url})
        private_dir(settings.data_dir)  # as openrr serve makes it: its user's only (openrr.private)
        store = await open_store(settings.resolved_store_url)
        try:
            return await action(AccountService(store, SystemClock()))
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except OpenRRError as exc:
        fail(exc.message)


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rotate_key(data_dir: Path, store_url: str | None, account_id: str, slot: str, as_json: bool) -> None:
    """Replace one key of ACCOUNT_ID with a new one; the other key keeps working meanwhile."""
    key = _run(data_dir, store_url, lambda svc: svc.rotate_key(account_id, slot))
    if as_json:
        print_json({"accountId": account_id, "slot": slot, "key": key})
    else:
        console.print(f"new {slot} key  {key}")
