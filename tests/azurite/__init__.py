"""Azurite, Microsoft's Azure Storage emulator, for the blob storage and conversion tests.

The version is pinned by ``package.json`` and ``package-lock.json`` in this folder, installed by
``tests.npm_packages``. ``Azurite`` starts the blob service alone, in memory, on a free loopback port,
and stops exactly the process it started, by pid.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import npm_packages

HERE = Path(__file__).resolve().parent
ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public; it only ever opens this emulator).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(r"Azurite Blob service successfully listens on (http://\S+)")


def install() -> Path:
    """The azurite-blob executable, installed from the lock file if it is not yet (fails without npm)."""
    return npm_packages.install(HERE, "azurite", "node_modules/.bin/azurite-blob")


class Azurite:
    """One Azurite blob service: ``start()``, ``stop()``; ``endpoint`` is its account's blob endpoint."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def endpoint(self) -> str:
        """The blob service URL of the account, path-style as Azurite wants it."""
        return f"{self.url}/{ACCOUNT}"

    @property
    def linked(self) -> str:
        """The account as ``openrr accounts link-storage ACCOUNT STORAGE`` takes it, with its key."""
        return f"{ACCOUNT}={KEY}@{self.endpoint}"

    def start(self, timeout: float = 60.0) -> None:
        executable = install()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / "azurite.log"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(executable),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    "0",
                    "--inMemoryPersistence",
                    "--extentMemoryLimit",
                    "256",
                    "--skipApiVersionCheck",  # azure-storage-blob may be newer than this Azurite
                    "--disableTelemetry",
                    "--silent",
                    "--loose",
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1).rstrip("/")
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")
                self.stop()
                pytest.fail(f"Azurite did not start:\n{output[-3000:]}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    # ---- data, through the account key ------------------------------------------------------------------
    def create_container(self, name: str) -> str:
        """Create container ``name``; returns its URI."""
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient(
            self.endpoint, credential={"account_name": ACCOUNT, "account_key": KEY}
        ) as svc:
            svc.create_container(name)
        return f"{self.endpoint}/{name}"

    def put(self, container: str, name: str, data: bytes) -> None:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient(
            self.endpoint, credential={"account_name": ACCOUNT, "account_key": KEY}
        ) as svc:
            svc.get_container_client(container).upload_blob(name, data, overwrite=True)

    def get(self, container: str, name: str) -> bytes:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient(
            self.endpoint, credential={"account_name": ACCOUNT, "account_key": KEY}
        ) as svc:
            return bytes(svc.get_container_client(container).download_blob(name).readall())

    def names(self, container: str, prefix: str = "") -> list[str]:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient(
            self.endpoint, credential={"account_name": ACCOUNT, "account_key": KEY}
        ) as svc:
            client = svc.get_container_client(container)
            return sorted(b.name for b in client.list_blobs(name_starts_with=prefix or None))

    def sas(self, container: str, permission: str, *, hours: float = 1) -> str:
        """A container SAS (query string) with ``permission`` such as "rl" or "w"."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            ACCOUNT,
            container,
            account_key=KEY,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours),
        )
