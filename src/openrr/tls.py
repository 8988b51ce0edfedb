"""A self-signed certificate for development: the stock ARR SDK sends tokens over HTTPS only."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def ensure_self_signed(tls_dir: Path, *, extra_hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Return (cert.pem, key.pem) in ``tls_dir``, creating them on first use (valid 10 years).

    The certificate names localhost, 127.0.0.1 and ::1 (plus ``extra_hosts``) and is its own CA, so clients
    trust it with SSL_CERT_FILE / REQUESTS_CA_BUNDLE pointing at cert.pem.
    """
    cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for host in ("127.0.0.1", "::1", *extra_hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openrr development certificate")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Write the key first, readable by the owner only; the certificate second, so a half-written pair
    # is never mistaken for a complete one.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
