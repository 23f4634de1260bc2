"""A robot controller reached over OPC UA: the deployment adapter's transport to a real cell.

:class:`OpcUaController` implements :class:`~celltwin.controller.interface.Controller` against any
server with the OPC 40010 robotics model and celltwin's command interface
(:mod:`celltwin.controller.opcua_model`; ``celltwin serve`` is one). It runs on a controller PC, so
it imports numpy, asyncua and the light celltwin modules only: never torch, pybullet,
stable-baselines3 or gymnasium (tests/test_serve.py checks ``sys.modules``).

Design choices that matter on a control loop:

- Nodes are found by browse name at connect time, never by node id, so any server with the
  model works; a missing node is a model mismatch reported with its browse path
  (:mod:`celltwin.policies.deploy.opcua_browse`).
- One Read service call returns the whole state (``read_attributes`` of every node is one
  request; :mod:`celltwin.policies.deploy.opcua_state` decodes it) and one Write call carries
  set-points, gripper and sequence number. No subscriptions: their server-side sampling adds
  tens to hundreds of milliseconds.
- asyncua is async; this class keeps its own event loop on a background thread
  (:mod:`celltwin.policies.deploy.opcua_loop`) so the adapter can call it synchronously from
  its control loop, with a deadline on every call.
- Every failure (refused connection, timeout, refused login, bad status, mismatched model,
  a server that presents another certificate than the pinned one) is a
  :class:`~celltwin.controller.errors.ControllerError` naming the endpoint.
- Liveness is judged by the deadline on each call and by the adapter's watchdog, not by
  asyncua's connection supervisor (see :data:`KEEPALIVE_S`).

Positions are reported in radians; a server whose ``EngineeringUnits`` say degrees is
converted, any other unit is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import math
import threading
from pathlib import Path

import numpy as np
from asyncua import Client, ua
from asyncua.crypto import security_policies

from celltwin.controller import opcua_model as model
from celltwin.controller.errors import ControllerError
from celltwin.controller.interface import ControllerState
from celltwin.core.errors import Problem
from celltwin.policies.deploy.opcua_browse import ModelMismatch, browse
from celltwin.policies.deploy.opcua_loop import Deadline, LoopThread
from celltwin.policies.deploy.opcua_state import decode_state

_SECURITY_POLICIES = {"Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256}
_UINT32 = 2 ** 32
# Session timeout asked of the server [ms]: a session of a client that vanished is dropped
# after this long, not asyncua's hour.
SESSION_TIMEOUT_MS = 30_000
# Period of asyncua's keep-alive probe [s]. asyncua's connection supervisor reads the server's
# status every this many seconds and, without auto-reconnect, declares the client dead for good
# when one read takes longer than min(period, session timeout / 2). At its default of 1 s, a
# server busy for a second (a loaded machine, a long physics step) killed a healthy client:
# every later call failed with "client is disconnected". The probe is kept only to hold the
# session open while the client idles (a third of the session timeout); whether the controller
# answers in time is this class's deadline per call, and the adapter's watchdog, to judge.
KEEPALIVE_S = SESSION_TIMEOUT_MS / 1000 / 3


class OpcUaController:
    """The Controller protocol over an OPC UA client; connects in the constructor.

    Args:
        endpoint: ``opc.tcp://host:port``.
        username: user to log in as (``None``: anonymous).
        password: the user's password.
        certificate: this client's certificate (DER or PEM) for a secure channel.
        private_key: the key of ``certificate``.
        server_certificate: the server's certificate to trust; ``None`` takes the one the
            server presents (trust on first use; pass it to pin the server).
        security_policy: ``"Basic256Sha256"`` (SignAndEncrypt); the default with a
            certificate. ``None`` without a certificate means NoSecurity.
        motion_device: browse name of the robot to drive when the server has several.
        timeout_s: deadline of each read or write [s].
        connect_timeout_s: deadline of connecting and browsing the model [s].

    Attributes:
        robot_model: the MotionDevice's ``Model`` (e.g. ``panda``).
        joint_names: the order of joint arrays (the server's ``JointNames``).
        control_period_s: the server's control period [s].
        sequence: number of the last command sent (continues the server's count at connect).
        accepted_sequence: number of the last command the controller accepted, as of the
            last :meth:`read_state`; it lags :attr:`sequence` while commands are dropped
            (a stop is active or the controller is not in automatic mode).

    Raises:
        ControllerError: the endpoint cannot be reached, refuses the session, does not answer
            in time, or lacks part of the model.
    """

    def __init__(self, endpoint: str, *, username: str | None = None, password: str | None = None,
                 certificate: str | Path | None = None, private_key: str | Path | None = None,
                 server_certificate: str | Path | None = None,
                 security_policy: str | None = None, motion_device: str | None = None,
                 timeout_s: float = 2.0, connect_timeout_s: float = 10.0):
        self.endpoint = endpoint
        self.timeout_s = float(timeout_s)
        self.sequence = 0
        self.accepted_sequence = 0
        self._closed = False
        self._send_lock = threading.Lock()
        if security_policy is None and certificate is not None:
            security_policy = "Basic256Sha256"
        self._check_options(security_policy, certificate, private_key, server_certificate)
        self._loop = LoopThread()
        self._client = None
        try:
            self._loop.run(self._connect(username, password, certificate, private_key,
                                         server_certificate, security_policy, motion_device),
                           connect_timeout_s)
        except BaseException as error:
            self._abandon()
            raise self._error(error, "connect to", connect_timeout_s) from None

    # ----------------------------------------------------------------------------- protocol
    def read_state(self) -> ControllerState:
        """Read the whole state in one Read service call."""
        self._check_open()
        try:
            values = self._loop.run(self._client.read_attributes(self._nodes.state_nodes),
                                    self.timeout_s)
        except BaseException as error:
            raise self._error(error, "read state from", self.timeout_s) from None
        state, self.accepted_sequence = decode_state(self.endpoint, self._nodes, values)
        return state

    def send_joint_targets(self, positions: np.ndarray,
                           gripper_width_m: float | None = None) -> None:
        """Write joint set-points [rad] (and a gripper opening [m]) in one Write service call."""
        self._check_open()
        try:
            q = np.asarray(positions, dtype=float)
            width_ok = gripper_width_m is None or math.isfinite(gripper_width_m)
        except (TypeError, ValueError):
            q, width_ok = np.full(0, np.nan), False
        if q.shape != (len(self.joint_names),) or not np.isfinite(q).all():
            raise ControllerError(Problem(
                f"joint set-point for {self.endpoint} is invalid", path="positions",
                value=repr(positions)[:200],
                expected=f"{len(self.joint_names)} finite joint positions [rad]"))
        if not width_ok:
            raise ControllerError(Problem("gripper set-point is not a finite number",
                                          path="gripper_width_m", value=gripper_width_m,
                                          expected="an opening [m]"))
        with self._send_lock:
            sequence = (self.sequence + 1) % _UINT32
            nodes = [self._nodes.setpoints]
            values = [ua.Variant(q.tolist(), ua.VariantType.Double)]
            if gripper_width_m is not None:
                nodes.append(self._nodes.gripper_setpoint)
                values.append(ua.Variant(float(gripper_width_m), ua.VariantType.Double))
            nodes.append(self._nodes.sequence)  # last: writing it commits the set-points
            values.append(ua.Variant(sequence, ua.VariantType.UInt32))
            try:
                self._loop.run(self._client.write_values(nodes, values), self.timeout_s)
            except BaseException as error:
                raise self._error(error, "write set-points to", self.timeout_s) from None
            self.sequence = sequence

    def raise_protective_stop(self) -> None:
        """Ask the controller for a protective stop (e.g. the adapter's safety layer tripped)."""
        self._check_open()
        try:
            self._loop.run(self._nodes.interface.call_method(self._nodes.protective_stop),
                           self.timeout_s)
        except BaseException as error:
            raise self._error(error, "raise a protective stop on", self.timeout_s) from None

    def close(self) -> None:
        """Close the session; the controller holds its last set-point. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._client.disconnect(), self.timeout_s)
        except BaseException:  # noqa: BLE001 - a dead server cannot be told goodbye
            pass
        self._loop.close()

    def __enter__(self) -> "OpcUaController":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------------- connect
    async def _connect(self, username, password, certificate, private_key, server_certificate,
                       policy_name, motion_device) -> None:
        client = Client(self.endpoint, timeout=self.timeout_s, watchdog_intervall=KEEPALIVE_S)
        client.session_timeout = SESSION_TIMEOUT_MS
        self._client = client
        if username is not None:
            client.set_user(username)
            client.set_password(password or "")
        if policy_name is not None:
            if server_certificate is not None:
                await self._check_pinned_certificate(Path(server_certificate),
                                                     _SECURITY_POLICIES[policy_name])
            client.application_uri = (certificate_uri(Path(certificate))
                                      or model.CLIENT_APPLICATION_URI)
            await client.set_security(_SECURITY_POLICIES[policy_name], str(certificate),
                                      str(private_key),
                                      server_certificate=None if server_certificate is None
                                      else str(server_certificate),
                                      mode=ua.MessageSecurityMode.SignAndEncrypt)
        await client.connect()
        nodes = await browse(client, self.endpoint, motion_device)
        self._nodes = nodes
        # Continue the server's numbering, so that a reconnecting client's first command is
        # not mistaken for one the controller accepted from its predecessor.
        self.sequence = self.accepted_sequence = nodes.accepted_sequence
        self.joint_names = nodes.joint_names
        self.control_period_s = nodes.control_period_s
        self.robot_model = nodes.robot_model

    async def _check_pinned_certificate(self, pinned: Path, policy) -> None:
        """Compare the pinned server certificate with the one the server presents.

        Without this, a client that pins the wrong certificate encrypts its channel request
        for a key the server does not hold, and learns only that no answer came. The server
        presents its certificate in its endpoint list, which any client may read.
        """
        probe = Client(self.endpoint, timeout=self.timeout_s)
        endpoints = await probe.connect_and_get_server_endpoints()
        presented = [endpoint.ServerCertificate or b"" for endpoint in endpoints
                     if endpoint.SecurityPolicyUri == policy.URI
                     and endpoint.SecurityMode == ua.MessageSecurityMode.SignAndEncrypt]
        if not presented:
            raise ua.UaError("No matching endpoints")  # reported as such by _error
        expected = _certificate_der(pinned)
        # A presented chain starts with the server's own certificate.
        if not any(chain.startswith(expected) for chain in presented):
            raise ControllerError(Problem(
                f"cannot connect to {self.endpoint}: certificate mismatch: the server presents "
                f"certificate {_thumbprint(presented[0])}, not the pinned {pinned} "
                f"({_thumbprint(expected)})", path="server_certificate", value=str(pinned),
                expected="the server's certificate (or pin none to trust the one it presents)"))

    # ----------------------------------------------------------------------------- failures
    def _check_options(self, policy, certificate, private_key, server_certificate) -> None:
        problems = []
        if policy is not None and policy not in _SECURITY_POLICIES:
            problems.append(Problem(f"unsupported security policy '{policy}'",
                                    path="security_policy", value=policy,
                                    expected="one of: " + ", ".join(_SECURITY_POLICIES)))
        if policy is not None and (certificate is None or private_key is None):
            problems.append(Problem("a secure channel needs this client's certificate and key",
                                    path="certificate" if certificate is None else "private_key",
                                    expected="paths to a certificate and its private key"))
        for name, path in (("certificate", certificate), ("private_key", private_key),
                           ("server_certificate", server_certificate)):
            if path is not None and not Path(path).is_file():
                problems.append(Problem(f"no such file: {path}", path=name, value=str(path),
                                        expected="a readable file"))
        if server_certificate is not None and Path(server_certificate).is_file():
            try:
                _certificate_der(Path(server_certificate))
            except (OSError, ValueError):
                problems.append(Problem(f"{server_certificate} is not a certificate",
                                        path="server_certificate", value=str(server_certificate),
                                        expected="an X.509 certificate in DER or PEM"))
        if problems:
            raise ControllerError(problems)

    def _error(self, error: BaseException, action: str, timeout_s: float) -> ControllerError:
        if isinstance(error, ControllerError):
            return error
        if isinstance(error, ModelMismatch):
            return ControllerError(error.problems)
        if isinstance(error, (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)):
            # Our deadline on the whole call, or asyncua's on one request inside it.
            waited = timeout_s if isinstance(error, Deadline) else self.timeout_s
            return ControllerError(Problem(f"cannot {action} {self.endpoint}: no answer within "
                                           f"{waited:g} s", value=self.endpoint,
                                           expected="a controller that answers in time"))
        if isinstance(error, ConnectionRefusedError):
            reason = "connection refused (is the server running on that port?)"
        elif isinstance(error, ua.UaStatusCodeError):
            reason = f"the server answered {type(error).__name__}"
        elif isinstance(error, ua.UaError) and "No matching endpoints" in str(error):
            reason = ("the server offers no endpoint with this security setting (a secure "
                      "server needs a certificate, Basic256Sha256 and a user login)")
        elif isinstance(error, OSError):
            reason = error.strerror or str(error)
        else:
            reason = str(error) or type(error).__name__
        return ControllerError(Problem(f"cannot {action} {self.endpoint}: {reason}",
                                       value=self.endpoint))

    def _check_open(self) -> None:
        if self._closed:
            raise ControllerError(Problem(f"the connection to {self.endpoint} is closed",
                                          expected="a controller that is still open"))

    def _abandon(self) -> None:
        self._closed = True
        if self._client is not None:
            try:
                self._loop.run(self._client.disconnect(), 1.0)
            except BaseException:  # noqa: BLE001 - half-open sessions die with the socket
                pass
        self._loop.close()


def certificate_uri(path: Path) -> str | None:
    """The application URI in a certificate's subjectAltName (asyncua checks it matches)."""
    return model.application_uri(_load_certificate(path))


def _load_certificate(path: Path):
    from cryptography import x509

    data = path.read_bytes()
    return (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----BEGIN")
            else x509.load_der_x509_certificate(data))


def _certificate_der(path: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return _load_certificate(path).public_bytes(serialization.Encoding.DER)


def _thumbprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint, shortened for messages."""
    return "SHA-256 " + hashlib.sha256(der).hexdigest()[:16]
