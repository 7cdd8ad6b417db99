"""The node's TLS identity: a self-signed RSA certificate made on first start.

SoftEther clients do not verify the server certificate at the TLS layer, but
they pin it across additional connections and after a cluster redirect, so the
certificate must stay the same across restarts: it is made once and kept in
the state directory (key mode 0600).
"""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from node.state.store import write_atomic

CERT_NAME, KEY_NAME = "server.crt", "server.key"


def ensure_certificate(state_dir: Path) -> tuple[Path, Path]:
    """Return (cert, key) paths, creating a self-signed pair if absent."""
    cert_path, key_path = state_dir / CERT_NAME, state_dir / KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.gethostname()[:64] or "vpnd")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            # as SoftEther's own (NewRootX509): without it vpncmd warns that
            # the certificate is "in the old format" on every connect
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    write_atomic(key_path, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), mode=0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert_path, key_path


def certificate_der(cert_path: Path) -> bytes:
    """The certificate in DER, as SoftEther's `Cert`/`ServerCert` fields carry it."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def client_context() -> ssl.SSLContext:
    """A TLS client that does not verify the server at the TLS layer, as
    SoftEther's client and vpncmd do not (servers are self-signed). Where the
    server's identity matters the caller pins it instead: the redirect's
    `Cert`, vpnctl's --pin-sha256, the controller's CURVE key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # No TLS 1.3 session tickets: neither SoftEther's client nor ours resumes
    # a session, and the tickets cost every connection an encryption and a
    # write of their own after the handshake (a login's latency, a burst's CPU).
    ctx.num_tickets = 0
    ctx.load_cert_chain(cert_path, key_path)
    return ctx
