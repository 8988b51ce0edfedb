"""The store's models table (``openrr.store.model_queries``) on SQLite and PostgreSQL: names unique per
account, every call confined to its account, the end of a conversion recorded."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from openrr.domain.library import LibraryModel
from openrr.store.sql import SqlStore, open_store
from tests.store.helpers import T0, make_account


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[SqlStore]:
    opened = await open_store(backend_url)
    yield opened
    await opened.close()


def make_model(account_id: str, name: str, **changes: object) -> LibraryModel:
    model_id = uuid.uuid4().hex
    model = LibraryModel(
        account_id=account_id,
        id=model_id,
        name=name,
        entry="car/car.gltf",
        files=3,
        size=5 << 30,  # past 32 bits: the size column is a big integer
        conversion_id=f"model-{model_id}",
        created_at=T0,
    )
    return dataclasses.replace(model, **changes)  # type: ignore[arg-type]


async def test_models_are_per_account_with_unique_names(store: SqlStore) -> None:
    a, b = make_account(), make_account()
    await store.add_account(a)
    await store.add_account(b)
    car = make_model(a.id, "car")
    assert await store.insert_model(car)
    assert not await store.insert_model(make_model(a.id, "car"))  # the name is taken in A
    assert await store.insert_model(make_model(b.id, "car"))  # but free in B
    assert await store.get_model(a.id, car.id) == car
    assert await store.get_model(b.id, car.id) is None
    assert [m.name for m in await store.list_models(a.id)] == ["car"]
    assert await store.library_usage(b.id) == (1, 5 << 30)
    assert await store.library_usage("nobody") == (0, 0)

    assert await store.rename_model(b.id, car.id, "mine") is None  # B cannot reach A's model
    assert await store.delete_model(b.id, car.id) is False
    second = make_model(a.id, "truck", created_at=T0.replace(hour=13))
    assert await store.insert_model(second)
    assert await store.rename_model(a.id, second.id, "car") is False
    assert await store.rename_model(a.id, car.id, "sedan") is True
    await store.end_model(a.id, car.id, "Failed", "ConversionProcessFailed", "corrupt")
    assert await store.get_model(a.id, car.id) == dataclasses.replace(
        car, name="sedan", status="Failed", error_code="ConversionProcessFailed", error_message="corrupt"
    )
    assert [m.name for m in await store.list_models(a.id)] == ["sedan", "truck"]  # oldest first
    assert await store.delete_model(a.id, car.id) is True
    assert [m.id for m in await store.list_models(a.id)] == [second.id]
