"""A robot controller reached over OPC UA: the deployment adapter's transport to a real cell.

:class:`OpcUaController` implements :class:`~celltwin.controller.interface.Controller` against any
server with the OPC 40010 robotics model and celltwin's command interface
(:mod:`celltwin.controller.opcua_model`; ``celltwin serve`` is one). It runs on a controller PC, so
it imports numpy, asyncua and the light celltwin modules only: never torch, pybullet,
stable-baselines3 or gymnasium (tests/test_serve.py checks ``sys.modules``).

Design choices that matter on a control loop:

- Nodes are found by browse name at connect time, never by node id, so any server with the
  model works; a missing node is a model mismatch reported with its browse path.
- One Read service call returns the whole state (``read_attributes`` of every node is one
  request) and one Write call carries set-points, gripper and sequence number. No
  subscriptions: their server-side sampling adds tens to hundreds of milliseconds.
- asyncua is async; this class keeps its own event loop on a background thread so the adapter
  can call it synchronously from its control loop, with a deadline on every call.
- Every failure (refused connection, timeout, refused login, bad status, mismatched model)
  is a :class:`~celltwin.policies.errors.ControllerError` naming the endpoint.

Positions are reported in radians; a server whose ``EngineeringUnits`` say degrees is
converted, any other unit is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from asyncua import Client, ua
from asyncua.crypto import security_policies

from celltwin.controller import opcua_model as model
from celltwin.controller.interface import OPERATIONAL_MODES, ControllerState
from celltwin.controller.errors import ControllerError
from celltwin.core.errors import Problem

_SECURITY_POLICIES = {"Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256}
_UINT32 = 2 ** 32
_ANGLE_SCALE = {None: 1.0, model.UNIT_RADIAN: 1.0, model.UNIT_DEGREE: math.pi / 180.0}
_SPEED_SCALE = {None: 1.0, model.UNIT_RADIAN_PER_SECOND: 1.0,
                model.UNIT_DEGREE_PER_SECOND: math.pi / 180.0}


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
        self._check_options(security_policy, certificate, private_key)
        self._loop = _LoopThread()
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
            values = self._loop.run(self._client.read_attributes(self._state_nodes), self.timeout_s)
        except BaseException as error:
            raise self._error(error, "read state from", self.timeout_s) from None
        return self._decode(values)

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
            nodes = [self._setpoints]
            values = [ua.Variant(q.tolist(), ua.VariantType.Double)]
            if gripper_width_m is not None:
                nodes.append(self._gripper_setpoint)
                values.append(ua.Variant(float(gripper_width_m), ua.VariantType.Double))
            nodes.append(self._sequence)  # last: writing it commits the set-points
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
            self._loop.run(self._interface.call_method(self._protective_stop_method),
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
        client = Client(self.endpoint, timeout=self.timeout_s)
        # A session of a client that vanished is dropped after this long, not asyncua's hour.
        client.session_timeout = 30_000
        self._client = client
        if username is not None:
            client.set_user(username)
            client.set_password(password or "")
        if policy_name is not None:
            client.application_uri = (_certificate_uri(Path(certificate))
                                      or model.CLIENT_APPLICATION_URI)
            await client.set_security(_SECURITY_POLICIES[policy_name], str(certificate),
                                      str(private_key),
                                      server_certificate=None if server_certificate is None
                                      else str(server_certificate),
                                      mode=ua.MessageSecurityMode.SignAndEncrypt)
        await client.connect()
        await self._browse(client, motion_device)

    async def _browse(self, client: Client, motion_device: str | None) -> None:
        namespaces = await client.get_namespace_array()
        missing = [uri for uri in (model.DI_NS, model.ROBOTICS_NS, model.CELLTWIN_NS)
                   if uri not in namespaces]
        if missing:
            raise _Mismatch([Problem(f"{self.endpoint} has no namespace '{uri}'", path="namespaces",
                                     expected="the OPC 40010 robotics model with celltwin's "
                                              "command interface") for uri in missing])
        self._ns = {uri: namespaces.index(uri) for uri in namespaces}
        self._ns[None] = 0
        objects = client.nodes.objects.nodeid
        system = model.SYSTEM_PATH
        interface = system + (model.COMMAND_INTERFACE,)
        names = (model.JOINT_NAMES, model.JOINT_SETPOINTS, model.GRIPPER_SETPOINT, model.SEQUENCE,
                 model.ACCEPTED_SEQUENCE, model.STATE_STAMP, model.GRIPPER_WIDTH,
                 model.CONTROL_PERIOD, model.TRACKED_OBJECTS, model.RAISE_PROTECTIVE_STOP)
        found = await self._resolve(client, [(objects, system + (model.MOTION_DEVICES,)),
                                             (objects, system + (model.SAFETY_STATES,)),
                                             (objects, interface)]
                                    + [(objects, interface + (name,)) for name in names])
        devices_folder, safety_folder, self._interface_id = found[:3]
        (joint_names_node, setpoints, gripper_setpoint, sequence, accepted, stamp, gripper_width,
         period_node, tracked, self._protective_stop_method) = found[3:]
        self._interface = client.get_node(self._interface_id)
        self._setpoints, self._gripper_setpoint, self._sequence = (
            client.get_node(node) for node in (setpoints, gripper_setpoint, sequence))

        device = await self._pick_child(client, devices_folder, motion_device,
                                        model.path_text(system + (model.MOTION_DEVICES,)))
        safety_state = await self._pick_child(client, safety_folder, None,
                                              model.path_text(system + (model.SAFETY_STATES,)))
        safety = (model.PARAMETER_SET,)
        model_node, axes, mode, estop, pstop = await self._resolve(client, [
            (device, (model.MODEL,)), (device, (model.AXES,)),
            (safety_state, safety + (model.OPERATIONAL_MODE,)),
            (safety_state, safety + (model.EMERGENCY_STOP,)),
            (safety_state, safety + (model.PROTECTIVE_STOP,))])

        joint_names, period, robot_model, accepted_now = await client.read_values(
            [client.get_node(node)
             for node in (joint_names_node, period_node, model_node, accepted)])
        # Continue the server's numbering, so that a reconnecting client's first command is
        # not mistaken for one the controller accepted from its predecessor.
        self.sequence = self.accepted_sequence = int(accepted_now or 0)
        self.joint_names = tuple(joint_names)
        self.control_period_s = float(period)
        self.robot_model = (robot_model.Text if isinstance(robot_model, ua.LocalizedText)
                            else str(robot_model))

        axis_nodes = {ref.BrowseName.Name: ref.NodeId
                      for ref in await client.get_node(axes).get_children_descriptions()}
        unknown = [name for name in self.joint_names if name not in axis_nodes]
        if unknown:
            raise _Mismatch([Problem(f"{self.endpoint} lists joint '{name}' in JointNames but has "
                                     "no axis of that name", path="Axes", value=name,
                                     expected="one of: " + ", ".join(sorted(axis_nodes)))
                             for name in unknown])
        parameters = (model.PARAMETER_SET,)
        axis_paths = []
        for name in self.joint_names:
            axis_paths += [(axis_nodes[name], parameters + (model.ACTUAL_POSITION,)),
                           (axis_nodes[name], parameters + (model.ACTUAL_SPEED,))]
        axis_found = await self._resolve(client, axis_paths)
        positions, speeds = axis_found[0::2], axis_found[1::2]
        # Units of the first axis stand for all: the protocol carries revolute arms only.
        self._angle_scale, self._speed_scale = await self._unit_scales(client, positions[0],
                                                                       speeds[0])

        object_refs = await client.get_node(tracked).get_children_descriptions()
        self._object_names = tuple(ref.BrowseName.Name for ref in object_refs)
        self._state_nodes = [client.get_node(node) for node in (
            stamp, *positions, *speeds, gripper_width, mode, estop, pstop, accepted,
            *(ref.NodeId for ref in object_refs))]

    async def _resolve(self, client: Client, paths: Sequence[tuple[ua.NodeId, tuple]]) -> list:
        """Node ids of ``(start, browse path)`` pairs in one TranslateBrowsePaths call."""
        requests = []
        for start, path in paths:
            elements = [ua.RelativePathElement(
                ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences), IsInverse=False,
                IncludeSubtypes=True, TargetName=ua.QualifiedName(name, self._ns[uri]))
                for uri, name in path]
            requests.append(ua.BrowsePath(StartingNode=start,
                                          RelativePath=ua.RelativePath(Elements=elements)))
        results = await client.uaclient.translate_browsepaths_to_nodeids(requests)
        problems = [Problem(f"{self.endpoint} has no node {model.path_text(path)}",
                            path=model.path_text(path),
                            expected="the OPC 40010 robotics model with celltwin's command "
                                     "interface (docs/serve.md)")
                    for (_, path), result in zip(paths, results)
                    if not result.StatusCode.is_good() or not result.Targets]
        if problems:
            raise _Mismatch(problems)
        return [result.Targets[0].TargetId for result in results]

    async def _pick_child(self, client: Client, folder: ua.NodeId, name: str | None,
                          where: str) -> ua.NodeId:
        children = {ref.BrowseName.Name: ref.NodeId
                    for ref in await client.get_node(folder).get_children_descriptions()
                    if ref.NodeClass == ua.NodeClass.Object}
        if name is None and len(children) == 1:
            return next(iter(children.values()))
        if name in children:
            return children[name]
        what = "several; name one with motion_device" if name is None else f"no '{name}'"
        raise _Mismatch(Problem(f"{self.endpoint}: {where} has {what}" if children
                                else f"{self.endpoint}: {where} is empty", path=where, value=name,
                                expected="one of: " + ", ".join(sorted(children)) if children
                                else "one object"))

    async def _unit_scales(self, client: Client, position: ua.NodeId, speed: ua.NodeId):
        units = self._ns[None], "EngineeringUnits"
        lookups = await client.get_node(position).get_children_by_path(
            [ua.QualifiedName(units[1], units[0])], raise_on_partial_error=False)
        lookups += await client.get_node(speed).get_children_by_path(
            [ua.QualifiedName(units[1], units[0])], raise_on_partial_error=False)
        scales = []
        for found, table, what in ((lookups[0], _ANGLE_SCALE, "ActualPosition"),
                                   (lookups[1], _SPEED_SCALE, "ActualSpeed")):
            unit = None
            if found:
                info = await found[0].read_value()
                unit = getattr(info, "UnitId", None)
            if unit not in table:
                raise _Mismatch(Problem(f"{self.endpoint} publishes {what} in an unknown unit",
                                        path=f"{what}.EngineeringUnits", value=unit,
                                        expected="radian or degree (UNECE C81 / DD)"))
            scales.append(table[unit])
        return scales

    # ----------------------------------------------------------------------------- decoding
    def _decode(self, values: list[ua.DataValue]) -> ControllerState:
        bad = [(node, value.StatusCode) for node, value in zip(self._state_nodes, values)
               if value.StatusCode is not None and not value.StatusCode.is_good()]
        if bad:
            raise ControllerError([Problem(f"{self.endpoint} answered {status.name} for "
                                           f"{node.nodeid.to_string()}", value=status.name,
                                           expected="Good")
                                   for node, status in bad])
        raw = [value.Value.Value if value.Value is not None else None for value in values]
        dof = len(self.joint_names)
        stamp, positions, speeds = raw[0], raw[1:1 + dof], raw[1 + dof:1 + 2 * dof]
        gripper, mode, estop, pstop, accepted = raw[1 + 2 * dof:6 + 2 * dof]
        objects = raw[6 + 2 * dof:]
        # Safety values are taken only as the contract has them: a mode outside the enumeration
        # or a stop flag that is not a boolean (null, a number) is an out-of-contract answer,
        # never read as "automatic, no stop".
        if isinstance(mode, bool) or not isinstance(mode, int) \
                or not 0 <= mode < len(OPERATIONAL_MODES):
            raise ControllerError(Problem(f"{self.endpoint} reports an invalid operational mode",
                                          path="SafetyStates.OperationalMode", value=mode,
                                          expected=f"an integer 0-{len(OPERATIONAL_MODES) - 1}"))
        for name, flag in (("EmergencyStop", estop), ("ProtectiveStop", pstop)):
            if not isinstance(flag, bool):
                raise ControllerError(Problem(f"{self.endpoint} reports an invalid {name}",
                                              path=f"SafetyStates.{name}", value=flag,
                                              expected="a Boolean"))
        try:
            mode_name = OPERATIONAL_MODES[mode]
            state = ControllerState(
                stamp_s=float(stamp),
                joint_positions=np.asarray(positions, dtype=float) * self._angle_scale,
                joint_velocities=np.asarray(speeds, dtype=float) * self._speed_scale,
                gripper_width_m=None if gripper is None or math.isnan(gripper) else float(gripper),
                operational_mode=mode_name, emergency_stop=bool(estop), protective_stop=bool(pstop),
                objects={name: np.asarray(position, dtype=float)
                         for name, position in zip(self._object_names, objects)})
        except (TypeError, ValueError, IndexError):
            raise ControllerError(Problem(f"{self.endpoint} answered values out of contract",
                                          value=repr(raw)[:200],
                                          expected="numbers, an OperationalModeEnumeration value "
                                                   "and booleans")) from None
        self.accepted_sequence = int(accepted or 0)
        return state

    # ----------------------------------------------------------------------------- failures
    def _check_options(self, policy, certificate, private_key) -> None:
        problems = []
        if policy is not None and policy not in _SECURITY_POLICIES:
            problems.append(Problem(f"unsupported security policy '{policy}'",
                                    path="security_policy", value=policy,
                                    expected="one of: " + ", ".join(_SECURITY_POLICIES)))
        if policy is not None and (certificate is None or private_key is None):
            problems.append(Problem("a secure channel needs this client's certificate and key",
                                    path="certificate" if certificate is None else "private_key",
                                    expected="paths to a certificate and its private key"))
        for name, path in (("certificate", certificate), ("private_key", private_key)):
            if path is not None and not Path(path).is_file():
                problems.append(Problem(f"no such file: {path}", path=name, value=str(path),
                                        expected="a readable file"))
        if problems:
            raise ControllerError(problems)

    def _error(self, error: BaseException, action: str, timeout_s: float) -> ControllerError:
        if isinstance(error, ControllerError):
            return error
        if isinstance(error, _Mismatch):
            return ControllerError(error.problems)
        if isinstance(error, (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)):
            # Our deadline on the whole call, or asyncua's on one request inside it.
            waited = timeout_s if isinstance(error, _Deadline) else self.timeout_s
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


class _Mismatch(Exception):
    """The server lacks part of the model (raised inside the loop, reported as ControllerError)."""

    def __init__(self, problems):
        super().__init__()
        self.problems = problems if isinstance(problems, list) else [problems]


class _Deadline(TimeoutError):
    """A synchronous call into the loop ran past its deadline."""


class _LoopThread:
    """An asyncio loop on a daemon thread, called synchronously with a deadline."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="celltwin-opcua-client",
                                        daemon=True)
        self._thread.start()

    def run(self, coroutine, timeout_s: float):
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:  # the builtin TimeoutError since Python 3.11
            if future.done():
                raise  # the coroutine's own timeout: asyncua's deadline on one request
            future.cancel()
            raise _Deadline from None

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def cancel_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(5.0)
        except BaseException:  # noqa: BLE001 - the loop stops below either way
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


def _certificate_uri(path: Path) -> str | None:
    """The application URI in a certificate's subjectAltName (asyncua checks it matches)."""
    from cryptography import x509

    data = path.read_bytes()
    certificate = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----BEGIN")
                   else x509.load_der_x509_certificate(data))
    return model.application_uri(certificate)
