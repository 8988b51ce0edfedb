"""GET-session throughput of `openrr serve` as a ratio to a bare Starlette JSON route, in the same run.

Both servers run under uvicorn with one worker on plain HTTP (TLS would cost both the same and only blur
the ratio); wrk (Debian package, installed by scripts/setup) drives each with the same connections and
duration, alternating rounds so drift on a shared machine hits both. Goal: ratio ≥ 0.6.

    .venv/bin/python -m bench.get_throughput [--duration 10] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench.common import free_port, openrr_server, write_result

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, token: str, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M):
        lat[f"p{pct}_ms"] = float(value) * _UNIT[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} error responses from {url}:\n{out}")
    return {"rps": rps, **lat}


def bare_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/accounts/a/sessions/b", timeout=1)
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("serve_args", nargs="*", help="extra `openrr serve` options (after --)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: run scripts/setup")

    bare_port = free_port()
    bare = bare_server(bare_port)
    try:
        with openrr_server(*args.serve_args, insecure_http=True) as server:
            token = server.token()
            with server.client() as c:
                resp = c.put(
                    f"/accounts/{server.account_id}/sessions/bench",
                    params={"api-version": "2021-01-01"},
                    json={"maxLeaseTimeMinutes": 60, "size": "Standard"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                resp.raise_for_status()
            openrr_url = f"{server.url}/accounts/{server.account_id}/sessions/bench?api-version=2021-01-01"
            bare_url = f"http://127.0.0.1:{bare_port}/accounts/{server.account_id}/sessions/bench"
            wrk(openrr_url, token, 2, args.connections)  # warm-up
            wrk(bare_url, token, 2, args.connections)
            rounds: list[dict[str, Any]] = []
            for _ in range(args.rounds):
                o = wrk(openrr_url, token, args.duration, args.connections)
                b = wrk(bare_url, token, args.duration, args.connections)
                rounds.append({"openrr": o, "starlette": b, "ratio": o["rps"] / b["rps"]})
                ratio = o["rps"] / b["rps"]
                print(f"openrr {o['rps']:8.0f} rps  starlette {b['rps']:8.0f} rps  ratio {ratio:.2f}")
    finally:
        bare.terminate()
        bare.wait(10)
    summary = {
        "ratio_median": round(median(r["ratio"] for r in rounds), 3),
        "openrr_rps_median": round(median(r["openrr"]["rps"] for r in rounds), 1),
        "starlette_rps_median": round(median(r["starlette"]["rps"] for r in rounds), 1),
        "openrr_p50_ms_median": round(median(r["openrr"]["p50_ms"] for r in rounds), 2),
        "openrr_p99_ms_median": round(median(r["openrr"]["p99_ms"] for r in rounds), 2),
        "goal": "ratio >= 0.6",
    }
    path = write_result("get_throughput", {"settings": vars(args), "summary": summary, "rounds": rounds})
    print(summary)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
