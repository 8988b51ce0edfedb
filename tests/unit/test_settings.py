"""Settings validation: every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from openrr.config import Settings
from openrr.errors import InvalidInput


def test_defaults() -> None:
    s = Settings.load({})
    assert s.port == 8443 and s.scheme == "https" and s.local_address == "https://127.0.0.1:8443"
    assert s.resolved_store_url.startswith("sqlite:///") and s.resolved_store_url.endswith("openrr.db")


def test_all_errors_at_once(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        Settings.load({"port": 0, "throttle_rate": -1, "log_level": "loud", "store_url": "mysql://x"})
    lines = info.value.message.splitlines()
    assert len(lines) == 4, lines
    assert any(line.startswith("--port:") for line in lines)
    assert any(line.startswith("--store-url:") for line in lines)


def test_cert_and_key_together(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(InvalidInput, match="together"):
        Settings.load({"cert": cert})
    with pytest.raises(InvalidInput, match="not a readable file"):
        Settings.load({"cert": cert, "key": tmp_path / "missing.pem"})


def test_addresses() -> None:
    assert Settings.load({"host": "0.0.0.0", "port": 9}).local_address == "https://127.0.0.1:9"
    assert Settings.load({"host": "::", "insecure_http": True}).local_address == "http://[::1]:8443"
    assert Settings.load({"public_url": "https://rr.example/"}).callback_base_url == "https://rr.example"
