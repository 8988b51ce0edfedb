"""A private PostgreSQL server for the test session, and a fresh database for each test that asks for one.

The server runs from Debian's ``/usr/lib/postgresql/<version>/bin`` in a temporary directory, listening only
on 127.0.0.1 (a free port) and on a unix socket in that directory, with trust authentication. initdb refuses
to run as root, so as root the server runs as the ``postgres`` OS user. It is started with Popen (no pg_ctl
daemon), so the teardown signals exactly the process it started and nothing else.

Without the PostgreSQL binaries (``scripts/setup`` installs them) the tests that need the server are skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

_BINDIR_GLOB = "/usr/lib/postgresql/*/bin"
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (``OPENRR_TEST_PG_BINDIR`` overrides), or None."""
    override = os.environ.get("OPENRR_TEST_PG_BINDIR")
    candidates = [override] if override else glob.glob(_BINDIR_GLOB)

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"/(\d+(?:\.\d+)*)/bin/?$", path)
        return tuple(int(p) for p in match.group(1).split(".")) if match else ()

    for path in sorted(candidates, key=version, reverse=True):
        bindir = Path(path)
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


@dataclasses.dataclass
class PostgresServer:
    """One running server; ``url(dbname)`` and ``create_database()`` are what tests use."""

    bindir: Path
    base_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    user: str = _SUPERUSER

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=dbname, **kwargs)

    def create_database(self) -> str:
        name = f"openrr_test_{uuid.uuid4().hex[:16]}"
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # ---- lifecycle ------------------------------------------------------------------------------------
    @classmethod
    def start(cls, bindir: Path) -> PostgresServer:
        run_as = _run_as()
        base_dir = Path(tempfile.mkdtemp(prefix="openrr-pg-"))
        try:
            if run_as is not None:
                os.chown(base_dir, run_as.pw_uid, run_as.pw_gid)
            _initdb(bindir, base_dir, run_as)
            last_error = ""
            for _attempt in range(3):  # a free port can be taken by someone else before the server binds it
                server, last_error = cls._try_start(bindir, base_dir, run_as)
                if server is not None:
                    return server
            raise RuntimeError(f"the test PostgreSQL server did not start:\n{last_error}")
        except BaseException:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise

    @classmethod
    def _try_start(
        cls, bindir: Path, base_dir: Path, run_as: pwd.struct_passwd | None
    ) -> tuple[PostgresServer | None, str]:
        port = _free_port()
        log_path = base_dir / f"postgres-{port}.log"
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(base_dir / "data"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(base_dir),
            # a throwaway server: durability only costs time
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **_popen_user(run_as)
            )
        server = cls(bindir=bindir, base_dir=base_dir, port=port, process=process)
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return None, _tail(log_path)
                try:
                    with server.connect(connect_timeout=1) as conn:
                        conn.execute("SELECT 1")
                    return server, ""
                except psycopg.OperationalError:
                    time.sleep(0.05)
        except BaseException:
            server._stop_process()
            raise
        server._stop_process()
        return None, f"not accepting connections after {_START_TIMEOUT_S:.0f}s\n{_tail(log_path)}"

    def _stop_process(self) -> None:
        """SIGTERM to the postmaster we started; fast shutdown if clients hold it up; SIGKILL last."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=_STOP_TIMEOUT_S if sig != signal.SIGTERM else 5.0)
        self.process.wait()

    def stop(self) -> None:
        try:
            self._stop_process()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _run_as() -> pwd.struct_passwd | None:
    """The OS user to run PostgreSQL as: ``postgres`` when we are root (initdb refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' OS user to run PostgreSQL as")


def _popen_user(run_as: pwd.struct_passwd | None) -> dict[str, Any]:
    if run_as is None:
        return {}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": run_as.pw_dir,
        "USER": run_as.pw_name,
        "LOGNAME": run_as.pw_name,
        "LANG": "C.UTF-8",
    }
    return {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": [], "env": env}


def _initdb(bindir: Path, base_dir: Path, run_as: pwd.struct_passwd | None) -> None:
    argv = [
        str(bindir / "initdb"),
        "-D",
        str(base_dir / "data"),
        "-U",
        _SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ]
    result = subprocess.run(
        argv,
        cwd=base_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
        **_popen_user(run_as),
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise RuntimeError(f"initdb failed ({result.returncode}):\n{output[-4000:]}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server private to this test session (skips if PostgreSQL is not installed)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(f"PostgreSQL server binaries not found ({_BINDIR_GLOB}); scripts/setup installs them")
    server = PostgresServer.start(bindir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/DBNAME`` of a new, empty database, dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
