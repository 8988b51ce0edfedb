"""Real ``python -m openrr.render`` processes started the way a host starts them (spec in the environment,
pooled or not), each stopped by pid at the end of the test whatever the test did (the ``render`` fixture)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from pathlib import Path

from openrr.protocol.handshake import POOL_ENV, SPEC_ENV, RenderSpec


@dataclasses.dataclass
class RenderProcess:
    proc: asyncio.subprocess.Process
    log: Path

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def assign(self, spec: RenderSpec | str) -> None:
        text = spec if isinstance(spec, str) else spec.to_json()
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()
        self.proc.stdin.close()

    async def exit_code(self, timeout: float = 60.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


class RenderProcesses:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[RenderProcess] = []

    async def start(self, spec: RenderSpec, *, pooled: bool = True) -> RenderProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[SPEC_ENV] = spec.to_json()
        env.pop(POOL_ENV, None)
        if pooled:
            env[POOL_ENV] = "1"
        log = self.directory / f"render-{len(self.started)}.log"
        with await asyncio.to_thread(log.open, "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "openrr.render",
                stdin=asyncio.subprocess.PIPE,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        process = RenderProcess(proc, log)
        self.started.append(process)
        return process

    async def stop_all(self) -> None:
        for process in self.started:
            proc = process.proc
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    await proc.wait()
