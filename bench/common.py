"""Helpers for the benchmarks: start `openrr serve` on loopback, read its dev account, stop it by pid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform}


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class Server:
    """A real `openrr serve` in a temporary data directory."""

    def __init__(self, data_dir: Path, port: int, proc: subprocess.Popen[bytes], scheme: str) -> None:
        self.data_dir, self.port, self.proc, self.scheme = data_dir, port, proc, scheme
        config = json.loads((data_dir / "arrconfig.json").read_text())
        self.account_id: str = config["accountSettings"]["arrAccountId"]
        self.key: str = config["accountSettings"]["arrAccountKey"]
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.verify: str | bool = str(data_dir / "tls" / "cert.pem") if scheme == "https" else False

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=30)

    def token(self) -> str:
        with self.client() as c:
            resp = c.get(
                f"/accounts/{self.account_id}/token",
                headers={"Authorization": f"Bearer {self.account_id}:{self.key}"},
            )
            resp.raise_for_status()
            return str(resp.json()["AccessToken"])

    def render_pids(self) -> list[tuple[int, float]]:
        with contextlib.closing(sqlite3.connect(self.data_dir / "openrr.db")) as db:
            rows = db.execute("SELECT host_handle FROM sessions WHERE host_handle IS NOT NULL").fetchall()
        return [(int(h["pid"]), float(h["createTime"])) for h in (json.loads(r[0]) for r in rows)]


def serve_command(port: int, data_dir: Path, *extra: str, log_level: str) -> list[str]:
    """``openrr serve`` on loopback with throttling off (benchmarks send more than a client would)."""
    return [
        sys.executable,
        "-m",
        "openrr",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--throttle-rate",
        "0",
        "--sts-throttle-rate",
        "0",
        "--log-level",
        log_level,
        *extra,
    ]


@contextlib.contextmanager
def openrr_server(*extra: str, insecure_http: bool = False) -> Iterator[Server]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="openrr-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        args = serve_command(port, data_dir, *extra, log_level="warning")
        if insecure_http:
            args.append("--insecure-http")
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        server = None
        try:
            deadline = time.monotonic() + 30
            while not (data_dir / "arrconfig.json").exists() or not _healthy(port, data_dir, insecure_http):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"openrr serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
                    )
                time.sleep(0.1)
            server = Server(data_dir, port, proc, "http" if insecure_http else "https")
            yield server
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if server is not None:
                _stop_render_servers(server.render_pids())


def _healthy(port: int, data_dir: Path, insecure_http: bool) -> bool:
    scheme = "http" if insecure_http else "https"
    verify: str | bool = False if insecure_http else str(data_dir / "tls" / "cert.pem")
    try:
        return httpx.get(f"{scheme}://127.0.0.1:{port}/health", verify=verify, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_render_servers(pids: list[tuple[int, float]]) -> None:
    """Stop the render servers this benchmark started: by pid, only if the create time still matches."""
    for pid, created in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.5:
                proc.terminate()
                proc.wait(5)
