"""Two ``openrr serve`` replicas on one PostgreSQL store: every session starts once, whichever replica is
asked and however often, one reaper runs at a time, and the other takes over when it dies."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.server import API_VERSION, OpenRRServer, wait_for
from tests.postgres import PostgresServer

pytestmark = pytest.mark.e2e

SESSIONS = 12


def _render_children(server: OpenRRServer) -> dict[int, str]:
    """pid → session id of the render servers this replica started (its direct children)."""
    assert server.proc is not None
    found = {}
    for child in psutil.Process(server.proc.pid).children():
        try:
            if "openrr.render" in " ".join(child.cmdline()):
                found[child.pid] = child.environ().get("OPENRR_RENDER_SPEC", "")
        except psutil.Error:
            continue
    return found


def _lease_holder(pg: PostgresServer, dbname: str) -> str | None:
    with pg.connect(dbname) as conn:
        row = conn.execute(
            "SELECT holder FROM leases WHERE name = 'reaper' AND expires_at > now()"
        ).fetchone()
    return None if row is None else str(row[0])


def test_two_replicas_never_start_a_session_twice(
    openrr_factory: Callable[..., OpenRRServer], postgres_server: PostgresServer, postgres_url: str
) -> None:
    dbname = postgres_url.rsplit("/", 1)[1]
    # Every session in one account and on each replica's machine: limits above SESSIONS, explicitly.
    limits = {"max_sessions_per_account": SESSIONS, "local_slots": f"standard={SESSIONS}"}
    first = openrr_factory(store_url=postgres_url, **limits)  # creates the development account
    second = openrr_factory(store_url=postgres_url, **limits)
    account = first.account
    token = first.token(account)  # one signing key in the store: the token works on both replicas
    clients = [
        httpx.Client(
            base_url=f"{server.url}/accounts/{account.id}",
            verify=server.ssl_context(),
            headers={"Authorization": f"Bearer {token}"},
            params={"api-version": API_VERSION},
            timeout=30,
        )
        for server in (first, second)
    ]
    try:
        # Every id is created on both replicas at once, twice each: 4 racing PUTs per session.
        def put(job: tuple[int, str]) -> tuple[str, int, dict[str, Any]]:
            which, sid = job
            r = clients[which % 2].put(
                f"/sessions/{sid}", json={"maxLeaseTimeMinutes": 30, "size": "Standard"}
            )
            return sid, r.status_code, r.json()

        jobs = [(n, f"race-{i}") for i in range(SESSIONS) for n in range(4)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(put, jobs))
        for i in range(SESSIONS):
            codes = sorted(code for sid, code, _ in results if sid == f"race-{i}")
            assert codes == [200, 200, 200, 201], (i, codes)

        # Every session becomes Ready, whichever replica is asked.
        def all_ready() -> bool:
            for i in range(SESSIONS):
                body = clients[i % 2].get(f"/sessions/race-{i}").json()
                assert body["status"] in ("Starting", "Ready"), body
                if body["status"] != "Ready":
                    return False
            return True

        wait_for(all_ready, timeout=60, interval=0.2, what="every session to be Ready")
        # Exactly one render server per session across both replicas.
        started = {**_render_children(first), **_render_children(second)}
        per_session: dict[str, int] = {}
        for spec in started.values():
            sid = spec.split('"session_id": "', 1)[1].split('"', 1)[0]
            per_session[sid] = per_session.get(sid, 0) + 1
        assert per_session == {f"race-{i}": 1 for i in range(SESSIONS)}, per_session

        # One reaper: the lease names one of the two replicas.
        holder = wait_for(lambda: _lease_holder(postgres_server, dbname), timeout=10, what="a reaper lease")
        assert holder is not None
        leader, follower = (first, second) if str(first.proc.pid) in holder.split(":") else (second, first)  # type: ignore[union-attr]
        assert str(leader.proc.pid) in holder.split(":")  # type: ignore[union-attr]

        # The leader dies without releasing its lease; the follower takes over once it expires and settles
        # what happened meanwhile: a render server killed under it turns its session to Error.
        victim_sid = "race-0"
        victim_pid = next(pid for pid, spec in started.items() if f'"session_id": "{victim_sid}"' in spec)
        leader.kill9()
        psutil.Process(victim_pid).kill()
        t0 = time.monotonic()
        follower_client = clients[0] if follower is first else clients[1]

        def errored() -> dict[str, Any] | None:
            body = follower_client.get(f"/sessions/{victim_sid}").json()
            return body if body["status"] == "Error" else None

        failed = wait_for(errored, timeout=40, interval=0.2, what="the follower's reaper to notice")
        assert failed["error"]["code"] == "RenderServerExited"
        print(f"takeover and settle after {time.monotonic() - t0:.1f} s")
        assert str(follower.proc.pid) in (_lease_holder(postgres_server, dbname) or "").split(":")  # type: ignore[union-attr]

        # The survivor stops sessions the dead replica started: same machine, same pids.
        other = next(pid for pid, spec in started.items() if '"session_id": "race-1"' in spec)
        assert follower_client.post("/sessions/race-1/:stop").status_code == 204
        wait_for(
            lambda: not psutil.pid_exists(other) or psutil.Process(other).status() == "zombie",
            timeout=15,
            what="race-1's render server to stop",
        )
    finally:
        for client in clients:
            client.close()
