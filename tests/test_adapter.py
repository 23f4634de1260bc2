"""The deployment adapter against the in-process twin controller (and OPC UA on loopback)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import celltwin.envs  # noqa: F401  (registers the env ids)
from celltwin.policies.deploy.adapter import STOPPED, Adapter
from celltwin.policies.deploy.runtime import Pacer
from celltwin.policies.deploy.telemetry import read_telemetry, steps
from celltwin.controller.errors import ControllerError
from celltwin.policies.parity import concatenate
from celltwin.cli.main import main
from celltwin.serve.in_process import InProcessController
from celltwin.serve.virtual_controller import VirtualController

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("torch", "pybullet", "pybullet_data", "stable_baselines3", "sb3_contrib", "gymnasium",
             "cloudpickle", "joblib", "dill", "scipy", "yaml", "pydantic", "robots", "training")


@pytest.fixture
def reach_env():
    env = gym.make("celltwin/Reach-v0")
    yield env
    env.close()


class CountingController:
    """Wraps a controller, counting set-points and failing on demand (a cut cable, or a broken
    sensor: ``garble`` rewrites the fields of every state read)."""

    def __init__(self, inner):
        self.inner = inner
        self.robot_model, self.joint_names = inner.robot_model, inner.joint_names
        self.sent = 0
        self.disconnected = False
        self.garble: dict = {}
        self.next_read_latency_s = 0.0

    def read_state(self):
        if self.disconnected:
            raise ControllerError("connection to the controller lost")
        state = self.inner.read_state()
        if self.next_read_latency_s:   # the answer arrives late, as over a loaded network
            time.sleep(self.next_read_latency_s)
            self.next_read_latency_s = 0.0
        return dataclasses.replace(state, **self.garble) if self.garble else state

    def send_joint_targets(self, positions, gripper_width_m=None):
        if self.disconnected:
            raise ControllerError("connection to the controller lost")
        self.sent += 1
        self.inner.send_joint_targets(positions, gripper_width_m)

    def raise_protective_stop(self):
        if self.disconnected:
            raise ControllerError("connection to the controller lost")
        self.inner.virtual.raise_protective_stop()

    def close(self):
        self.inner.close()


def _twin(env, seed: int = 0):
    """Reset the env (goal drawn as in training) and serve its world as a lock-step controller."""
    obs, _ = env.reset(seed=seed)
    virtual = VirtualController(env.unwrapped.world)
    return obs, virtual, CountingController(InProcessController(virtual))


# --- what a controller PC needs --------------------------------------------------------------


def test_deployment_needs_only_numpy_onnxruntime_and_asyncua(reacher_bundle):
    script = textwrap.dedent(f"""
        import pickle, sys
        def refuse(*args, **kwargs):
            raise AssertionError("something unpickled on the controller path")
        pickle.load = pickle.loads = refuse
        import numpy as np
        import celltwin.policies.bundle, celltwin.policies.kinematics, celltwin.policies.manifest
        import celltwin.policies.deploy.adapter, celltwin.policies.deploy.opcua_client, celltwin.policies.deploy.safety
        from celltwin.policies.deploy.adapter import Adapter
        from celltwin.controller.interface import ControllerState

        class Still:
            robot_model = "panda"
            joint_names = tuple(f"panda_joint{{i}}" for i in range(1, 8))
            def __init__(self):
                self.t = 0.0
            def read_state(self):
                self.t += 0.04
                return ControllerState(self.t, np.array([0.0, 0.41, 0.0, -1.85, 0.0, 2.26, 0.79]),
                                       np.zeros(7), 0.0, "AUTOMATIC", False, False)
            def send_joint_targets(self, positions, gripper_width_m=None):
                pass
            def close(self):
                pass

        adapter = Adapter({str(reacher_bundle)!r}, Still(), [0.4, 0.1, 0.2], paced=False)
        summary = adapter.run(5, stop_on_success=False)
        assert summary.steps == 5 and summary.stop_reason is None, summary
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
        print("heavy:", heavy)
        assert not heavy, heavy
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "heavy: []" in result.stdout


# --- one observation builder -----------------------------------------------------------------


def test_adapter_builds_the_env_observation_from_controller_state(reacher_bundle, reach_env):
    obs, _, controller = _twin(reach_env, seed=4)
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"], paced=False)
    rng = np.random.default_rng(0)
    for _ in range(15):  # moving, so that ee_velocity is not zero
        obs, *_ = reach_env.step(rng.uniform(-1, 1, 3))
        # A controller samples its state when built and on each tick; sample after this step.
        state = VirtualController(reach_env.unwrapped.world).state()
        built = adapter.observer.observe(state, obs["desired_goal"]).vector
        assert np.abs(built - concatenate(obs)).max() < 1e-5


# --- the loop on the twin --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adapter_reaches_the_goal_on_the_twin(reacher_bundle, reach_env, seed, tmp_path):
    obs, _, controller = _twin(reach_env, seed)
    with Adapter(reacher_bundle, controller, obs["desired_goal"], paced=False,
                 telemetry=tmp_path / "t.jsonl") as adapter:
        summary = adapter.run(50)
    assert summary.success and summary.stop_reason is None
    assert summary.final_distance_m < 0.05
    records = steps(read_telemetry(tmp_path / "t.jsonl"))
    assert len(records) == summary.steps == controller.sent
    assert records[-1]["success"] is True


def test_watchdog_stops_when_the_controller_state_goes_stale(reacher_bundle, reach_env):
    obs, virtual, controller = _twin(reach_env)
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"] + [0.0, 0.0, 0.3],
                      paced=False)
    adapter.rearm()
    for _ in range(3):
        assert adapter.step().sent
    virtual.stall()
    sent_before = controller.sent
    results = [adapter.step() for _ in range(6)]
    stop_at = next(i for i, r in enumerate(results) if r.stop_reason)
    allowed = adapter.stale_periods
    assert stop_at <= allowed and "stale controller state" in results[stop_at].stop_reason
    assert controller.sent - sent_before == stop_at  # nothing sent from the stop on
    assert virtual.protective_stop  # and the controller was asked to hold on its own
    virtual.clear_protective_stop()
    virtual.resume()
    virtual.tick(2)
    assert not any(adapter.step().sent for _ in range(3))  # fresh state does not restart it
    assert adapter.state == STOPPED


def test_the_watchdog_times_steps_as_due_not_reads_as_answered(reacher_bundle, reach_env):
    """A paced adapter on a lock-step twin: each command ticks it, so every read sees a new
    stamp until the twin stalls. The read that sees the last new stamp is answered 15 ms late;
    the stop must still come at the stale_periods-th step after it (it came a step later when
    staleness was timed by the answers)."""
    obs, virtual, controller = _twin(reach_env)
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"] + [0.0, 0.0, 0.3])
    assert adapter.run(3, stop_on_success=False).stop_reason is None
    virtual.stall()   # the sample of the last command's tick, new to the next read, stays
    controller.next_read_latency_s = 0.015
    summary = adapter.run(10, stop_on_success=False)
    assert "stale controller state" in summary.stop_reason
    assert summary.steps == adapter.stale_periods + 1


def test_emergency_stop_holds_until_cleared_and_rearmed(reacher_bundle, reach_env, tmp_path):
    obs, virtual, controller = _twin(reach_env)
    goal = obs["desired_goal"] + [0.0, 0.0, 0.3]  # far: the policy keeps moving
    adapter = Adapter(reacher_bundle, controller, goal, paced=False, telemetry=tmp_path / "t.jsonl")
    adapter.rearm()
    for _ in range(4):
        adapter.step()
    virtual.raise_emergency_stop()
    assert "emergency stop" in adapter.step().stop_reason
    held = controller.read_state().joint_positions

    def idle_steps(count):
        for _ in range(count):
            virtual.tick()  # the controller's clock runs on; the adapter sends nothing
            assert not adapter.step().sent

    idle_steps(5)
    virtual.clear_emergency_stop()
    idle_steps(10)  # cleared, but not re-armed: still nothing moves
    assert adapter.state == STOPPED
    assert np.abs(controller.read_state().joint_positions - held).max() < 1e-3
    with pytest.raises(ControllerError, match="protective stop"):
        virtual.raise_protective_stop()
        adapter.rearm()
    virtual.clear_protective_stop()
    virtual.set_operational_mode("MANUAL_REDUCED_SPEED")
    with pytest.raises(ControllerError, match="not an automatic mode"):
        adapter.rearm()
    virtual.set_operational_mode("AUTOMATIC")
    adapter.rearm()
    assert all(adapter.step().sent for _ in range(5))
    assert np.abs(controller.read_state().joint_positions - held).max() > 1e-3
    adapter.close()
    events = [r["event"] for r in read_telemetry(tmp_path / "t.jsonl") if r["type"] == "event"]
    assert events == ["armed", "stopped", "armed", "closed"]


def _garbled(field: str, state) -> dict:
    """``state`` with one field broken as a failing sensor, bus or server would break it."""
    q, dq = state.joint_positions.copy(), state.joint_velocities.copy()
    if field == "positions NaN":
        q[2] = np.nan
        return {"joint_positions": q}
    if field == "positions far past a limit":
        q[0] = 10.0
        return {"joint_positions": q}
    if field == "speeds 1e6":
        dq[:] = 1e6
        return {"joint_velocities": dq}
    if field == "speeds NaN":
        dq[5] = np.nan
        return {"joint_velocities": dq}
    if field == "gripper NaN":
        return {"gripper_width_m": float("nan")}
    return {"objects": {"cube": np.array([np.nan, 0.0, 0.0])}}


@pytest.mark.parametrize("field", ["positions NaN", "positions far past a limit", "speeds 1e6",
                                   "speeds NaN", "gripper NaN", "tracked body NaN"])
def test_an_implausible_measurement_stops_like_stale_state(reacher_bundle, reach_env, field,
                                                           tmp_path):
    obs, virtual, controller = _twin(reach_env)
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"] + [0.0, 0.0, 0.3],
                      paced=False, telemetry=tmp_path / "t.jsonl")
    adapter.rearm()
    for _ in range(3):
        assert adapter.step().sent
    controller.garble = _garbled(field, controller.read_state())
    sent = controller.sent
    result = adapter.step()
    assert "implausible measurement" in result.stop_reason and not result.sent
    assert controller.sent == sent and adapter.state == STOPPED
    assert virtual.protective_stop   # asked the controller to hold, as for stale state
    assert not any(adapter.step().sent for _ in range(3))
    virtual.clear_protective_stop()
    with pytest.raises(ControllerError, match="cannot arm: implausible measurement"):
        adapter.rearm()
    controller.garble = {}
    virtual.tick(25)
    adapter.rearm()   # a sound state arms again
    adapter.close()
    stops = [r for r in read_telemetry(tmp_path / "t.jsonl") if r.get("event") == "stopped"]
    assert len(stops) == 1 and stops[0]["protective_stop_requested"] is True


def test_telemetry_is_complete_after_the_controller_disconnects(reacher_bundle, reach_env, tmp_path):
    obs, _, controller = _twin(reach_env)
    path = tmp_path / "telemetry.jsonl"
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"] + [0.0, 0.0, 0.3],
                      paced=False, telemetry=path)
    adapter.rearm()
    for _ in range(7):
        adapter.step()
    controller.disconnected = True
    result = adapter.step()
    assert "controller unreachable" in result.stop_reason
    # Read while the adapter is still open: every line is on disk already.
    records = read_telemetry(path)
    step_records = steps(records)
    assert [r["step"] for r in step_records] == list(range(1, 9))
    assert all(r["sent"] for r in step_records[:7]) and not step_records[7]["sent"]
    assert all(len(r["q_command"]) == 7 and len(r["q_measured"]) == 7 for r in step_records[:7])
    stops = [r for r in records if r.get("event") == "stopped"]
    assert len(stops) == 1 and "connection to the controller lost" in stops[0]["reason"]
    assert stops[0]["protective_stop_requested"].startswith("failed")
    assert "controller unreachable" in step_records[-1]["stop_reason"]
    # A write cut short by a power loss: the reader drops only the broken last line.
    with open(path, "a") as handle:
        handle.write('{"type": "step", "step": 9, "q_comm')
    assert read_telemetry(path) == records
    adapter.close()


def test_a_nan_policy_output_brakes_and_is_reported(reacher_bundle, reach_env):
    obs, _, controller = _twin(reach_env)
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"] + [0.0, 0.0, 0.3],
                      paced=False)
    adapter.rearm()
    for _ in range(4):
        adapter.step()  # moving
    adapter.policy = lambda observation: np.full(4, np.nan)  # a policy gone bad
    results = [adapter.step() for _ in range(10)]
    assert all("non_finite" in r.flags and r.sent for r in results)
    assert all(np.isfinite(r.command).all() for r in results)
    assert np.allclose(results[-1].command, results[-2].command)  # braked to a hold


def test_dry_run_sends_nothing_but_logs_every_setpoint(reacher_bundle, reach_env, tmp_path):
    obs, virtual, controller = _twin(reach_env)
    start = controller.read_state().joint_positions
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"] + [0.0, 0.0, 0.2],
                      paced=False, dry_run=True, telemetry=tmp_path / "t.jsonl")
    adapter.rearm()
    for _ in range(5):
        virtual.tick()
        assert not adapter.step().sent
    adapter.close()
    assert controller.sent == 0
    assert np.abs(controller.read_state().joint_positions - start).max() < 1e-4  # sag only
    records = steps(read_telemetry(tmp_path / "t.jsonl"))
    assert len(records) == 5 and all(r["q_command"] is not None for r in records)


def test_pacer_counts_overruns_and_does_not_burst():
    now = [0.0]

    def clock() -> float:
        now[0] += 1e-5  # reading the clock takes a little time, so spinning ends
        return now[0]

    pacer = Pacer(0.04, clock=clock, sleep=lambda s: now.__setitem__(0, now[0] + s))
    pacer.start()
    now[0] += 0.01
    lateness, overrun = pacer.wait()  # on time: sleeps (and spins) up to the deadline
    assert not overrun and 0.0 <= lateness < 1e-4 and now[0] == pytest.approx(0.04, abs=1e-4)
    now[0] += 0.05  # the step took longer than a period
    lateness, overrun = pacer.wait()
    assert overrun and pacer.overruns == 1
    now[0] += 0.2  # five periods behind: restart the schedule instead of five quick steps
    _, overrun = pacer.wait()
    assert overrun and pacer.overruns == 2
    _, overrun = pacer.wait()
    assert not overrun and pacer.overruns == 2


# --- the command line ------------------------------------------------------------------------


def test_cli_deploys_to_the_twin(reacher_bundle, tmp_path, capsys):
    code = main(["deploy", str(reacher_bundle), "--controller", "twin", "--fast", "--episodes", "2",
                 "--telemetry", str(tmp_path / "t.jsonl"), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "success 2/2" in out and out.count("episode ") == 2
    results = json.loads((tmp_path / "r.json").read_text())["episodes"]
    assert all(r["success"] for r in results)
    events = [r["event"] for r in read_telemetry(tmp_path / "t.jsonl") if r["type"] == "event"]
    assert events.count("armed") == 2


def test_cli_deploys_over_opcua(reacher_bundle, tmp_path, capsys):
    from celltwin.serve.opcua_security import ServerSecurity
    from celltwin.serve.opcua_server import ServerThread

    with VirtualController.from_cell("reach_table") as virtual, \
            ServerThread(virtual, port=0, security=ServerSecurity(insecure=True)) as served:
        start = virtual.state().joint_positions
        code = main(["deploy", str(reacher_bundle), "--controller", served.endpoint,
                     "--goal", "0.45", "0.1", "0.25", "--steps", "8",
                     "--telemetry", str(tmp_path / "t.jsonl")])
        moved = np.abs(virtual.state().joint_positions - start).max()
    out = capsys.readouterr().out
    assert code == 0, out
    assert moved > 1e-3
    assert len(steps(read_telemetry(tmp_path / "t.jsonl"))) >= 1


# --- the same guarantees against a served twin, over OPC UA on 127.0.0.1 ----------------------


@pytest.fixture
def served_twin():
    from celltwin.serve.opcua_security import ServerSecurity
    from celltwin.serve.opcua_server import ServerThread

    virtual = VirtualController.from_cell("reach_table")
    server = ServerThread(virtual, port=0, security=ServerSecurity(insecure=True))
    server.start()
    try:
        yield virtual, server
    finally:
        server.stop()
        virtual.close()


FAR_GOAL = [0.3, -0.3, 0.6]   # never reached in these steps: the policy keeps moving


def test_over_opcua_estop_on_the_server_holds_until_cleared_and_rearmed(reacher_bundle,
                                                                          served_twin, tmp_path):
    from celltwin.policies.deploy.opcua_client import OpcUaController

    virtual, server = served_twin
    with OpcUaController(server.endpoint) as controller, \
            Adapter(reacher_bundle, controller, FAR_GOAL, telemetry=tmp_path / "t.jsonl") as adapter:
        summary = adapter.run(5, stop_on_success=False)
        assert summary.stop_reason is None and summary.steps == 5
        virtual.raise_emergency_stop()
        summary = adapter.run(10, stop_on_success=False)
        assert "emergency stop" in summary.stop_reason
        time.sleep(0.5)   # the stopping distance: the arm brakes to a halt, then holds
        held = controller.read_state().joint_positions
        virtual.clear_emergency_stop()
        adapter.pacer.start()
        for _ in range(10):    # cleared on the server, not re-armed: nothing is sent
            adapter.pacer.wait()
            assert not adapter.step().sent
        assert np.abs(controller.read_state().joint_positions - held).max() < 1e-3
        adapter.rearm()
        assert adapter.run(5, stop_on_success=False).stop_reason is None
        assert np.abs(controller.read_state().joint_positions - held).max() > 1e-3
    events = [r["event"] for r in read_telemetry(tmp_path / "t.jsonl") if r["type"] == "event"]
    assert events == ["armed", "stopped", "armed", "closed"]


def test_over_opcua_a_stalled_server_trips_the_watchdog(reacher_bundle, served_twin):
    from celltwin.policies.deploy.opcua_client import OpcUaController

    virtual, server = served_twin
    with OpcUaController(server.endpoint) as controller, \
            Adapter(reacher_bundle, controller, FAR_GOAL) as adapter:
        assert adapter.run(3, stop_on_success=False).stop_reason is None
        virtual.stall()
        summary = adapter.run(20, stop_on_success=False)
        assert "stale controller state" in summary.stop_reason
        assert summary.steps <= adapter.stale_periods + 1
        assert virtual.protective_stop   # the adapter asked the controller to hold


def test_over_opcua_a_server_gone_mid_run_leaves_complete_telemetry(reacher_bundle, served_twin,
                                                                    tmp_path):
    from celltwin.policies.deploy.opcua_client import OpcUaController

    virtual, server = served_twin
    path = tmp_path / "telemetry.jsonl"
    controller = OpcUaController(server.endpoint, timeout_s=0.5)
    try:
        with Adapter(reacher_bundle, controller, FAR_GOAL, telemetry=path) as adapter:
            assert adapter.run(6, stop_on_success=False).stop_reason is None
            server.stop()            # the controller goes away mid-run
            summary = adapter.run(5, stop_on_success=False)
            assert summary.stop_reason and "unreachable" in summary.stop_reason
            records = read_telemetry(path)   # on disk before the adapter closes
    finally:
        try:
            controller.close()
        except ControllerError:
            pass
    step_records = steps(records)
    assert [r["step"] for r in step_records] == list(range(1, len(step_records) + 1))
    assert len(step_records) >= 7 and all(r["sent"] for r in step_records[:6])
    assert [r["event"] for r in records if r["type"] == "event"][-1] == "stopped"


def test_an_internal_fault_latches_a_stop_and_arming_needs_a_robot_at_rest(reacher_bundle,
                                                                          reach_env, tmp_path):
    obs, virtual, controller = _twin(reach_env)
    path = tmp_path / "t.jsonl"
    adapter = Adapter(reacher_bundle, controller, obs["desired_goal"] + [0.0, 0.0, 0.3],
                      paced=False, telemetry=path)
    adapter.rearm()
    with pytest.raises(ControllerError, match="armed already"):
        adapter.rearm()
    for _ in range(3):
        assert adapter.step().sent

    def broken(vector):
        raise RuntimeError("onnxruntime failed")

    adapter.policy = broken
    result = adapter.step()
    assert "internal error" in result.stop_reason and not result.sent
    assert adapter.state == STOPPED and virtual.protective_stop
    assert not adapter.step().sent
    virtual.clear_protective_stop()
    # Lock-step twin: nothing ticks while arming waits, so a robot caught moving stays moving.
    assert np.abs(controller.read_state().joint_velocities).max() > adapter.STILL_RAD_S
    with pytest.raises(ControllerError, match="still moving"):
        adapter.rearm(settle_timeout_s=0.05)
    virtual.tick(25)
    adapter.rearm()
    adapter.close()
    # A torn last line from a crash is cut before new records are appended.
    with open(path, "a") as handle:
        handle.write('{"type": "step", "ste')
    again = Adapter(reacher_bundle, controller, obs["desired_goal"], paced=False, telemetry=path)
    again.close()
    events = [r.get("event") for r in read_telemetry(path) if r["type"] == "event"]
    assert events[-1] == "closed" and events.count("closed") == 2


def test_over_opcua_a_joint_reported_at_1e6_rad_s_stops_and_holds(reacher_bundle, served_twin):
    from celltwin.policies.deploy.opcua_client import OpcUaController

    virtual, server = served_twin

    async def kick(_server):
        # On the server's loop, between ticks: the twin's joint 2 now moves at 1e6 rad/s, the
        # reading a failed encoder could give.
        robot = virtual.robot
        joint = int(robot.arm_joint_indices[1])
        position = robot.joint_positions()[1]
        robot.client.resetJointState(robot.body_id, joint, position, targetVelocity=1e6)
        await _server.tick()

    with OpcUaController(server.endpoint) as controller, \
            Adapter(reacher_bundle, controller, FAR_GOAL) as adapter:
        assert adapter.run(3, stop_on_success=False).stop_reason is None
        server.run(kick)
        summary = adapter.run(10, stop_on_success=False)
        assert "implausible measurement" in summary.stop_reason
        assert summary.steps == 1
        assert virtual.protective_stop   # the adapter asked the controller to hold
