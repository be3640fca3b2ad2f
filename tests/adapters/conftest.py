"""Fixtures for the adapter suites: a real SMTP server on 127.0.0.1, TLS material, messages."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from touchflow.adapters.smtp.sink import LocalSmtpSink
from touchflow.ports import OutboundEmail


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for localhost / 127.0.0.1 and its key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    key = ec.generate_private_key(ec.SECP256R1())  # EC: generated in milliseconds
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert_path, key_path)


@pytest.fixture
def sink() -> Iterator[LocalSmtpSink]:
    """A plain SMTP sink with default settings."""
    with LocalSmtpSink() as running:
        yield running


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def make_email() -> Callable[..., OutboundEmail]:
    """Build an OutboundEmail; ``make_email(3, to_addr=...)`` numbers the touch and Message-ID."""

    def make(n: int = 1, **overrides: Any) -> OutboundEmail:
        fields: dict[str, Any] = {
            "touch_key": f"enr-{n}:step-1:0",
            "message_id": f"<touch-{n}.abc@mail.acme.test>",
            "from_addr": "rep@acme.test",
            "to_addr": f"prospect{n}@example.test",
            "subject": f"Quick question {n}",
            "text": f"Hi there,\n\nmessage number {n}.\n\nBest,\nRep\n",
            "from_name": "Rita Rep",
        }
        fields.update(overrides)
        return OutboundEmail(**fields)

    return make
