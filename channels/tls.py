"""TLS identities and contexts for the peer transport (`channels.transport`).

Every party that serves or connects keeps one TLS key (ECDSA P-256, `tls-<address>.key`, mode
0600) and one self-signed certificate (`tls-<address>.crt`) in its data directory, made on first
use. No CA is trusted anywhere: who a peer is comes from the transport's challenge-response, whose
signatures are bound to the server's certificate of this TLS session (see
`channels.transport.auth_digest_v2` and docs/protocol.md, "Transport"). The contexts allow TLS 1.3
only.

This module makes and reads certificate files and builds `ssl.SSLContext`s; it must never decide
who a peer is (the signed challenge does that), never trust a certificate authority, and never
write a key file readable by anyone but its owner.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from channels.core.types import to_checksum

CERTIFICATE_DAYS = 3650  # validity is not checked by anyone (no CA); the field must hold a date


class TlsConfigError(Exception):
    """A TLS key or certificate file is missing, unreadable, too open, or does not match."""


class PlainTransportRefusedError(ValueError):
    """Plain TCP (no TLS) was asked for on a host that is not a loopback address."""


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and any loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve anywhere


def require_tls_off_loopback(host: str, tls: TlsConfig | None, what: str) -> None:
    """PlainTransportRefusedError when `tls` is None and `host` is not a loopback address."""
    if tls is None and not is_loopback_host(host):
        raise PlainTransportRefusedError(
            f"refusing to {what} {host} without TLS: plain TCP is for loopback addresses only"
        )


def certificate_hash(der: bytes) -> bytes:
    """sha256 of a DER certificate: what the transport's signed challenge is bound to."""
    return hashlib.sha256(der).digest()


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """One party's TLS key and certificate (files in its data directory) and its two contexts.

    `server_context` / `client_context` are what the transport wraps streams in (built once, by
    `load`); `certificate_der` is this party's certificate, which a server binds its answers to.
    """

    key_path: Path
    certificate_path: Path
    certificate_der: bytes
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext

    @classmethod
    def load(cls, data_dir: Path, address: bytes) -> TlsConfig:
        """The key and certificate of `address` in `data_dir`, made on first use.

        TlsConfigError names the file when only one of the pair exists, when the key is readable
        by group or others, or when the files do not parse or do not match.
        """
        name = "0x" + address.hex()
        key_path = data_dir / f"tls-{name}.key"
        certificate_path = data_dir / f"tls-{name}.crt"
        key_exists, certificate_exists = key_path.exists(), certificate_path.exists()
        if key_exists != certificate_exists:
            present, missing = (
                (key_path, certificate_path) if key_exists else (certificate_path, key_path)
            )
            raise TlsConfigError(
                f"{present} exists but {missing} does not: restore the pair or remove {present}"
            )
        if not key_exists:
            _create_pair(key_path, certificate_path, address)
        mode = stat.S_IMODE(key_path.stat().st_mode)
        if mode & 0o077:
            raise TlsConfigError(
                f"{key_path} is readable by others (mode {mode:o}); run: chmod 600 {key_path}"
            )
        try:
            certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        except ValueError as exc:
            raise TlsConfigError(f"{certificate_path} is not a PEM certificate: {exc}") from exc
        return cls(
            key_path,
            certificate_path,
            certificate.public_bytes(serialization.Encoding.DER),
            # server: no client certificate is requested (the stdlib cannot accept one without a
            # CA); the client proves its address by its signed, bound answer instead.
            _context(ssl.PROTOCOL_TLS_SERVER, key_path, certificate_path),
            # client: any server certificate is accepted here and bound by the signed challenge.
            _context(ssl.PROTOCOL_TLS_CLIENT, key_path, certificate_path),
        )


def _context(protocol: ssl._SSLMethod, key_path: Path, certificate_path: Path) -> ssl.SSLContext:
    """TLS 1.3 only, this party's certificate, no CA (certificate verification off)."""
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(certificate_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"{key_path} and {certificate_path} do not make a usable pair: {exc}"
        ) from exc
    return context


def _create_pair(key_path: Path, certificate_path: Path, address: bytes) -> None:
    """Write a new P-256 key (0600) and a self-signed certificate naming `address`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, to_checksum(address))])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    temporary_key = key_path.with_name(key_path.name + ".tmp")
    temporary_certificate = certificate_path.with_name(certificate_path.name + ".tmp")
    temporary_key.unlink(missing_ok=True)  # a leftover may have another mode
    descriptor = os.open(temporary_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_pem)
    temporary_certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    os.replace(temporary_certificate, certificate_path)  # certificate first: a key alone
    os.replace(temporary_key, key_path)  # never appears without its certificate
