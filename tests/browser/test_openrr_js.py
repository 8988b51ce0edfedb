"""openrr.js's message handling, in Chromium, over a fake data channel: no control plane, no WebRTC.

The module is served from its file at a made-up origin (Playwright answers the requests); the page drives
``RenderingConnection.overChannel`` with a channel whose ``send`` the test reads and whose messages the
test writes, as a render server would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Route

from openrr.web import STATIC_DIR

ORIGIN = "http://openrr.test"
PAGE = """<!doctype html><meta charset="utf-8"><title>openrr.js</title>
<script type="module">
  import * as openrr from "/js/openrr.js";
  class FakeChannel extends EventTarget {
    constructor() { super(); this.readyState = "open"; this.sent = []; }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = "closed"; }
    answer(message) { this.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(message) })); }
  }
  window.openrr = openrr;
  window.FakeChannel = FakeChannel;
  window.ready = true;
</script>"""


def serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN)
    if path == "/page.html":
        route.fulfill(body=PAGE, content_type="text/html")
    elif path == "/js/openrr.js":
        route.fulfill(body=(STATIC_DIR / "js" / "openrr.js").read_text(), content_type="text/javascript")
    else:
        route.fulfill(status=404, body="")


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/page.html")
    page.wait_for_function("() => window.ready === true")
    # A connection over a fake channel, Connected once the hello came; its status events recorded.
    page.evaluate(
        """async () => {
          const channel = new FakeChannel();
          window.channel = channel;
          window.events = [];
          const pending = openrr.RenderingConnection.overChannel(channel, {
            pingIntervalMs: 0, requestTimeoutMs: 5000, timeoutMs: 5000,
          });
          channel.answer({ v: 1, type: "hello", protocols: [1, 2], sessionId: "s1", nodes: [] });
          const connection = await pending;
          window.connection = connection;
          for (const type of ["connectionstatuschanged", "frame", "stats", "latency"]) {
            connection.addEventListener(type, (e) => window.events.push({ type, detail: e.detail }));
          }
        }"""
    )
    yield page
    assert not errors, errors


def sent(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("() => channel.sent"))


def answer(page: Page, message: dict[str, Any]) -> None:
    page.evaluate("(m) => channel.answer(m)", message)


def test_requests_carry_their_version_and_answers_are_matched_by_id(page: Page) -> None:
    assert page.evaluate("() => connection.status") == "Connected"
    page.evaluate(
        """() => {
          window.created = connection.createEntity({ name: "marker", position: [0, 1, 0] });
          window.orbited = connection.orbit(30, 5);
        }"""
    )
    create, orbit = sent(page)
    assert create == {
        "v": 2,
        "id": create["id"],
        "type": "entity.create",
        "name": "marker",
        "position": [0, 1, 0],
    }
    assert orbit["v"] == 1
    assert orbit["type"] == "camera.orbit"
    assert orbit["yaw"] == 30
    assert isinstance(orbit["poseId"], int)
    assert orbit["id"] != create["id"]
    # Answered in the other order, each promise gets its own answer.
    answer(page, {"v": 1, "type": "ack", "re": orbit["id"], "camera": {"fov": 60}})
    entity = {"id": 7, "name": "marker", "parent": None, "components": []}
    answer(page, {"v": 2, "type": "entity", "re": create["id"], "entity": entity})
    assert page.evaluate("() => created") == entity
    assert page.evaluate("() => orbited")["camera"] == {"fov": 60}
    # A frame showing the orbit's pose is its input latency.
    answer(page, {"v": 2, "type": "frame", "frameId": 3, "poseId": orbit["poseId"]})
    kinds = [e["type"] for e in page.evaluate("() => events")]
    assert kinds == ["frame", "latency"]


def test_an_error_answer_rejects_with_the_servers_code_and_message(page: Page) -> None:
    page.evaluate(
        """() => {
          window.failed = connection.getEntity(99).then(
            () => null,
            (e) => ({ isError: e instanceof Error, name: e.name, code: e.code, message: e.message }),
          );
        }"""
    )
    (request,) = sent(page)
    assert request == {"v": 2, "id": request["id"], "type": "entity.get", "entity": 99}
    answer(page, {"v": 2, "type": "error", "re": request["id"], "code": "EntityNotFound", "message": "no 99"})
    assert page.evaluate("() => failed") == {
        "isError": True,
        "name": "RemoteRenderingError",
        "code": "EntityNotFound",
        "message": "no 99",
    }


def test_a_request_without_an_answer_times_out(page: Page) -> None:
    outcome = page.evaluate(
        """() => connection.request("sky.list", {}, { timeoutMs: 50 }).then(() => null, (e) => e.code)"""
    )
    assert outcome == "Timeout"
    # A late answer to it is ignored.
    (request,) = sent(page)
    answer(page, {"v": 2, "type": "skies", "re": request["id"], "skies": [], "current": "x"})
    assert page.evaluate("() => connection.status") == "Connected"


def test_the_state_override_helper_creates_the_component_when_the_entity_has_none(page: Page) -> None:
    page.evaluate(
        """() => {
          window.state = connection.setStateOverride(7, { hidden: false, tint: true, selected: null,
                                                         seeThrough: "ForceOn", tintColor: [1, 0, 0, 0.5] });
        }"""
    )
    properties = {
        "hidden": "ForceOff",
        "tint": "ForceOn",
        "selected": "InheritFromParent",
        "seeThrough": "ForceOn",
        "tintColor": [1, 0, 0, 0.5],
    }
    (first,) = sent(page)
    assert first["type"] == "component.set"
    assert first["v"] == 2
    assert first["component"] == "HierarchicalStateOverride"
    assert first["properties"] == properties
    answer(page, {"v": 2, "type": "error", "re": first["id"], "code": "ComponentNotFound", "message": "none"})
    page.wait_for_function("() => channel.sent.length === 2")
    second = sent(page)[1]
    assert second["type"] == "component.create"
    assert second["properties"] == properties
    component = {"entity": 7, "component": "HierarchicalStateOverride", "properties": properties}
    answer(page, {"v": 2, "type": "component", "re": second["id"], **component})
    assert page.evaluate("() => state") == component


def test_model_progress_goes_to_its_request_and_stats_are_events(page: Page) -> None:
    page.evaluate(
        """() => {
          window.progress = [];
          window.loaded = connection.loadModel("car.glb", { onProgress: (m) => progress.push(m.fraction) });
        }"""
    )
    (load,) = sent(page)
    assert load == {"v": 1, "id": load["id"], "type": "model.load", "url": "car.glb"}
    answer(page, {"v": 1, "type": "model.progress", "re": load["id"], "fraction": 0.5})
    answer(page, {"v": 1, "type": "stats", "fps": 30})
    answer(page, {"v": 1, "type": "model.loaded", "re": load["id"], "modelId": "m1", "nodes": 3})
    assert page.evaluate("() => loaded")["modelId"] == "m1"
    assert page.evaluate("() => progress") == [0.5]
    assert [e["detail"].get("fps") for e in page.evaluate("() => events") if e["type"] == "stats"] == [30]


def test_bye_disconnects_with_the_reason_and_fails_what_was_pending(page: Page) -> None:
    page.evaluate(
        """() => {
          window.pending = connection.listSkies().then(() => null, (e) => e.code);
        }"""
    )
    answer(page, {"v": 1, "type": "bye", "reason": "The session is stopping."})
    assert page.evaluate("() => pending") == "ConnectionClosed"
    status = page.evaluate("() => events.filter((e) => e.type === 'connectionstatuschanged')")
    assert status == [
        {
            "type": "connectionstatuschanged",
            "detail": {
                "status": "Disconnected",
                "reason": "The render server ended the connection: The session is stopping.",
                "code": "ServerEnded",
            },
        }
    ]
    assert page.evaluate(
        "() => connection.setSky('builtin://default').then(() => null, (e) => e.message)"
    ) == ("The render server ended the connection: The session is stopping.")
    assert page.evaluate("() => channel.readyState") == "closed"


def test_unanswerable_messages_are_ignored(page: Page) -> None:
    page.evaluate("() => channel.dispatchEvent(new MessageEvent('message', { data: 'not json' }))")
    answer(page, {"v": 2, "type": "ack", "re": 12345})
    assert page.evaluate("() => connection.status") == "Connected"
