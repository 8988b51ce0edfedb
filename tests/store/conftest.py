"""Fixtures of the store tests: each test runs on an empty SQLite file and on a new PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openrr.domain.account import Account
from openrr.store.sql import SqlStore, open_store
from tests.store.helpers import BACKENDS, make_account


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a new SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[SqlStore]:
    s = await open_store(backend_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def acct(store: SqlStore) -> Account:
    account = make_account()
    await store.add_account(account)
    return account
