"""``openrr serve``: the control plane.

Every option also reads ``OPENRR_<OPTION>`` (``--data-dir`` ↔ ``OPENRR_DATA_DIR``). Settings are validated
before anything starts, and every invalid one is reported at once.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import uvicorn
import uvloop
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from openrr import log_redaction
from openrr.api.limits import body_limits
from openrr.cli.output import console, fail
from openrr.compat.uvicorn_headers import bounded_protocol
from openrr.config.option import OptionInfo
from openrr.config.settings import Settings, all_options
from openrr.errors import OpenRRError
from openrr.private import private_dir, write_private
from openrr.services.runtime import Runtime
from openrr.tls import ca_file, ensure_self_signed

# The order --help lists the options in: the switches first, then as the options were added over time.
# Their names, defaults and help are declared once, in openrr.config (which the README's table reads too).
_HELP_ORDER_TEXT = """
allow_private_model_urls ray_allow_unauthenticated metrics dev_account insecure_http
host port data_dir store_url cert key public_url cors_origins
render_host render_advertise_host render_tls_cert render_tls_key render_tls_ca
start_timeout stop_grace reaper_interval retention_days list_page_size
throttle_rate throttle_burst sts_throttle_rate sts_throttle_burst sts_failure_rate sts_failure_burst log_level
model_roots model_libraries standard_polygon_limit video_width video_height video_fps video_bitrate
frame_budget_ms stun_urls turn_urls turn_username turn_credential
container_roots storage_accounts conversion_workers conversion_timeout conversion_max_input_mb
host_backend ray_address ray_namespace ray_auth_token_file local_slots warm_pool
max_texture_pixels max_session_texture_pixels max_models max_scene_bytes render_memory
max_sessions_per_account max_conversions_per_account converter_memory
idle_stop_minutes max_lease_minutes heartbeat_interval control_plane_grace connect_token_minutes
max_body_kib max_offer_kib max_header_kib max_header_fields max_upload_mib max_upload_files max_library_mib
max_library_models
"""
_HELP_ORDER = _HELP_ORDER_TEXT.split()


def click_option(info: OptionInfo) -> Callable[[Any], Any]:
    """The click option of a setting. Every option also reads ``OPENRR_<NAME>``; a repeatable one's variable
    holds several values, separated by the path separator (":") for directories, by whitespace otherwise."""
    common: dict[str, Any] = {"envvar": info.envvar, "show_envvar": True, "help": info.help}
    if info.kind is bool:
        if info.default:  # on by default: --no-X turns it off
            return click.option(f"{info.flag}/--no-{info.flag.removeprefix('--')}", default=True, **common)
        return click.option(info.flag, is_flag=True, default=False, **common)
    if info.option.path is not None or info.kind is Path:
        kinds = {"dir": {"file_okay": False}, "file": {"dir_okay": False}, None: {}}
        common["type"] = click.Path(path_type=Path, **kinds[info.option.path])
    elif info.choices is not None:
        common["type"] = click.Choice(list(info.choices))
    elif info.kind in (int, float):
        common["type"] = info.kind
    if info.multiple:
        common["multiple"] = True
    return click.option(info.flag, info.name, default=None, **common)


def _with_options(f: Any) -> Any:
    by_name = {info.name: info for info in all_options()}
    assert sorted(by_name) == sorted(_HELP_ORDER), "an option is missing from _HELP_ORDER, or unknown"
    for name in reversed(_HELP_ORDER):
        f = click_option(by_name[name])(f)
    return f


@click.command()
@_with_options
def serve(**options: Any) -> None:
    """Run the control plane: STS, session APIs (2021-01-01 and v1), and the render-server hosts."""
    # A repeatable option that was not given is an empty tuple: leave the setting to its default.
    options = {k: None if v == () else v for k, v in options.items()}
    try:
        settings = Settings.load(options)
    except OpenRRError as exc:
        fail("invalid settings:\n  " + exc.message.replace("\n", "\n  "), code=2)
    log_redaction.install()  # no URL query string in any log line, uvicorn's access log included
    logging.basicConfig(
        level=settings.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)  # azure-core logs every storage request at INFO
    try:
        # uvloop (installed with uvicorn[standard]) is what `uvicorn` itself would pick: a faster loop.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings))
    except KeyboardInterrupt:
        pass
    except OpenRRError as exc:
        fail(exc.message)


async def _serve(settings: Settings) -> None:
    from openrr.api.app import create_app  # the web stack is imported only by the command that serves

    private_dir(settings.server.data_dir)  # store, keys, logs: the service's user's only (openrr.private)
    # Only the default root is created: one given explicitly had to exist (a typo must not make a new one).
    if settings.server.default_model_root in settings.render.model_roots:
        settings.server.default_model_root.mkdir(parents=True, exist_ok=True)
    cert, key, ca = settings.server.cert, settings.server.key, None
    if not settings.server.insecure_http and cert is None:
        cert, key = ensure_self_signed(settings.server.tls_dir)
        ca = str(ca_file(settings.server.tls_dir).resolve())
    runtime = await Runtime.open(settings, callback_ca=ca)
    try:
        dev = None
        if settings.server.dev_account and not await runtime.accounts.list():
            dev = await runtime.accounts.create("development")
            _write_arrconfig(settings, dev.account_id, dev.primary_key, ca)
            if settings.server.default_model_root in settings.render.model_roots:
                # Where its sessions' local models go: each account reads only its own folder of a root.
                (settings.server.default_model_root / dev.account_id).mkdir(exist_ok=True)
        _banner(settings, cert, ca, dev)
        await runtime.start_background()
        app = create_app(runtime)
        config = uvicorn.Config(
            app,
            host=settings.server.host,
            port=settings.server.port,
            ssl_certfile=str(cert) if cert else None,
            ssl_keyfile=str(key) if key else None,
            log_level=settings.server.log_level,
            access_log=settings.server.log_level == "debug",
            lifespan="off",
            # On SIGTERM, idle keep-alive connections would hold the shutdown until their clients close
            # them; requests in flight get this long to finish.
            timeout_graceful_shutdown=2,
            # httptools bounds neither the size nor the number of header fields.
            http=bounded_protocol(
                max_head_bytes=settings.limits.max_header_kib * 1024,
                max_fields=settings.limits.max_header_fields,
                body_limit=body_limits(settings.limits).limit_for,
            ),
        )
        server = uvicorn.Server(config)
        # uvicorn handles SIGTERM/SIGINT itself while serving, and once it has shut down it raises the signal
        # again to the handler that was there before it: by default that kills the process before
        # ``runtime.close()`` (warm pool, releases, reaper lease) can run. A no-op there lets it run.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _ignore_signal)
        # Everything allocated so far lives as long as the process: keep it out of the cyclic GC's full
        # passes, which otherwise stall requests for tens of milliseconds.
        gc.freeze()
        await server.serve()
    finally:
        await runtime.close()


def masked_url(url: str) -> str:
    """``url`` with its password masked (``postgresql://user:***@host/db``), for banners and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(a store URL that cannot be parsed)"


def _ignore_signal(_signum: int, _frame: object) -> None:
    pass


def _write_arrconfig(settings: Settings, account_id: str, key: str, ca: str | None) -> Path:
    """An arrconfig.json in the shape of ARR's sample scripts, pointing at this service."""
    url = settings.server.local_address
    config = {
        "accountSettings": {"arrAccountId": account_id, "arrAccountKey": key, "arrAccountDomain": url},
        "renderingSessionSettings": {
            "remoteRenderingDomain": url,
            "vmSize": "standard",
            "maxLeaseTime": "01:00:00",
        },
        "assetConversionSettings": {},
        "openrr": {"caCertificate": ca},
    }
    path = settings.server.data_dir / "arrconfig.json"
    write_private(path, (json.dumps(config, indent=2) + "\n").encode())  # it holds the account key
    return path


def _banner(settings: Settings, cert: Path | None, ca: str | None, dev: Any) -> None:
    console.rule("[bold]openrr[/]")
    console.print(f"endpoint      {settings.server.local_address}  (STS and session API; docs at /docs)")
    if cert is not None:
        console.print(f"certificate   {cert.resolve()}")
        if ca is not None:  # the development certificate: its throwaway CA is what clients trust
            console.print(f"              trust it with: export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca}")
    console.print(f"store         {masked_url(settings.server.resolved_store_url)}")
    roots = ", ".join(str(root.resolve()) for root in settings.render.model_roots)
    urls = "any address" if settings.render.allow_private_model_urls else "public addresses only"
    library = "".join(f"; library {folder.resolve()}" for folder in settings.render.model_libraries)
    console.print(f"models        files under {roots} (a folder per account){library}; URLs to {urls}")
    containers = ", ".join(str(root.resolve()) for root in settings.conversions.container_roots) or "none"
    accounts = ", ".join(str(account) for account in settings.conversions.linked_accounts) or "none"
    console.print(
        f"conversions   file: containers under {containers} (a folder per account); SAS endpoints: {accounts}"
    )
    if dev is not None:
        console.print("[bold green]development account created[/] (the key is shown only now):")
        console.print(f"  account id  {dev.account_id}")
        console.print(f"  key         {dev.primary_key}")
        console.print(f"  config      {(settings.server.data_dir / 'arrconfig.json').resolve()}")
        if settings.server.default_model_root in settings.render.model_roots:
            console.print(f"  models      {(settings.server.default_model_root / dev.account_id).resolve()}")
    console.print("[dim]Render servers keep running when this process stops; a restart adopts them.[/]")
    console.rule()
