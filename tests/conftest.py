"""Shared fixtures: a control plane in-process (fake host, manual clock) and an HTTP client for it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from openrr.api.app import create_app
from openrr.config import Settings
from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.fakes import FakeHost
from tests.postgres import postgres_server, postgres_url  # noqa: F401


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
def fake_host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": tmp_path / "data",
            "throttle_rate": 0,
            "sts_throttle_rate": 0,
        }
        values.update(overrides)
        return Settings.load(values)

    return make


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """The store the in-process control plane uses; store tests override it for PostgreSQL."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def runtime(
    settings_factory: Callable[..., Settings], store_url: str, fake_host: FakeHost, clock: ManualClock
) -> AsyncIterator[Runtime]:
    rt = await Runtime.open(settings_factory(store_url=store_url), host=fake_host, clock=clock)
    fake_host.attach(rt.sessions)
    yield rt
    await rt.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
        yield c


class Account:
    def __init__(self, account_id: str, key: str, token: str) -> None:
        self.id = account_id
        self.key = key
        self.token = token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def account(runtime: Runtime) -> Account:
    created = await runtime.accounts.create("test")
    token, _ = runtime.tokens.issue_account_token(created.account_id)
    return Account(created.account_id, created.primary_key, token)


@pytest.fixture
async def other_account(runtime: Runtime) -> Account:
    created = await runtime.accounts.create("other")
    token, _ = runtime.tokens.issue_account_token(created.account_id)
    return Account(created.account_id, created.secondary_key, token)
