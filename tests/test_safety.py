"""The safety layer: whatever a policy outputs, no set-point leaves any limit (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celltwin.policies.deploy.safety import SafetyLayer, SafetyLimits
from celltwin.controller.errors import ControllerError
from celltwin.policies.kinematics import KinematicChain
from celltwin.policies.robot_description import describe_robot
from celltwin.robots.registry import get_robot_model

PERIOD_S = 0.04
TOL = 1e-9

_ROBOT = describe_robot(get_robot_model("panda"))
CHAIN = KinematicChain.from_manifest(_ROBOT["kinematics"], _ROBOT["joint_names"])
HOME = np.array(_ROBOT["home_rad"])
DOF = CHAIN.dof
_HOME_TCP = CHAIN.fk(HOME)[0]


def _limits(**overrides) -> SafetyLimits:
    velocity = np.array(_ROBOT["joint_limits"]["velocity_rad_s"])
    values = dict(
        lower=np.array(_ROBOT["joint_limits"]["position_lower_rad"]),
        upper=np.array(_ROBOT["joint_limits"]["position_upper_rad"]),
        velocity=velocity, acceleration=velocity / 0.2, max_step=np.full(DOF, 0.1),
        # A tight box around home, so that random motion runs into it often.
        workspace_low=_HOME_TCP - np.array([0.15, 0.15, 0.10]),
        workspace_high=_HOME_TCP + np.array([0.15, 0.15, 0.10]),
        reduced_tcp_speed=0.25, gripper_range=(0.0, 0.08))
    values.update(overrides)
    return SafetyLimits(**values)


LIMITS = _limits()

# Policy outputs as they come: reasonable, huge, and non-finite, per joint.
_value = st.one_of(
    st.floats(-4.0, 4.0),
    st.floats(-1e300, 1e300),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308]),
)
_proposal = st.one_of(
    st.lists(_value, min_size=DOF, max_size=DOF).map(np.array),
    # Small moves around home: the common case, which must also stay inside the box.
    st.lists(st.floats(-0.3, 0.3), min_size=DOF, max_size=DOF).map(lambda d: HOME + np.array(d)),
)
_gripper = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


def _check_sequence(layer: SafetyLayer, proposals, grippers, limits: SafetyLimits,
                    reduced: bool) -> None:
    layer.reset(HOME, 0.04)
    q_prev, v_prev = HOME.copy(), np.zeros(DOF)
    tcp_prev = CHAIN.fk(HOME)[0]
    for proposal, gripper in zip(proposals, grippers):
        command = layer.filter(proposal, gripper)
        q = command.positions
        assert np.isfinite(q).all()
        assert np.all(q >= limits.lower - TOL) and np.all(q <= limits.upper + TOL)
        velocity = (q - q_prev) / PERIOD_S
        assert np.all(np.abs(q - q_prev) <= limits.max_step + TOL)
        assert np.all(np.abs(velocity) <= limits.velocity + 1e-6)
        assert np.all(np.abs(velocity - v_prev) / PERIOD_S <= limits.acceleration + 1e-5)
        tcp = CHAIN.fk(q)[0]
        assert np.all(tcp >= limits.workspace_low - 1e-9), tcp
        assert np.all(tcp <= limits.workspace_high + 1e-9), tcp
        if reduced:
            assert np.linalg.norm(tcp - tcp_prev) / PERIOD_S <= limits.reduced_tcp_speed + 1e-9
        if command.gripper_width_m is not None:
            assert limits.gripper_range[0] <= command.gripper_width_m <= limits.gripper_range[1]
        q_prev, v_prev, tcp_prev = q, velocity, tcp


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_proposal, min_size=1, max_size=40), st.data())
def test_no_setpoint_leaves_any_limit(proposals, data):
    grippers = data.draw(st.lists(_gripper, min_size=len(proposals), max_size=len(proposals)))
    _check_sequence(SafetyLayer(LIMITS, CHAIN, PERIOD_S), proposals, grippers, LIMITS, reduced=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_proposal, min_size=1, max_size=30), st.data())
def test_reduced_mode_caps_tcp_speed_as_well(proposals, data):
    grippers = data.draw(st.lists(_gripper, min_size=len(proposals), max_size=len(proposals)))
    _check_sequence(SafetyLayer(LIMITS, CHAIN, PERIOD_S, reduced_mode=True), proposals, grippers,
                    LIMITS, reduced=True)


def test_non_finite_output_brakes_to_a_hold_at_the_acceleration_limit():
    layer = SafetyLayer(LIMITS, CHAIN, PERIOD_S)
    layer.reset(HOME)
    nudge = np.where(np.arange(DOF) == 0, 0.05, 0.0)
    for step in range(1, 4):
        layer.filter(HOME + step * nudge)
    assert layer.last_velocity[0] > 0  # moving when the policy output turns to NaN
    commands = [layer.filter(np.full(DOF, np.nan)) for _ in range(10)]
    assert all("non_finite" in command.flags for command in commands)
    positions = np.array([command.positions[0] for command in commands])
    speeds = np.abs(np.diff(positions)) / PERIOD_S
    assert np.all(np.diff(speeds) <= 1e-12)  # slowing down, never speeding up
    assert speeds[-1] == 0.0  # and then holding
    assert np.allclose(commands[-1].positions, commands[-2].positions)


def test_a_proposal_outside_the_box_stops_at_the_boundary():
    layer = SafetyLayer(LIMITS, CHAIN, PERIOD_S)
    layer.reset(HOME)
    far = HOME.copy()
    far[1] += 1.0  # shoulder forward: the TCP heads out of the box
    commands = [layer.filter(far) for _ in range(40)]
    assert any("workspace" in command.flags for command in commands)
    final = commands[-1].tcp_position
    assert np.all(final >= LIMITS.workspace_low - 1e-9)
    assert np.all(final <= LIMITS.workspace_high + 1e-9)
    # It went up to the boundary rather than freezing where it started.
    gap = np.minimum(final - LIMITS.workspace_low, LIMITS.workspace_high - final)
    assert gap.min() < 0.01
    assert np.allclose(commands[-1].positions, commands[-2].positions)  # and holds there


def test_limits_that_acted_are_reported():
    layer = SafetyLayer(LIMITS, CHAIN, PERIOD_S)
    layer.reset(HOME)
    command = layer.filter(HOME + 1.0)
    assert {"joint_step", "joint_acceleration", "joint_velocity"} <= set(command.flags)
    assert layer.filter(np.full(DOF, np.inf)).flags[0] == "non_finite"
    assert "gripper" in layer.filter(HOME, 0.5).flags
    quiet = SafetyLayer(LIMITS, CHAIN, PERIOD_S)
    quiet.reset(HOME)
    assert quiet.filter(HOME).flags == ()


def test_refuses_to_start_outside_the_limits():
    layer = SafetyLayer(LIMITS, CHAIN, PERIOD_S)
    outside = HOME.copy()
    outside[3] = LIMITS.upper[3] + 0.1
    with pytest.raises(ControllerError, match="panda_joint4"):
        layer.reset(outside)
    with pytest.raises(ControllerError, match="workspace box"):
        SafetyLayer(_limits(workspace_low=_HOME_TCP + 0.01), CHAIN, PERIOD_S).reset(HOME)
    with pytest.raises(ControllerError, match="before reset"):
        SafetyLayer(LIMITS, CHAIN, PERIOD_S).filter(HOME)


# --- what the controller measures --------------------------------------------------------------

def _state(**overrides):
    from celltwin.controller.interface import ControllerState

    values = dict(stamp_s=1.0, joint_positions=HOME.copy(), joint_velocities=np.zeros(DOF),
                  gripper_width_m=0.04, operational_mode="AUTOMATIC", emergency_stop=False,
                  protective_stop=False, objects={"cube": np.array([0.5, 0.0, 0.1])})
    values.update(overrides)
    return ControllerState(**values)


def _with(index: int, value: float, base=HOME) -> np.ndarray:
    array = np.array(base, dtype=float)
    array[index] = value
    return array


_SPEED_LIMIT = LIMITS.velocity[2]


@pytest.mark.parametrize("state, reason", [
    (_state(joint_positions=_with(0, np.nan)), "joint 'panda_joint1' at nan rad"),
    (_state(joint_positions=_with(1, np.inf)), "joint 'panda_joint2' at inf rad"),
    (_state(joint_positions=_with(3, LIMITS.upper[3] + 0.2)), "joint 'panda_joint4' at"),
    (_state(joint_positions=_with(6, -1e308)), "joint 'panda_joint7' at -1e+308 rad"),
    (_state(joint_positions=HOME[:6]), "6 joint positions for 7 joints"),
    (_state(joint_velocities=_with(2, 1e6, np.zeros(DOF))), "moving at 1e+06 rad/s"),
    (_state(joint_velocities=_with(2, -4 * _SPEED_LIMIT, np.zeros(DOF))), "moving at"),
    (_state(joint_velocities=_with(4, np.nan, np.zeros(DOF))), "moving at nan rad/s"),
    (_state(gripper_width_m=np.nan), "gripper opening nan m"),
    (_state(gripper_width_m=0.5), "gripper opening 0.5 m"),
    (_state(objects={"cube": np.array([np.nan, 0.0, 0.1])}), "tracked body 'cube'"),
    (_state(objects={"cube": np.array([1e6, 0.0, 0.1])}), "tracked body 'cube'"),
    (_state(objects={"cube": np.array([0.5, 0.0])}), "tracked body 'cube'"),
    (_state(stamp_s=np.nan), "state stamp nan s"),
])
def test_implausible_measurements_are_named(state, reason):
    fault = SafetyLayer(LIMITS, CHAIN, PERIOD_S).measurement_fault(state)
    assert fault is not None and fault.startswith("implausible measurement: ") and reason in fault


@pytest.mark.parametrize("state", [
    _state(),
    _state(gripper_width_m=None, objects={}),
    # A robot overshoots a limit a little and moves near its rated speed: that is real.
    _state(joint_positions=_with(3, LIMITS.upper[3] + 0.05),
           joint_velocities=_with(2, 1.5 * _SPEED_LIMIT, np.zeros(DOF))),
    _state(gripper_width_m=-0.002),
])
def test_plausible_measurements_pass(state):
    assert SafetyLayer(LIMITS, CHAIN, PERIOD_S).measurement_fault(state) is None
