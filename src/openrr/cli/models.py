"""``openrr models``: the account's model library (``/openrr/accounts/{id}/models``).

``upload FILE|FOLDER`` sends one model file, or a folder (a .gltf with its buffers and textures, each file
under its path in the folder) as one multipart request streamed from disk, with a progress bar of the bytes
sent; ``--wait`` then follows the conversion until it ends. ``list``, ``show NAME``, ``rename OLD NEW`` and
``delete NAME`` address models by name (or id). The service and credentials are found as for every command
(``openrr.cli.connection``: flags, then ``OPENRR_*`` variables, then arrconfig.json).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from openrr.cli.connection import connection_options, resolve_options
from openrr.cli.output import console, err_console, fail, print_json, print_table
from openrr.client.rest import ApiError, ArrClient

T = TypeVar("T")
_TERMINAL = ("Succeeded", "Failed")
_COLUMNS = ["name", "status", "progress", "size", "files", "created", "id"]


class ModelClient(ArrClient):
    """The model library's operations on top of the session client."""

    def _models(self, suffix: str = "") -> str:
        return f"{self.endpoint}/openrr/accounts/{self.account_id}/models{suffix}"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def upload(self, files: list[tuple[str, Any]], name: str | None) -> dict[str, Any]:
        """``files``: (name in the upload, an open binary file), streamed as they are read."""
        parts = [("file", (relative, handle, "application/octet-stream")) for relative, handle in files]
        data = {"name": name} if name else None
        resp = self._send("POST", self._models(), files=parts, data=data, headers=self._auth(), timeout=None)
        return dict(resp.json())

    def list_models(self) -> list[dict[str, Any]]:
        return list(self._send("GET", self._models(), headers=self._auth()).json()["models"])

    def get_model(self, model_id: str) -> dict[str, Any]:
        return dict(self._send("GET", self._models(f"/{model_id}"), headers=self._auth()).json())

    def rename_model(self, model_id: str, name: str) -> dict[str, Any]:
        resp = self._send("PATCH", self._models(f"/{model_id}"), json={"name": name}, headers=self._auth())
        return dict(resp.json())

    def delete_model(self, model_id: str) -> None:
        self._send("DELETE", self._models(f"/{model_id}"), headers=self._auth())

    def find(self, name: str) -> dict[str, Any]:
        """The model named ``name`` (or with that id)."""
        found = [m for m in self.list_models() if name in (m["name"], m["id"])]
        if not found:
            raise ApiError(404, "ModelNotFound", f"No model named '{name}' in this account.")
        return found[0]


class _Counted:
    """A file whose reads advance ``advance`` (the upload bar); httpx takes its length from ``fileno``."""

    def __init__(self, handle: BinaryIO, advance: Callable[[int], None]) -> None:
        self._handle = handle
        self._advance = advance

    def fileno(self) -> int:
        return self._handle.fileno()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._advance(len(data))
        return data


def _call(opts: dict[str, Any], action: Callable[[ModelClient], T]) -> T:
    conn = resolve_options(opts)
    client = ModelClient(
        conn.endpoint,
        conn.account_id,
        conn.account_key,
        sts_endpoint=conn.sts_endpoint,
        verify=conn.ca_cert or True,
    )
    try:
        return action(client)
    except ApiError as exc:
        fail(f"{exc.code}: {exc.message}" if exc.status else exc.message)
    finally:
        client.close()


def _files(path: Path) -> list[tuple[str, Path]]:
    """(name in the upload, local file): the file itself, or every file below the folder by its path there."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise click.BadParameter(f"{path} is neither a file nor a folder", param_hint="FILE|FOLDER")
    found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not found:
        raise click.BadParameter(f"the folder {path} has no files", param_hint="FILE|FOLDER")
    return [(p.relative_to(path).as_posix(), p) for p in found]


def _row(m: dict[str, Any]) -> list[Any]:
    """A model's table cells. The text is the server's and the user's (a name may hold "[bold]" or "[/]"):
    escaped, so that rich's markup neither restyles it nor fails on it."""
    progress = f"{round(float(m.get('progress', 0)) * 100)}%"
    cells = [m["name"], m["status"], progress, _size(m["size"]), m["files"], m["createdOn"], m["id"]]
    return [escape(str(cell)) for cell in cells]


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    amount = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            break
    return f"{amount:.1f} {unit}"


def _show(m: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(m)
        return
    title = f"model {escape(str(m['name']))}"
    print_table(title, ["field", "value"], list(zip(_COLUMNS, _row(m), strict=True)))
    stats = m.get("statistics") or {}
    if stats:
        rows = [(escape(str(key)), escape(str(value))) for key, value in stats.items() if value is not None]
        print_table("statistics", ["statistic", "value"], rows)
    if m.get("error"):
        error = m["error"]
        err_console.print(
            f"[red]{escape(str(error['code']))}[/]: {escape(str(error['message']))}", highlight=False
        )
    elif m.get("url"):
        console.print(
            f"load it in a session of this account as: {m['url']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@click.group()
def models() -> None:
    """The account's model library: upload, list, show, rename, delete."""


@models.command()
@connection_options
@click.argument("path", metavar="FILE|FOLDER", type=click.Path(exists=True, path_type=Path))
@click.option("--name", help="The model's name (default: the model file's name).")
@click.option("--wait", is_flag=True, help="Wait until the conversion ends (exit 1 unless it succeeds).")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to wait with --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def upload(path: Path, name: str | None, wait: bool, timeout: float, as_json: bool, **opts: Any) -> None:
    """Upload a model file, or a folder (a .gltf with its buffers and textures), and convert it."""
    files = _files(path)
    total = sum(local.stat().st_size for _, local in files)
    quiet = as_json or not sys.stderr.isatty()

    def go(client: ModelClient) -> dict[str, Any]:
        with contextlib.ExitStack() as stack:
            bar = stack.enter_context(
                Progress(
                    TextColumn("upload"),
                    BarColumn(),
                    DownloadColumn(),
                    TimeElapsedColumn(),
                    console=err_console,
                    disable=quiet,
                    transient=True,
                )
            )
            task = bar.add_task("upload", total=total)
            handles = [
                (relative, _Counted(stack.enter_context(local.open("rb")), lambda n: bar.advance(task, n)))
                for relative, local in files
            ]
            model = client.upload(handles, name)
        if not quiet:
            err_console.print(
                f"uploaded {len(files)} file(s), {_size(total)}: {model['name']}",
                highlight=False,
                markup=False,
            )
        return _wait(client, model, timeout, quiet) if wait else model

    model = _call(opts, go)
    _show(model, as_json)
    if wait and model["status"] != "Succeeded":
        if model.get("log") and not as_json:
            err_console.print(model["log"].rstrip()[-4000:], highlight=False, markup=False)
        sys.exit(1)


def _wait(client: ModelClient, model: dict[str, Any], timeout: float, quiet: bool) -> dict[str, Any]:
    """Poll the model until its conversion ends, with a bar of its progress; then its full details."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    with Progress(
        TextColumn("conversion {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task(escape(str(model["status"])), total=1.0)
        while model["status"] not in _TERMINAL:
            if time.monotonic() > deadline:
                fail(f"the model {model['name']} is still {model['status']} after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            model = client.get_model(model["id"])
            bar.update(task, description=escape(str(model["status"])), completed=model["progress"])
    return client.get_model(model["id"])


@models.command(name="list")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool, **opts: Any) -> None:
    """List the account's models."""
    _list(_call(opts, lambda c: c.list_models()), as_json)


def _list(found: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(found)
    else:
        print_table("models", _COLUMNS, [_row(m) for m in found])


@models.command()
@connection_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name: str, as_json: bool, **opts: Any) -> None:
    """Show a model: status, statistics, and the conversion's log with --json."""
    _show(_call(opts, lambda c: c.get_model(c.find(name)["id"])), as_json)


@models.command()
@connection_options
@click.argument("old")
@click.argument("new")
def rename(old: str, new: str, **opts: Any) -> None:
    """Rename a model."""
    renamed = _call(opts, lambda c: c.rename_model(c.find(old)["id"], new))
    console.print(f"renamed {old} to {renamed['name']}", highlight=False, markup=False)


@models.command()
@connection_options
@click.argument("name")
def delete(name: str, **opts: Any) -> None:
    """Delete a model: its upload and its converted asset."""

    def go(client: ModelClient) -> None:
        client.delete_model(client.find(name)["id"])

    _call(opts, go)
    console.print(f"deleted {name}", highlight=False, markup=False)
