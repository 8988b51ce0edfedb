"""The model library's HTTP API (/openrr/accounts/{id}/models), in process: upload (a file, a folder),
list, show, rename, delete; the upload limits (413) and file names; accounts kept apart; a failed
conversion in the library with its log. The conversions run on the real queue with the converter fake
(``conversion_fixtures.FakeConverter``), and in ``test_real_converter_*`` with the real converter process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from openrr.model.sources import ModelSourcePolicy, SourceRefused
from openrr.services.runtime import Runtime
from tests.api.conversion_fixtures import (  # noqa: F401
    FakeConverter,
    OpenRuntime,
    container_root_fixture,
    converter_fixture,
    open_runtime_fixture,
    run_queue,
    runtime_fixture,
)
from tests.conftest import Account
from tests.render import fixtures


def models_url(account: Account, suffix: str = "") -> str:
    return f"/openrr/accounts/{account.id}/models{suffix}"


async def upload(
    client: httpx.AsyncClient,
    account: Account,
    files: list[tuple[str, bytes]],
    **fields: str,
) -> httpx.Response:
    parts = [("file", (name, data, "application/octet-stream")) for name, data in files]
    return await client.post(models_url(account), files=parts, data=fields, headers=account.auth)


def model_root(runtime: Runtime) -> Path:
    return runtime.settings.render.model_roots[0].resolve()


async def test_upload_list_show_rename_delete(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, converter: FakeConverter
) -> None:
    resp = await upload(client, account, [("box.glb", b"glTF box")])
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["name"] == "box"
    assert (created["status"], created["progress"], created["size"], created["files"]) == (
        "Queued",
        0.0,
        8,
        1,
    )
    assert created["url"] is None
    assert created["error"] is None
    model_id = created["id"]
    folder = model_root(runtime) / account.id / "library" / model_id
    assert (folder / "source" / "box.glb").read_bytes() == b"glTF box"

    await run_queue(runtime)
    resp = await client.get(models_url(account), headers=account.auth)
    (listed,) = resp.json()["models"]
    assert (listed["id"], listed["status"], listed["progress"]) == (model_id, "Succeeded", 1.0)
    assert listed["url"] == f"library/{model_id}/asset/model.arrAsset"
    assert (model_root(runtime) / account.id / listed["url"]).read_bytes() == b"glTF box"  # the fake's asset

    shown = (await client.get(models_url(account, f"/{model_id}"), headers=account.auth)).json()
    assert shown["statistics"] is not None
    assert "fake converter" in shown["log"]
    conversion = await client.get(
        f"/accounts/{account.id}/conversions/{created['conversionId']}",
        params={"api-version": "2021-01-01"},
        headers=account.auth,
    )
    assert conversion.json()["status"] == "Succeeded"

    resp = await client.patch(
        models_url(account, f"/{model_id}"), json={"name": "Gear box"}, headers=account.auth
    )
    assert resp.status_code == 200
    assert resp.json()["name"] == "Gear box"
    again = await upload(client, account, [("box.glb", b"glTF other")])
    assert again.json()["name"] == "box"  # the old name is free again
    taken = await client.patch(
        models_url(account, f"/{again.json()['id']}"), json={"name": "Gear box"}, headers=account.auth
    )
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "ModelNameTaken")

    resp = await client.delete(models_url(account, f"/{model_id}"), headers=account.auth)
    assert resp.status_code == 204
    assert not folder.exists()
    resp = await client.get(models_url(account, f"/{model_id}"), headers=account.auth)
    assert (resp.status_code, resp.json()["error"]["code"]) == (404, "ModelNotFound")
    assert [
        m["name"] for m in (await client.get(models_url(account), headers=account.auth)).json()["models"]
    ] == ["box"]


async def test_a_folder_keeps_its_layout_and_names_number(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, converter: FakeConverter
) -> None:
    files = [("car/car.gltf", b"{}"), ("car/car.bin", b"\0" * 10), ("car/textures/paint.png", b"png")]
    first = await upload(client, account, files)
    assert first.status_code == 201, first.text
    assert (first.json()["entry"], first.json()["files"], first.json()["size"]) == ("car/car.gltf", 3, 15)
    second = await upload(client, account, files)
    assert second.json()["name"] == "car (2)"
    named = await upload(client, account, [("a.obj", b"o"), ("b.ply", b"p")], name="Both", entry="b.ply")
    assert (named.json()["name"], named.json()["entry"]) == ("Both", "b.ply")
    await run_queue(runtime)
    assert ["car/car.bin", "car/car.gltf", "car/textures/paint.png"] in converter.seen_files


@pytest.mark.parametrize(
    ("files", "fields", "code"),
    [
        ([("../escape.glb", b"x")], {}, "InvalidFileName"),
        ([("/etc/escape.glb", b"x")], {}, "InvalidFileName"),
        ([("a/./b.glb", b"x")], {}, "InvalidFileName"),
        ([("a\\b.glb", b"x")], {}, "InvalidFileName"),
        ([("a.glb", b"x"), ("a.glb", b"y")], {}, "InvalidFileName"),
        ([("a", b"x"), ("a/b.glb", b"y")], {}, "InvalidFileName"),
        ([("notes.txt", b"x")], {}, "NoModelFile"),
        ([("a.glb", b"x"), ("b.obj", b"y")], {}, "SeveralModelFiles"),
        ([("a.glb", b"x")], {"name": "a/b"}, "InvalidModelName"),
        ([("a.glb", b"x")], {"name": "  "}, "InvalidModelName"),
        ([("a.glb", b"x")], {"entry": "b.glb"}, "BadRequest"),
        ([("a.glb", b"x")], {"other": "1"}, "BadRequest"),
    ],
)
async def test_bad_uploads_are_refused_and_leave_nothing(
    client: httpx.AsyncClient,
    account: Account,
    runtime: Runtime,
    files: list[tuple[str, bytes]],
    fields: dict[str, str],
    code: str,
) -> None:
    resp = await upload(client, account, files, **fields)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, code), resp.text
    library = model_root(runtime) / account.id / "library"
    assert not library.exists() or not any(library.iterdir())
    assert not (model_root(runtime).parent / "escape.glb").exists()
    assert (await client.get(models_url(account), headers=account.auth)).json() == {"models": []}


async def test_a_body_that_is_not_multipart_is_refused(client: httpx.AsyncClient, account: Account) -> None:
    resp = await client.post(models_url(account), content=b"glTF", headers=account.auth)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "UnsupportedMediaType")
    cut = await client.post(
        models_url(account),
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.glb"\r\n\r\nglTF',
        headers={**account.auth, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert cut.status_code == 400
    assert "closing boundary" in cut.json()["error"]["message"]
    control = await client.post(  # a control character, sent raw (httpx would percent-encode it)
        models_url(account),
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\x01.glb"\r\n\r\n'
        b"x\r\n--b--\r\n",
        headers={**account.auth, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert (control.status_code, control.json()["error"]["code"]) == (400, "InvalidFileName")


@pytest.fixture
async def small_limits(open_runtime: OpenRuntime, converter: FakeConverter) -> Runtime:
    return await open_runtime(converter, max_upload_mib=1, max_upload_files=2)


@pytest.fixture
async def small_client(small_limits: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    from openrr.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(small_limits))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
        yield c


async def small_account(runtime: Runtime) -> Account:
    created = await runtime.accounts.create("small")
    token, _ = runtime.tokens.issue_account_token(created.account_id)
    return Account(created.account_id, created.primary_key, token)


async def test_uploads_past_the_limits_get_413(
    small_client: httpx.AsyncClient, small_limits: Runtime
) -> None:
    account = await small_account(small_limits)
    mib = 1 << 20
    fits = await upload(small_client, account, [("a.glb", b"x" * mib)])
    assert fits.status_code == 201, fits.text
    # The files' bytes past the limit, within the body limit's allowance for multipart framing:
    over = await upload(
        small_client, account, [("a.glb", b"x" * (mib // 2)), ("a.bin", b"x" * (mib // 2 + 1))]
    )
    assert (over.status_code, over.json()["error"]["code"]) == (413, "PayloadTooLarge")
    assert over.headers["connection"] == "close"
    # A declared body far past it, refused unread by the body limit:
    huge = await small_client.post(
        models_url(account),
        content=b"x" * (3 * mib),
        headers={**account.auth, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "PayloadTooLarge")

    # The same without Content-Length (chunked): counted as it streams, and stopped.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.glb"\r\n\r\n'
        for _ in range(3 * 16):
            yield b"x" * (64 << 10)

    streamed = await small_client.post(
        models_url(account),
        content=chunks(),
        headers={**account.auth, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "PayloadTooLarge")
    many = await upload(small_client, account, [("a.gltf", b"{}"), ("a.bin", b""), ("t.png", b"")])
    assert (many.status_code, many.json()["error"]["code"]) == (413, "PayloadTooLarge")
    assert "at most 2 files" in many.json()["error"]["message"]
    models = (await small_client.get(models_url(account), headers=account.auth)).json()["models"]
    assert len(models) == 1  # only the one that fitted
    library = model_root(small_limits) / account.id / "library"
    assert [p.name for p in library.iterdir()] == [models[0]["id"]]  # the refused ones left no files


async def test_other_accounts_cannot_see_change_or_load_a_model(
    client: httpx.AsyncClient, account: Account, other_account: Account, runtime: Runtime
) -> None:
    created = (await upload(client, account, [("secret.glb", b"glTF secret")])).json()
    await run_queue(runtime)
    mine = models_url(account, f"/{created['id']}")
    theirs = models_url(other_account, f"/{created['id']}")
    assert (await client.get(models_url(other_account), headers=other_account.auth)).json() == {"models": []}
    rename = {"name": "mine now"}
    for method, body in (("GET", None), ("PATCH", rename), ("DELETE", None)):
        # Through B's own path: no such model there.
        resp = await client.request(method, theirs, headers=other_account.auth, json=body)
        assert (resp.status_code, resp.json()["error"]["code"]) == (404, "ModelNotFound"), method
        # Through A's path with B's token: the token is for another account.
        resp = await client.request(method, mine, headers=other_account.auth, json=body)
        assert resp.status_code == 403, method
    resp = await client.post(
        models_url(account), files=[("file", ("x.glb", b"x"))], headers=other_account.auth
    )
    assert resp.status_code == 403
    shown = await client.get(mine, headers=account.auth)
    assert (shown.json()["name"], shown.json()["status"]) == ("secret", "Succeeded")

    # A render server of B's looks the model's URL up in B's folders only, and refuses A's file outright.
    roots = tuple(Path(r) for r in runtime.settings.render.model_roots)
    policy_b = ModelSourcePolicy(roots=tuple(root / other_account.id for root in roots))
    asset = model_root(runtime) / account.id / "library" / created["id"] / "asset" / "model.arrAsset"
    assert asset.is_file()
    found = Path(policy_b.check(shown.json()["url"]))
    assert found.is_relative_to(model_root(runtime) / other_account.id)
    assert not await asyncio.to_thread(found.exists)
    with pytest.raises(SourceRefused):
        policy_b.check(asset.as_uri())
    with pytest.raises(SourceRefused):
        policy_b.check(f"../{account.id}/{shown.json()['url']}")
    policy_a = ModelSourcePolicy(roots=tuple(root / account.id for root in roots))
    assert policy_a.check(shown.json()["url"]) == str(asset)


async def test_a_failed_conversion_shows_in_the_library_with_its_log(
    client: httpx.AsyncClient, account: Account, runtime: Runtime
) -> None:
    created = (await upload(client, account, [("bad.glb", b"corrupt model")])).json()
    await run_queue(runtime)
    shown = (await client.get(models_url(account, f"/{created['id']}"), headers=account.auth)).json()
    assert (shown["status"], shown["url"], shown["statistics"]) == ("Failed", None, None)
    assert shown["error"]["code"] == "ConversionProcessFailed"
    assert "bad.glb is corrupt" in shown["error"]["message"]
    assert "fake converter" in shown["log"]
    assert "failed: ConversionProcessFailed" in shown["log"]
    # Once ended, the status is the library's own: it outlives the purged conversion record.
    await runtime.store.purge_conversions_ended_before(runtime.clock.now().replace(year=2100))
    listed = (await client.get(models_url(account), headers=account.auth)).json()["models"]
    assert [(m["status"], m["error"]["code"]) for m in listed] == [("Failed", "ConversionProcessFailed")]


async def test_builtin_models_are_listed_for_the_pages(client: httpx.AsyncClient) -> None:
    from openrr.protocol.builtin_models import BUILTIN_MODELS

    body = (await client.get("/openrr/builtinModels")).json()
    assert {m["url"]: m["description"] for m in body["models"]} == BUILTIN_MODELS
    assert "builtin://sample" in BUILTIN_MODELS


@pytest.fixture
async def real_runtime(open_runtime: OpenRuntime) -> Runtime:
    return await open_runtime(conversion_timeout=120)  # the real converter process


async def test_real_converter_statistics_of_a_gltf_folder_and_a_broken_glb(
    real_runtime: Runtime, tmp_path: Path
) -> None:
    from openrr.api.app import create_app

    account = await small_account(real_runtime)
    quad = fixtures.textured_gltf(tmp_path)
    files = [
        (f"quad/{p.name}", p.read_bytes()) for p in (quad, tmp_path / "quad.bin", tmp_path / "stripes.png")
    ]
    broken = fixtures.broken_glb(tmp_path)
    transport = httpx.ASGITransport(app=create_app(real_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        good = (await upload(client, account, files)).json()
        bad = (await upload(client, account, [("broken.glb", broken.read_bytes())])).json()
        await run_queue(real_runtime)
        shown: dict[str, Any] = (
            await client.get(models_url(account, f"/{good['id']}"), headers=account.auth)
        ).json()
        failed: dict[str, Any] = (
            await client.get(models_url(account, f"/{bad['id']}"), headers=account.auth)
        ).json()
    assert shown["status"] == "Succeeded", shown
    stats = shown["statistics"]
    assert (stats["triangles"], stats["vertices"], stats["points"], stats["materials"]) == (2, 4, 0, 1)
    assert stats["textures"] == 1  # stripes.png
    assert stats["format"].lower().startswith("gltf")
    assert stats["bounds"] == {"min": [-1.0, -1.0, 0.0], "max": [1.0, 1.0, 0.0]}
    info = model_root(real_runtime) / account.id / "library" / good["id"] / "asset" / "model.info.json"
    assert json.loads(info.read_text())["files"]["input"] == "quad.gltf"
    assert failed["status"] == "Failed"
    assert failed["error"]["code"] == "ConversionProcessFailed"
    assert failed["statistics"] is None
    assert "broken.glb" in failed["log"]


async def test_a_client_that_leaves_mid_upload_leaves_nothing(runtime: Runtime, account: Account) -> None:
    from openrr.api.app import create_app

    app = create_app(runtime)
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.glb"\r\n\r\nglTF half'
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    path = models_url(account)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"openrr.test"),
            (b"authorization", f"Bearer {account.token}".encode()),
            (b"content-type", b"multipart/form-data; boundary=b"),
        ],
        "server": ("openrr.test", 443),
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400  # said to nobody; what matters is that nothing stays
    library = model_root(runtime) / account.id / "library"
    assert not any(library.iterdir())
    assert await runtime.store.list_models(account.id) == []


async def test_the_library_quota_bounds_an_account_and_deleting_frees_it(
    open_runtime: OpenRuntime, converter: FakeConverter
) -> None:
    from openrr.api.app import create_app

    rt = await open_runtime(converter, max_library_mib=1)
    account, other = await small_account(rt), await small_account(rt)
    mib = 1 << 20
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        first = await upload(client, account, [("a.glb", b"x" * (mib * 3 // 4))])
        assert first.status_code == 201, first.text
        past = await upload(client, account, [("b.glb", b"x" * (mib // 2))])  # only a quarter is left
        assert (past.status_code, past.json()["error"]["code"]) == (413, "PayloadTooLarge")
        fits = await upload(client, account, [("c.glb", b"x" * (mib // 4))])
        assert fits.status_code == 201, fits.text
        full = await upload(client, account, [("d.glb", b"x")])
        assert (full.status_code, full.json()["error"]["code"]) == (403, "QuotaExceeded")
        assert (await upload(client, other, [("e.glb", b"x")])).status_code == 201  # a quota per account
        await client.delete(models_url(account, f"/{first.json()['id']}"), headers=account.auth)
        again = await upload(client, account, [("d.glb", b"x")])
        assert again.status_code == 201, again.text


async def test_a_list_while_the_conversion_is_being_created_leaves_the_model_queued(
    client: httpx.AsyncClient,
    account: Account,
    runtime: Runtime,
    open_runtime: OpenRuntime,
    converter: FakeConverter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The row is written before the conversion: a list in between (here, or on another replica) must not
    take the conversion for gone and fail the model for good."""
    from openrr.api.app import create_app

    entered, release = asyncio.Event(), asyncio.Event()
    create = runtime.conversions.create

    async def slow_create(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await create(*args, **kwargs)

    monkeypatch.setattr(runtime.conversions, "create", slow_create)
    uploading = asyncio.create_task(upload(client, account, [("box.glb", b"glTF box")]))
    await entered.wait()
    replica = await open_runtime(converter)  # a second control plane on the same store and model root
    transport = httpx.ASGITransport(app=create_app(replica))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as other:
        for c in (client, other):
            (listed,) = (await c.get(models_url(account), headers=account.auth)).json()["models"]
            assert (listed["status"], listed["error"]) == ("Queued", None)
    release.set()
    created = await uploading
    assert created.status_code == 201, created.text
    await run_queue(runtime)
    shown = (await client.get(models_url(account, f"/{created.json()['id']}"), headers=account.auth)).json()
    assert shown["status"] == "Succeeded"


async def test_folders_that_no_model_owns_are_swept(
    client: httpx.AsyncClient, account: Account, runtime: Runtime
) -> None:
    """What a crash mid-upload (or a removal that failed) leaves: a staging folder and a model folder
    without a row. The account's next upload removes them, and so does start-up for every account."""
    kept = (await upload(client, account, [("kept.glb", b"glTF kept")])).json()
    library = model_root(runtime) / account.id / "library"
    staging = library / ("a" * 32 + ".upload")
    orphan = library / ("b" * 32) / "source"
    for folder in (staging, orphan):
        folder.mkdir(parents=True)
        (folder / "half.glb").write_bytes(b"glTF half")
    (library / "notes").mkdir()  # not the library's: left alone
    again = await upload(client, account, [("new.glb", b"glTF new")])
    assert again.status_code == 201, again.text
    assert sorted(p.name for p in library.iterdir()) == sorted([kept["id"], again.json()["id"], "notes"])

    other = model_root(runtime) / "another-account" / "library" / ("c" * 32 + ".upload")
    other.mkdir(parents=True)
    assert await runtime.models.sweep() == 1  # what start-up runs (Runtime.start_background)
    assert not other.exists()
    assert (library / kept["id"] / "source" / "kept.glb").is_file()


async def streamed_upload(
    client: httpx.AsyncClient,
    account: Account,
    name: str,
    size: int,
    gate: tuple[asyncio.Event, asyncio.Event] | None = None,
) -> httpx.Response:
    """A chunked upload of ``size`` bytes; with ``gate`` (reached, open), it sets ``reached`` half way, once
    the first half is on disk (the body is pulled a chunk at a time, each once the last is written), and
    goes on when ``open`` is set."""

    async def body() -> AsyncIterator[bytes]:
        yield f'--b\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
        yield b"x" * (size // 2)
        if gate is not None:
            gate[0].set()
            await gate[1].wait()
        yield b"x" * (size - size // 2) + b"\r\n--b--\r\n"

    headers = {**account.auth, "Content-Type": "multipart/form-data; boundary=b"}
    return await client.post(models_url(account), content=body(), headers=headers)


async def test_an_upload_whose_files_another_replica_swept_is_not_recorded(
    client: httpx.AsyncClient,
    account: Account,
    runtime: Runtime,
    open_runtime: OpenRuntime,
    converter: FakeConverter,
) -> None:
    reached, gate = asyncio.Event(), asyncio.Event()
    uploading = asyncio.create_task(streamed_upload(client, account, "a.glb", 1000, (reached, gate)))
    await reached.wait()
    replica = await open_runtime(converter)  # it starts, and sweeps what it does not know
    assert await replica.models.sweep() == 1
    gate.set()
    resp = await uploading
    assert (resp.status_code, resp.json()["error"]["code"]) == (503, "ServiceUnavailable"), resp.text
    assert not any((model_root(runtime) / account.id / "library").iterdir())
    assert await runtime.store.list_models(account.id) == []


async def test_uploads_in_flight_share_what_is_left_of_the_quota(
    open_runtime: OpenRuntime, converter: FakeConverter
) -> None:
    from openrr.api.app import create_app

    rt = await open_runtime(converter, max_library_mib=1, max_library_models=3)
    account = await small_account(rt)
    mib = 1 << 20
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        reached, gate = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(streamed_upload(client, account, "a.glb", mib * 3 // 4, (reached, gate)))
        await reached.wait()
        # 3/8 MiB held by the first (3/4 once it ends): 3/4 more no longer fits, though the store holds
        # nothing yet (each upload alone would fit).
        second = await streamed_upload(client, account, "b.glb", mib * 3 // 4)
        assert (second.status_code, second.json()["error"]["code"]) == (413, "PayloadTooLarge"), second.text
        gate.set()
        assert (await first).status_code == 201
        rest = await streamed_upload(client, account, "c.glb", mib // 4)
        assert rest.status_code == 201, rest.text
        assert (await upload(client, account, [("d.glb", b"")])).status_code == 403  # full

        await client.delete(models_url(account, f"/{rest.json()['id']}"), headers=account.auth)
        # The number of models is bounded too (3 here): empty uploads cost no bytes.
        for name in ("e.glb", "f.glb"):
            assert (await upload(client, account, [(name, b"")])).status_code == 201
        resp = await upload(client, account, [("g.glb", b"")])
        assert (resp.status_code, resp.json()["error"]["code"]) == (403, "QuotaExceeded"), resp.text
        assert "--max-library-models" in resp.json()["error"]["message"]
        assert len((await client.get(models_url(account), headers=account.auth)).json()["models"]) == 3


async def test_default_names_follow_the_name_rules(client: httpx.AsyncClient, account: Account) -> None:
    from openrr.domain.library import check_model_name, name_from_file

    for entry in ('a"<b>.glb', "x/\x01\x7f.obj", "  .glb", "d" * 300 + ".ply"):
        assert check_model_name(name_from_file(entry)) == name_from_file(entry)
    resp = await client.post(  # sent raw: httpx would percent-encode what the name rules forbid
        models_url(account),
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="<script>.glb"\r\n\r\n'
        b"x\r\n--b--\r\n",
        headers={**account.auth, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["name"], resp.json()["entry"]) == ("_script_", "<script>.glb")


async def test_a_name_too_long_in_bytes_is_refused(
    client: httpx.AsyncClient, account: Account, runtime: Runtime
) -> None:
    # Under 1024 characters and 255 bytes a part, but 4032 bytes in all: past PATH_MAX under the model root.
    name = "/".join(["\N{GRINNING FACE}" * 63] * 15) + "/" + "\N{GRINNING FACE}" * 58 + ".glb"
    assert len(name) < 1024
    resp = await upload(client, account, [(name, b"glTF")])
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "InvalidFileName"), resp.text
    library = model_root(runtime) / account.id / "library"
    assert not any(library.iterdir())


async def test_a_full_disk_answers_507_and_keeps_nothing(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import io

    from openrr.services.model_upload import UploadFolder

    class FullDisk(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(UploadFolder, "_open", lambda self, path: FullDisk())  # the writer seam
    resp = await upload(client, account, [("a.glb", b"glTF")])
    assert (resp.status_code, resp.json()["error"]["code"]) == (507, "InsufficientStorage"), resp.text
    assert not any((model_root(runtime) / account.id / "library").iterdir())
    monkeypatch.undo()
    assert (await upload(client, account, [("a.glb", b"glTF")])).status_code == 201  # nothing stayed held


async def test_without_a_model_root_the_library_answers_503(
    open_runtime: OpenRuntime, converter: FakeConverter
) -> None:
    from openrr.api.app import create_app

    rt = await open_runtime(converter, model_roots=())
    account = await small_account(rt)
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        resp = await upload(client, account, [("a.glb", b"glTF")])
    assert (resp.status_code, resp.json()["error"]["code"]) == (503, "ModelLibraryUnavailable")
    assert "Retry-After" not in resp.headers  # retrying will not help


async def test_deleting_a_model_cancels_its_conversion(
    open_runtime: OpenRuntime, converter: FakeConverter
) -> None:
    from openrr.api.app import create_app
    from openrr.domain.conversion import ConversionStatus

    rt = await open_runtime(converter, max_conversions_per_account=1)
    account = await small_account(rt)
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        created = (await upload(client, account, [("hang.glb", b"hang until cancelled")])).json()
        await rt.conversions.queue.tick()
        deadline = asyncio.get_running_loop().time() + 60
        while not converter.calls:  # until the fake converter runs it
            assert asyncio.get_running_loop().time() < deadline, "the conversion did not start"
            await asyncio.sleep(0.01)
        resp = await client.delete(models_url(account, f"/{created['id']}"), headers=account.auth)
        assert resp.status_code == 204
        conversion = await rt.store.get_conversion(account.id, created["conversionId"])
        assert conversion is not None
        assert (conversion.status, conversion.error_code) == (ConversionStatus.FAILED, "Cancelled")
        work_dir = rt.conversions.config.work_dir
        assert not work_dir.is_dir() or not any(work_dir.iterdir())  # the run is over, its scratch removed
        assert not (model_root(rt) / account.id / "library" / created["id"]).exists()
        # Its place in --max-conversions-per-account is free again.
        again = await upload(client, account, [("box.glb", b"glTF box")])
        assert again.status_code == 201, again.text


async def test_converted_assets_count_in_the_library_quota(
    open_runtime: OpenRuntime, converter: FakeConverter
) -> None:
    from openrr.api.app import create_app

    rt = await open_runtime(converter, max_library_mib=1)
    account = await small_account(rt)
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        first = await upload(client, account, [("a.glb", b"x" * (1 << 19))])
        assert first.status_code == 201, first.text
        assert (await upload(client, account, [("b.glb", b"x")])).status_code == 201  # half a MiB is left
        await run_queue(rt)  # the fake converter's asset is as large as the model: the library is full now
        full = await upload(client, account, [("c.glb", b"x")])
        assert (full.status_code, full.json()["error"]["code"]) == (403, "QuotaExceeded"), full.text
        assert "converted assets" in full.json()["error"]["message"]
        await client.delete(models_url(account, f"/{first.json()['id']}"), headers=account.auth)
        assert (await upload(client, account, [("c.glb", b"x")])).status_code == 201
