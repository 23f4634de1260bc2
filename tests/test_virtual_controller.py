"""The twin as a controller, without a network: latency, noise, stops, stall, and the clocks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from celltwin.controller.errors import ControllerError
from celltwin.core.errors import PhysicsParamsError
from celltwin.serve.in_process import InProcessController
from celltwin.serve.virtual_controller import VirtualController

CELL = "reach_table"


@pytest.fixture
def twin():
    controller = VirtualController.from_cell(CELL)
    try:
        yield controller
    finally:
        controller.close()


def settle(controller: VirtualController, ticks: int = 5) -> np.ndarray:
    controller.tick(ticks)
    return controller.robot.joint_positions()


@pytest.mark.parametrize("latency", [0, 3])
def test_latency_delays_setpoints_by_k_ticks(latency):
    with VirtualController.from_cell(CELL, latency_steps=latency) as controller:
        assert controller.latency_steps == latency
        assert controller.world.latency_steps(controller.robot_name) == latency  # one source
        before = controller.active_setpoint
        target = before + 0.1
        assert controller.command(target) is True
        for _ in range(latency):
            controller.tick()
            np.testing.assert_array_equal(controller.active_setpoint, before)
        controller.tick()
        np.testing.assert_allclose(controller.active_setpoint, target)


def test_bad_latency_or_noise_is_a_physics_error_with_its_path():
    with pytest.raises(PhysicsParamsError, match="robots.arm.latency_steps"):
        VirtualController.from_cell(CELL, latency_steps=500)


def test_noise_is_seeded_and_reproducible():
    def readings(seed):
        with VirtualController.from_cell(CELL, noise_rad=0.01, seed=seed) as controller:
            samples = []
            for _ in range(3):
                controller.tick()
                state = controller.state()
                samples.append((state.joint_positions, controller.robot.joint_positions()))
            return samples

    first, again, other = readings(7), readings(7), readings(8)
    for (noisy, true), (noisy_again, _), (noisy_other, _) in zip(first, again, other):
        np.testing.assert_array_equal(noisy, noisy_again)
        assert not np.array_equal(noisy, noisy_other)
        assert 0 < np.abs(noisy - true).max() < 0.06  # about 0.01 rad, never wild


def test_state_without_noise_is_exact_and_sampled_once_per_tick(twin):
    twin.tick()
    first, second = twin.state(), twin.state()
    assert first.stamp_s == pytest.approx(twin.control_period_s)
    np.testing.assert_array_equal(first.joint_positions, twin.robot.joint_positions())
    np.testing.assert_array_equal(first.joint_positions, second.joint_positions)
    assert first.operational_mode == "AUTOMATIC" and first.gripper_width_m > 0


@pytest.mark.parametrize("stop", ["emergency", "protective"])
def test_stop_holds_drops_setpoints_and_clearing_moves_nothing(twin, stop):
    rest = settle(twin)
    getattr(twin, f"raise_{stop}_stop")()
    state = twin.state()
    assert getattr(state, f"{stop}_stop") and not twin.accepts_setpoints
    assert twin.command(rest + 0.4) is False
    held = settle(twin, 10)
    np.testing.assert_allclose(held, rest, atol=2e-3)
    getattr(twin, f"clear_{stop}_stop")()
    np.testing.assert_allclose(settle(twin, 10), rest, atol=2e-3)  # clearing alone moves nothing
    assert twin.command(rest + 0.2) is True
    assert np.abs(settle(twin, 15) - (rest + 0.2)).max() < 0.02


def test_stop_drops_setpoints_already_in_flight():
    with VirtualController.from_cell(CELL, latency_steps=3) as controller:
        rest = settle(controller)
        controller.command(rest + 0.3)
        controller.tick()
        controller.raise_emergency_stop()
        np.testing.assert_allclose(settle(controller, 8), rest, atol=2e-3)


def test_manual_mode_holds_and_unknown_mode_is_refused(twin):
    rest = settle(twin)
    twin.set_operational_mode("MANUAL_REDUCED_SPEED")
    assert twin.command(rest + 0.3) is False
    np.testing.assert_allclose(settle(twin, 8), rest, atol=2e-3)
    with pytest.raises(ControllerError, match="unknown operational mode 'AUTO'"):
        twin.set_operational_mode("AUTO")


def test_stall_freezes_state_while_physics_goes_on(twin):
    twin.tick()
    twin.stall()
    frozen = twin.state()
    twin.command(frozen.joint_positions + 0.2)
    twin.tick(5)
    assert twin.state().stamp_s == frozen.stamp_s and twin.stalled
    assert np.abs(twin.robot.joint_positions() - frozen.joint_positions).max() > 0.05
    twin.resume()
    assert twin.state().stamp_s == pytest.approx(6 * twin.control_period_s)


def test_invalid_setpoints_are_typed_errors(twin):
    with pytest.raises(ControllerError, match="7 finite joint positions") as error:
        twin.command([0.0] * 6)
    assert error.value.problems[0].value == [0.0] * 6
    with pytest.raises(ControllerError):
        twin.command([float("nan")] * 7)
    with pytest.raises(ControllerError, match="gripper"):
        twin.command(None, float("inf"))


def test_tracked_objects_are_in_the_robot_base_frame():
    with VirtualController.from_cell(CELL, tracked_objects=["table"]) as controller:
        # table centre (0.4, 0, 0.375) seen from the robot base at (0, 0, 0.75)
        np.testing.assert_allclose(controller.state().objects["table"], [0.4, 0.0, -0.375],
                                   atol=1e-6)
    with pytest.raises(Exception, match="did you mean 'table'"):
        VirtualController.from_cell(CELL, tracked_objects=["tabel"])


def test_in_process_lock_step_ticks_once_per_command(twin):
    controller = InProcessController(twin, owns_controller=False)
    assert controller.robot_model == "panda" and len(controller.joint_names) == 7
    start = controller.read_state()
    assert controller.read_state().stamp_s == start.stamp_s  # reading does not advance time
    controller.send_joint_targets(start.joint_positions + 0.1, gripper_width_m=0.03)
    assert controller.read_state().stamp_s == pytest.approx(start.stamp_s + twin.control_period_s)
    controller.close()
    controller.close()  # idempotent
    with pytest.raises(ControllerError, match="closed"):
        controller.read_state()
    assert not twin.closed  # not owned: left open


def test_in_process_realtime_ticks_with_the_wall_clock():
    threads = set(threading.enumerate())
    with InProcessController(VirtualController.from_cell(CELL), realtime=True) as controller:
        period = controller.virtual.control_period_s
        assert set(threading.enumerate()) - threads   # it ticks in a thread of its own
        started, first = time.monotonic(), controller.read_state().stamp_s
        time.sleep(10 * period)
        advanced = controller.read_state().stamp_s - first
        elapsed = time.monotonic() - started
        # Paced by the wall clock: never ahead of it, and not far behind on a busy machine.
        assert 0.3 * elapsed <= advanced <= elapsed + 2 * period
        controller.virtual.stall()
        frozen = controller.read_state().stamp_s
        time.sleep(3 * period)
        assert controller.read_state().stamp_s == frozen
    # Closed, and its ticking thread is gone with it.
    assert controller.virtual.closed and set(threading.enumerate()) <= threads


@pytest.mark.parametrize("joint, value", [(0, 1e308), (1, -1e308), (3, 0.5), (5, -0.2)])
def test_setpoints_outside_the_limits_are_refused_not_clipped(twin, joint, value):
    before = twin.active_setpoint
    q = before.copy()
    q[joint] = value
    with pytest.raises(ControllerError, match="outside its limits") as error:
        twin.command(q)
    problem = error.value.problems[0]
    assert problem.path == f"positions[{joint}]" and problem.value == value
    assert twin.joint_names[joint] in problem.message
    twin.tick(3)
    np.testing.assert_array_equal(twin.active_setpoint, before)   # it keeps its own


def test_setpoints_a_rounding_past_a_limit_are_put_on_it(twin):
    q = twin.active_setpoint
    q[3] = twin.robot.arm_upper[3] + 1e-12   # panda_joint4's upper limit is 0 rad
    assert twin.command(q)
    twin.tick(3)
    assert twin.active_setpoint[3] == twin.robot.arm_upper[3]


@pytest.mark.parametrize("width", [0.5, -0.01, 1e308])
def test_gripper_setpoints_outside_its_range_are_refused(twin, width):
    with pytest.raises(ControllerError, match="outside the gripper's range"):
        twin.command(None, width)
