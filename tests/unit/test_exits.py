"""How a render server's end is put in words (including an end by its memory ceiling), and how the host
layer tells that a render server stopped itself, and why (``openrr.hosts.exits``)."""

from __future__ import annotations

from pathlib import Path

from openrr.hosts.exits import describe_exit, self_stop_reason
from openrr.protocol.handshake import CONTROL_PLANE_UNREACHABLE, LEASE_ENDED

STAMP = "2026-12-06 21:00:00,123"


def test_an_end_by_the_memory_ceiling_says_so(tmp_path: Path) -> None:
    log = tmp_path / "render.log"
    log.write_text("INFO ready\nOpenBLAS error: Memory allocation still failed after 10 retries.\n")
    message = describe_exit(1, str(log))
    assert message.startswith("The render server exited with code 1 after running out of memory")
    assert "--render-memory" in message
    assert "OpenBLAS error" in message


def test_other_ends_are_told_as_they_are(tmp_path: Path) -> None:
    log = tmp_path / "render.log"
    log.write_text("INFO ready\nINFO stopping\n")
    assert describe_exit(-9, str(log)) == (
        "The render server was killed by signal SIGKILL. Last log lines: INFO ready | INFO stopping"
    )
    assert describe_exit(None, None) == "The render server process is gone."


def test_the_exit_code_decides_when_it_is_known(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text(f"{STAMP} WARNING openrr.render: self-stop {CONTROL_PLANE_UNREACHABLE}: gone\n")
    assert self_stop_reason(6, str(log)) == LEASE_ENDED
    assert self_stop_reason(7, None) == CONTROL_PLANE_UNREACHABLE
    assert self_stop_reason(0, str(log)) is None  # told to stop: the log line does not count
    assert self_stop_reason(-9, str(log)) is None


def test_without_an_exit_code_the_servers_own_last_lines_decide(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text(
        f"{STAMP} INFO openrr.render: ready\n"
        f"{STAMP} WARNING openrr.render: self-stop {LEASE_ENDED}: the lease of session s1 has ended\n"
        f"{STAMP} INFO openrr.render: render server for session s1 stopped\n"
    )
    assert self_stop_reason(None, str(log)) == LEASE_ENDED
    assert self_stop_reason(None, str(tmp_path / "missing.log")) is None
    assert self_stop_reason(None, None) is None


def test_text_that_only_looks_like_the_line_does_not_count(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    forged = f"self-stop {CONTROL_PLANE_UNREACHABLE}: x"
    log.write_text(
        f"{STAMP} INFO openrr.render: preloaded /models/{forged}\n"  # a client's text inside another line
        f"{STAMP} WARNING openrr.model.loader: {forged}\n"  # another logger
        f"{STAMP} WARNING openrr.render: self-stop Whatever: x\n"  # no such reason
        f"{STAMP} INFO openrr.render: done\n"
    )
    assert self_stop_reason(None, str(log)) is None
    # Only the last lines count: a self-stop long before the end is not how this process ended.
    log.write_text(
        f"{STAMP} WARNING openrr.render: self-stop {LEASE_ENDED}: old\n"
        + "".join(f"{STAMP} INFO openrr.render: line {i}\n" for i in range(20))
    )
    assert self_stop_reason(None, str(log)) is None
