"""Who may drive a served twin: certificates, users, and the gate that checks them.

A virtual controller accepts motion commands, so ``celltwin serve`` is secure unless told
otherwise: the only endpoint is Basic256Sha256 with SignAndEncrypt (the channel is signed and
encrypted with the server's and the client's certificates), and a session needs a user name and
password. ``insecure=True`` opens a NoSecurity endpoint with anonymous access instead, for local
commissioning only.

asyncua 2.1 answers a NoSecurity OpenSecureChannel even when it offers no such endpoint, and
activates a session over it if the user manager says yes (checked here: the password arrives in
clear text). So the gate itself refuses every session whose channel carries no client
certificate: on a secure server a user is only ever admitted over an encrypted channel.

Self-signed certificates are generated on first use into ``cache_dir("opcua")`` (or a given
folder) and reused while they are valid; :func:`ensure_certificate` serves tests and the
benchmark too.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hmac
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from asyncua.crypto.cert_gen import generate_private_key, generate_self_signed_app_certificate
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from celltwin.controller.opcua_model import (CLIENT_APPLICATION_URI, SERVER_APPLICATION_URI,
                                             application_uri)
from celltwin.core.atomic import atomic_write_bytes
from celltwin.core.errors import Problem
from celltwin.core.resources import cache_dir
from celltwin.serve.errors import ServeError

__all__ = ["CLIENT_APPLICATION_URI", "SERVER_APPLICATION_URI", "ServerSecurity", "UserGate",
           "application_uri", "certificate_der", "ensure_certificate"]

_LOG = logging.getLogger("celltwin.serve")  # the serve log
_VALIDITY_DAYS = 365
_RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class ServerSecurity:
    """How clients must connect to a served twin.

    Attributes:
        insecure: offer NoSecurity with anonymous access instead of everything below.
        certificate: the server's certificate (DER or PEM); ``None`` uses a self-signed one
            generated into ``certificate_dir``.
        private_key: the key of ``certificate`` (PEM or DER), given with it.
        users: user name -> password of every user allowed to log in.
        trusted_client_certificates: client certificates (DER or PEM) allowed to open a
            channel; empty admits any client certificate (the channel is still encrypted and
            the user must still log in).
        certificate_dir: where generated certificates live; ``None`` is ``cache_dir("opcua")``.
    """

    insecure: bool = False
    certificate: Path | None = None
    private_key: Path | None = None
    users: Mapping[str, str] = field(default_factory=dict)
    trusted_client_certificates: Sequence[Path] = ()
    certificate_dir: Path | None = None

    def server_credentials(self) -> tuple[Path, Path]:
        """The server certificate and key to load, generated first when none was given.

        Raises:
            ServeError: listing every problem: no users on a secure server, half a key pair,
                unreadable or mismatched files, untrusted-list entries that are no certificate.
        """
        problems = []
        if not self.users:
            problems.append(Problem("a secure server needs at least one user",
                                    path="security.users",
                                    expected="a user name and password, or insecure mode"))
        for name, password in self.users.items():
            if not name or not password:
                problems.append(Problem("user name and password must not be empty",
                                        path=f"security.users.{name}", value=name))
        for index, path in enumerate(self.trusted_client_certificates):
            problems += _certificate_problems(
                path, f"security.trusted_client_certificates[{index}]")
        if (self.certificate is None) != (self.private_key is None):
            problems.append(Problem("a server certificate needs its private key and vice versa",
                                    path="security.certificate" if self.certificate is None
                                    else "security.private_key",
                                    expected="both --cert and --key, or neither"))
        elif self.certificate is not None:
            problems += _certificate_problems(self.certificate, "security.certificate")
            problems += _key_problems(self.private_key, self.certificate, "security.private_key")
        if problems:
            raise ServeError(problems)
        if self.certificate is not None:
            return Path(self.certificate), Path(self.private_key)
        return ensure_certificate(self.certificate_dir, "server", SERVER_APPLICATION_URI)


class UserGate:
    """asyncua user manager of a secure server: encrypted channel, known user, right password.

    Args:
        users: user name -> password.
        trusted_certificates: DER bytes of the client certificates allowed; empty allows any.
    """

    def __init__(self, users: Mapping[str, str], trusted_certificates: Sequence[bytes] = ()):
        self._users = {name: password.encode() for name, password in users.items()}
        self._trusted = frozenset(trusted_certificates)

    def get_user(self, iserver, username: str | None = None, password: str | None = None,
                 certificate: bytes | None = None) -> User | None:
        """Return the session's user, or ``None`` to refuse it (BadUserAccessDenied).

        A refusal is one line in the serve log (the user name, never the password).
        """
        if not certificate:
            # A NoSecurity channel (asyncua passes b"" or None): never, whatever the password
            # (see the module docstring).
            return _refused(username, "no encrypted channel")
        if self._trusted and certificate not in self._trusted:
            return _refused(username, "client certificate not trusted")
        expected = self._users.get(username or "")
        if expected is None or password is None:
            return _refused(username, "unknown user")
        given = password.encode() if isinstance(password, str) else bytes(password)
        if not hmac.compare_digest(expected, given):
            return _refused(username, "wrong password")
        return User(role=UserRole.User, name=username)


def _refused(username, reason: str) -> None:
    shown = repr(username if username is None else str(username)[:64])  # repr: one line
    _LOG.warning("refused login of user %s: %s", shown, reason)
    return None


def certificate_der(path: Path) -> bytes:
    """The DER bytes of the certificate in ``path`` (DER or PEM)."""
    return _load_certificate(Path(path)).public_bytes(serialization.Encoding.DER)


def ensure_certificate(directory: Path | None, name: str, application_uri: str,
                       role: str | None = None) -> tuple[Path, Path]:
    """Return ``(certificate.der, key.pem)`` for ``name``, generating a self-signed pair if needed.

    A pair is made again when missing, expiring within a week, or issued for another
    application URI. A file lock keeps two processes from writing halves of two pairs.

    Args:
        directory: where the pair lives; ``None`` is ``cache_dir("opcua")``.
        name: file stem (``server``, ``client``).
        application_uri: the OPC UA application URI, written into the certificate's
            subjectAltName (clients and servers check it).
        role: ``server`` or ``client`` (extended key usage); defaults to ``name``.
    """
    if directory is None:
        directory = cache_dir("opcua")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    with _file_lock(directory / f".{name}.lock"):
        if _usable(cert_path, key_path, application_uri):
            return cert_path, key_path
        key = generate_private_key()
        hostname = socket.gethostname()
        usage = (ExtendedKeyUsageOID.SERVER_AUTH if (role or name) == "server"
                 else ExtendedKeyUsageOID.CLIENT_AUTH)
        certificate = generate_self_signed_app_certificate(
            key, f"celltwin {name}", {},
            [x509.UniformResourceIdentifier(application_uri), x509.DNSName(hostname),
             x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
            extended=[usage], days=_VALIDITY_DAYS)
        key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        atomic_write_bytes(key_path, key_bytes)
        key_path.chmod(0o600)
        atomic_write_bytes(cert_path, certificate.public_bytes(serialization.Encoding.DER))
    return cert_path, key_path


# ----------------------------------------------------------------------------- internals
def _usable(cert_path: Path, key_path: Path, uri: str) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        certificate = _load_certificate(cert_path)
        key = _load_key(key_path)
    except ValueError:
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    return (certificate.not_valid_after_utc - _RENEW_BEFORE > now
            and application_uri(certificate) == uri
            and _same_public_key(certificate, key))


def _load_certificate(path: Path) -> x509.Certificate:
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _load_key(path: Path):
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_private_key(data, password=None)
    return serialization.load_der_private_key(data, password=None)


def _same_public_key(certificate: x509.Certificate, key) -> bool:
    def spki(public_key) -> bytes:
        return public_key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return spki(certificate.public_key()) == spki(key.public_key())


def _certificate_problems(path: Path, where: str) -> list[Problem]:
    try:
        _load_certificate(Path(path))
    except OSError as error:
        return [Problem(f"cannot read certificate {path}: {error.strerror or error}", path=where,
                        value=str(path), expected="a readable DER or PEM certificate file")]
    except ValueError:
        return [Problem(f"{path} is not a certificate", path=where, value=str(path),
                        expected="an X.509 certificate in DER or PEM")]
    return []


def _key_problems(path: Path, certificate: Path, where: str) -> list[Problem]:
    try:
        key = _load_key(Path(path))
    except OSError as error:
        return [Problem(f"cannot read private key {path}: {error.strerror or error}", path=where,
                        value=str(path), expected="a readable PEM or DER private key file")]
    except (ValueError, TypeError):
        return [Problem(f"{path} is not an unencrypted private key", path=where, value=str(path),
                        expected="an RSA private key in PEM or DER, without a password")]
    try:
        matches = _same_public_key(_load_certificate(Path(certificate)), key)
    except (OSError, ValueError):
        return []  # the certificate's own problem is reported already
    if not matches:
        return [Problem(f"private key {path} does not belong to certificate {certificate}",
                        path=where, value=str(path), expected=f"the key of {certificate}")]
    return []


@contextlib.contextmanager
def _file_lock(path: Path):
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
