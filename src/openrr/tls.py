"""A certificate for development: the stock ARR SDK sends tokens over HTTPS only.

``tls_dir`` holds ``key.pem`` (the server's key, 0600), ``cert.pem`` (the server's leaf certificate, then
the CA certificate that signed it: the chain uvicorn sends) and ``ca.pem`` (that CA certificate alone: what
clients trust, with SSL_CERT_FILE / REQUESTS_CA_BUNDLE or arrconfig.json's ``caCertificate``; ``cert.pem``
works as well, since it holds the CA too).

The leaf is no CA (BasicConstraints ca=False, key usage digitalSignature, extended key usage serverAuth),
so whoever steals ``key.pem`` can impersonate this service and nothing else. The CA is a throwaway: its key
lives only in memory while it signs the leaf and is never written, so the CA a client was told to trust can
sign no other certificate, ever (and it may only sign end-entity certificates: path length 0).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from openrr.private import write_private, write_public

log = logging.getLogger(__name__)

_VALID = dt.timedelta(days=3650)
_LEAF_NAME = "openrr development certificate"


def ensure_self_signed(tls_dir: Path, *, extra_hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Return (cert.pem, key.pem) in ``tls_dir``, creating them (and ``ca.pem``) on first use (valid 10
    years). The certificate names localhost, 127.0.0.1 and ::1, plus ``extra_hosts``. A certificate of an
    older openrr that was its own CA is replaced (clients trusting it must trust ``ca.pem`` instead)."""
    cert_path, key_path, ca_path = tls_dir / "cert.pem", tls_dir / "key.pem", ca_file(tls_dir)
    if cert_path.is_file() and key_path.is_file() and ca_path.is_file() and not _is_ca(cert_path):
        return cert_path, key_path
    if cert_path.is_file():
        log.warning("replacing the development certificate %s: it was its own CA", cert_path)
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())  # never written: see the module doc
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"openrr development CA {now:%Y-%m-%d}")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for host in ("127.0.0.1", "::1", *extra_hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _LEAF_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    # The key first, readable by the owner only from its creation; the certificates last, so a half-written
    # set is never mistaken for a complete one (cert.pem is what is looked for).
    write_private(key_path, key_bytes)
    write_public(ca_path, ca_pem)
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    return cert_path, key_path


def ca_file(tls_dir: Path) -> Path:
    """The CA certificate clients trust for the development certificate in ``tls_dir``."""
    return tls_dir / "ca.pem"


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _is_ca(cert_path: Path) -> bool:
    """Whether the first certificate in ``cert_path`` is a CA (as older openrr's self-signed one was)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (ValueError, x509.ExtensionNotFound):
        return False
