"""The data-channel protocol: every request type parses, and bad messages get readable errors."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrr.protocol import datachannel as protocol
from openrr.protocol.datachannel import BadMessage, CameraSet, ModelLoad, NodeSet, Pick


def test_requests_parse() -> None:
    cam = protocol.parse(
        '{"v":1,"id":7,"type":"camera.set","position":[0,1,5],"orientation":[0,0,0,2],"poseId":3}'
    )
    assert isinstance(cam, CameraSet)
    assert cam.orientation == (0, 0, 0, 1)
    assert cam.poseId == 3
    assert cam.id == 7
    load = protocol.parse(b'{"v":1,"type":"model.load","url":"https://assets.test/a.glb"}')
    assert isinstance(load, ModelLoad)
    assert load.modelId is None
    node = protocol.parse('{"v":1,"type":"node.set","node":"wheel","visible":false,"color":[1,0,0,1]}')
    assert isinstance(node, NodeSet)
    assert node.visible is False
    assert isinstance(protocol.parse('{"v":1,"type":"pick","x":0.5,"y":1}'), Pick)
    for text in (
        '{"v":1,"type":"camera.orbit","yaw":10}',
        '{"v":1,"type":"stats.get"}',
        '{"v":1,"type":"ping"}',
    ):
        protocol.parse(text)


@pytest.mark.parametrize(
    ("raw", "needle", "re"),
    [
        ("not json", "not valid JSON", None),
        ("[1]", "JSON object", None),
        ('{"type":"ping"}', "version", None),
        ('{"v":3,"id":"a","type":"ping"}', "version", "a"),
        ('{"v":1,"id":"b","type":"teleport"}', "type", "b"),
        ('{"v":1,"id":4,"type":"pick","x":2,"y":0}', "x", 4),
        ('{"v":1,"type":"camera.set","position":[0,0],"orientation":[0,0,0,1]}', "position", None),
        ('{"v":1,"type":"camera.set","position":[0,0,0],"orientation":[0,0,0,0]}', "zero", None),
        ('{"v":1,"type":"camera.zoom","factor":0}', "factor", None),
        ('{"v":1,"type":"node.set","node":1,"transform":[1,2,3]}', "transform", None),
        ('{"v":1,"type":"model.load","url":""}', "url", None),
        ('{"v":1,"type":"ping","extra":1}', "extra", None),
        ('{"v":1,"type":"camera.orbit","yaw":NaN}', "yaw", None),
    ],
)
def test_bad_messages(raw: str, needle: str, re: object) -> None:
    with pytest.raises(BadMessage) as info:
        protocol.parse(raw)
    assert needle.lower() in info.value.message.lower()
    assert info.value.re == re


def test_oversized_and_deep_messages() -> None:
    with pytest.raises(BadMessage, match="limited"):
        protocol.parse("{" + " " * protocol.MAX_MESSAGE_BYTES + "}")
    with pytest.raises(BadMessage):
        protocol.parse("[" * 5000 + "]" * 5000)


@given(st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_another_exception(raw: str) -> None:
    with contextlib.suppress(BadMessage):
        protocol.parse(raw)


def test_server_messages() -> None:
    assert json.loads(protocol.message("pong", 5, t=1.5)) == {"v": 1, "type": "pong", "re": 5, "t": 1.5}
    assert json.loads(protocol.error("x", "BadMessage", "nope")) == {
        "v": 1,
        "type": "error",
        "re": "x",
        "code": "BadMessage",
        "message": "nope",
    }
