"""A real ``openrr serve`` in a subprocess, for end-to-end tests.

``OpenRRServer`` starts the control plane on a free loopback port with its own data directory, waits until
``/health`` answers over TLS (verified with the self-signed ``DATA_DIR/tls/cert.pem``), and reads the dev
account from ``DATA_DIR/arrconfig.json``. It can be killed with SIGKILL and restarted on the same data dir
and port. ``cleanup`` stops it and then every render server it ever started; processes are only ever
signalled by pid, and only when their psutil create time matches the one recorded for them, so a recycled
pid is never hit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

API_VERSION = "2021-01-01"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openrr_command() -> list[str]:
    """The ``openrr`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "openrr"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "openrr"]


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(interval)


@dataclasses.dataclass(frozen=True)
class Proc:
    """A process identified by pid *and* create time (a pid alone may be recycled)."""

    pid: int
    create_time: float
    what: str = dataclasses.field(default="", compare=False)

    def process(self) -> psutil.Process | None:
        """The live process, or None if it is gone, a zombie, or the pid now belongs to someone else."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.5:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    @property
    def alive(self) -> bool:
        return self.process() is not None

    def send(self, sig: int) -> None:
        if self.process() is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.what})" if self.what else f"pid {self.pid}"


def stop_processes(procs: Iterable[Proc], grace: float = 5.0) -> list[Proc]:
    """SIGTERM, then SIGKILL after ``grace``; returns those still alive afterwards (should be none)."""
    live = [p for p in procs if p.alive]
    for p in live:
        p.send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.alive for p in live):
        time.sleep(0.05)
    for p in live:
        p.send(signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(p.alive for p in live):
        time.sleep(0.05)
    return [p for p in live if p.alive]


@dataclasses.dataclass(frozen=True)
class Account:
    id: str
    key: str


class OpenRRServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        throttle: bool = False,
        extra_env: dict[str, str] | None = None,
        **options: Any,
    ):
        """``options``: ``openrr serve`` options (``stop_grace=2`` → ``--stop-grace 2``); ``extra_env``:
        variables added to the control plane's environment (after the ``OPENRR_*`` of this one are gone)."""
        self.data_dir = data_dir
        self.extra_env = dict(extra_env or {})
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}-serve.log"
        args = {
            "data-dir": str(data_dir),
            "host": "127.0.0.1",
            "port": str(self.port),
            "reaper-interval": "0.2",
            "stop-grace": "2",
            "log-level": "info",
        }
        if not throttle:
            args.update({"throttle-rate": "0", "sts-throttle-rate": "0"})
        if options.get("host_backend", "local") == "local":
            # Explicit, so that no test depends on the slots derived from this machine's cores and memory.
            args["local-slots"] = "standard=8,premium=4"
        args.update({k.replace("_", "-"): str(v) for k, v in options.items()})
        self._args = [a for k, v in args.items() for a in (f"--{k}", v)]
        self.proc: subprocess.Popen[bytes] | None = None
        self._serve: Proc | None = None
        self._seen: set[Proc] = set()  # every process this server (any incarnation) is known to have run

    # ---- paths and identity ---------------------------------------------------------------------------
    @property
    def cert(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "arrconfig.json"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "openrr.db"

    @property
    def account(self) -> Account:
        settings = json.loads(self.config_path.read_text())["accountSettings"]
        return Account(settings["arrAccountId"], settings["arrAccountKey"])

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    @staticmethod
    def env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENRR_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # ---- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== openrr serve {' '.join(self._args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*openrr_command(), "serve", *self._args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env(), **self.extra_env},
            )
        try:
            self._serve = Proc(self.proc.pid, psutil.Process(self.proc.pid).create_time(), "openrr serve")
        except psutil.Error:
            self._serve = None
        wait_for(self._healthy, timeout=timeout, interval=0.1, what=f"{self.url}/health")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"openrr serve exited with {self.proc.returncode}:\n{self.log_tail()}")
        if not self.cert.is_file():
            return False
        try:
            r = httpx.get(f"{self.url}/health", verify=self.ssl_context(), timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json().get("status") == "ok"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill9(self) -> None:
        """SIGKILL the control plane (its render servers, in their own sessions, live on)."""
        assert self.proc is not None
        assert self.proc.poll() is None
        self._remember_children()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self, timeout: float = 30.0) -> None:
        """Start again on the same data dir and port (after ``kill9`` or ``stop``)."""
        self.start(timeout)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the control plane, SIGKILL after ``grace``; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._remember_children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def _remember_children(self) -> None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):  # type: ignore[union-attr]
                with contextlib.suppress(psutil.Error):
                    self._seen.add(Proc(child.pid, child.create_time(), "child of openrr serve"))

    def cleanup(self) -> tuple[list[Proc], list[Proc]]:
        """Stop the control plane and every render server it started.

        Returns (render servers that were still running and had to be stopped, processes that survived
        everything). The second list must be empty.
        """
        self.stop()
        if self._serve is not None and self._serve.alive:  # a child we did not start via self.proc
            stop_processes([self._serve])
        procs = set(self._seen) | set(self.render_servers())
        running = [p for p in procs if p.alive]
        survivors = stop_processes(running)
        if self._serve is not None and self._serve.alive:
            survivors.append(self._serve)
        return running, survivors

    # ---- the store ------------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """The session rows, straight from SQLite (read-only)."""
        if not self.db_path.is_file():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT account_id, id, status, host_handle, host_released FROM sessions")
            out = []
            for row in rows:
                item = dict(row)
                handle = item["host_handle"]
                item["host_handle"] = json.loads(handle) if isinstance(handle, str) else handle
                out.append(item)
            return out

    def render_server(self, session_id: str) -> Proc:
        """The render server of a session, from the handle the control plane stored."""
        for row in self.rows():
            if row["id"] == session_id and row["host_handle"]:
                return _render_proc(row)
        raise AssertionError(f"no host handle stored for session {session_id}")

    def render_servers(self) -> list[Proc]:
        return [_render_proc(row) for row in self.rows() if (row["host_handle"] or {}).get("pid")]

    # ---- clients --------------------------------------------------------------------------------------
    def cli(
        self, *args: str, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``openrr ARGS`` and capture its output; ``stdin``: text for its standard input. A command
        still running after ``timeout`` fails the test with what it printed so far and the service's log
        (a hang otherwise leaves nothing to go on)."""
        try:
            return subprocess.run(
                [*openrr_command(), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env(),
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
            )
        except subprocess.TimeoutExpired as exc:
            printed = [_text(exc.stdout), _text(exc.stderr)]
            raise AssertionError(
                f"openrr {' '.join(args[:2])} ran past {timeout:g} s\n--- its output ---\n"
                + "\n".join(p for p in printed if p)
                + f"\n--- the service's log ---\n{self.log_tail(80)}"
            ) from None

    def create_account(self) -> Account:
        done = self.cli("accounts", "create", "--data-dir", str(self.data_dir), "--json")
        assert done.returncode == 0, done.stderr
        created = json.loads(done.stdout)
        return Account(created["accountId"], created["primaryKey"])

    def token(self, account: Account | None = None) -> str:
        account = account or self.account
        r = httpx.get(
            f"{self.url}/accounts/{account.id}/token",
            headers={"Authorization": f"Bearer {account.id}:{account.key}"},
            verify=self.ssl_context(),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["AccessToken"])

    def connect_token_response(self, session_id: str, account: Account | None = None) -> httpx.Response:
        account = account or self.account
        return httpx.post(
            f"{self.url}/openrr/accounts/{self.account.id}/sessions/{session_id}/connectToken",
            headers={"Authorization": f"Bearer {self.token(account)}"},
            verify=self.ssl_context(),
        )

    def connect_token(self, session_id: str) -> str:
        """A connect token of the session (of the dev account): what its render server takes."""
        r = self.connect_token_response(session_id)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def api(self, account: Account | None = None) -> ApiClient:
        account = account or self.account
        return ApiClient(self, account, self.token(account))

    def create_v1(self, models: list[str], lease: str = "0:30:0") -> str:
        """A session of the dev account through the v1 API, which alone can preload models; its id."""
        r = httpx.post(
            f"{self.url}/v1/accounts/{self.account.id}/sessions/create",
            json={"maxLeaseTime": lease, "models": models, "size": "standard"},
            headers={"Authorization": f"Bearer {self.token()}"},
            verify=self.ssl_context(),
        )
        assert r.status_code == 202, r.text
        return str(r.json()["sessionId"])


def _render_proc(row: dict[str, Any]) -> Proc:
    handle = row["host_handle"]
    return Proc(int(handle["pid"]), float(handle.get("createTime", 0)), f"render server of {row['id']}")


class ApiClient:
    """Raw 2021-01-01 session API calls over httpx."""

    def __init__(self, server: OpenRRServer, account: Account, token: str) -> None:
        self.account = account
        self.http = httpx.Client(
            base_url=f"{server.url}/accounts/{account.id}",
            verify=server.ssl_context(),
            headers={"Authorization": f"Bearer {token}"},
            params={"api-version": API_VERSION},
            timeout=10,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def create(self, session_id: str, lease: int = 60, size: str = "Standard") -> dict[str, Any]:
        r = self.http.put(f"/sessions/{session_id}", json={"maxLeaseTimeMinutes": lease, "size": size})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def get(self, session_id: str) -> dict[str, Any]:
        r = self.http.get(f"/sessions/{session_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def stop(self, session_id: str) -> None:
        r = self.http.post(f"/sessions/{session_id}/:stop")
        assert r.status_code == 204, r.text

    def wait_status(self, session_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body = self.get(session_id)
            return body if body["status"] in statuses else None

        return wait_for(probe, timeout=timeout, what=f"session {session_id} to be {'/'.join(statuses)}")


def _text(output: str | bytes | None) -> str:
    """What a timed-out subprocess printed (bytes, whatever ``text`` asked for)."""
    if output is None:
        return ""
    return output.decode(errors="replace") if isinstance(output, bytes) else output
