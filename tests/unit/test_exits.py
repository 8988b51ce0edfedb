"""How a render server's end is put in words, including an end by its memory ceiling."""

from __future__ import annotations

from pathlib import Path

from openrr.hosts.exits import describe_exit


def test_an_end_by_the_memory_ceiling_says_so(tmp_path: Path) -> None:
    log = tmp_path / "render.log"
    log.write_text("INFO ready\nOpenBLAS error: Memory allocation still failed after 10 retries.\n")
    message = describe_exit(1, str(log))
    assert message.startswith("The render server exited with code 1 after running out of memory")
    assert "--render-memory" in message and "OpenBLAS error" in message


def test_other_ends_are_told_as_they_are(tmp_path: Path) -> None:
    log = tmp_path / "render.log"
    log.write_text("INFO ready\nINFO stopping\n")
    assert describe_exit(-9, str(log)) == (
        "The render server was killed by signal SIGKILL. Last log lines: INFO ready | INFO stopping"
    )
    assert describe_exit(None, None) == "The render server process is gone."
