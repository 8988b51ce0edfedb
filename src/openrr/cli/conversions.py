"""``openrr conversions``: ARR's Conversion.ps1 against any openrr service.

``create`` does what the script does without switches: upload a local folder to the input container, start
the conversion, poll it with a progress display, print the output asset's URI. Settings come from flags,
then ``assetConversionSettings`` in arrconfig.json (``storageAccountName``, ``blobInputContainerName``,
``blobOutputContainerName``, ``localAssetDirectoryPath``, ``inputFolderPath``, ``inputAssetPath``,
``outputFolderPath``, ``outputAssetFileName``).

Containers are Azure blob containers (``https://ACCOUNT.blob.core.windows.net/CONTAINER``, or any endpoint
with ``--storage-endpoint``, such as Azurite's) or the service's ``file:///PATH`` containers. Uploading to a
blob container needs the account key (``--storage-key``, as the script got it from Azure); with
``--use-container-sas`` the key also signs the SAS the request carries (input read/list, output write, 24 h).
Without SAS the storage account must be linked to the caller's account (``openrr accounts link-storage``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import click
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from openrr.cli.connection import Connection, connection_options, load_config, resolve_options
from openrr.cli.output import console, err_console, fail, print_json, print_table
from openrr.client.rest import ApiError, ArrClient
from openrr.extras import MissingExtra, needs

T = TypeVar("T")
_TERMINAL = ("Succeeded", "Failed", "Cancelled")
_COLUMNS = ["id", "status", "created", "input", "output", "error"]


class ConversionClient(ArrClient):
    """The 2021-01-01 conversion operations on top of the session client."""

    def __enter__(self) -> ConversionClient:
        return self

    def create_conversion(self, conversion_id: str, settings: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        resp = self._call("PUT", f"/conversions/{conversion_id}", {"settings": settings})
        return dict(resp.json()), resp.status_code == 201

    def get_conversion(self, conversion_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/conversions/{conversion_id}").json())

    def list_conversions(self) -> Iterator[dict[str, Any]]:
        return self._pages("/conversions", "conversions")


def _client(conn: Connection) -> ConversionClient:
    return ConversionClient(
        conn.endpoint,
        conn.account_id,
        conn.account_key,
        sts_endpoint=conn.sts_endpoint,
        verify=conn.ca_cert or True,
    )


def _call(conn: Connection, action: Callable[[ConversionClient], T]) -> T:
    try:
        with _client(conn) as client:
            return action(client)
    except ApiError as exc:
        fail(f"{exc.code}: {exc.message}" if exc.status else exc.message)


def _connect(opts: dict[str, Any]) -> Connection:
    return resolve_options(opts)


def _location(c: dict[str, Any], which: str) -> str:
    loc = c.get("settings", {}).get(which, {})
    name = loc.get("relativeInputAssetPath") or loc.get("outputAssetFilename") or ""
    return f"{loc.get('storageContainerUri', '')}/{loc.get('blobPrefix', '')}{name}"


def _row(c: dict[str, Any]) -> list[Any]:
    error = c.get("error") or {}
    return [
        c.get("id"),
        c.get("status"),
        c.get("creationTime"),
        _location(c, "inputLocation"),
        (c.get("output") or {}).get("outputAssetUri") or _location(c, "outputLocation"),
        f"{error.get('code')}: {error.get('message')}" if error else "",
    ]


def _show(c: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(c)
        return
    print_table(f"conversion {c.get('id')}", ["field", "value"], list(zip(_COLUMNS, _row(c), strict=True)))
    if c.get("error"):
        err_console.print(f"[red]{c['error'].get('code')}[/]: {c['error'].get('message')}", highlight=False)
    elif c.get("status") == "Succeeded":
        console.print(c["output"]["outputAssetUri"], highlight=False, soft_wrap=True)


def _poll(
    client: ConversionClient, conversion: dict[str, Any], timeout: float, interval: float, quiet: bool
) -> dict[str, Any]:
    """Poll until the conversion ends, with a live status line (unless quiet)."""
    cid = conversion["id"]
    deadline = time.monotonic() + timeout
    delay = 0.2
    columns = (SpinnerColumn(), TextColumn("conversion {task.description}"), TimeElapsedColumn())
    with Progress(
        *columns, console=err_console, disable=quiet or not sys.stderr.isatty(), transient=True
    ) as bar:
        task = bar.add_task(f"{cid}: {conversion.get('status')}", total=None)
        while conversion.get("status") not in _TERMINAL:
            if time.monotonic() > deadline:
                fail(f"conversion {cid} is still {conversion.get('status')} after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, interval)  # start fast, back off to the interval (the script: 10 s)
            conversion = client.get_conversion(cid)
            bar.update(task, description=f"{cid}: {conversion.get('status')}")
    return conversion


# ---- storage, on this machine ---------------------------------------------------------------------------
def _container_uri(
    explicit: str | None, account: str | None, endpoint: str | None, container: str | None, what: str
) -> str:
    if explicit:
        return explicit.rstrip("/")
    if not account or not container:
        raise click.UsageError(
            f"no {what} container: give --{what}-container, or the storage account and container names "
            "(flags or assetConversionSettings in arrconfig.json)"
        )
    base = (endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")
    return f"{base}/{container}"


def _account_of(uri: str, given: str | None) -> str:
    if given:
        return given
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if host.endswith(".blob.core.windows.net"):
        return host.split(".", 1)[0]
    return parts.path.strip("/").split("/")[0]  # path-style (Azurite): /ACCOUNT/CONTAINER


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _upload(local: Path, container: str, prefix: str, credential: Any, quiet: bool) -> int:
    """Upload every file under ``local`` to ``container`` under ``prefix``; returns how many."""
    files = _files(local)
    if not files:
        raise click.UsageError(f"{local} has no files to upload")
    total = sum(p.stat().st_size for p in files)
    columns = (TextColumn("upload"), BarColumn(), DownloadColumn(), TextColumn("{task.description}"))
    with Progress(
        *columns, console=err_console, disable=quiet or not sys.stderr.isatty(), transient=True
    ) as bar:
        task = bar.add_task("", total=total)
        if container.lower().startswith("file:"):
            folder = Path(unquote(urlsplit(container).path))
            if not folder.is_dir():
                raise click.UsageError(f"the file: container {folder} does not exist")
            for path in files:
                target = folder / prefix / path.relative_to(local).as_posix()
                target.parent.mkdir(parents=True, exist_ok=True)
                bar.update(task, description=path.name)
                shutil.copyfile(path, target)
                bar.advance(task, path.stat().st_size)
            return len(files)
        try:
            with needs("azure", "Uploading to an Azure Blob Storage container"):
                from azure.core.exceptions import AzureError
                from azure.storage.blob import ContainerClient
        except MissingExtra as exc:
            fail(exc.message)

        try:
            with ContainerClient.from_container_url(container, credential=credential) as client:
                for path in files:
                    bar.update(task, description=path.name)
                    with open(path, "rb") as data:
                        client.upload_blob(prefix + path.relative_to(local).as_posix(), data, overwrite=True)
                    bar.advance(task, path.stat().st_size)
        except AzureError as exc:
            reason = getattr(exc, "reason", None) or exc.message
            fail(f"uploading to {container} failed: {type(exc).__name__}: {reason}")
    return len(files)


def _sas(account: str, key: str, uri: str, permission: str) -> str:
    try:
        with needs("azure", "Signing an Azure Blob Storage container's URI"):
            from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    except MissingExtra as exc:
        fail(exc.message)

    container = urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]
    return generate_container_sas(
        account,
        container,
        account_key=key,
        permission=ContainerSasPermissions.from_string(permission),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=24),
    )


def _folder(value: str | None) -> str:
    value = (value or "").strip("/")
    return value + "/" if value else ""


@click.group()
def conversions() -> None:
    """Convert models into .arrAsset files, and inspect conversions."""


@conversions.command()
@connection_options
@click.option("--id", "conversion_id", help="Conversion id. [default: Sample-Conversion-<uuid>]")
@click.option("--local-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder to upload first.")
@click.option("--no-upload", is_flag=True, help="The input is in its container already.")
@click.option("--input-container", help="Input container URI (https://… or file:///…).")
@click.option("--input-folder", help="Blob prefix of the input (inputFolderPath).")
@click.option("--input-asset", help="The model, relative to the input folder (inputAssetPath).")
@click.option("--output-container", help="Output container URI.")
@click.option("--output-folder", help="Blob prefix of the outputs (outputFolderPath).")
@click.option("--output-name", help="Output file name, NAME.arrAsset. [default: the model's name]")
@click.option("--storage-account", help="Storage account name (storageAccountName).")
@click.option("--storage-endpoint", help="Blob endpoint. [default: https://ACCOUNT.blob.core.windows.net]")
@click.option("--storage-key", envvar="OPENRR_STORAGE_KEY", help="Account key, to upload and to sign SAS.")
@click.option("--use-container-sas", is_flag=True, help="Send SAS signed with --storage-key (24 h).")
@click.option("--input-sas", help="Read/list SAS of the input container to send.")
@click.option("--output-sas", help="Write SAS of the output container to send.")
@click.option("--no-wait", is_flag=True, help="Return once created instead of waiting for the end.")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to wait for the end.")
@click.option(
    "--poll-interval", type=float, default=5.0, show_default=True, help="Most seconds between polls."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(**opts: Any) -> None:
    """Upload a local folder, convert, wait, print the asset's URI (exit 1 if the conversion fails)."""
    conn = _connect(opts)
    config, _found = load_config(opts["config_path"])
    plan = _plan(opts, config.get("assetConversionSettings", {}) or {})
    quiet = opts["as_json"]
    if plan.local is not None and not opts["no_upload"]:
        _upload_input(plan, plan.local, opts["storage_key"], opts["input_sas"], quiet)
    settings = _settings(plan, *_container_sas(plan, opts))
    conversion_id = opts["conversion_id"] or f"Sample-Conversion-{uuid.uuid4()}"

    def go(client: ConversionClient) -> dict[str, Any]:
        conversion, _created = client.create_conversion(conversion_id, settings)
        if opts["no_wait"]:
            return conversion
        return _poll(client, conversion, opts["timeout"], opts["poll_interval"], quiet)

    conversion = _call(conn, go)
    _show(conversion, opts["as_json"])
    if not opts["no_wait"] and conversion.get("status") != "Succeeded":
        sys.exit(1)


@dataclass(frozen=True)
class _Plan:
    """Where a conversion's input and output are, from flags first, then arrconfig.json."""

    account: str | None
    input_uri: str
    output_uri: str
    input_folder: str
    output_folder: str
    asset: str
    local: Path | None
    output_name: str | None


def _plan(opts: dict[str, Any], cfg: dict[str, Any]) -> _Plan:
    """The flags, else ``assetConversionSettings`` of arrconfig.json (``cfg``); UsageError for what is
    missing."""
    account = opts["storage_account"] or cfg.get("storageAccountName") or None
    endpoint = opts["storage_endpoint"]
    input_uri = _container_uri(
        opts["input_container"], account, endpoint, cfg.get("blobInputContainerName"), "input"
    )
    output_uri = _container_uri(
        opts["output_container"], account, endpoint, cfg.get("blobOutputContainerName"), "output"
    )
    input_folder = _folder(_flag_or(opts["input_folder"], cfg.get("inputFolderPath")))
    output_folder = _folder(_flag_or(opts["output_folder"], cfg.get("outputFolderPath")))
    asset = opts["input_asset"] or cfg.get("inputAssetPath")
    if not asset:
        raise click.UsageError("no input asset: give --input-asset or inputAssetPath in arrconfig.json")
    local_dir = cfg.get("localAssetDirectoryPath")
    return _Plan(
        account=account,
        input_uri=input_uri,
        output_uri=output_uri,
        input_folder=input_folder,
        output_folder=output_folder,
        asset=asset,
        local=opts["local_dir"] or (Path(local_dir) if local_dir else None),
        output_name=opts["output_name"] or cfg.get("outputAssetFileName"),
    )


def _flag_or(flag: str | None, configured: str | None) -> str | None:
    """A flag given, even empty, wins over the configured value."""
    return flag if flag is not None else configured


def _upload_input(plan: _Plan, local: Path, key: str | None, input_sas: str | None, quiet: bool) -> None:
    """Upload the folder ``local`` to the input container, with the account ``key`` or a writable SAS."""
    if not local.is_dir():
        raise click.UsageError(f"{local} is not a folder")
    credential: Any = None
    if not plan.input_uri.lower().startswith("file:"):
        if key:
            credential = {"account_name": _account_of(plan.input_uri, plan.account), "account_key": key}
        elif input_sas:
            credential = input_sas
        else:
            raise click.UsageError(
                "uploading to a blob container needs --storage-key (or a writable --input-sas)"
            )
    count = _upload(local, plan.input_uri, plan.input_folder, credential, quiet)
    if not quiet:
        err_console.print(f"uploaded {count} files to {plan.input_uri}/{plan.input_folder}", highlight=False)


def _container_sas(plan: _Plan, opts: dict[str, Any]) -> tuple[str | None, str | None]:
    """The input and output SAS to send: given ones, else with --use-container-sas signed here."""
    input_sas, output_sas = opts["input_sas"], opts["output_sas"]
    if opts["use_container_sas"]:
        key = opts["storage_key"]
        if not key:
            raise click.UsageError("--use-container-sas needs --storage-key to sign the SAS")
        input_sas = input_sas or _sas(_account_of(plan.input_uri, plan.account), key, plan.input_uri, "rl")
        output_sas = output_sas or _sas(_account_of(plan.output_uri, plan.account), key, plan.output_uri, "w")
    return input_sas, output_sas


def _settings(plan: _Plan, input_sas: str | None, output_sas: str | None) -> dict[str, Any]:
    """The conversion's ``settings``: ``inputLocation`` and ``outputLocation`` (keys in ARR's order)."""
    inp: dict[str, Any] = {"storageContainerUri": plan.input_uri}
    if input_sas:
        inp["storageContainerReadListSas"] = input_sas
    if plan.input_folder:
        inp["blobPrefix"] = plan.input_folder
    inp["relativeInputAssetPath"] = plan.asset
    out: dict[str, Any] = {"storageContainerUri": plan.output_uri}
    if output_sas:
        out["storageContainerWriteSas"] = output_sas
    if plan.output_folder:
        out["blobPrefix"] = plan.output_folder
    if plan.output_name:
        out["outputAssetFilename"] = plan.output_name
    return {"inputLocation": inp, "outputLocation": out}


@conversions.command()
@connection_options
@click.argument("conversion_id")
@click.option("--poll", is_flag=True, help="Wait until the conversion ends (exit 1 unless it succeeds).")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to wait with --poll.")
@click.option(
    "--poll-interval", type=float, default=5.0, show_default=True, help="Most seconds between polls."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def get(
    conversion_id: str, poll: bool, timeout: float, poll_interval: float, as_json: bool, **opts: Any
) -> None:
    """Show one conversion."""

    def go(client: ConversionClient) -> dict[str, Any]:
        conversion = client.get_conversion(conversion_id)
        return _poll(client, conversion, timeout, poll_interval, as_json) if poll else conversion

    conversion = _call(_connect(opts), go)
    _show(conversion, as_json)
    if poll and conversion.get("status") != "Succeeded":
        sys.exit(1)


@conversions.command(name="list")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool, **opts: Any) -> None:
    """List the conversions of the account."""
    found = _call(_connect(opts), lambda c: list(c.list_conversions()))
    if as_json:
        print_json(found)
    else:
        print_table("conversions", _COLUMNS, [_row(c) for c in found])
