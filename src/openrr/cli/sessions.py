"""``openrr sessions``: the session commands of ARR's RenderingSession.ps1, against any openrr service."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import click

from openrr.api.v1.wire import lease_minutes
from openrr.cli.connection import Connection, connection_options, resolve_options
from openrr.cli.output import console, err_console, fail, print_json, print_table
from openrr.client.rest import ApiError, ArrClient
from openrr.errors import InvalidInput

T = TypeVar("T")
_TERMINAL = ("Ready", "Error", "Expired", "Stopped")
_COLUMNS = ["id", "status", "size", "lease (min)", "elapsed (min)", "hostname", "handshake", "inspector"]


def _row(s: dict[str, Any]) -> list[Any]:
    return [
        s.get("id"),
        s.get("status"),
        s.get("size"),
        s.get("maxLeaseTimeMinutes"),
        s.get("elapsedTimeMinutes"),
        s.get("hostname"),
        s.get("handshakePort"),
        s.get("arrInspectorPort"),
    ]


def _show(session: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(session)
        return
    # One session reads best as a list of fields: a row of eight columns truncates in a narrow terminal.
    print_table(
        f"session {session.get('id')}", ["field", "value"], list(zip(_COLUMNS, _row(session), strict=True))
    )
    if session.get("error"):
        err = session["error"]
        err_console.print(f"[red]{err.get('code')}[/]: {err.get('message')}", highlight=False)


def _lease(value: str) -> int:
    """Minutes, or an hh:mm:ss timespan as in arrconfig.json."""
    if value.isdigit():
        return int(value)
    try:
        return lease_minutes(value, field="--lease")
    except InvalidInput as exc:
        raise click.BadParameter(exc.message) from None


def _connect(opts: dict[str, Any]) -> Connection:
    return resolve_options(opts)


def _call(conn: Connection, action: Callable[[ArrClient], T]) -> T:
    try:
        with conn.client() as client:
            return action(client)
    except ApiError as exc:
        fail(f"{exc.code}: {exc.message}" if exc.status else exc.message)


@click.group()
def sessions() -> None:
    """Create, inspect, extend and stop rendering sessions."""


@sessions.command()
@connection_options
@click.option("--id", "session_id", help="Session id. [default: Sample-Session-<uuid>]")
@click.option(
    "--size",
    type=click.Choice(["standard", "premium"], case_sensitive=False),
    help="[default: from config, else standard]",
)
@click.option("--lease", help="Lease in minutes or hh:mm:ss. [default: from config, else 01:00:00]")
@click.option("--no-wait", is_flag=True, help="Return once created instead of waiting for Ready.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait for Ready.")
@click.option(
    "--poll-interval", type=float, default=2.0, show_default=True, help="Longest wait between polls."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(
    session_id: str | None,
    size: str | None,
    lease: str | None,
    no_wait: bool,
    timeout: float,
    poll_interval: float,
    as_json: bool,
    **opts: Any,
) -> None:
    """Create a session and, unless --no-wait, wait until it is Ready (exit 1 if it ends otherwise)."""
    conn = _connect(opts)
    session_id = session_id or f"Sample-Session-{uuid.uuid4()}"
    minutes = _lease(lease or conn.max_lease_time)
    wire_size = (size or conn.vm_size).capitalize()

    def go(client: ArrClient) -> dict[str, Any]:
        session, _created = client.create_session(session_id, wire_size, minutes)
        if no_wait:
            return session
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        delay = 0.1
        with (
            console.status("", spinner="dots") if sys.stdout.isatty() and not as_json else _Quiet() as status
        ):
            while session.get("status") not in _TERMINAL:
                if time.monotonic() > deadline:
                    fail(f"session {session_id} is still {session.get('status')} after {timeout:g} s")
                status.update(
                    f"session {session_id}: {session.get('status')} ({time.monotonic() - started:.0f} s)"
                )
                # Start fast (a local session is Ready in well under a second), back off to the interval.
                time.sleep(delay)
                delay = min(delay * 2, poll_interval)
                session = client.get_session(session_id)
        return session

    session = _call(conn, go)
    _show(session, as_json)
    if not no_wait and session.get("status") != "Ready":
        sys.exit(1)


class _Quiet:
    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, _text: str) -> None:
        return None


@sessions.command()
@connection_options
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def get(session_id: str, as_json: bool, **opts: Any) -> None:
    """Show one session."""
    _show(_call(_connect(opts), lambda c: c.get_session(session_id)), as_json)


@sessions.command(name="list")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool, **opts: Any) -> None:
    """List the Starting and Ready sessions of the account."""
    found = _call(_connect(opts), lambda c: list(c.list_sessions()))
    if as_json:
        print_json(found)
    else:
        print_table("active sessions", _COLUMNS, [_row(s) for s in found])


@sessions.command()
@connection_options
@click.argument("session_id")
@click.option("--lease", required=True, help="New total lease, minutes or hh:mm:ss (must be larger).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def update(session_id: str, lease: str, as_json: bool, **opts: Any) -> None:
    """Set a longer lease (the total, not an increment)."""
    minutes = _lease(lease)
    _show(_call(_connect(opts), lambda c: c.update_session(session_id, minutes)), as_json)


@sessions.command()
@connection_options
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stop(session_id: str, as_json: bool, **opts: Any) -> None:
    """Stop a session (its render server is terminated)."""

    def go(client: ArrClient) -> dict[str, Any]:
        client.stop_session(session_id)
        return client.get_session(session_id)

    _show(_call(_connect(opts), go), as_json)
