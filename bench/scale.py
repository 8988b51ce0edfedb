"""Scale: the warm pool (local host and Ray), 200 concurrent creates on a small Ray cluster, and the control
plane's memory and CPU with 1,000 sessions on record.

Every part runs real `openrr serve` processes over HTTPS on loopback with real render servers. The Ray parts
start a private two-node cluster with `tests/ray_cluster.py` (head on 127.0.0.2, node on 127.0.0.3, token
auth) and stop exactly its processes. Each part stops every process it started, even on error; results are
merged into `bench/results/scale.json` (one entry per part).

Parts:
  local       create → Ready, N sequential sessions, cold (no pool) then warm (`--warm-pool standard=2`).
              Before each create the previous session's render server has exited and, when warm, the pool
              is full again and its servers have warmed up, so every warm create can be a pool hit. GET is
              polled every 20 ms. Goal (issue): warm p50 ≤ 0.5 s, p95 ≤ 1 s.
  ray         the same with `--host-backend ray` (head render_standard=4, node render_standard=2).
  concurrent  200 concurrent PUTs (distinct ids) at one control plane on a Ray cluster of 6 standard slots:
              only 201 and 503 CapacityExhausted (403 QuotaExceeded with --quota) are acceptable. Then the
              admitted sessions go Ready, are stopped, and every slot must be free again with no render
              server left.
  memory      the control plane's RSS/USS and CPU (local host): idle and under a light polling client (GET
              round-robin over 50 sessions at --poll-rate requests/s, plus one list a second), with 0, 50
              and 1,000 sessions on record. The active sessions are real (render servers, created through
              the API); the ended ones are rows written through the product's store (`SqlStore`), copies
              of a real session that was created and stopped through the API in the same run. One more
              point with --extra-rows (default 10,000) shows what grows with the rows on record.

    .venv/bin/python -m bench.scale [--part local|ray|concurrent|memory ...] [--sessions 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import RESULTS, Server, free_port, machine, percentile, serve_command

V = {"api-version": "2021-01-01"}
PARTS = ("local", "ray", "concurrent", "memory")
ACCEPTABLE = {(201, None), (503, "CapacityExhausted"), (403, "QuotaExceeded")}


# ---- one control plane -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Serve:
    """A running `openrr serve`, its log, and every render server seen under it."""

    server: Server
    log: Path
    cluster: Any = None  # tests.ray_cluster.RayCluster for --host-backend ray
    seen: dict[int, float] = dataclasses.field(default_factory=dict)  # render-server pid -> create time
    # Filled in when it has stopped (see ``serve``):
    exit: dict[str, Any] | None = None
    alive_at_exit: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    leftover: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    exit_log: list[str] = dataclasses.field(default_factory=list)
    _operator: tuple[str, float] | None = None

    @property
    def proc(self) -> psutil.Process:
        return psutil.Process(self.server.proc.pid)

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, verify=self.server.verify, timeout=timeout)

    def session_path(self, session_id: str) -> str:
        return f"/accounts/{self.server.account_id}/sessions/{session_id}"

    # ---- the operator endpoint -----------------------------------------------------------------------------
    def operator_token(self) -> str:
        """Minted from the store's signing key, as `openrr cluster status` does (valid for an hour)."""
        if self._operator is None or self._operator[1] < time.monotonic():
            token = asyncio.run(_mint_operator_token(self.server.data_dir))
            self._operator = (token, time.monotonic() + 3000)
        return self._operator[0]

    def cluster_status(self, c: httpx.Client) -> dict[str, Any]:
        resp = c.get("/openrr/cluster", headers={"Authorization": f"Bearer {self.operator_token()}"})
        resp.raise_for_status()
        return dict(resp.json())

    def standard(self, c: httpx.Client) -> dict[str, Any]:
        return dict(next(s for s in self.cluster_status(c)["sizes"] if s["size"] == "Standard"))

    # ---- the store -----------------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        db_path = self.server.data_dir / "openrr.db"
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            found = db.execute("SELECT id, status, host_handle, host_released FROM sessions").fetchall()
        out = []
        for row in found:
            item = dict(row)
            handle = item["host_handle"]
            item["host_handle"] = json.loads(handle) if isinstance(handle, str) else handle
            out.append(item)
        return out

    def session_pids(self) -> set[int]:
        """Render servers of the sessions on record: by the handle's pid (local host) or by their log
        file, which the Ray actor names after itself (a Ray handle need not carry a pid)."""
        pids, logs = set(), set()
        for row in self.rows():
            handle = row["host_handle"] or {}
            if handle.get("pid"):
                pids.add(int(handle["pid"]))
            if handle.get("actor"):
                logs.add(f"{handle['actor']}.log")
        if logs:
            pids |= {p.pid for p in self.render_procs() if _stdout_name(p.pid) in logs}
        return pids

    def server_of(self, session_id: str) -> list[tuple[int, float]]:
        """The live render server of one session, as (pid, create time)."""
        handle = next((r["host_handle"] for r in self.rows() if r["id"] == session_id), None) or {}
        found = []
        for proc in self.render_procs():
            if proc.pid == handle.get("pid") or _stdout_name(proc.pid) == f"{handle.get('actor')}.log":
                with contextlib.suppress(psutil.Error):
                    found.append((proc.pid, proc.create_time()))
        return found

    # ---- render servers ------------------------------------------------------------------------------------
    def render_procs(self) -> list[psutil.Process]:
        """Live render servers of this control plane: its children (local host) or the processes of the
        Ray cluster's node groups (Ray host)."""
        if self.cluster is not None:
            candidates = cluster_procs(self.cluster)
        else:
            try:
                candidates = self.proc.children(recursive=True)
            except psutil.Error:
                candidates = []
        found = []
        for proc in candidates:
            with contextlib.suppress(psutil.Error):
                if "openrr.render" in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
                    self.seen.setdefault(proc.pid, proc.create_time())
        return found

    def pooled_procs(self) -> list[psutil.Process]:
        """Render servers that serve no session (yet): the warm pool's."""
        sessions = self.session_pids()
        return [p for p in self.render_procs() if p.pid not in sessions]

    def alive_seen(self) -> list[tuple[int, float]]:
        return [(pid, created) for pid, created in self.seen.items() if _alive(pid, created)]

    def log_excerpt(
        self, words: tuple[str, ...] = ("WARNING", "ERROR", "CRITICAL", "Traceback"), n: int = 20
    ) -> list[str]:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line[:400] for line in lines if any(w in line for w in words)][-n:]


async def _mint_operator_token(data_dir: Path) -> str:
    from openrr.config.settings import Settings
    from openrr.domain.clock import SystemClock
    from openrr.services.tokens import TokenIssuer, new_signing_key
    from openrr.store.sql import open_store

    settings = Settings.load({"data_dir": data_dir})
    store = await open_store(settings.server.resolved_store_url, migrate=False)
    try:
        clock = SystemClock()
        key = await store.signing_key(new_signing_key(clock.now()))
        return str(TokenIssuer([key], clock).issue_operator_token(dt.timedelta(hours=1)))
    finally:
        await store.close()


def _stdout_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/fd/1"))
    except OSError:
        return ""


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return bool(abs(proc.create_time() - created) < 0.5 and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def cluster_procs(cluster: Any) -> list[psutil.Process]:
    """Every live process of the cluster's nodes. Ray puts each worker (and so each render server an actor
    starts) in a process group of its own, but it stays in the session of its node's `ray start`, whose
    id is the node's pgid in tests/ray_cluster.py."""
    sessions = {node.pgid for node in cluster.nodes}
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) in sessions and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def _log_warm(proc: psutil.Process) -> bool:
    """Whether a pooled render server says it warmed up (its stdout is its log file)."""
    try:
        log = os.readlink(f"/proc/{proc.pid}/fd/1")
        return "warmed up" in Path(log).read_text(errors="replace")
    except OSError:
        return False


@contextlib.contextmanager
def serve(
    *extra: str,
    env: dict[str, str] | None = None,
    cluster: Any = None,
    start_timeout: float = 90,
    linger: float = 10,
) -> Iterator[Serve]:
    """`openrr serve` on loopback over HTTPS in a temporary data dir; stderr to a log kept for excerpts.

    On exit: SIGTERM (SIGKILL after 30 s); render servers seen under it that still run ``linger`` seconds
    later are recorded in ``serve.leftover`` and terminated (by pid and create time)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="openrr-scale-") as tmp:
        data_dir = Path(tmp) / "data"
        log = Path(tmp) / "serve.log"
        args = serve_command(port, data_dir, *extra, log_level="info")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENRR_", "RAY_"))}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env={**base, **(env or {})}, cwd=tmp
            )
        handle: Serve | None = None
        try:
            deadline = time.monotonic() + start_timeout
            while not (data_dir / "arrconfig.json").exists() or not _healthy(port, data_dir):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"openrr serve did not start:\n{log.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(0.1)
            handle = Serve(Server(data_dir, port, proc, "https"), log, cluster)
            yield handle
        finally:
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.render_procs()  # record what runs now, so nothing goes unseen
                with contextlib.suppress(Exception):
                    for pid in handle.session_pids():
                        with contextlib.suppress(psutil.Error):
                            handle.seen.setdefault(pid, psutil.Process(pid).create_time())
            stopping = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if handle is not None:
                handle.exit = {"code": proc.returncode, "seconds": round(time.monotonic() - stopping, 2)}
                at_exit = handle.alive_seen()
                # A render server may take a while to follow its stopped actor or closed pipe.
                gone = _wait(lambda: not handle.alive_seen(), linger, step=0.1)
                handle.exit["render_servers_gone_s"] = round(time.monotonic() - stopping, 1) if gone else None
                handle.leftover = handle.alive_seen()
                handle.alive_at_exit = at_exit
                for pid, created in handle.leftover:
                    _terminate(pid, created)
                # The log after the banner (which shows the dev account's key).
                lines = _tail(log, 200)
                start = next((i for i, line in enumerate(lines) if "Started server process" in line), 0)
                handle.exit_log = lines[start:][-15:]


def _tail(path: Path, n: int) -> list[str]:
    try:
        return [line[:400] for line in path.read_text(errors="replace").splitlines()[-n:]]
    except OSError:
        return []


def _healthy(port: int, data_dir: Path) -> bool:
    try:
        cert = str(data_dir / "tls" / "cert.pem")
        return httpx.get(f"https://127.0.0.1:{port}/health", verify=cert, timeout=1).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def _terminate(pid: int, created: float) -> None:
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) < 0.5:
            proc.terminate()
            try:
                proc.wait(5)
            except psutil.TimeoutExpired:
                proc.kill()


def _wait(done: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(step)
    return done()


# ---- a private Ray cluster ---------------------------------------------------------------------------------
@contextlib.contextmanager
def ray_cluster(head_slots: int, node_slots: int, report: dict[str, Any]) -> Iterator[Any]:
    """tests/ray_cluster.py's cluster with our slot counts; stopped (and checked) on exit."""
    from tests.ray_cluster import RayCluster, ray_executable

    if ray_executable() is None:
        raise RuntimeError("Ray is not installed here (no `ray` executable)")
    cluster = RayCluster()
    started = time.monotonic()
    try:
        cluster.start(resources={"render_standard": head_slots})
        cluster.start_node(resources={"render_standard": node_slots})
        report["cluster_start_s"] = round(time.monotonic() - started, 1)
        report["cluster"] = {"head": {"render_standard": head_slots}, "node": {"render_standard": node_slots}}
        yield cluster
    finally:
        survivors = cluster.stop()
        report["ray_survivors"] = survivors
        # Workers (own process groups) outlive the groups' SIGKILL until they notice their raylet is gone.
        late = [(p.pid, p.create_time()) for p in cluster_procs(cluster)]
        if not _wait(lambda: not any(_alive(*p) for p in late), 20, step=0.2):
            report["ray_workers_killed_after_stop"] = [pid for pid, c in late if _alive(pid, c)]
            for pid, created in late:
                if _alive(pid, created):
                    with contextlib.suppress(psutil.Error):
                        psutil.Process(pid).kill()
        if survivors:
            print(f"Ray processes left behind: {survivors}")


def ray_serve_args(cluster: Any, namespace: str) -> tuple[list[str], dict[str, str]]:
    args = []
    for key, value in cluster.serve_options(namespace).items():
        args += ["--" + key.replace("_", "-"), value]
    env = {"RAY_USAGE_STATS_ENABLED": "0"}  # the token comes from --ray-auth-token-file
    return args, env


# ---- create → Ready ----------------------------------------------------------------------------------------
def create_wait_ready(
    c: httpx.Client, s: Serve, auth: dict[str, str], sid: str, poll: float = 0.02
) -> tuple[int, str, float]:
    """PUT, then GET every ``poll`` s until no longer Starting: (code, final status or error, seconds)."""
    path = s.session_path(sid)
    start = time.perf_counter()
    resp = c.put(path, params=V, json={"maxLeaseTimeMinutes": 5, "size": "Standard"}, headers=auth)
    if resp.status_code != 201:
        return resp.status_code, f"{resp.status_code} {resp.text[:300]}", time.perf_counter() - start
    while True:
        body = c.get(path, params=V, headers=auth).json()
        if body["status"] != "Starting":
            break
        time.sleep(poll)
    elapsed = time.perf_counter() - start
    return 200, body["status"] if body["status"] == "Ready" else json.dumps(body)[:500], elapsed


def wait_pool_warm(s: Serve, c: httpx.Client, target: int, timeout: float = 90) -> tuple[bool, float]:
    """Until the pool holds ``target`` idle servers, none starting, each of which has warmed up."""
    start = time.monotonic()

    def full() -> bool:
        pool = s.standard(c)["pool"] or {}
        if pool.get("idle", 0) < target or pool.get("starting", 0):
            return False
        pooled = s.pooled_procs()
        return len(pooled) >= target and all(_log_warm(p) for p in pooled)

    ok = _wait(full, timeout, step=0.1)
    return ok, time.monotonic() - start


def sequential(s: Serve, n: int, *, warm: int, label: str) -> dict[str, Any]:
    """N sequential create → Ready → stop; before each create the previous server has exited (and, warm,
    the pool is full and warmed up)."""
    times: list[float] = []
    failures: list[str] = []
    from_pool = 0
    waits: list[float] = []
    auth = {"Authorization": f"Bearer {s.server.token()}"}
    with s.client() as c:
        for i in range(n):
            if warm:
                ok, waited = wait_pool_warm(s, c, warm)
                waits.append(waited)
                if not ok:
                    failures.append(f"{label}-{i}: pool not full/warm after {waited:.0f} s: {s.standard(c)}")
            taken_before = (s.standard(c)["pool"] or {}).get("taken", 0)
            sid = f"{label}-{i}"
            code, status, elapsed = create_wait_ready(c, s, auth, sid)
            taken = (s.standard(c)["pool"] or {}).get("taken", 0) - taken_before
            from_pool += taken
            if status != "Ready":
                failures.append(f"{sid}: {status}")
            else:
                times.append(elapsed)
            print(f"  {sid:12s} {status[:40]:10s} {elapsed * 1000:7.1f} ms{'  (pool)' if taken else ''}")
            servers = s.server_of(sid)
            if code == 200:
                c.post(f"{s.session_path(sid)}/:stop", params=V, headers=auth).raise_for_status()

            def exited(servers: list[tuple[int, float]] = servers) -> bool:
                return not any(_alive(*p) for p in servers)

            if not _wait(exited, 20):
                failures.append(f"{sid}: render server {servers} still running 20 s after stop")
        pool = s.standard(c)["pool"]
        # Every session server must be gone now; only the pool's may remain.
        time.sleep(1.0)
        left = [p.pid for p in s.render_procs() if p.pid in s.session_pids()]
    summary: dict[str, Any] = {
        "sessions": n,
        "ready": len(times),
        "p50_s": round(percentile(times, 0.5), 3),
        "p95_s": round(percentile(times, 0.95), 3),
        "max_s": round(max(times), 3) if times else None,
        "from_pool": from_pool,
        "pool": pool,
        "failures": failures,
        "session_servers_left": left,
        "seconds": [round(t, 4) for t in times],
    }
    if warm:
        summary["pool_refill_wait_p50_s"] = round(percentile(waits, 0.5), 2)
    return summary


def part_local(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"host": "local", "sessions": args.sessions, "poll_ms": 20}
    for label, extra, warm in (
        ("cold", (), 0),
        ("warm", ("--warm-pool", f"standard={args.pool}"), args.pool),
    ):
        print(f"local, {label}:")
        with serve(*extra) as s:
            if warm:
                with s.client() as c:
                    _, waited = wait_pool_warm(s, c, warm)
                out["pool_first_fill_s"] = round(waited, 1)
            out[label] = sequential(s, args.sessions, warm=warm, label=label)
            out[label]["serve_log_warnings"] = s.log_excerpt()
        out[label].update(_exit_report(s))
    out["goal"] = "warm p50 <= 0.5 s, p95 <= 1 s"
    return out


def part_ray(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"host": "ray", "sessions": args.sessions, "poll_ms": 20}
    with ray_cluster(4, 2, out) as cluster:
        for label, extra, warm in (
            ("cold", (), 0),
            ("warm", ("--warm-pool", f"standard={args.pool}"), args.pool),
        ):
            print(f"ray, {label}:")
            ray_args, env = ray_serve_args(cluster, f"bench-{label}")
            with serve(*ray_args, *extra, env=env, cluster=cluster, linger=90) as s:
                if warm:
                    with s.client() as c:
                        _, waited = wait_pool_warm(s, c, warm)
                    out["pool_first_fill_s"] = round(waited, 1)
                out[label] = sequential(s, args.sessions, warm=warm, label=label)
                with s.client() as c:
                    out[label]["slots_after"] = _slots(s.cluster_status(c))
                out[label]["serve_log_warnings"] = s.log_excerpt()
            out[label].update(_exit_report(s))
            out[label]["render_servers_in_cluster_after_serve_stop"] = [
                p.pid for p in cluster_procs(cluster) if _is_render(p)
            ]
    out["goal"] = "warm p50 <= 0.5 s, p95 <= 1 s"
    return out


def _exit_report(s: Serve) -> dict[str, Any]:
    """How `openrr serve` stopped, and which render servers seen under it outlived it."""
    report: dict[str, Any] = {
        "serve_exit": s.exit,
        "render_servers_alive_at_serve_exit": s.alive_at_exit,
        "render_servers_alive_after_linger": s.leftover,
    }
    if report["render_servers_alive_at_serve_exit"]:
        report["serve_log_at_exit"] = s.exit_log
    return report


def _is_render(proc: psutil.Process) -> bool:
    try:
        return "openrr.render" in proc.cmdline()
    except psutil.Error:
        return False


def _slots(status: dict[str, Any]) -> dict[str, Any]:
    std = next(s for s in status["sizes"] if s["size"] == "Standard")
    return {
        "total": std["total"],
        "free": std["free"],
        "sessions": std["sessions"],
        "nodes": {n["address"]: n["slots"].get("standard") for n in status["nodes"]},
    }


# ---- 200 concurrent creates --------------------------------------------------------------------------------
async def _fire(s: Serve, token: str, n: int, prefix: str) -> tuple[list[dict[str, Any]], float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=s.server.url, verify=s.server.verify, timeout=180, limits=limits
    ) as c:
        gate = asyncio.Event()

        async def one(i: int) -> dict[str, Any]:
            await gate.wait()
            t = time.perf_counter()
            try:
                resp = await c.put(
                    s.session_path(f"{prefix}-{i:03d}"),
                    params=V,
                    json={"maxLeaseTimeMinutes": 10, "size": "Standard"},
                    headers=auth,
                )
            except httpx.HTTPError as exc:
                return {"i": i, "status": None, "code": f"{type(exc).__name__}: {exc}", "s": 0.0}
            code = None
            if resp.status_code >= 400:
                try:
                    code = resp.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = resp.text[:200]
            return {
                "i": i,
                "status": resp.status_code,
                "code": code,
                "s": time.perf_counter() - t,
                "retry_after": resp.headers.get("Retry-After"),
            }

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.sleep(0.1)
        start = time.perf_counter()
        gate.set()
        results = await asyncio.gather(*tasks)
        return list(results), time.perf_counter() - start


def part_concurrent(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"host": "ray", "creates": args.creates, "quota": args.quota}
    head, node = 4, 2
    with ray_cluster(head, node, out) as cluster:
        ray_args, env = ray_serve_args(cluster, "bench-concurrent")
        extra = ["--max-sessions-per-account", str(args.quota)] if args.quota else []
        with serve(*ray_args, *extra, env=env, cluster=cluster, linger=90) as s:
            token = s.server.token()
            auth = {"Authorization": f"Bearer {token}"}
            with s.client() as c:
                out["slots_before"] = _slots(s.cluster_status(c))
            start = time.perf_counter()
            results, admit_s = asyncio.run(_fire(s, token, args.creates, "burst"))
            out["admit_all_s"] = round(admit_s, 2)
            counts = Counter((r["status"], r["code"]) for r in results)
            out["responses"] = {f"{k[0]} {k[1] or ''}".strip(): v for k, v in sorted(counts.items(), key=str)}
            bad = [r for r in results if (r["status"], r["code"]) not in ACCEPTABLE]
            out["unacceptable"] = bad[:20]
            out["unacceptable_count"] = len(bad)
            out["put_latency_p50_s"] = round(percentile([r["s"] for r in results], 0.5), 3)
            out["put_latency_max_s"] = round(max(r["s"] for r in results), 3)
            out["503_without_retry_after"] = sum(
                1 for r in results if r["status"] == 503 and not r.get("retry_after")
            )
            admitted = [f"burst-{r['i']:03d}" for r in results if r["status"] == 201]
            out["201_latencies_s"] = sorted(round(r["s"], 3) for r in results if r["status"] == 201)
            out["admitted"] = len(admitted)
            print(f"  admitted {len(admitted)} of {args.creates} in {admit_s:.2f} s: {out['responses']}")
            final: dict[str, str] = {}
            with s.client() as c:
                pending = set(admitted)
                deadline = time.monotonic() + 180
                while pending and time.monotonic() < deadline:
                    for sid in sorted(pending):
                        status = c.get(s.session_path(sid), params=V, headers=auth).json()["status"]
                        if status != "Starting":
                            final[sid] = status
                            pending.discard(sid)
                    time.sleep(0.05)
                out["all_ready_s"] = round(time.perf_counter() - start, 2)
                out["final_status"] = dict(Counter(final.values()))
                out["still_starting"] = sorted(pending)
                errors = {}
                for sid, status in final.items():
                    if status != "Ready":
                        errors[sid] = c.get(s.session_path(sid), params=V, headers=auth).json().get("error")
                out["errors"] = errors
                hosts = Counter(
                    str(c.get(s.session_path(sid), params=V, headers=auth).json().get("hostname"))
                    for sid in admitted
                    if final.get(sid) == "Ready"
                )
                out["ready_per_node"] = dict(hosts)
                out["slots_while_running"] = _slots(s.cluster_status(c))
                out["render_servers_while_running"] = len(s.render_procs())
                stop_start = time.perf_counter()
                for sid in admitted:
                    c.post(f"{s.session_path(sid)}/:stop", params=V, headers=auth).raise_for_status()

                def freed() -> bool:
                    st = _slots(s.cluster_status(c))
                    nodes_free = all(v and v["free"] == v["total"] for v in st["nodes"].values())
                    return st["free"] == st["total"] and nodes_free and not s.render_procs()

                ok = _wait(freed, 60, step=0.1)
                out["all_freed_s"] = round(time.perf_counter() - stop_start, 2) if ok else None
                out["slots_at_freed"] = _slots(s.cluster_status(c))
                # The store marks a session released once its host stop has returned.
                ok = _wait(lambda: all(r["host_released"] for r in s.rows()), 60, step=0.1)
                out["all_released_s"] = round(time.perf_counter() - stop_start, 2) if ok else None
                out["slots_after"] = _slots(s.cluster_status(c))
                out["render_servers_after"] = [p.pid for p in s.render_procs()]
                rows = s.rows()
                out["rows_stored"] = len(rows)
                out["rows_by_status"] = dict(Counter(r["status"] for r in rows))
                out["rows_not_released"] = [r["id"] for r in rows if not r["host_released"]]
                rejected = [f"burst-{r['i']:03d}" for r in results if r["status"] != 201][:5]
                out["rejected_ids_stored"] = [
                    sid
                    for sid in rejected
                    if c.get(s.session_path(sid), params=V, headers=auth).status_code != 404
                ]
                out["serve_log_warnings"] = s.log_excerpt()
        out.update(_exit_report(s))
    return out


# ---- memory and CPU with 1,000 sessions on record ----------------------------------------------------------
def _usage(proc: psutil.Process) -> dict[str, float]:
    mem = proc.memory_full_info()
    return {"rss_mib": round(mem.rss / 2**20, 1), "uss_mib": round(mem.uss / 2**20, 1)}


def _measure(
    s: Serve, seconds: float, load: Callable[[float], dict[str, Any]] | None = None
) -> dict[str, Any]:
    proc = s.proc
    before = proc.cpu_times()
    t0 = time.monotonic()
    extra: dict[str, Any] = {}
    if load is None:
        time.sleep(seconds)
    else:
        extra = load(seconds)
    wall = time.monotonic() - t0
    after = proc.cpu_times()
    cpu = (after.user + after.system) - (before.user + before.system)
    return {"seconds": round(wall, 1), "cpu_cores": round(cpu / wall, 4), **_usage(proc), **extra}


def _poller(s: Serve, auth: dict[str, str], ids: list[str], rate: float) -> Callable[[float], dict[str, Any]]:
    def run(seconds: float) -> dict[str, Any]:
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        list_latencies: list[float] = []
        with s.client() as c:
            start = time.monotonic()
            next_list = start
            i = 0
            while True:
                due = start + i / rate
                now = time.monotonic()
                if due - start >= seconds:
                    break
                if due > now:
                    time.sleep(due - now)
                t = time.perf_counter()
                resp = c.get(s.session_path(ids[i % len(ids)]), params=V, headers=auth)
                latencies.append(time.perf_counter() - t)
                statuses[resp.status_code] += 1
                i += 1
                if time.monotonic() >= next_list:
                    t = time.perf_counter()
                    resp = c.get(f"/accounts/{s.server.account_id}/sessions", params=V, headers=auth)
                    list_latencies.append(time.perf_counter() - t)
                    statuses[resp.status_code] += 1
                    next_list += 1.0
        return {
            "gets": len(latencies),
            "lists": len(list_latencies),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "get_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "get_p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
            "list_p50_ms": round(percentile(list_latencies, 0.5) * 1000, 2),
        }

    return run


async def _insert_ended(data_dir: Path, template_id: str, account_id: str, ids: list[str]) -> None:
    """Rows for ended sessions written through the product's store, copied from a real stopped session:
    80 % Stopped, 15 % Expired, 5 % Error, ended over the past week (inside the 30-day retention)."""
    from openrr.config.settings import Settings
    from openrr.domain.session import SessionError, Status
    from openrr.store.sql import open_store

    settings = Settings.load({"data_dir": data_dir})
    store = await open_store(settings.server.resolved_store_url, migrate=False)
    rnd = random.Random(1000)
    try:
        template = await store.get_session(account_id, template_id)
        assert template is not None, template
        assert template.status is Status.STOPPED, template
        now = dt.datetime.now(dt.UTC)
        for sid in ids:
            created = now - dt.timedelta(minutes=rnd.uniform(30, 7 * 24 * 60))
            ready = created + dt.timedelta(seconds=rnd.uniform(0.3, 0.6))
            roll = rnd.random()
            handle = dict(template.host_handle or {})
            handle["instance"] = f"{rnd.getrandbits(64):016x}"
            handle["pid"] = rnd.randint(100_000, 4_000_000)
            if roll < 0.80:
                status, error, minutes = Status.STOPPED, None, rnd.uniform(1, 60)
            elif roll < 0.95:
                status, error, minutes = Status.EXPIRED, None, float(template.lease_minutes)
            else:
                status, minutes = Status.ERROR, rnd.uniform(0, 5)
                error = SessionError("RenderServerExited", "The render server exited with code 1.")
            session = dataclasses.replace(
                template,
                id=sid,
                status=status,
                created_at=created,
                ready_at=ready,
                ended_at=ready + dt.timedelta(minutes=minutes),
                error=error,
                host_handle=handle,
                host_released=True,
                version=3,
            )
            await store.insert_session(session)
    finally:
        await store.close()


def part_memory(args: argparse.Namespace) -> dict[str, Any]:
    seconds, rate, active = args.measure_seconds, args.poll_rate, args.active
    out: dict[str, Any] = {
        "host": "local",
        "measure_seconds": seconds,
        "poll": f"GET round-robin over 50 sessions at {rate:g}/s + 1 list/s",
        "active_sessions": active,
        "ended_rows": "SqlStore.insert_session copies of a real stopped session "
        "(80% Stopped, 15% Expired, 5% Error)",
    }
    phases: dict[str, Any] = {}
    with serve() as s:
        auth = {"Authorization": f"Bearer {s.server.token()}"}
        polled = [f"mem-active-{i}" for i in range(active)] + [
            f"mem-ended-{i:04d}" for i in range(50 - active)
        ]
        with s.client() as c:  # warm the routes a little (404s, a list, the token cache)
            for sid in polled[:5]:
                c.get(s.session_path(sid), params=V, headers=auth)
        time.sleep(2)
        print("  0 sessions on record")
        phases["0"] = {
            "idle": _measure(s, seconds),
            "polling (404s)": _measure(s, seconds, _poller(s, auth, polled, rate)),
        }
        # 50 on record: `active` real sessions, one real stopped one (the template), the rest copies.
        with s.client() as c:
            _, status, _ = create_wait_ready(c, s, auth, "mem-template")
            if status != "Ready":
                raise RuntimeError(f"mem-template: {status}")
            c.post(f"{s.session_path('mem-template')}/:stop", params=V, headers=auth).raise_for_status()
            for sid in polled[:active]:
                _, status, _ = create_wait_ready(c, s, auth, sid)
                if status != "Ready":
                    raise RuntimeError(f"{sid}: {status}")
            _wait(
                lambda: not s.rows() or all(r["host_released"] for r in s.rows() if r["status"] == "Stopped"),
                20,
            )
        ended50 = polled[active:][:-1]  # 50 = active + template + these
        asyncio.run(_insert_ended(s.server.data_dir, "mem-template", s.server.account_id, ended50))
        # The polled set: the active ones and 45 ended ones (the template among them).
        polled = [*polled[:active], "mem-template", *ended50]
        time.sleep(2)
        print(f"  {len(s.rows())} sessions on record")
        phases["50"] = {
            "rows": len(s.rows()),
            "idle": _measure(s, seconds),
            "polling": _measure(s, seconds, _poller(s, auth, polled, rate)),
        }
        more = [f"mem-old-{i:04d}" for i in range(1000 - len(s.rows()))]
        t = time.perf_counter()
        asyncio.run(_insert_ended(s.server.data_dir, "mem-template", s.server.account_id, more))
        out["insert_950_s"] = round(time.perf_counter() - t, 2)
        time.sleep(2)
        rows = s.rows()
        print(f"  {len(rows)} sessions on record")
        phases["1000"] = {
            "rows": len(rows),
            "by_status": dict(Counter(r["status"] for r in rows)),
            "idle": _measure(s, seconds),
            "polling": _measure(s, seconds, _poller(s, auth, polled, rate)),
        }
        # Every session read once (fills the read cache with all 1,000), then idle again.
        with s.client() as c:
            t = time.perf_counter()
            codes = Counter(c.get(s.session_path(r["id"]), params=V, headers=auth).status_code for r in rows)
            sweep_s = time.perf_counter() - t
        phases["1000"]["after GET of every session"] = {
            "sweep_s": round(sweep_s, 2),
            "statuses": {str(k): v for k, v in codes.items()},
            **_measure(s, seconds),
        }
        if args.extra_rows > len(rows):  # one more point, to see what grows with the rows on record
            extra = [f"mem-extra-{i:05d}" for i in range(args.extra_rows - len(rows))]
            asyncio.run(_insert_ended(s.server.data_dir, "mem-template", s.server.account_id, extra))
            time.sleep(2)
            n = len(s.rows())
            print(f"  {n} sessions on record")
            phases[str(n)] = {
                "rows": n,
                "idle": _measure(s, seconds),
                "polling": _measure(s, seconds, _poller(s, auth, polled, rate)),
            }
        db = s.server.data_dir / "openrr.db"
        out["db_mib"] = round(sum(p.stat().st_size for p in db.parent.glob("openrr.db*")) / 2**20, 2)
        with s.client() as c:
            for sid in polled[:active]:
                c.post(f"{s.session_path(sid)}/:stop", params=V, headers=auth).raise_for_status()
        sessions = s.session_pids()
        ok = _wait(lambda: not [p for p in s.render_procs() if p.pid in sessions], 20)
        out["session_servers_left_after_stop"] = [] if ok else [p.pid for p in s.render_procs()]
        out["serve_log_warnings"] = s.log_excerpt()
    out.update(_exit_report(s))
    out["phases"] = phases
    base, full = phases["0"], phases["1000"]
    out["ratios_1000_vs_0"] = {
        "rss_idle": round(full["idle"]["rss_mib"] / base["idle"]["rss_mib"], 3),
        "uss_idle": round(full["idle"]["uss_mib"] / base["idle"]["uss_mib"], 3),
        "cpu_idle": _ratio(full["idle"]["cpu_cores"], base["idle"]["cpu_cores"]),
        "cpu_polling": _ratio(full["polling"]["cpu_cores"], base["polling (404s)"]["cpu_cores"]),
    }
    out["ratios_1000_vs_50"] = {
        "rss_idle": round(full["idle"]["rss_mib"] / phases["50"]["idle"]["rss_mib"], 3),
        "cpu_idle": _ratio(full["idle"]["cpu_cores"], phases["50"]["idle"]["cpu_cores"]),
        "cpu_polling": _ratio(full["polling"]["cpu_cores"], phases["50"]["polling"]["cpu_cores"]),
    }
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


_MACHINE_PATH = re.compile(r"(?<![\w.])/(?:tmp|home|root|work|var|private|Users)/[^\s'\"|,;)]*")


def scrub(value: Any) -> Any:
    """Machine paths (temporary data dirs, the checkout) out of every string that goes into the results."""
    if isinstance(value, str):
        return _MACHINE_PATH.sub("<path>", value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


# ---- results -----------------------------------------------------------------------------------------------
def save(part: str, data: dict[str, Any]) -> Path:
    path = RESULTS / "scale.json"
    try:
        existing = json.loads(path.read_text())
    except (OSError, ValueError):
        existing = {}
    parts = existing.get("parts", {})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    parts[part] = scrub({"when": now, **data})
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "benchmark": "scale",
        "when": now,
        "machine": machine(),
        "parts": {k: parts[k] for k in PARTS if k in parts},
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def _host_table(d: dict[str, Any]) -> None:
    print(f"{'run':6s} {'ready':>7s} {'p50 s':>7s} {'p95 s':>7s} {'max s':>7s} {'pool':>5s} failures")
    for label in ("cold", "warm"):
        r = d.get(label)
        if r:
            print(
                f"{label:6s} {r['ready']:>3d}/{r['sessions']:<3d} {r['p50_s']:7.3f} {r['p95_s']:7.3f} "
                f"{r['max_s'] or 0:7.3f} {r['from_pool']:5d} {len(r['failures'])}"
            )
    if d.get("warm", {}).get("pool"):
        print(f"pool: {d['warm']['pool']}")


def _concurrent_table(d: dict[str, Any]) -> None:
    for key in (
        "responses",
        "admitted",
        "admit_all_s",
        "all_ready_s",
        "final_status",
        "ready_per_node",
        "all_freed_s",
        "all_released_s",
        "slots_after",
        "render_servers_after",
        "unacceptable_count",
    ):
        print(f"{key:22s} {d.get(key)}")


def _memory_table(d: dict[str, Any]) -> None:
    print(f"{'sessions':9s} {'phase':28s} {'RSS MiB':>8s} {'USS MiB':>8s} {'CPU cores':>10s}")
    for n, phase in d["phases"].items():
        for name, m in phase.items():
            if isinstance(m, dict) and "cpu_cores" in m:
                print(f"{n:9s} {name:28s} {m['rss_mib']:8.1f} {m['uss_mib']:8.1f} {m['cpu_cores']:10.4f}")
    print(f"ratios 1000 vs 0: {d['ratios_1000_vs_0']}")
    print(f"ratios 1000 vs 50: {d['ratios_1000_vs_50']}")


# The table each part prints under its heading (a part not listed prints the heading alone).
_TABLES: dict[str, Callable[[dict[str, Any]], None]] = {
    "local": _host_table,
    "ray": _host_table,
    "concurrent": _concurrent_table,
    "memory": _memory_table,
}


def table(part: str, d: dict[str, Any]) -> None:
    print(f"\n== {part} ==")
    if part in _TABLES:
        _TABLES[part](d)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", action="append", choices=PARTS, help="repeatable; default: all")
    parser.add_argument("--sessions", type=int, default=20, help="sequential creates per run (local, ray)")
    parser.add_argument("--pool", type=int, default=2, help="warm pool size of the warm runs")
    parser.add_argument("--creates", type=int, default=200, help="concurrent creates")
    parser.add_argument("--quota", type=int, default=None, help="--max-sessions-per-account (concurrent)")
    parser.add_argument("--measure-seconds", type=float, default=30.0, help="each memory/CPU measurement")
    parser.add_argument("--poll-rate", type=float, default=10.0, help="GETs per second while polling")
    parser.add_argument("--active", type=int, default=5, help="real active sessions (memory)")
    parser.add_argument(
        "--extra-rows", type=int, default=10000, help="memory: one more point with this many rows (0: none)"
    )
    args = parser.parse_args()
    # SIGTERM (and SIGINT, even where a background shell ignores it) unwinds through every part's cleanup.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupted)
    runners = {"local": part_local, "ray": part_ray, "concurrent": part_concurrent, "memory": part_memory}
    for part in args.part or PARTS:
        print(f"--- part {part}")
        data = runners[part](args)
        path = save(part, data)
        table(part, data)
        print(f"written to {path}")


if __name__ == "__main__":
    main()
