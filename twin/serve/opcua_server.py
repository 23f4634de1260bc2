"""Serve a :class:`VirtualController` over OPC UA, as a real robot controller would be reached.

The address space (OPC 40010 robotics model plus celltwin's command interface) is laid out in
:mod:`celltwin.serve.opcua_address_space`; ``docs/serve.md`` walks through it. This module runs it.

Commands: writing ``Sequence`` commits. Set-points written before it (in the same Write
request, as the client does, or earlier) go to the controller together, so arm and gripper
never act half a command apart. ``AcceptedSequence`` then echoes the number if the controller
took the command and keeps the old one if it dropped it (a stop is active or the mode is not
automatic), so a client can tell without a second channel. A set-point the controller refuses
(wrong count, not finite, outside a joint limit or the gripper range) is answered
``BadOutOfRange``, logged in one line, and spoils the command it belongs to: the next commit
drops it whole, so the twin keeps its previous set-point. There is no arming step: the
Controller protocol has none, and a cleared stop already moves nothing until the next
set-point (see :class:`VirtualController`).

Timing: the twin ticks in the server's own asyncio loop, one control period of wall-clock time
apart, and publishes every value right after its tick. Requests are served between ticks, so
one Read (``read_attributes`` of many nodes is one Read service call) always returns one
consistent sample, with no locks between physics and OPC UA. A tick of the example cells costs
about 1.3 ms of the 40 ms period; :meth:`VirtualControllerServer.stats` reports tick cost and
how late the clock woke up, the measure of whether physics and requests starve each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import threading
from collections import Counter, deque

import numpy as np
from asyncua import ua
from asyncua.common.callback import CallbackType
from asyncua.common.utils import ServiceError

from celltwin.controller.interface import OPERATIONAL_MODES
from celltwin.controller.errors import ControllerError
from celltwin.core.errors import Problem
from celltwin.serve.errors import ServeError
from celltwin.serve.opcua_address_space import CommandHandlers, build_address_space
from celltwin.serve.opcua_guard import ConnectionLimits, GuardedServer
from celltwin.serve.opcua_security import (SERVER_APPLICATION_URI, ServerSecurity, UserGate,
                                           certificate_der)
from celltwin.serve.virtual_controller import VirtualController

_LOG = logging.getLogger(__name__)
# The serve log: one line per refused client or refused command (celltwin's CLI shows it).
_SERVE_LOG = logging.getLogger("celltwin.serve")
_UINT32 = 2 ** 32


class VirtualControllerServer:
    """An OPC UA server in front of one virtual controller (async; see :class:`ServerThread`).

    Args:
        controller: the twin to serve; the server ticks it, the caller closes it.
        host: address to bind [127.0.0.1: this machine only].
        port: TCP port; 0 picks a free one (read :attr:`endpoint` after :meth:`start`).
        security: who may connect; the default is secure and needs ``users``.
        serial_number: the MotionDevice's SerialNumber (e.g. ``cell/robot``).
        tick: run the real-time clock; ``False`` leaves ticking to the caller (tests).
        limits: how many clients connect at once and how long a handshake may take
            (:class:`~celltwin.serve.opcua_guard.ConnectionLimits`; its defaults when omitted).
    """

    def __init__(self, controller: VirtualController, *, host: str = "127.0.0.1",
                 port: int = 4840, security: ServerSecurity | None = None,
                 serial_number: str | None = None, tick: bool = True,
                 limits: ConnectionLimits | None = None):
        self.controller = controller
        self.host = host
        self.port = int(port)
        self.security = security if security is not None else ServerSecurity()
        self.limits = limits if limits is not None else ConnectionLimits()
        self.limits.check()
        self.serial_number = serial_number or controller.robot_name
        self._tick_enabled = tick
        self._server: GuardedServer | None = None
        self._tick_task: asyncio.Task | None = None
        self._publish_nodes: dict[str, ua.NodeId] = {}
        self._staged_q: np.ndarray | None = None
        self._staged_gripper: float | None = None
        self._staged_refused: set[str] = set()  # nodes whose last write was refused
        self._model_namespaces: frozenset[int] = frozenset()
        self._accepted_sequence = 0
        self.requests: Counter = Counter()  # Read / Write service calls served to clients
        self._tick_s: deque[float] = deque(maxlen=2000)
        self._late_s: deque[float] = deque(maxlen=2000)
        self.overruns = 0

    @property
    def endpoint(self) -> str:
        """``opc.tcp://host:port`` to connect to (the bound port once started)."""
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def ua_server(self) -> GuardedServer | None:
        """The asyncua server while running (to extend the model, or to break it in tests)."""
        return self._server

    # ----------------------------------------------------------------------------- lifetime
    async def start(self) -> None:
        """Build the address space, bind the port and start the control clock.

        Raises:
            ServeError: port in use or not bindable, bad certificates, no users on a secure
                server.
        """
        security = self.security
        if security.insecure:
            server = GuardedServer(self.limits)
        else:
            credentials = security.server_credentials()
            trusted = [certificate_der(path) for path in security.trusted_client_certificates]
            server = GuardedServer(self.limits, user_manager=UserGate(security.users, trusted))
        await server.init()
        self._server = server
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}")
        server.set_server_name(f"celltwin virtual controller ({self.serial_number})")
        await server.set_application_uri(SERVER_APPLICATION_URI)
        if security.insecure:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        else:
            await server.load_certificate(str(credentials[0]))
            await server.load_private_key(str(credentials[1]))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
        self._publish_nodes = await build_address_space(
            server, self.controller, self.serial_number,
            CommandHandlers(stage_joints=self._stage_joints, stage_gripper=self._stage_gripper,
                            commit=self._commit, safety=self._safety))
        accepted = self._publish_nodes.pop("accepted")
        self._model_namespaces = frozenset({node.NamespaceIndex
                                            for node in self._publish_nodes.values()}
                                           | {accepted.NamespaceIndex})
        server.set_attribute_value_callback(accepted, self._read_accepted)
        server.subscribe_server_callback(CallbackType.PreRead, self._count("read"))
        server.subscribe_server_callback(CallbackType.PreWrite, self._count("write"))
        try:
            await server.start()
        except OSError as error:
            self._server = None
            await _quiet_stop(server)
            raise ServeError(_bind_problem(error, self.host, self.port)) from None
        if self.port == 0:
            self.port = server.bserver.port
        await self.publish()
        if self._tick_enabled:
            self._tick_task = asyncio.create_task(self._clock(), name="celltwin-tick")

    async def stop(self) -> None:
        """Stop the clock and the server; clients see the connection close. Idempotent."""
        try:
            if self._tick_task is not None:
                self._tick_task.cancel()
                try:
                    await self._tick_task
                except asyncio.CancelledError:
                    pass
                except Exception:  # noqa: BLE001  (a clock that died must not keep the port open)
                    logging.getLogger(__name__).exception("the twin's clock had failed")
                self._tick_task = None
        finally:
            if self._server is not None:
                server, self._server = self._server, None
                await _quiet_stop(server)

    # ----------------------------------------------------------------------------- clock
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.controller.control_period_s
        deadline = loop.time()
        while True:
            deadline += period
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -period:
                # Behind by more than a cycle: skip ahead instead of bursting ticks, as a
                # controller that missed its cycle does; the count shows it happened.
                self.overruns += 1
                deadline = loop.time()
            started = loop.time()
            self._late_s.append(max(started - deadline, 0.0))
            try:
                await self.tick()
            except ControllerError:
                return  # the controller was closed under the server: nothing left to serve
            except Exception:
                # Physics failed: stop ticking loudly. Clients see the state stamp freeze, and
                # their watchdogs stop the robot.
                logging.getLogger(__name__).exception("the twin's clock stopped")
                raise
            self._tick_s.append(loop.time() - started)

    async def tick(self, count: int = 1) -> None:
        """Advance the twin ``count`` control periods and publish the new sample."""
        self.controller.tick(count)
        await self.publish()

    async def publish(self) -> None:
        """Write the controller's latest state into the address space."""
        if self._server is None:
            return
        state = self.controller.state()
        values: list[tuple[str, object, ua.VariantType]] = [
            ("stamp", float(state.stamp_s), ua.VariantType.Double),
            ("gripper", math.nan if state.gripper_width_m is None else float(state.gripper_width_m),
             ua.VariantType.Double),
            ("mode", OPERATIONAL_MODES.index(state.operational_mode), ua.VariantType.Int32),
            ("estop", bool(state.emergency_stop), ua.VariantType.Boolean),
            ("pstop", bool(state.protective_stop), ua.VariantType.Boolean)]
        for index, (q, dq) in enumerate(zip(state.joint_positions.tolist(),
                                            state.joint_velocities.tolist())):
            values.append((f"position{index}", q, ua.VariantType.Double))
            values.append((f"speed{index}", dq, ua.VariantType.Double))
        for name, position in state.objects.items():
            values.append((f"object:{name}", position.tolist(), ua.VariantType.Double))
        write = self._server.write_attribute_value
        for key, value, vtype in values:
            # No await in between suspends (no I/O): a Read is served before or after all of
            # these, never in the middle.
            await write(self._publish_nodes[key], ua.DataValue(ua.Variant(value, vtype)))

    # ----------------------------------------------------------------------------- commands
    def _stage_joints(self, node, attr, value: ua.DataValue) -> None:
        raw = value.Value.Value if value.Value is not None else None
        self._staged_q = self._checked("JointSetpoints",
                                       lambda: self.controller.check_setpoint(raw)[0])
        node.attributes[attr].value = value

    def _stage_gripper(self, node, attr, value: ua.DataValue) -> None:
        raw = value.Value.Value if value.Value is not None else None
        if not isinstance(raw, float):
            self._refused("GripperSetpoint", f"a {type(raw).__name__} is not an opening [m]")
            raise ServiceError(ua.StatusCodes.BadTypeMismatch)
        self._staged_gripper = self._checked(
            "GripperSetpoint", lambda: self.controller.check_setpoint(None, raw)[1])
        node.attributes[attr].value = value

    def _checked(self, name: str, check):
        """``check()``'s answer, or a refused write: one log line, Bad status, spoilt command."""
        try:
            value = check()
        except ControllerError as error:
            first, more = error.problems[0], len(error.problems) - 1
            self._refused(name, f"{first}" + (f" (and {more} more)" if more else ""))
            raise ServiceError(ua.StatusCodes.BadOutOfRange) from None
        self._staged_refused.discard(name)  # a good value replaces the refused one
        return value

    def _refused(self, name: str, why: str) -> None:
        # The command this value belonged to must not go half (or differently) through: the
        # next commit drops it, unless a good value of the same node replaces it first.
        self._staged_refused.add(name)
        _SERVE_LOG.warning("refused %s write: %s; the twin keeps its previous set-point",
                           name, why)

    def _commit(self, node, attr, value: ua.DataValue) -> None:
        sequence = value.Value.Value if value.Value is not None else None
        if not isinstance(sequence, int) or not 0 <= sequence < _UINT32:
            raise ServiceError(ua.StatusCodes.BadOutOfRange)
        node.attributes[attr].value = value
        q, gripper, refused = self._staged_q, self._staged_gripper, bool(self._staged_refused)
        self._staged_q = self._staged_gripper = None
        self._staged_refused.clear()
        if refused or (q is None and gripper is None):
            return  # dropped: AcceptedSequence stays, as for a stopped controller
        if self.controller.command(q, gripper):
            self._accepted_sequence = sequence

    def _read_accepted(self, _nodeid, _attr) -> ua.DataValue:
        # Read through a callback, not published per tick: a Read right after the Write
        # response must already see the commit.
        return ua.DataValue(ua.Variant(self._accepted_sequence, ua.VariantType.UInt32))

    async def _safety(self, action) -> None:
        action()
        await self.publish()

    def _count(self, kind: str):
        def count(event, _dispatcher) -> None:
            # Requests of clients to the robot's model: not the server's own status updates,
            # nor a client library's keep-alive reads of the server's status.
            if event.is_external and self._touches_model(event.request_params):
                self.requests[kind] += 1
        return count

    def _touches_model(self, params) -> bool:
        items = getattr(params, "NodesToRead", None) or getattr(params, "NodesToWrite", None)
        return any(item.NodeId.NamespaceIndex in self._model_namespaces for item in items or ())

    # ----------------------------------------------------------------------------- statistics
    def stats(self) -> dict:
        """Clock health: ticks, overruns, tick cost and wake-up lateness [ms], requests served."""
        def percentiles(samples) -> dict:
            if not samples:
                return {"p50": None, "p99": None, "max": None}
            values = np.asarray(samples) * 1e3
            return {"p50": float(np.percentile(values, 50)),
                    "p99": float(np.percentile(values, 99)), "max": float(values.max())}
        return {"ticks": self.controller.ticks, "overruns": self.overruns,
                "tick_ms": percentiles(list(self._tick_s)),
                "late_ms": percentiles(list(self._late_s)),
                "requests": dict(self.requests)}


class ServerThread:
    """A :class:`VirtualControllerServer` on its own asyncio loop in a background thread.

    For tests, the benchmark and any synchronous caller::

        with ServerThread(controller, port=0, security=ServerSecurity(insecure=True)) as server:
            client = OpcUaController(server.endpoint)

    Keyword arguments are those of :class:`VirtualControllerServer`.
    """

    def __init__(self, controller: VirtualController, **options):
        self.server = VirtualControllerServer(controller, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self, timeout_s: float = 60.0) -> "ServerThread":
        """Start serving; returns once the port is bound (or raises what start() raised)."""
        self._thread = threading.Thread(target=self._run, name="celltwin-opcua-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise ServeError(Problem("OPC UA server did not start in time", value=timeout_s,
                                     expected="a server listening within the timeout [s]"))
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def run(self, coroutine_function, timeout_s: float = 10.0):
        """Run ``coroutine_function(server)`` on the server's loop and return its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine_function(self.server), self._loop)
        return future.result(timeout_s)

    def rebase(self, edit, timeout_s: float = 60.0):
        """Run ``edit()`` on the served twin (:meth:`VirtualController.rebase`) and publish the
        state it leaves before returning, with its result.

        The address space otherwise shows the state before the edit until the next tick: a
        client reading then sees the old pose, then the new one a period later, a jump the
        adapter rightly stops on as an implausible measurement. Run on the server's loop, the
        edit and the publication come between two ticks and before any further Read.
        """
        async def edit_and_publish(server):
            result = server.controller.rebase(edit)
            await server.publish()
            return result

        return self.run(edit_and_publish, timeout_s)

    def stop(self) -> None:
        """Stop the server and join its thread. Idempotent."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as error:  # handed to start() in the caller's thread
                self._error = error
                return
            finally:
                self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
        finally:
            _cancel_leftovers(loop)
            loop.close()


# How long stopping waits for client connections to close [s].
STOP_TIMEOUT_S = 5.0


async def _quiet_stop(server: GuardedServer) -> None:
    clock = server.iserver.time_task
    if clock is not None:
        # asyncua's ServerStatus clock sleeps a whole second between updates and stop() waits
        # for it to wake up: cancel it instead, so that stopping takes milliseconds.
        clock.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await clock
        server.iserver.time_task = None
    try:
        # asyncio's Server.wait_closed (inside asyncua's stop) waits for every connection to
        # detach, and a connection still in its handshake is in no list asyncua closes: bound
        # the wait, so that Ctrl-C always stops the server.
        await asyncio.wait_for(server.stop(), STOP_TIMEOUT_S)
    except asyncio.TimeoutError:
        _LOG.warning("OPC UA server: a client connection did not close within %g s; "
                     "stopped without it", STOP_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - stopping a half-started server must not mask why
        _LOG.debug("error while stopping OPC UA server", exc_info=True)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def _bind_problem(error: OSError, host: str, port: int) -> Problem:
    if error.errno == errno.EADDRINUSE:
        return Problem(f"port {port} on {host} is in use", path="port", value=port,
                       expected="a free port, or 0 for any free port")
    if error.errno == errno.EADDRNOTAVAIL:
        return Problem(f"cannot bind {host}: no such local address", path="host", value=host,
                       expected="an address of this machine, e.g. 127.0.0.1")
    return Problem(f"cannot listen on {host}:{port}: {error.strerror or error}", path="port",
                   value=port)

