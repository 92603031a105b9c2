"""A private certificate authority for TLS inside the platform.

``make_ca`` makes a CA; ``issue_server`` a server certificate valid for
loopback (127.0.0.1, ::1, localhost) plus the names given; ``issue_client`` a
client certificate for mTLS. Keys are ECDSA P-256, written mode 0600 in a
folder mode 0700. ``local_pki`` is what ``headend up --tls`` uses: the CA is
made once and kept; leaf certificates are reissued only when missing, near
expiry, not from that CA, or (for the server) not covering the names asked for.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from headend.clock import utc_now

LOOPBACK_NAMES: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
CA_DAYS = 3650
LEAF_DAYS = 397
# A leaf closer than this to expiry is reissued when the local stack starts.
RENEW_BEFORE = dt.timedelta(days=30)
# Certificates start a little in the past so a peer whose clock lags still accepts them.
_BACKDATE = dt.timedelta(minutes=5)


class PkiError(Exception):
    """Raised when existing CA files cannot be read or no longer work."""


class PemError(PkiError):
    """Raised when a PEM file is unreadable, holds the wrong thing, or a key is not its pair's."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CertFiles:
    """A PEM certificate and its PEM private key on disk."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class LocalPki:
    """The files ``headend up --tls`` hands its servers and callers."""

    ca: CertFiles
    server: CertFiles
    client: CertFiles

    @property
    def ca_file(self) -> Path:
        """The CA certificate every server and caller trusts."""
        return self.ca.cert_file


def _write(path: Path, data: bytes, mode: int) -> None:
    # Written beside and renamed into place, created with its final mode, so a
    # key is never readable by others, not even for a moment, nor half written.
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)


def _save(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertFiles:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = CertFiles(folder / f"{stem}.pem", folder / f"{stem}.key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(files.key_file, key_pem, 0o600)
    _write(files.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def _load(files: CertFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
        key = serialization.load_pem_private_key(files.key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise PkiError(f"cannot load {files.cert_file} / {files.key_file}: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{files.key_file} is not an EC private key")
    return cert, key


def _key_usage(*, certificate_authority: bool) -> x509.KeyUsage:
    # A CA only signs certificates; a leaf only signs its handshakes (ECDSA).
    return x509.KeyUsage(
        digital_signature=not certificate_authority,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_authority,
        crl_sign=certificate_authority,
        encipher_only=False,
        decipher_only=False,
    )


def check_certificates(path: Path) -> None:
    """Refuse a file that is unreadable or holds no PEM certificate (``PemError``)."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as err:
        raise PemError(path, f"cannot read: {err.strerror}") from err
    except ValueError as err:
        raise PemError(path, "holds no PEM certificate") from err
    if not certs:
        raise PemError(path, "holds no PEM certificate")


def check_pair(cert_file: Path, key_file: Path) -> None:
    """Refuse a certificate and key that cannot be read or do not belong together (``PemError``)."""
    check_certificates(cert_file)
    cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except OSError as err:
        raise PemError(key_file, f"cannot read: {err.strerror}") from err
    except (ValueError, TypeError) as err:
        raise PemError(key_file, "holds no unencrypted PEM private key") from err
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != (
        cert.public_key().public_bytes(serialization.Encoding.DER, public)
    ):
        raise PemError(key_file, f"is not the private key of {cert_file}")


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _builder(
    subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = utc_now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def make_ca(folder: Path, *, name: str = "headend internal CA", days: int = CA_DAYS) -> CertFiles:
    """A new self-signed CA as ``folder/ca.pem`` and ``folder/ca.key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(name, subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certificate_authority=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _save(folder, "ca", cert, key)


def _issue(
    ca: CertFiles,
    folder: Path,
    stem: str,
    name: str,
    usage: x509.ObjectIdentifier,
    names: Sequence[str],
    days: int,
) -> CertFiles:
    ca_cert, ca_key = _load(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(name, ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(certificate_authority=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
    return _save(folder, stem, builder.sign(ca_key, hashes.SHA256()), key)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))


def issue_server(
    ca: CertFiles,
    folder: Path,
    *,
    name: str = "server",
    hosts: Iterable[str] = (),
    days: int = LEAF_DAYS,
) -> CertFiles:
    """A server certificate ``folder/<name>.pem`` for loopback plus ``hosts`` (IPs or DNS names)."""
    names = _unique([*LOOPBACK_NAMES, *hosts])
    return _issue(ca, folder, name, name, ExtendedKeyUsageOID.SERVER_AUTH, names, days)


def issue_client(
    ca: CertFiles, folder: Path, *, name: str = "client", days: int = LEAF_DAYS
) -> CertFiles:
    """A client certificate ``folder/<name>.pem`` for mTLS, its subject CN ``name``."""
    return _issue(ca, folder, name, name, ExtendedKeyUsageOID.CLIENT_AUTH, [name], days)


def _still_good(files: CertFiles, ca_cert: x509.Certificate, names: Sequence[str]) -> bool:
    try:
        cert, _ = _load(files)
        cert.verify_directly_issued_by(ca_cert)
    except (PkiError, ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - RENEW_BEFORE < utc_now():
        return False
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return not names
    have = {str(v) for v in sans.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    return {str(_general_name(n).value) for n in names} <= have


def local_pki(folder: Path, *, hosts: Iterable[str] = ()) -> LocalPki:
    """The CA, server and client pairs under ``folder``: made when missing, otherwise reused."""
    ca = CertFiles(folder / "ca.pem", folder / "ca.key")
    if not ca.cert_file.exists():
        ca = make_ca(folder)
    ca_cert, _ = _load(ca)
    if ca_cert.not_valid_after_utc < utc_now() + RENEW_BEFORE:
        raise PkiError(
            f"the CA in {folder} expires {ca_cert.not_valid_after_utc:%Y-%m-%d}; "
            "remove that folder to make a new one (every issued certificate changes)"
        )
    names = _unique([*LOOPBACK_NAMES, *hosts])
    server = CertFiles(folder / "server.pem", folder / "server.key")
    if not _still_good(server, ca_cert, names):
        server = issue_server(ca, folder, hosts=hosts)
    client = CertFiles(folder / "client.pem", folder / "client.key")
    if not _still_good(client, ca_cert, ["client"]):
        client = issue_client(ca, folder)
    return LocalPki(ca, server, client)
