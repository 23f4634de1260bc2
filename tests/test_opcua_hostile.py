"""A served twin against hostile and broken OPC UA clients, on 127.0.0.1.

Protocol garbage goes over raw sockets to a real ``celltwin serve`` process, so that what a user
sees is what is checked: the server closes the connection (after an ERR message saying why),
stays up for the next client, and writes one ``warning: refused client ...`` line to its stderr,
never a traceback and nothing of asyncua's own log. Limits that a test sets smaller (connection
cap, handshake timeouts) run on an in-process server; the defaults are checked on the CLI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import math
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from asyncua import Client, ua

from celltwin.controller import opcua_model as model
from celltwin.controller.errors import ControllerError
from celltwin.policies.deploy.opcua_client import OpcUaController
from celltwin.serve.opcua_guard import ConnectionLimits, GuardedBinaryServer, GuardedProtocol
from celltwin.serve.opcua_security import CLIENT_APPLICATION_URI, ServerSecurity, ensure_certificate
from celltwin.serve.opcua_server import ServerThread
from celltwin.serve.virtual_controller import VirtualController
from celltwin.serve.errors import ServeError

CELL = "reach_table"
INTERFACE = "MotionDeviceSystem.CommandInterface"
NO_SECURITY = b"http://opcfoundation.org/UA/SecurityPolicy#None"
REFUSED = re.compile(r"^warning: refused client 127\.0\.0\.1:(\d+): \S.*$")


# ------------------------------------------------------------------------------ a CLI server
class CliServer:
    """``celltwin serve`` in its own process; its stderr is read line by line as it comes."""

    def __init__(self, *args: str):
        command = [sys.executable, "-m", "celltwin.cli.main", "serve", CELL, "--insecure",
                   "--port", "0", *args]
        env = {key: value for key, value in os.environ.items() if key != "CELLTWIN_VERBOSE"}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.process.stdout.readline()
        if " at opc.tcp://" not in first:
            self.process.kill()
            raise AssertionError(f"server did not start: {first!r} {self.process.stderr.read()}")
        self.endpoint = first.split(" at ")[1].strip()
        self.port = int(self.endpoint.rsplit(":", 1)[1])

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout_s: float = 10.0) -> str:
        """The next stderr line (blocks until it is written)."""
        line = self.lines.get(timeout=timeout_s)
        self.seen.append(line)
        return line

    def line_about(self, text: str, timeout_s: float = 10.0) -> str:
        """The next stderr line that contains ``text`` (lines before it are kept in seen)."""
        deadline = time.monotonic() + timeout_s
        while True:
            line = self.next_line(max(deadline - time.monotonic(), 0.01))
            if text in line:
                return line

    def stop(self) -> list[str]:
        """Ctrl-C, wait, and return every stderr line it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen


@pytest.fixture(scope="module")
def cli_server():
    """One ``celltwin serve --insecure`` with default limits for the module."""
    server = CliServer()
    try:
        yield server
    finally:
        lines = server.stop()
        assert server.process.returncode == 0, lines
        # What a user saw on the terminal: refusals, one line each, and nothing else.
        assert not [line for line in lines if "Traceback" in line or "asyncua" in line], lines
        stray = [line for line in lines if not line.startswith("warning: refused ")]
        assert not stray, stray


# ------------------------------------------------------------------------------ raw frames
def frame(kind: bytes, body: bytes, chunk: bytes = b"F") -> bytes:
    """An OPC UA TCP frame: type, chunk type, size (header included), body."""
    return kind + chunk + struct.pack("<I", 8 + len(body)) + body


def hello(receive: int = 65535, send: int = 65535, url: bytes = b"opc.tcp://127.0.0.1") -> bytes:
    return frame(b"HEL", struct.pack("<5I", 0, receive, send, 0, 0)
                 + struct.pack("<i", len(url)) + url)


def open_channel(policy: bytes, request: bytes) -> bytes:
    """OPN: channel 0, asymmetric header with ``policy`` and no certificates, then ``request``."""
    return frame(b"OPN", struct.pack("<I", 0) + struct.pack("<i", len(policy)) + policy
                 + struct.pack("<ii", -1, -1) + struct.pack("<II", 1, 1) + request)


RANDOM = np.random.default_rng(17).bytes(64)
GARBAGE = {
    "MSG before Hello": (frame(b"MSG", struct.pack("<4I", 0, 0, 1, 1)), "sent MSG before Hello"),
    "OPN before Hello": (open_channel(NO_SECURITY, RANDOM), "sent OPN before Hello"),
    "random OPN body": (hello() + frame(b"OPN", RANDOM), "could not open a secure channel"),
    "random OPN request": (hello() + open_channel(NO_SECURITY, RANDOM),
                           "could not open a secure channel"),
    "wrong security policy": (
        hello() + open_channel(b"http://opcfoundation.org/UA/SecurityPolicy#Aes128_Sha256_RsaOaep",
                               RANDOM), "security policy this server does not offer"),
    "unknown message type": (frame(b"XYZ", RANDOM), "unknown type 'XYZ'"),
    "acknowledge from a client": (hello() + frame(b"ACK", RANDOM), "unknown type 'ACK'"),
    "second Hello": (hello() + hello(), "sent a second Hello"),
    "MSG before OpenSecureChannel": (hello() + frame(b"MSG", RANDOM),
                                     "sent MSG before OpenSecureChannel"),
    "CLO before OpenSecureChannel": (hello() + frame(b"CLO", RANDOM),
                                     "sent CLO before OpenSecureChannel"),
    "bad chunk type": (hello() + frame(b"OPN", RANDOM, chunk=b"C"), "with chunk type"),
    "header size below the header": (b"HELF" + struct.pack("<I", 4), "sent HEL of 4 bytes"),
    "2 GB Hello": (b"HELF" + struct.pack("<I", 2 ** 31) + RANDOM, "sent HEL of 2147483648"),
    "frame larger than the buffer": (hello() + b"MSGF" + struct.pack("<I", 10 ** 6) + RANDOM,
                                     "sent MSG of 1000000 bytes"),
    "Hello with tiny buffers": (hello(receive=16, send=16), "buffer sizes 16/16"),
    "Hello with a broken URL": (frame(b"HEL", struct.pack("<5I", 0, 65535, 65535, 0, 0)
                                      + struct.pack("<i", 1000)), "cannot read"),
    "random bytes": (RANDOM, "instead of Hello"),
}


def exchange(port: int, data: bytes, timeout_s: float = 10.0) -> tuple[bytes, int]:
    """Send ``data``, read until the server closes; returns (what it sent, our local port)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw:
        local = raw.getsockname()[1]
        with contextlib.suppress(OSError):  # the server may close while we still send
            raw.sendall(data)
        received = b""
        while True:
            chunk = raw.recv(65536)   # raises socket.timeout if the server keeps it open
            if not chunk:
                return received, local
            received += chunk


def error_reason(received: bytes) -> str:
    """The reason of the ERR frame in what the server sent."""
    at = received.index(b"ERRF")
    (length,) = struct.unpack_from("<i", received, at + 12)
    return received[at + 16:at + 16 + length].decode()


def connects(endpoint: str) -> bool:
    with OpcUaController(endpoint) as controller:
        return controller.read_state().operational_mode == "AUTOMATIC"


# ------------------------------------------------------------------------------ garbage
@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_protocol_garbage_is_refused_in_one_line_and_the_server_carries_on(cli_server, case):
    data, reason = GARBAGE[case]
    received, local = exchange(cli_server.port, data)
    assert reason in error_reason(received)       # the client is told why...
    line = cli_server.line_about(f"127.0.0.1:{local}:")
    assert REFUSED.match(line) and reason in line  # ...and the operator, in one line
    assert connects(cli_server.endpoint)           # the server is still there for the next


def test_a_real_client_with_a_policy_the_server_lacks_is_told_so_at_once(cli_server, certs):
    async def connect() -> None:
        client = Client(cli_server.endpoint, timeout=5)
        client.application_uri = CLIENT_APPLICATION_URI
        cert, key = certs["client"]
        from asyncua.crypto import security_policies

        await client.set_security(security_policies.SecurityPolicyBasic256Sha256, str(cert),
                                  str(key), server_certificate=str(certs["server"][0]),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
        await client.connect()

    started = time.monotonic()
    with pytest.raises(ua.UaStatusCodeError, match="BadSecurityPolicyRejected"):
        asyncio.run(connect())
    assert time.monotonic() - started < 3.0   # an answer, not a timeout
    assert "security policy" in cli_server.line_about("refused client")
    assert connects(cli_server.endpoint)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("opcua-certs")
    return {"folder": folder,
            "client": ensure_certificate(folder, "client", CLIENT_APPLICATION_URI),
            "server": ensure_certificate(folder, "server", "urn:celltwin:virtual-controller"),
            "other": ensure_certificate(folder, "other", "urn:celltwin:virtual-controller",
                                        role="server")}


# ------------------------------------------------------------------------------ methods, writes
async def _call(endpoint: str, method: str, *arguments: ua.Variant):
    async with Client(endpoint, timeout=5) as raw:
        index = (await raw.get_namespace_array()).index(model.CELLTWIN_NS)
        interface = raw.get_node(ua.NodeId(INTERFACE, index))
        return await interface.call_method(ua.NodeId(f"{INTERFACE}.{method}", index), *arguments)


@pytest.mark.parametrize("method, arguments, status", [
    ("SetOperationalMode", [], "BadArgumentsMissing"),
    ("SetOperationalMode", [ua.Variant(3, ua.VariantType.Int32)] * 2, "BadTooManyArguments"),
    ("SetOperationalMode", [ua.Variant("AUTOMATIC", ua.VariantType.String)],
     "BadInvalidArgument"),
    ("SetOperationalMode", [ua.Variant(3.0, ua.VariantType.Double)], "BadInvalidArgument"),
    ("SetOperationalMode", [ua.Variant([3], ua.VariantType.Int32)], "BadInvalidArgument"),
    ("SetOperationalMode", [ua.Variant(99, ua.VariantType.Int32)], "BadInvalidArgument"),
    ("RaiseEmergencyStop", [ua.Variant(1, ua.VariantType.Int32)], "BadTooManyArguments"),
])
def test_wrong_method_arguments_get_a_bad_status_and_one_line(cli_server, method, arguments,
                                                              status):
    with pytest.raises(ua.UaStatusCodeError, match=status):
        asyncio.run(_call(cli_server.endpoint, method, *arguments))
    assert cli_server.line_about(f"refused {method} call").startswith("warning: ")
    with OpcUaController(cli_server.endpoint) as controller:  # nothing happened
        state = controller.read_state()
    assert state.operational_mode == "AUTOMATIC" and not state.emergency_stop


async def _write_command(endpoint: str, setpoints, gripper=None):
    """One Write of set-points (and gripper) and the next Sequence, as a client commands;
    returns the Write's status(es) and AcceptedSequence before and after."""
    async with Client(endpoint, timeout=5) as raw:
        index = (await raw.get_namespace_array()).index(model.CELLTWIN_NS)
        node = lambda name: raw.get_node(ua.NodeId(f"{INTERFACE}.{name}", index))  # noqa: E731
        accepted = await node("AcceptedSequence").read_value()
        nodes = [node("JointSetpoints").nodeid]
        values = [ua.DataValue(ua.Variant(list(setpoints), ua.VariantType.Double))]
        if gripper is not None:
            nodes.append(node("GripperSetpoint").nodeid)
            values.append(ua.DataValue(ua.Variant(gripper, ua.VariantType.Double)))
        nodes.append(node("Sequence").nodeid)
        values.append(ua.DataValue(ua.Variant(accepted + 1, ua.VariantType.UInt32)))
        params = ua.WriteParameters(NodesToWrite=[
            ua.WriteValue(NodeId=nodeid, AttributeId=ua.AttributeIds.Value, Value=value)
            for nodeid, value in zip(nodes, values)])
        try:
            statuses = [status.name for status in await raw.uaclient.write(params)]
        except ua.UaStatusCodeError as error:   # the whole request refused
            statuses = [type(error).__name__]
        return statuses, accepted, await node("AcceptedSequence").read_value()


@pytest.fixture(scope="module")
def served():
    """A twin served in process with the default limits, shared by the tests that allow it."""
    with VirtualController.from_cell(CELL) as twin, \
            ServerThread(twin, port=0, security=ServerSecurity(insecure=True)) as server:
        yield twin, server


@pytest.mark.parametrize("bad", [1e308, -1e308, math.inf, math.nan, 3.0])
def test_a_setpoint_outside_the_limits_is_refused_and_the_twin_keeps_its_own(served, bad,
                                                                             caplog):
    twin, server = served
    with caplog.at_level(logging.WARNING, logger="celltwin.serve"):
        before = twin.active_setpoint
        setpoints = before.copy()
        setpoints[1] = bad   # panda_joint2: [-1.8326, 1.8326] rad
        statuses, accepted, after = asyncio.run(_write_command(server.endpoint, setpoints, 0.04))
        assert statuses == ["BadOutOfRange"]
        assert after == accepted                      # the command was dropped, whole
        server.run(lambda ua_server: ua_server.tick(3))
        np.testing.assert_array_equal(twin.active_setpoint, before)
        refusals = [r.getMessage() for r in caplog.records if r.name == "celltwin.serve"]
        assert len(refusals) == 1 and refusals[0].startswith("refused JointSetpoints write")
        why = ("'panda_joint2' is outside its limits" if math.isfinite(bad)
               else "expected 7 finite joint positions")
        assert why in refusals[0]
        # The next good command goes through.
        statuses, accepted, after = asyncio.run(_write_command(server.endpoint, before, 0.04))
        assert statuses == ["Good"] * 3 and after == accepted + 1


def test_the_client_and_the_cli_server_refuse_out_of_range_setpoints(cli_server):
    with OpcUaController(cli_server.endpoint) as controller:
        q = controller.read_state().joint_positions
        with pytest.raises(ControllerError, match="BadOutOfRange"):
            controller.send_joint_targets(np.full_like(q, 1e308))
        assert controller.read_state().joint_positions.max() < 10
    assert "refused JointSetpoints write" in cli_server.line_about("JointSetpoints")
    with pytest.raises(ua.UaStatusCodeError, match="BadOutOfRange"):
        asyncio.run(_gripper(cli_server.endpoint, 0.5))
    assert "gripper's range" in cli_server.line_about("GripperSetpoint")


async def _gripper(endpoint: str, width: float) -> None:
    async with Client(endpoint, timeout=5) as raw:
        index = (await raw.get_namespace_array()).index(model.CELLTWIN_NS)
        await raw.get_node(ua.NodeId(f"{INTERFACE}.GripperSetpoint", index)).write_value(
            ua.Variant(width, ua.VariantType.Double))


# ------------------------------------------------------------------------------ idle clients
@pytest.fixture
def own_twin():
    controller = VirtualController.from_cell(CELL)
    try:
        yield controller
    finally:
        controller.close()


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "celltwin.serve" and r.getMessage().startswith("refused client")]


def test_a_connection_that_never_says_hello_is_closed(own_twin, caplog):
    limits = ConnectionLimits(hello_timeout_s=0.3, session_timeout_s=0.5)
    with ServerThread(own_twin, port=0, security=ServerSecurity(insecure=True),
                      limits=limits) as served, \
            caplog.at_level(logging.WARNING, logger="celltwin.serve"):
        port = served.server.port
        started = time.monotonic()
        received, local = exchange(port, b"")   # connects, says nothing
        waited = time.monotonic() - started
        assert "no complete Hello within 0.3 s" in error_reason(received)
        assert 0.25 < waited < 5.0
        # Half a Hello is no Hello.
        received, _ = exchange(port, hello()[:20])
        assert "no complete Hello" in error_reason(received)
        # A Hello, and then nothing: the session deadline closes it.
        received, _ = exchange(port, hello())
        assert "activated no session within 0.5 s" in error_reason(received)
    lines = refusals(caplog)
    assert len(lines) == 3 and f"127.0.0.1:{local}: sent no complete Hello" in lines[0]


def test_idle_connections_give_way_to_a_client_at_the_cap(own_twin, caplog):
    limits = ConnectionLimits(max_connections=4)
    with ServerThread(own_twin, port=0, security=ServerSecurity(insecure=True),
                      limits=limits) as served, \
            caplog.at_level(logging.WARNING, logger="celltwin.serve"):
        idle = [socket.create_connection(("127.0.0.1", served.server.port)) for _ in range(40)]
        try:
            assert connects(served.endpoint)
            # Four clients with sessions fill the server; a fifth is refused, and told so.
            clients = [OpcUaController(served.endpoint) for _ in range(4)]
            try:
                with pytest.raises(ControllerError, match="BadTcpServerTooBusy"):
                    OpcUaController(served.endpoint)
                assert all(c.read_state().operational_mode == "AUTOMATIC" for c in clients)
            finally:
                for client in clients:
                    client.close()
            assert connects(served.endpoint)
        finally:
            for sock in idle:
                sock.close()
    lines = refusals(caplog)
    assert sum("had not activated a session" in line for line in lines) >= 36
    assert sum("active sessions are open" in line for line in lines) == 1
    peers = [line.split(":")[1] for line in lines]
    assert len(peers) == len(set(peers))   # one line per refused client


def test_the_default_limits_hold_against_1000_idle_connections(cli_server):
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", cli_server.port)))
        started = time.monotonic()
        assert connects(cli_server.endpoint)
        assert time.monotonic() - started < 5.0
        assert "had not activated a session" in cli_server.line_about("had not activated")
        # The newest idle connection is still open; it is closed at the default Hello timeout.
        idle[-1].settimeout(15.0)
        received = b""
        while chunk := idle[-1].recv(4096):
            received += chunk
        assert error_reason(received) == "sent no complete Hello within 5 s"
    finally:
        for sock in idle:
            sock.close()


def test_limits_are_checked(own_twin):
    with pytest.raises(ServeError) as error:
        ServerThread(own_twin, port=0, security=ServerSecurity(insecure=True),
                     limits=ConnectionLimits(max_connections=0, hello_timeout_s=math.nan))
    assert [p.path for p in error.value.problems] == ["limits.max_connections",
                                                      "limits.hello_timeout_s"]


# ------------------------------------------------------------------------------ certificates
def test_a_client_pinning_another_server_certificate_is_told_so(own_twin, certs):
    security = ServerSecurity(users={"operator": "pw"}, certificate_dir=certs["folder"])
    cert, key = certs["client"]
    with ServerThread(own_twin, port=0, security=security) as served:
        started = time.monotonic()
        with pytest.raises(ControllerError, match="certificate mismatch") as error:
            OpcUaController(served.endpoint, username="operator", password="pw",
                            certificate=cert, private_key=key,
                            server_certificate=certs["other"][0])
        assert time.monotonic() - started < 2.0
        assert str(certs["other"][0]) in str(error.value)
        with OpcUaController(served.endpoint, username="operator", password="pw",
                             certificate=cert, private_key=key,
                             server_certificate=certs["server"][0]) as pinned:
            assert pinned.read_state().operational_mode == "AUTOMATIC"


def test_a_pinned_file_that_is_no_certificate_is_a_typed_error(certs, tmp_path):
    junk = tmp_path / "server.der"
    junk.write_bytes(b"not a certificate")
    cert, key = certs["client"]
    with pytest.raises(ControllerError, match="is not a certificate") as error:
        OpcUaController("opc.tcp://127.0.0.1:4840", certificate=cert, private_key=key,
                        server_certificate=junk)
    assert error.value.problems[0].path == "server_certificate"


# ------------------------------------------------------------------------------ the pin
# The sources GuardedServer repeats or relies on, as of asyncua 2.1.0 (see celltwin.serve.
# opcua_guard). A change here means: read the new asyncua code, adapt the guard, update these.
ASYNCUA_PINS = {
    "Server.start": "0e7d0b97d12c9075",
    "BinaryServer.start": "b994db5df7d4def9",
    "BinaryServer._make_protocol": "5c0c260fe64faf4d",
    "OPCUAProtocol.connection_made": "67ce5af61202da4f",
    "OPCUAProtocol.data_received": "bacb98f07f0b63ff",
    "OPCUAProtocol.connection_lost": "f5e287852bda0109",
    "OPCUAProtocol._process_one_msg": "c2162392f00a7272",
}


def test_the_asyncua_code_the_guard_relies_on_is_unchanged():
    from asyncua import Server
    from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol

    owners = {"Server": Server, "BinaryServer": BinaryServer, "OPCUAProtocol": OPCUAProtocol}
    changed = []
    for name, pin in ASYNCUA_PINS.items():
        owner, attribute = name.split(".")
        source = inspect.getsource(getattr(owners[owner], attribute))
        if hashlib.sha256(source.encode()).hexdigest()[:16] != pin:
            changed.append(name)
    assert not changed, ("asyncua changed code that celltwin.serve.opcua_guard repeats or "
                         f"relies on: {changed}; review the guard against it, then update "
                         "ASYNCUA_PINS")


def test_a_served_twin_runs_behind_the_guard(served):
    _, server = served
    with OpcUaController(server.endpoint):
        transport = server.server.ua_server.bserver
        assert isinstance(transport, GuardedBinaryServer)
        assert {type(client) for client in transport.clients} == {GuardedProtocol}
