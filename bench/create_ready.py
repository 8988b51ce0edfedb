"""Create → Ready latency with the local host: PUT a session, poll GET until Ready, stop it; repeat.

Runs `openrr serve` over HTTPS (the default) with real render-server processes. Polls every 20 ms, so each
figure is accurate to that. Goal: p50 ≤ 2 s on 2 cores.

    .venv/bin/python -m bench.create_ready [--sessions 30]
"""

from __future__ import annotations

import argparse
import time

from bench.common import openrr_server, percentile, write_result

V = {"api-version": "2021-01-01"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=30)
    args = parser.parse_args()
    times: list[float] = []
    with openrr_server() as server:
        token = server.token()
        auth = {"Authorization": f"Bearer {token}"}
        with server.client() as c:
            for i in range(args.sessions):
                path = f"/accounts/{server.account_id}/sessions/bench-{i}"
                start = time.perf_counter()
                c.put(
                    path, params=V, json={"maxLeaseTimeMinutes": 5, "size": "Standard"}, headers=auth
                ).raise_for_status()
                while True:
                    status = c.get(path, params=V, headers=auth).json()["status"]
                    if status != "Starting":
                        break
                    time.sleep(0.02)
                elapsed = time.perf_counter() - start
                if status != "Ready":
                    raise RuntimeError(f"session {i} ended {status}")
                times.append(elapsed)
                c.post(f"{path}/:stop", params=V, headers=auth).raise_for_status()
                print(f"session {i:3d}: Ready after {elapsed * 1000:7.1f} ms")
    summary = {
        "sessions": len(times),
        "p50_s": round(percentile(times, 0.5), 3),
        "p95_s": round(percentile(times, 0.95), 3),
        "max_s": round(max(times), 3),
        "goal": "p50 <= 2 s",
    }
    written = write_result("create_ready", {"summary": summary, "seconds": [round(t, 4) for t in times]})
    print(summary)
    print(f"written to {written}")


if __name__ == "__main__":
    main()
