"""Unauthenticated 1 GiB uploads against a real ``openrr serve`` (issue 12 §2).

50 clients at once each start a 1 GiB upload over HTTPS, with no Authorization header, and keep sending until
the server answers (or the gigabyte is out). Half declare ``Content-Length: 1073741824``; the other half send
it chunked, without a length, so the limit must hold while reading. The control plane's RSS is sampled every
10 ms from idle through the last answer. Goal: RSS within 20 MiB of idle; every upload answered 413, promptly.

    .venv/bin/python -m bench.body_limits            # writes bench/results/body_limits.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import threading
import time
from typing import Any

import psutil

from bench.common import Server, openrr_server, percentile, write_result

GIB = 2**30
PIECE = 64 * 1024


async def upload(server: Server, context: ssl.SSLContext, chunked: bool) -> dict[str, Any]:
    """Send up to 1 GiB until an answer arrives; the status, seconds to the answer and bytes sent."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
    path = f"/v1/accounts/{server.account_id}/sessions/create"
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {GIB}"
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
    )
    answer = asyncio.create_task(reader.readline())
    sent = 0
    piece = (b"%x\r\n" % PIECE + b" " * PIECE + b"\r\n") if chunked else b" " * PIECE
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while sent < GIB and not answer.done() and not writer.is_closing():
            writer.write(piece)
            await writer.drain()
            sent += PIECE
    status_line = await asyncio.wait_for(answer, 60)
    seconds = time.monotonic() - start
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
    status = int(status_line.split()[1]) if status_line else 0
    return {"status": status, "seconds": seconds, "sent": sent, "chunked": chunked}


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)


async def run(server: Server, clients: int) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(server.verify))
    proc = psutil.Process(server.proc.pid)
    # Idle: after one small request of each kind, so that lazily created state is already there.
    await upload_small(server, context)
    await asyncio.sleep(1)
    idle = proc.memory_info().rss
    sampler = RssSampler(server.proc.pid)
    sampler.start()
    started = time.monotonic()
    results = await asyncio.gather(*(upload(server, context, chunked=i % 2 == 1) for i in range(clients)))
    wall = time.monotonic() - started
    sampler.stop.set()
    sampler.join()
    after = proc.memory_info().rss
    seconds = [r["seconds"] for r in results]
    return {
        "clients": clients,
        "statuses": sorted({r["status"] for r in results}),
        "all_413": all(r["status"] == 413 for r in results),
        "idle_rss_mib": round(idle / 2**20, 1),
        "peak_rss_mib": round(sampler.peak / 2**20, 1),
        "peak_growth_mib": round((sampler.peak - idle) / 2**20, 1),
        "after_rss_mib": round(after / 2**20, 1),
        "answer_s_p50": round(percentile(seconds, 0.5), 3),
        "answer_s_max": round(max(seconds), 3),
        "sent_mib_max": round(max(r["sent"] for r in results) / 2**20, 2),
        "wall_s": round(wall, 2),
    }


async def upload_small(server: Server, context: ssl.SSLContext) -> None:
    for chunked in (False, True):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 2"
        body = b"2\r\n{}\r\n0\r\n\r\n" if chunked else b"{}"
        writer.write(
            f"POST /v1/accounts/{server.account_id}/sessions/create HTTP/1.1\r\nHost: bench\r\n"
            f"Connection: close\r\n{framing}\r\n\r\n".encode()
            + body
        )
        await reader.read()
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="each against a fresh control plane")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with openrr_server() as server:
            runs.append(asyncio.run(run(server, args.clients)))
        print(runs[-1])
    growth = [r["peak_growth_mib"] for r in runs]
    result = {
        "goal": "RSS within 20 MiB of idle; every upload answered 413 promptly",
        "runs": runs,
        "peak_growth_mib_median": percentile(growth, 0.5),
        "peak_growth_mib_max": max(growth),
        "all_413": all(r["all_413"] for r in runs),
    }
    result["met"] = result["all_413"] and result["peak_growth_mib_max"] <= 20
    path = write_result("body_limits", result)
    print({k: v for k, v in result.items() if k != "runs"})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
