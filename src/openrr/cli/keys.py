"""``openrr keys``: the store's token signing keys (run on the control plane's machine, like ``accounts``).

``rotate`` adds a new key, which every control plane on the store signs with within seconds. Tokens signed
with the older keys stay valid until they expire (at most 25 hours: a render server's callback credential
lasts a lease and an hour), after which the old keys are deleted by themselves. ``rotate --revoke`` deletes
the older keys at once: every access token issued so far is refused, and so are the callback credentials
of running render servers, which stop themselves once ``--control-plane-grace`` has passed without an
answer to their heartbeats. Use it when a key may have leaked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from openrr.cli.accounts import store_options, with_store
from openrr.cli.output import console, print_json, print_table
from openrr.services.tokens import new_signing_key
from openrr.store.sql import SqlStore


def _describe(store_keys: Any) -> list[dict[str, Any]]:
    return [
        {"kid": key.kid, "created": key.created_at.isoformat(), "current": i == 0}
        for i, key in enumerate(store_keys)
    ]


@click.group()
def keys() -> None:
    """The token signing keys in the store."""


@keys.command(name="list")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(data_dir: Path, store_url: str | None, as_json: bool) -> None:
    """The signing keys, the current one first (their private halves are never shown)."""
    rows = _describe(with_store(data_dir, store_url, lambda store: store.signing_keys()))
    if as_json:
        print_json(rows)
    else:
        print_table("signing keys", ["kid", "created", "current"], [list(r.values()) for r in rows])


@keys.command()
@store_options
@click.option(
    "--revoke",
    is_flag=True,
    help="Delete the older keys now: every token they signed is refused, running sessions included.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rotate(data_dir: Path, store_url: str | None, revoke: bool, as_json: bool) -> None:
    """Make a new signing key the current one; control planes take it up within 5 seconds."""

    async def go(store: SqlStore) -> tuple[list[dict[str, Any]], int]:
        # A creation time after every existing key's, even with a clock behind theirs: it must be the newest.
        existing = await store.signing_keys()
        now = dt.datetime.now(dt.UTC)
        if existing and existing[0].created_at >= now:
            now = existing[0].created_at + dt.timedelta(microseconds=1)
        key = new_signing_key(now)
        await store.add_signing_key(key)
        dropped = await store.drop_signing_keys(key.kid) if revoke else 0
        return _describe(await store.signing_keys()), dropped

    rows, dropped = with_store(data_dir, store_url, go)
    if as_json:
        print_json({"keys": rows, "revoked": dropped})
        return
    console.print(f"new signing key  {rows[0]['kid']}")
    if revoke:
        console.print(f"revoked {dropped} older key(s): the tokens they signed are refused from now on")
    else:
        console.print("older keys stay valid until the tokens they signed expire")
