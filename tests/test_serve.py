"""`celltwin serve`: a real asyncua server on 127.0.0.1, driven by the deployment's OPC UA client.

Every server is started by a fixture or a ``with`` block on a free port and stopped by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from asyncua import Client, ua

from celltwin.controller import opcua_model as model
from celltwin.policies.deploy.opcua_client import OpcUaController
from celltwin.controller.errors import ControllerError
from celltwin.cli.main import main
from celltwin.policies.latency import opcua_round_trip
from celltwin.serve.errors import ServeError
from celltwin.serve.opcua_security import CLIENT_APPLICATION_URI, ServerSecurity, ensure_certificate
from celltwin.serve.opcua_server import ServerThread
from celltwin.serve.virtual_controller import VirtualController

CELL = "reach_table"
USER, PASSWORD = "operator", "correct horse"
SETPOINTS_ID = "MotionDeviceSystem.CommandInterface.JointSetpoints"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Server and client certificates, generated once for the module."""
    folder = tmp_path_factory.mktemp("opcua-certs")
    client = ensure_certificate(folder, "client", CLIENT_APPLICATION_URI)
    stranger = ensure_certificate(folder, "stranger", CLIENT_APPLICATION_URI, role="client")
    ensure_certificate(folder, "server", "urn:celltwin:virtual-controller")
    return {"folder": folder, "client": client, "stranger": stranger}


@pytest.fixture(scope="module")
def twin():
    """One twin for the module: an asyncua server takes ~2 s to build its standard nodes."""
    controller = VirtualController.from_cell(CELL)
    try:
        yield controller
    finally:
        controller.close()


@contextlib.contextmanager
def serving(controller, security=None, **options):
    """A started server on a free loopback port; always stopped on the way out."""
    server = ServerThread(controller, port=0, security=security or ServerSecurity(insecure=True),
                          **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_twin():
    """A twin for a test that runs its own server (two clocks must not tick one twin)."""
    controller = VirtualController.from_cell(CELL)
    try:
        yield controller
    finally:
        controller.close()


@pytest.fixture(scope="module")
def served(twin):
    with serving(twin) as server:
        yield server


@pytest.fixture
def client(served, twin):
    """A fresh client of the shared server, whose twin starts every test ready to move."""
    twin.clear_emergency_stop()
    twin.clear_protective_stop()
    twin.set_operational_mode("AUTOMATIC")
    twin.resume()
    controller = OpcUaController(served.endpoint)
    try:
        yield controller
    finally:
        controller.close()


def wait_until(predicate, timeout_s: float = 3.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_model_is_browsable_by_opc40010_names(served, client):
    async def browse():
        async with Client(served.endpoint) as raw:
            namespaces = await raw.get_namespace_array()

            def qualified(path):
                return [ua.QualifiedName(name, namespaces.index(uri) if uri else 0)
                        for uri, name in path]
            system = model.SYSTEM_PATH
            device = system + (model.MOTION_DEVICES, (model.CELLTWIN_NS, "arm"))
            axis = device + (model.AXES, (model.CELLTWIN_NS, "panda_joint1"), model.PARAMETER_SET)
            safety = system + (model.SAFETY_STATES, (model.CELLTWIN_NS, "SafetyState"),
                               model.PARAMETER_SET)
            paths = [device + (model.MODEL,), device + (model.MANUFACTURER,),
                     device + (model.SERIAL_NUMBER,), axis + (model.ACTUAL_POSITION,),
                     axis + (model.ACTUAL_SPEED,),
                     axis + (model.ACTUAL_POSITION, model.ENGINEERING_UNITS),
                     safety + (model.OPERATIONAL_MODE,), safety + (model.EMERGENCY_STOP,),
                     safety + (model.PROTECTIVE_STOP,), system + (model.CONTROLLERS,),
                     system + (model.COMMAND_INTERFACE, model.JOINT_SETPOINTS)]
            nodes = [node[0] for node in await raw.nodes.objects.get_children_by_path(
                [qualified(path) for path in paths])]
            return await raw.read_values(nodes)

    (robot_model, manufacturer, serial, position, speed, units, mode, estop, pstop, _controllers,
     setpoints) = asyncio.run(browse())
    assert robot_model.Text == "panda" and manufacturer.Text == "celltwin" and serial == "arm"
    assert isinstance(position, float) and isinstance(speed, float)
    assert units.UnitId == model.UNIT_RADIAN
    assert mode == 3 and estop is False and pstop is False  # 3: AUTOMATIC
    assert len(setpoints) == 7


def test_setpoints_move_the_twin_and_read_back(client, twin):
    assert client.robot_model == "panda" and client.joint_names == twin.joint_names
    assert client.control_period_s == pytest.approx(twin.control_period_s)
    start = client.read_state()
    assert start.operational_mode == "AUTOMATIC" and not start.emergency_stop
    target = start.joint_positions.copy()
    target[0] += 0.25
    client.send_joint_targets(target, gripper_width_m=0.02)
    reached = wait_until(lambda: np.abs(client.read_state().joint_positions - target).max() < 0.01)
    assert reached, client.read_state().joint_positions - target
    assert abs(client.read_state().gripper_width_m - 0.02) < 0.005
    np.testing.assert_allclose(twin.robot.joint_positions(), target, atol=0.01)
    assert client.accepted_sequence == client.sequence
    assert client.read_state().stamp_s > start.stamp_s


def test_each_exchange_is_one_read_and_one_write(client, served):
    before = dict(served.server.requests)
    state = client.read_state()
    client.send_joint_targets(state.joint_positions)
    after = served.server.requests
    assert after["read"] - before.get("read", 0) == 1
    assert after["write"] - before.get("write", 0) == 1


@pytest.mark.parametrize("how", ["emergency stop on the server", "protective stop on the server",
                                 "protective stop asked by the client"])
def test_stop_holds_robot_and_drops_setpoints_until_cleared(client, twin, how):
    if how == "emergency stop on the server":
        twin.raise_emergency_stop()
        flag, clear = "emergency_stop", twin.clear_emergency_stop
    elif how == "protective stop on the server":
        twin.raise_protective_stop()
        flag, clear = "protective_stop", twin.clear_protective_stop
    else:
        client.raise_protective_stop()
        flag, clear = "protective_stop", twin.clear_protective_stop
    assert wait_until(lambda: getattr(client.read_state(), flag))
    # Where the stop holds the arm: read once it is stopped, since an arm still settling from
    # the previous test's motion comes to rest a few mrad further (seen under load).
    time.sleep(4 * twin.control_period_s)
    rest = client.read_state().joint_positions
    client.send_joint_targets(rest + 0.3)
    time.sleep(8 * twin.control_period_s)
    np.testing.assert_allclose(client.read_state().joint_positions, rest, atol=2e-3)
    client.read_state()
    assert client.accepted_sequence < client.sequence  # the controller says it dropped it
    clear()
    assert wait_until(lambda: not getattr(client.read_state(), flag))
    time.sleep(5 * twin.control_period_s)
    np.testing.assert_allclose(client.read_state().joint_positions, rest, atol=2e-3)
    client.send_joint_targets(rest + 0.1)
    moved = rest + 0.1
    assert wait_until(lambda: np.abs(client.read_state().joint_positions - moved).max() < 0.01)


def test_stall_stops_the_state_stamp(client, twin):
    twin.stall()
    frozen = client.read_state().stamp_s
    time.sleep(5 * twin.control_period_s)
    assert client.read_state().stamp_s == frozen
    twin.resume()
    assert wait_until(lambda: client.read_state().stamp_s > frozen)


def test_secure_server_needs_encryption_trusted_certificate_and_password(own_twin, certs):
    cert, key = certs["client"]
    security = ServerSecurity(users={USER: PASSWORD}, certificate_dir=certs["folder"],
                              trusted_client_certificates=(cert,))
    with serving(own_twin, security) as server:
        with OpcUaController(server.endpoint, username=USER, password=PASSWORD, certificate=cert,
                             private_key=key) as secure:
            assert secure.read_state().operational_mode == "AUTOMATIC"
        with pytest.raises(ControllerError, match="BadUserAccessDenied"):
            OpcUaController(server.endpoint, username=USER, password="wrong", certificate=cert,
                            private_key=key)
        stranger_cert, stranger_key = certs["stranger"]
        with pytest.raises(ControllerError, match="BadUserAccessDenied"):
            OpcUaController(server.endpoint, username=USER, password=PASSWORD,
                            certificate=stranger_cert, private_key=stranger_key)
        with pytest.raises(ControllerError, match="no endpoint with this security"):
            OpcUaController(server.endpoint, username=USER, password=PASSWORD)
        assert asyncio.run(_session_over_no_security(server.endpoint)) == "refused"


async def _session_over_no_security(endpoint: str) -> str:
    """What a client that ignores the endpoint list gets: asyncua would admit it; the gate not."""
    raw = Client(endpoint, timeout=2)
    try:
        await raw.connect_socket()
        await raw.send_hello()
        await raw.open_secure_channel()
        with contextlib.suppress(ua.UaError):
            await raw.create_session()  # the client-side endpoint check fails after the fact
        token = ua.UserNameIdentityToken(UserName=USER, Password=PASSWORD.encode(),
                                         PolicyId="username")
        try:
            await raw.uaclient.activate_session(ua.ActivateSessionParameters(
                LocaleIds=["en"], UserIdentityToken=token))
        except ua.UaStatusCodeError:
            return "refused"
        return "admitted"
    finally:
        raw.disconnect_socket()


def test_secure_server_without_users_is_a_typed_error(twin, certs):
    with pytest.raises(ServeError, match="at least one user"):
        with serving(twin, ServerSecurity(certificate_dir=certs["folder"])):
            pass


def test_dead_port_raises_quickly_naming_the_endpoint():
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ControllerError, match="connection refused") as error:
        OpcUaController(endpoint)
    assert time.monotonic() - started < 2.0
    assert endpoint in str(error.value)


def test_silent_server_times_out_with_a_typed_error():
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"opc.tcp://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ControllerError, match=r"no answer within 0\.3 s"):
            OpcUaController(endpoint, timeout_s=0.3)
        assert time.monotonic() - started < 1.5


def test_client_converts_degrees_refuses_other_units_and_names_missing_nodes(own_twin):
    """A real controller may publish degrees; a model without the command interface is refused."""
    axis = "MotionDeviceSystem.MotionDevices.arm.Axes.panda_joint1.ParameterSet.ActualPosition"

    def set_unit(unit_id: int):
        async def write(server):
            ua_server = server.ua_server
            index = await ua_server.get_namespace_index(model.CELLTWIN_NS)
            units = ua_server.get_node(ua.NodeId(f"{axis}.EngineeringUnits", index))
            information = await units.read_value()
            information.UnitId = unit_id
            await units.write_value(ua.Variant(information, ua.VariantType.ExtensionObject))
        return write

    async def remove_setpoints(server):
        ua_server = server.ua_server
        index = await ua_server.get_namespace_index(model.CELLTWIN_NS)
        await ua_server.delete_nodes([ua_server.get_node(ua.NodeId(SETPOINTS_ID, index))])

    with serving(own_twin) as server:
        own_twin.stall()  # one sample for both clients to compare
        with OpcUaController(server.endpoint) as radians:
            expected = radians.read_state().joint_positions
        server.run(set_unit(model.UNIT_DEGREE))
        with OpcUaController(server.endpoint) as degrees:
            np.testing.assert_allclose(degrees.read_state().joint_positions,
                                       np.radians(expected))
        server.run(set_unit(model.UNIT_METRE))
        with pytest.raises(ControllerError, match="ActualPosition in an unknown unit"):
            OpcUaController(server.endpoint)
        server.run(remove_setpoints)
        with pytest.raises(ControllerError, match="no node .*CommandInterface/JointSetpoints"):
            OpcUaController(server.endpoint)


def test_bad_setpoint_write_is_refused_by_the_server(client, served):
    async def write_six(_server):
        async with Client(served.endpoint) as raw:
            index = (await raw.get_namespace_array()).index(model.CELLTWIN_NS)
            node = raw.get_node(ua.NodeId(SETPOINTS_ID, index))
            with pytest.raises(ua.UaStatusCodeError, match="BadOutOfRange"):
                await node.write_value(ua.Variant([0.0] * 6, ua.VariantType.Double))

    asyncio.run(write_six(None))
    with pytest.raises(ControllerError, match="7 finite joint positions"):
        client.send_joint_targets(np.zeros(6))


def test_port_in_use_is_a_typed_error(twin, served):
    port = int(served.endpoint.rsplit(":", 1)[1])
    with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is in use"):
        with ServerThread(twin, port=port, security=ServerSecurity(insecure=True)):
            pass


def test_cli_bad_input_is_one_line_and_exit_2(capsys):
    assert main(["serve", "no_such_cell", "--insecure"]) == 2
    assert main(["serve", CELL]) == 2  # secure by default: needs a user
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", CELL, "--insecure", "--port", str(port)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), lines
    assert "no_such_cell" in lines[0] and "--user" in lines[1] and f"port {port}" in lines[2]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# SIGINT is Ctrl-C; a server started in the background of a script inherits SIGINT ignored and
# must still stop on it; SIGTERM is how a service manager stops it.
@pytest.mark.parametrize("signum, inherited_sigint_ignored",
                         [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)])
def test_cli_serves_until_ctrl_c(signum, inherited_sigint_ignored):
    command = [sys.executable, "-m", "celltwin.cli.main", "serve", CELL, "--insecure", "--port", "0",
               "--latency-steps", "1"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_ignore_sigint if inherited_sigint_ignored else None)
    try:
        first = server.stdout.readline()
        assert "serving robot 'arm' (panda) at opc.tcp://127.0.0.1:" in first, server.stderr.read()
        endpoint = first.split(" at ")[1].strip()
        with OpcUaController(endpoint) as controller:
            assert controller.read_state().operational_mode == "AUTOMATIC"
        server.send_signal(signum)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_opcua_client_imports_without_heavy_packages():
    probe = ("import sys, json; import celltwin.policies.deploy.opcua_client; "
             "print(json.dumps(sorted(m for m in ('torch', 'pybullet', 'stable_baselines3', "
             "'gymnasium', 'celltwin.world') if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_round_trip_benchmark_reports_percentiles():
    result = opcua_round_trip(n=30, warmup=5)
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["server"]["requests"]["read"] >= 35 and result["ticking"] is True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_client_outlives_a_server_busy_longer_than_asyncuas_keepalive(own_twin):
    """The cause of a flaky "client is disconnected": asyncua's supervisor probed the server
    every second and, when one probe went unanswered for a second (a loaded machine), marked the
    client dead for good. Liveness is the per-call deadline's and the adapter's to judge."""
    with serving(own_twin) as server, OpcUaController(server.endpoint) as client:
        client.read_state()

        async def busy(_server):
            time.sleep(2.5)   # the server's loop held up, as a starved process would be

        server.run(busy)
        assert client.read_state().operational_mode == "AUTOMATIC"
        client.send_joint_targets(client.read_state().joint_positions)


def test_cli_keeps_library_logs_off_the_terminal_unless_verbose(capsys, monkeypatch):
    import logging

    from celltwin.cli.logs import configure_logging

    def emitted() -> list[str]:
        logging.getLogger("asyncua.server.uaprocessor").error("asyncua chatter")
        logging.getLogger("ray.worker").warning("ray chatter")
        try:
            raise ValueError("bad\nframe")
        except ValueError:
            logging.getLogger("celltwin.serve").exception("refused client x")
        logging.getLogger("celltwin.serve").info("an info line")
        return capsys.readouterr().err.splitlines()

    try:
        monkeypatch.delenv("CELLTWIN_VERBOSE", raising=False)
        configure_logging()
        assert emitted() == ["error: refused client x: ValueError: bad frame"]
        monkeypatch.setenv("CELLTWIN_VERBOSE", "1")
        configure_logging()
        lines = emitted()
        assert "asyncua.server.uaprocessor: error: asyncua chatter" in lines
        assert "ray.worker: warning: ray chatter" in lines
        assert "Traceback (most recent call last):" in lines and "info: an info line" in lines
    finally:
        monkeypatch.delenv("CELLTWIN_VERBOSE", raising=False)
        configure_logging()   # as every other command leaves it
