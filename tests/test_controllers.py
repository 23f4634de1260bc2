"""Action controllers move the robot as commanded (robots/controllers)."""

from __future__ import annotations

import numpy as np
import pybullet
import pytest
from pybullet_utils.bullet_client import BulletClient

from celltwin.robots import Robot, RobotError, get_robot_model, robot_model_names
from celltwin.robots.controllers import (EEDeltaController, JointDeltaController,
                                         JointPositionController, controller_modes, make_controller)

MODELS = robot_model_names()
# Grippers whose opening follows the gripper element; a suction cup's vacuum switches at its
# middle (tests/test_suction.py).
FINGER_MODELS = [name for name in MODELS if get_robot_model(name).suction is None]
TIMESTEP_S = 1.0 / 500.0
SUBSTEPS = 20
BASE_QUAT = (0.0, 0.0, 0.3826834, 0.9238795)  # 45 degrees about z: base and world frames differ


@pytest.fixture
def world():
    client = BulletClient(connection_mode=pybullet.DIRECT)
    client.setGravity(0.0, 0.0, -9.81)
    client.setTimeStep(TIMESTEP_S)
    try:
        yield client
    finally:
        client.disconnect()


def _act(client, controller, action, times: int = 1) -> None:
    for _ in range(times):
        controller.apply(action)
        for _ in range(SUBSTEPS):
            client.stepSimulation()


def test_modes_and_action_layout(world):
    robot = Robot(world, get_robot_model("panda"), "robot")
    assert controller_modes() == ["ee_delta", "joint_delta", "joint_position"]
    position = make_controller("joint_position", robot)
    assert isinstance(position, JointPositionController)
    assert position.action_dim == 8
    np.testing.assert_array_equal(position.action_low[:7], robot.arm_lower)
    delta = make_controller("joint_delta", robot, scale_rad=0.1)
    assert isinstance(delta, JointDeltaController) and delta.scale_rad == 0.1
    np.testing.assert_array_equal(delta.action_high, np.ones(8))
    ee = make_controller("ee_delta", robot, scale_m=0.02)
    assert isinstance(ee, EEDeltaController) and ee.action_dim == 4
    assert len(ee.action_names) == 4 and "gripper" in ee.action_names[-1]


def test_unknown_mode_and_option_are_reported(world):
    robot = Robot(world, get_robot_model("xarm6"), "robot")
    with pytest.raises(RobotError, match="did you mean 'ee_delta'"):
        make_controller("ee_delt", robot)
    with pytest.raises(RobotError, match="did you mean 'scale_m'"):
        make_controller("ee_delta", robot, scale=0.1)
    with pytest.raises(RobotError):
        make_controller("joint_delta", robot, scale_rad=-1.0)


@pytest.mark.parametrize("mode", ["joint_position", "joint_delta", "ee_delta"])
def test_invalid_actions_raise(world, mode):
    robot = Robot(world, get_robot_model("kuka_iiwa"), "robot")
    controller = make_controller(mode, robot)
    bad = np.zeros(controller.action_dim)
    bad[0] = np.nan
    with pytest.raises(RobotError):
        controller.apply(bad)
    with pytest.raises(RobotError):
        controller.apply(np.zeros(controller.action_dim + 1))


@pytest.mark.parametrize("name", MODELS)
def test_ee_delta_moves_along_the_base_axes(world, name):
    robot = Robot(world, get_robot_model(name), "robot", (0.5, -0.3, 0.2), BASE_QUAT)
    controller = make_controller("ee_delta", robot)
    base_rotation = np.array(world.getMatrixFromQuaternion(BASE_QUAT)).reshape(3, 3)
    home = world.saveState()
    for axis in range(3):
        for sign in (1.0, -1.0):
            world.restoreState(home)
            robot.hold()
            start = robot.ee_pose()[0]
            action = np.zeros(4)
            # A quarter of full speed: from rest, the joint acceleration limits, per joint
            # (core.joint_motion), bend a fast start away from the straight line, on a
            # deployed arm as here.
            action[axis], action[3] = 0.25 * sign, 1.0
            _act(world, controller, action, times=12)
            moved = base_rotation.T @ (robot.ee_pose()[0] - start)  # in the base frame
            along = sign * moved[axis]
            across = np.delete(moved, axis)
            assert along > 0.5 * 3 * controller.scale_m, (axis, sign, moved)
            assert np.linalg.norm(across) < 0.3 * along, (axis, sign, moved)


@pytest.mark.parametrize("name", MODELS)
def test_joint_delta_moves_each_joint_its_way(world, name):
    robot = Robot(world, get_robot_model(name), "robot")
    controller = make_controller("joint_delta", robot)
    action = np.zeros(controller.action_dim)
    action[:-1] = np.where(np.arange(robot.dof) % 2 == 0, 1.0, -1.0)
    start = robot.joint_positions()
    _act(world, controller, action, times=4)
    moved = robot.joint_positions() - start
    assert np.all(moved * action[:-1] > 0.5 * 4 * controller.scale_rad), moved


@pytest.mark.parametrize("name", MODELS)
def test_joint_position_reaches_the_target(world, name):
    robot = Robot(world, get_robot_model(name), "robot")
    controller = make_controller("joint_position", robot)
    target = np.array(robot.model.home) + 0.1
    # pybullet's position motor asks for gain * error / timestep of speed and saturates at
    # the torque limit, so a jump overshoots a little before it settles.
    _act(world, controller, np.append(target, 1.0), times=15)
    np.testing.assert_allclose(robot.joint_positions(), target, atol=1e-2)


@pytest.mark.parametrize("name", FINGER_MODELS)
def test_gripper_element_maps_to_closed_and_open(world, name):
    robot = Robot(world, get_robot_model(name), "robot")
    controller = make_controller("joint_delta", robot)
    closed, opened = robot.model.gripper_width_range_m
    action = np.zeros(controller.action_dim)
    for gripper, width in ((-1.0, closed), (0.0, 0.5 * (closed + opened)), (1.0, opened)):
        action[-1] = gripper
        _act(world, controller, action, times=10)
        assert robot.gripper_width() == pytest.approx(width, abs=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_ee_delta_workspace_keeps_the_tcp_in_its_box(world, name):
    robot = Robot(world, get_robot_model(name), "robot", (0.5, -0.3, 0.2), BASE_QUAT)
    base_rotation = np.array(world.getMatrixFromQuaternion(BASE_QUAT)).reshape(3, 3)
    home = base_rotation.T @ (robot.ee_pose()[0] - robot.base_xyz)  # TCP in the base frame
    low = (-np.inf, -np.inf, home[2] - 0.06)
    high = (home[0] + 0.04, np.inf, np.inf)
    controller = make_controller("ee_delta", robot, workspace_low_m=low, workspace_high_m=high)
    _act(world, controller, [1.0, 0.0, -1.0, 1.0], times=12)  # outward and down, far past both
    reached = base_rotation.T @ (robot.ee_pose()[0] - robot.base_xyz)
    assert reached[2] == pytest.approx(low[2], abs=5e-3)
    assert reached[0] == pytest.approx(high[0], abs=5e-3)
    assert abs(reached[1] - home[1]) < 0.01


def test_workspace_options_are_validated(world):
    robot = Robot(world, get_robot_model("panda"), "robot")
    unbounded = make_controller("ee_delta", robot)
    assert np.all(np.isinf(unbounded.workspace_low_m)) and np.all(unbounded.workspace_high_m > 0)
    with pytest.raises(RobotError, match="workspace is empty"):
        make_controller("ee_delta", robot, workspace_low_m=(0.0, 0.0, 0.5),
                        workspace_high_m=(1.0, 1.0, 0.4))
    with pytest.raises(RobotError, match="workspace_low_m"):
        make_controller("ee_delta", robot, workspace_low_m=(0.0, 0.0))
    with pytest.raises(RobotError, match="workspace_high_m"):
        make_controller("ee_delta", robot, workspace_high_m=(0.0, np.nan, 1.0))
    with pytest.raises(RobotError, match="did you mean 'workspace_low_m'"):
        make_controller("ee_delta", robot, workspace_low=(0.0, 0.0, 0.0))
