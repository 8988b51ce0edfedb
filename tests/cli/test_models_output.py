"""``openrr models`` prints names and the server's messages as plain text: a name or an error message with
rich markup in it ("[bold]", "[/]") neither restyles the output nor makes it fail."""

from __future__ import annotations

from typing import Any

import pytest

from openrr.cli.models import _list, _show


def model(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "0" * 32,
        "name": "[bold]loud[/] [/]",
        "status": "Failed",
        "progress": 1.0,
        "size": 12,
        "files": 1,
        "entry": "a.glb",
        "createdOn": "2026-12-07T12:00:00.000000Z",
        "conversionId": "model-" + "0" * 32,
        "url": None,
        "error": {"code": "ConversionProcessFailed", "message": "[red]broken[/] at [/]"},
        "statistics": {"format": "[i]glb"},
    }
    return base | changes


def test_names_and_messages_are_printed_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    _list([model(name="[bold]x[/]")], as_json=False)
    assert "[bold]x[/]" in capsys.readouterr().out
    _show(model(), as_json=False)
    out, err = capsys.readouterr()
    assert "model [bold]loud[/] [/]" in out  # the title
    assert "[i]glb" in out
    assert "ConversionProcessFailed: [red]broken[/] at [/]" in err
    _show(model(status="Succeeded", error=None, url="library/[b]x[/]/asset/model.arrAsset"), as_json=False)
    assert "library/[b]x[/]/asset/model.arrAsset" in capsys.readouterr().out
