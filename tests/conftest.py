"""Shared fixtures: a control plane in-process (fake host, manual clock) and an HTTP client for it."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from openrr.api.app import create_app
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.fakes import FakeHost
from tests.postgres import postgres_server, postgres_url  # noqa: F401

# What a developer's shell may carry that would change what a test does: openrr's own settings and the CLI's
# connection (OPENRR_*, but OPENRR_TEST_* which configure the test run), the CA bundle `openrr serve` tells
# users to export, proxies (httpx would send loopback requests through them) and a Ray address or token.
_FOREIGN_ENV_PREFIXES = ("OPENRR_", "RAY_AUTH_")
_FOREIGN_ENV = {
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "RAY_ADDRESS",
}


# The tiers of `scripts/test --fast`, which leaves these marks out. A folder's mark reaches every test in it,
# so that no test there is missed; the fixtures that start the same services mark their users anywhere.
_FOLDER_MARKS = {"browser": "browser", "ray_host": "ray"}
_FIXTURE_MARKS = {"ray_cluster": "ray", "postgres_server": "postgres", "postgres_url": "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        folders = item.path.relative_to(tests_dir).parts[:-1] if item.path.is_relative_to(tests_dir) else ()
        marks = {mark for folder, mark in _FOLDER_MARKS.items() if folder in folders}
        fixtures = getattr(item, "fixturenames", ())
        marks |= {mark for fixture, mark in _FIXTURE_MARKS.items() if fixture in fixtures}
        for mark in sorted(marks - {m.name for m in item.iter_markers()}):
            item.add_marker(mark)


def _foreign(name: str) -> bool:
    if name.startswith("OPENRR_TEST_"):
        return False
    return name.upper() in _FOREIGN_ENV or name.startswith(_FOREIGN_ENV_PREFIXES)


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test runs with none of the variables above and from an empty working directory, so that an
    ``./openrr-data/arrconfig.json`` left by ``scripts/serve`` (or anything else in the clone) is not read,
    and nothing a test writes to a relative path lands in the clone. Session-scoped and autouse, so it is
    in place before any other session fixture (clusters, servers) starts."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    for name in [n for n in os.environ if _foreign(n)]:
        del os.environ[name]
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


@pytest.fixture(autouse=True)
def _restored_process_state() -> Iterator[None]:
    """What one test changes in the environment or the working directory does not reach the next."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    yield
    if os.getcwd() != saved_cwd:
        os.chdir(saved_cwd)
    if dict(os.environ) != saved_env:
        os.environ.clear()
        os.environ.update(saved_env)


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
