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
from openrr.config import Settings
from openrr.errors import OpenRRError
from openrr.private import private_dir, write_private
from openrr.services.runtime import Runtime
from openrr.tls import ca_file, ensure_self_signed

_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--host", {"help": "Address to listen on. [default: 127.0.0.1]"}),
    ("--port", {"type": int, "help": "Port to listen on. [default: 8443]"}),
    (
        "--data-dir",
        {
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "Store, certificates, logs. [default: ./openrr-data]",
        },
    ),
    (
        "--store-url",
        {"help": "sqlite:///FILE or postgresql://USER:PASS@HOST/DB. [default: SQLite in the data dir]"},
    ),
    (
        "--cert",
        {
            "type": click.Path(path_type=Path),
            "help": "TLS certificate (PEM). [default: self-signed in DATA_DIR/tls]",
        },
    ),
    ("--key", {"type": click.Path(path_type=Path), "help": "TLS private key (PEM), with --cert."}),
    (
        "--public-url",
        {"help": "URL render servers use to reach this service. [default: derived from host and port]"},
    ),
    ("--render-host", {"help": "Address render servers bind to. [default: 127.0.0.1]"}),
    (
        "--render-advertise-host",
        {"help": "Hostname reported to clients for render servers. [default: --render-host]"},
    ),
    (
        "--render-tls-cert",
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "Certificate (PEM, chain first) render servers serve their handshake and inspector "
            "ports with, as a path on the render nodes; with --render-tls-key. [default: plain HTTP]",
        },
    ),
    (
        "--render-tls-key",
        {"type": click.Path(dir_okay=False, path_type=Path), "help": "Its private key (PEM)."},
    ),
    (
        "--render-tls-ca",
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "CA file the offer relay checks render servers' certificates with. [default: the "
            "certificate itself]",
        },
    ),
    (
        "--start-timeout",
        {"type": float, "help": "Seconds a session may stay Starting before Error. [default: 60]"},
    ),
    (
        "--stop-grace",
        {"type": float, "help": "Seconds between SIGTERM and SIGKILL of a render server. [default: 5]"},
    ),
    ("--reaper-interval", {"type": float, "help": "Seconds between lease/health passes. [default: 1]"}),
    ("--retention-days", {"type": float, "help": "Days ended sessions stay queryable. [default: 30]"}),
    ("--list-page-size", {"type": int, "help": "Sessions per list page before @nextLink. [default: 100]"}),
    (
        "--throttle-rate",
        {"type": float, "help": "Data-plane requests per second per account (0 = off). [default: 2]"},
    ),
    ("--throttle-burst", {"type": int, "help": "Data-plane burst per account. [default: 60]"}),
    (
        "--sts-throttle-rate",
        {"type": float, "help": "Token requests per second per account (0 = off). [default: 0.5]"},
    ),
    ("--sts-throttle-burst", {"type": int, "help": "Token request burst per account. [default: 20]"}),
    (
        "--sts-failure-rate",
        {
            "type": float,
            "help": "Failed key checks per second per client address before the STS answers 429 without "
            "checking (0 = off). [default: 0.2]",
        },
    ),
    (
        "--sts-failure-burst",
        {"type": int, "help": "Failed key check burst per client address. [default: 10]"},
    ),
    ("--log-level", {"help": "critical, error, warning, info or debug. [default: info]"}),
    # Repeatable options take a plural field name and variable; the variable holds several values, separated
    # by the path separator (":") for directories and by whitespace for URLs.
    (
        "--model-root",
        {
            "param": "model_roots",
            "envvar": "OPENRR_MODEL_ROOTS",
            "multiple": True,
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "Directory clients may load local model files from, a folder per account: "
            "ROOT/ACCOUNT_ID/...; repeatable. [default: DATA_DIR/models, created at start]",
        },
    ),
    (
        "--model-library",
        {
            "param": "model_libraries",
            "envvar": "OPENRR_MODEL_LIBRARIES",
            "multiple": True,
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "Directory of models every account may load (read only); repeatable. [default: none]",
        },
    ),
    (
        "--standard-polygon-limit",
        {
            "type": int,
            "help": "Polygons a standard session may show before a checkerboard replaces the scene; premium "
            "sessions are unlimited. [default: 20000000]",
        },
    ),
    ("--video-width", {"type": int, "help": "Default video width, even, 160..3840. [default: 1280]"}),
    ("--video-height", {"type": int, "help": "Default video height, even, 120..2160. [default: 720]"}),
    ("--video-fps", {"type": float, "help": "Default frames per second, 1..60. [default: 30]"}),
    ("--video-bitrate", {"type": int, "help": "Default video bit/s, 100000..50000000. [default: 3000000]"}),
    (
        "--stun-url",
        {
            "param": "stun_urls",
            "envvar": "OPENRR_STUN_URLS",
            "multiple": True,
            "help": "STUN server for render servers' WebRTC, stun:HOST[:PORT]; repeatable. [default: none]",
        },
    ),
    (
        "--turn-url",
        {
            "param": "turn_urls",
            "envvar": "OPENRR_TURN_URLS",
            "multiple": True,
            "help": "TURN server, turn:HOST[:PORT][?transport=udp|tcp] or turns:...; repeatable, needs "
            "--turn-username and --turn-credential. [default: none]",
        },
    ),
    ("--turn-username", {"help": "User name for the TURN servers."}),
    (
        "--turn-credential",
        {"help": "Password for the TURN servers; prefer the variable (command lines are visible in ps)."},
    ),
    # Conversions
    (
        "--container-root",
        {
            "param": "container_roots",
            "envvar": "OPENRR_CONTAINER_ROOTS",
            "multiple": True,
            "type": click.Path(file_okay=False, path_type=Path),
            "help": "Directory file:///PATH conversion containers may lie in, a folder per account: "
            "ROOT/ACCOUNT_ID/CONTAINER; repeatable. [default: none, no file: containers]",
        },
    ),
    (
        "--storage-account",
        {
            "param": "storage_accounts",
            "envvar": "OPENRR_STORAGE_ACCOUNTS",
            "multiple": True,
            "help": "Storage endpoint every account's conversions may use with a SAS, NAME@ENDPOINT (e.g. "
            "devstoreaccount1@http://127.0.0.1:10000/devstoreaccount1 for Azurite); repeatable. Keys are "
            "linked to one account each: openrr accounts link-storage. [default: none]",
        },
    ),
    ("--conversion-workers", {"type": int, "help": "Conversions run at once, 1..64. [default: 2]"}),
    (
        "--conversion-timeout",
        {"type": float, "help": "Seconds a conversion may run before it fails. [default: 3600]"},
    ),
    (
        "--conversion-max-input-mb",
        {"type": int, "help": "Largest input a conversion downloads, in MiB. [default: 4096]"},
    ),
    # Hosts, capacity and limits
    (
        "--host-backend",
        {
            "type": click.Choice(["local", "ray"]),
            "help": "Where render servers run: local processes, or actors on a Ray cluster. [default: local]",
        },
    ),
    ("--ray-address", {"help": "HOST:PORT of the Ray head's GCS, with --host-backend ray."}),
    ("--ray-namespace", {"help": "Ray namespace of this service's actors. [default: openrr]"}),
    (
        "--ray-auth-token-file",
        {
            "type": click.Path(path_type=Path),
            "help": "File holding the Ray cluster's auth token (RAY_AUTH_MODE=token). [default: Ray's own "
            "RAY_AUTH_* variables]",
        },
    ),
    (
        "--local-slots",
        {
            "param": "local_slots",
            "envvar": "OPENRR_LOCAL_SLOTS",
            "multiple": True,
            "help": "SIZE=N: render servers of a size this machine may run at once, e.g. standard=4; "
            "repeatable. Creates beyond it get 503 CapacityExhausted. [default: from this machine: "
            "standard = min(2 x cores, GiB of memory), premium = min(cores, GiB / 4), at least 1]",
        },
    ),
    (
        "--warm-pool",
        {
            "param": "warm_pool",
            "envvar": "OPENRR_WARM_POOL",
            "multiple": True,
            "help": "SIZE=N: render servers kept started and waiting, so a create is Ready in well under a "
            "second; each session still gets a fresh one. Repeatable. [default: none]",
        },
    ),
    (
        "--max-texture-pixels",
        {
            "multiple": True,
            "help": "SIZE=N: decoded texture pixels one model may have (K/M/G suffixes: powers of 1024); "
            "counted from image headers before decoding. Repeatable; 0 is unlimited. "
            "[default: standard=64M, premium=128M]",
        },
    ),
    (
        "--max-session-texture-pixels",
        {
            "multiple": True,
            "help": "SIZE=N: decoded texture pixels of all of a session's models together. "
            "[default: standard=128M, premium=256M]",
        },
    ),
    (
        "--max-models",
        {
            "multiple": True,
            "help": "SIZE=N: models a session may have loaded (or loading) at once. "
            "[default: standard=32, premium=64]",
        },
    ),
    (
        "--max-scene-bytes",
        {
            "multiple": True,
            "help": "SIZE=N: bytes of geometry (vertices and indices) of all of a session's models. "
            "[default: standard=1G, premium=4G]",
        },
    ),
    (
        "--render-memory",
        {
            "multiple": True,
            "help": "SIZE=N: memory ceiling (RLIMIT_DATA) of a session's render server; past it the "
            "session ends in Error, OutOfMemory. [default: standard=4G, premium=12G]",
        },
    ),
    (
        "--max-sessions-per-account",
        {
            "type": int,
            "help": "Active sessions an account may have at once (403 QuotaExceeded). [default: 10]",
        },
    ),
    (
        "--max-conversions-per-account",
        {
            "type": int,
            "help": "Conversions an account may have queued or running at once (403 QuotaExceeded); "
            "queued ones start in turn across accounts. [default: 20]",
        },
    ),
    (
        "--converter-memory",
        {
            "help": "Memory ceiling (RLIMIT_DATA) of a converter process, e.g. 8G; past it the conversion "
            "fails. [default: 8G]",
        },
    ),
    (
        "--idle-stop-minutes",
        {"type": float, "help": "Stop a session with no client connected for this long. [default: never]"},
    ),
    (
        "--max-lease-minutes",
        {
            "type": int,
            "help": "Longest lease a session may have, at create or by renewals, 1..1440. [default: 1440]",
        },
    ),
    (
        "--heartbeat-interval",
        {
            "type": float,
            "help": "Seconds between a render server's heartbeats. [default: 10]",
        },
    ),
    (
        "--control-plane-grace",
        {
            "type": float,
            "help": "Seconds a render server keeps serving while this service does not answer its "
            "heartbeats; then it stops itself (its session ends as Error). [default: 600]",
        },
    ),
    (
        "--connect-token-minutes",
        {
            "type": int,
            "help": "Longest life of a connect token (a client's credential for one session's render "
            "server; never past the lease), 1..1440. [default: 30]",
        },
    ),
    # Request bounds (413 / 431 before any authentication or parsing)
    ("--max-body-kib", {"type": int, "help": "Largest request body of the JSON APIs, in KiB. [default: 64]"}),
    (
        "--max-offer-kib",
        {"type": int, "help": "Largest WebRTC offer the browser pages' relay takes, in KiB. [default: 512]"},
    ),
    (
        "--max-header-kib",
        {"type": int, "help": "Largest request line and headers of one request, in KiB. [default: 32]"},
    ),
    ("--max-header-fields", {"type": int, "help": "Most header fields of one request. [default: 100]"}),
]


def _with_options(f: Any) -> Any:
    for flag, options in reversed(_OPTIONS):
        kwargs = dict(options)
        decls = [flag, kwargs.pop("param")] if "param" in kwargs else [flag]
        env = kwargs.pop("envvar", "OPENRR_" + flag.removeprefix("--").replace("-", "_").upper())
        f = click.option(*decls, envvar=env, default=None, show_envvar=True, **kwargs)(f)
    f = click.option(
        "--insecure-http",
        is_flag=True,
        default=False,
        envvar="OPENRR_INSECURE_HTTP",
        show_envvar=True,
        help="Serve plain HTTP (for a proxy that terminates TLS); the stock Azure SDK needs HTTPS.",
    )(f)
    f = click.option(
        "--dev-account/--no-dev-account",
        default=True,
        envvar="OPENRR_DEV_ACCOUNT",
        show_envvar=True,
        help="On a store without accounts, create one and write DATA_DIR/arrconfig.json.",
    )(f)
    f = click.option(
        "--metrics/--no-metrics",
        default=True,
        envvar="OPENRR_METRICS",
        show_envvar=True,
        help="Serve Prometheus metrics at /metrics, unauthenticated: aggregate numbers only, no account "
        "or session ids. [default: on]",
    )(f)
    f = click.option(
        "--ray-allow-unauthenticated",
        is_flag=True,
        default=False,
        envvar="OPENRR_RAY_ALLOW_UNAUTHENTICATED",
        show_envvar=True,
        help="With --host-backend ray: use a Ray cluster that does not require token authentication (by "
        "default such a cluster is refused: anyone who can reach it can run code on its nodes).",
    )(f)
    f = click.option(
        "--allow-private-model-urls",
        is_flag=True,
        default=False,
        envvar="OPENRR_ALLOW_PRIVATE_MODEL_URLS",
        show_envvar=True,
        help="Let clients load models from loopback, private and link-local addresses (by default only "
        "public ones: a client must not reach the service's own network through a render server).",
    )(f)
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
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
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

    private_dir(settings.data_dir)  # store, keys, logs: the service's user's only (openrr.private)
    # Only the default root is created: one given explicitly had to exist (a typo must not make a new one).
    if settings.default_model_root in settings.model_roots:
        settings.default_model_root.mkdir(parents=True, exist_ok=True)
    cert, key, ca = settings.cert, settings.key, None
    if not settings.insecure_http and cert is None:
        cert, key = ensure_self_signed(settings.tls_dir)
        ca = str(ca_file(settings.tls_dir).resolve())
    runtime = await Runtime.open(settings, callback_ca=ca)
    try:
        dev = None
        if settings.dev_account and not await runtime.accounts.list():
            dev = await runtime.accounts.create("development")
            _write_arrconfig(settings, dev.account_id, dev.primary_key, ca)
            if settings.default_model_root in settings.model_roots:
                # Where its sessions' local models go: each account reads only its own folder of a root.
                (settings.default_model_root / dev.account_id).mkdir(exist_ok=True)
        _banner(settings, cert, ca, dev)
        await runtime.start_background()
        app = create_app(runtime)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            ssl_certfile=str(cert) if cert else None,
            ssl_keyfile=str(key) if key else None,
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
            lifespan="off",
            # On SIGTERM, idle keep-alive connections would hold the shutdown until their clients close
            # them; requests in flight get this long to finish.
            timeout_graceful_shutdown=2,
            # httptools bounds neither the size nor the number of header fields.
            http=bounded_protocol(
                max_head_bytes=settings.max_header_kib * 1024,
                max_fields=settings.max_header_fields,
                body_limit=body_limits(settings).limit_for,
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
    url = settings.local_address
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
    path = settings.data_dir / "arrconfig.json"
    write_private(path, (json.dumps(config, indent=2) + "\n").encode())  # it holds the account key
    return path


def _banner(settings: Settings, cert: Path | None, ca: str | None, dev: Any) -> None:
    console.rule("[bold]openrr[/]")
    console.print(f"endpoint      {settings.local_address}  (STS and session API; docs at /docs)")
    if cert is not None:
        console.print(f"certificate   {cert.resolve()}")
        if ca is not None:  # the development certificate: its throwaway CA is what clients trust
            console.print(f"              trust it with: export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca}")
    console.print(f"store         {masked_url(settings.resolved_store_url)}")
    roots = ", ".join(str(root.resolve()) for root in settings.model_roots)
    urls = "any address" if settings.allow_private_model_urls else "public addresses only"
    library = "".join(f"; library {folder.resolve()}" for folder in settings.model_libraries)
    console.print(f"models        files under {roots} (a folder per account){library}; URLs to {urls}")
    containers = ", ".join(str(root.resolve()) for root in settings.container_roots) or "none"
    accounts = ", ".join(str(account) for account in settings.linked_accounts) or "none"
    console.print(
        f"conversions   file: containers under {containers} (a folder per account); SAS endpoints: {accounts}"
    )
    if dev is not None:
        console.print("[bold green]development account created[/] (the key is shown only now):")
        console.print(f"  account id  {dev.account_id}")
        console.print(f"  key         {dev.primary_key}")
        console.print(f"  config      {(settings.data_dir / 'arrconfig.json').resolve()}")
        if settings.default_model_root in settings.model_roots:
            console.print(f"  models      {(settings.default_model_root / dev.account_id).resolve()}")
    console.print("[dim]Render servers keep running when this process stops; a restart adopts them.[/]")
    console.rule()
