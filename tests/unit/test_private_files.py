"""What only the service's user may read (``openrr.private``), the development certificate (``openrr.tls``)
and the start-up banner's store URL."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from openrr.cli.output import console
from openrr.cli.serve import _banner, masked_url
from openrr.config.settings import Settings
from openrr.private import private_dir, write_private
from openrr.services.tokens import new_signing_key
from openrr.store.sql import open_store
from openrr.tls import ca_file, ensure_self_signed


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read new files: modes must come from openrr, not from the umask."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_private_dirs_and_files_are_created_with_their_mode(tmp_path: Path, open_umask: None) -> None:
    data = private_dir(tmp_path / "a" / "data")
    assert mode(data) == 0o700
    write_private(data / "arrconfig.json", b"{}")
    assert mode(data / "arrconfig.json") == 0o600
    (data / "loose.json").write_bytes(b"old")
    (data / "loose.json").chmod(0o644)
    write_private(data / "loose.json", b"new")  # a replacement, not a rewrite of the 0644 file
    assert mode(data / "loose.json") == 0o600
    assert (data / "loose.json").read_bytes() == b"new"
    loose = tmp_path / "loose-dir"
    loose.mkdir(mode=0o755)
    assert mode(private_dir(loose)) == 0o700  # an existing one is tightened


async def test_the_sqlite_store_and_its_wal_files_are_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "openrr.db"
    store = await open_store(f"sqlite:///{db}")
    try:
        await store.signing_key(new_signing_key(dt.datetime.now(dt.UTC)))  # a write: -wal and -shm exist now
        sides = [db.with_name(db.name + s) for s in ("-wal", "-shm") if db.with_name(db.name + s).exists()]
        assert sides
        assert {p.name: mode(p) for p in (db, *sides)} == {p.name: 0o600 for p in (db, *sides)}
    finally:
        await store.close()


def test_the_development_certificate_is_a_leaf_signed_by_a_throwaway_ca(tmp_path: Path) -> None:
    cert_path, key_path = ensure_self_signed(tmp_path / "tls")
    leaf, *chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    (ca,) = x509.load_pem_x509_certificates(ca_file(tmp_path / "tls").read_bytes())
    assert chain == [ca]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    assert constraints.path_length == 0
    leaf.verify_directly_issued_by(ca)
    assert mode(key_path) == 0o600
    # Its CA's key is nowhere: the only private key written is the leaf's.
    keys = [p.name for p in (tmp_path / "tls").iterdir() if b"PRIVATE KEY" in p.read_bytes()]
    assert keys == ["key.pem"]
    # A second start keeps it.
    assert ensure_self_signed(tmp_path / "tls") == (cert_path, key_path)
    assert x509.load_pem_x509_certificates(cert_path.read_bytes())[0] == leaf


async def test_clients_trusting_the_ca_or_cert_pem_verify_the_server(tmp_path: Path) -> None:
    cert_path, key_path = ensure_self_signed(tmp_path / "tls")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)

    async def hello(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(hello, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        for trusted in (ca_file(tmp_path / "tls"), cert_path):
            client_ctx = ssl.create_default_context(cafile=str(trusted))
            for name in ("localhost", "127.0.0.1"):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_ctx, server_hostname=name
                )
                assert await reader.read() == b"hi"
                writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_certificate_that_is_its_own_ca_is_replaced(tmp_path: Path) -> None:
    from tests.unit.old_tls import write_old_self_signed

    tls = tmp_path / "tls"
    write_old_self_signed(tls)
    cert_path, _ = ensure_self_signed(tls)
    leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_the_banner_masks_the_store_password(tmp_path: Path) -> None:
    url = "postgresql://openrr:s3cret-pw@127.0.0.1:5432/openrr"
    assert masked_url(url) == "postgresql://openrr:***@127.0.0.1:5432/openrr"
    assert masked_url("sqlite:////var/lib/openrr/openrr.db") == "sqlite:////var/lib/openrr/openrr.db"
    settings = Settings.load({"data_dir": tmp_path / "data", "store_url": url})
    with console.capture() as captured:
        _banner(settings, None, None, None)
    text = captured.get()
    assert "s3cret-pw" not in text
    assert "openrr:***@127.0.0.1" in text
