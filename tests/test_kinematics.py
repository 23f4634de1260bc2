"""Forward and inverse kinematics on a private client (robots/kinematics)."""

from __future__ import annotations

import numpy as np
import pybullet
import pytest
from pybullet_utils.bullet_client import BulletClient
from scipy.spatial.transform import Rotation

from celltwin.robots import Robot, RobotError, get_robot_model, robot_model_names
from celltwin.robots.kinematics import Kinematics, home_ee_pose_in_base, quaternion_angle

MODELS = robot_model_names()
# A base that is neither at the origin nor axis-aligned, so frame mistakes show.
BASE_XYZ = (0.3, -0.2, 0.75)
BASE_QUAT = (0.0, 0.0, 0.3826834, 0.9238795)  # 45 degrees about z


@pytest.fixture(scope="module", params=MODELS)
def kinematics(request):
    with Kinematics(get_robot_model(request.param), BASE_XYZ, BASE_QUAT) as solver:
        yield solver


def test_fk_ik_round_trip(kinematics):
    rng = np.random.default_rng(7)
    for _ in range(20):
        pos, quat = kinematics.fk(rng.uniform(kinematics.lower, kinematics.upper))
        result = kinematics.ik(pos, quat)
        assert result.reachable, result.reason
        assert result.within_limits and result.reason == ""
        reached_pos, reached_quat = kinematics.fk(result.q)
        assert np.linalg.norm(reached_pos - pos) < 1e-3
        assert quaternion_angle(reached_quat, quat) < 1e-2
        assert result.position_error_m < 1e-3 and result.orientation_error_rad < 1e-2


def test_ik_respects_the_limit_margin(kinematics):
    pos, quat = kinematics.fk(kinematics.model.home)
    result = kinematics.ik(pos, quat, limit_margin_rad=0.05)
    assert result.reachable
    assert np.all(result.q >= kinematics.lower + 0.05)
    assert np.all(result.q <= kinematics.upper - 0.05)


def test_far_target_is_unreachable_with_a_reason(kinematics):
    base = np.array(BASE_XYZ)
    result = kinematics.ik(base + [3.0, 0.0, 0.0])
    assert not result.reachable
    assert "out of reach" in result.reason
    assert result.position_error_m > 1.5  # every shipped arm reaches less than 1.5 m
    assert result.within_limits  # the reported q is still a valid configuration


def test_ik_is_deterministic(kinematics):
    target = np.array(BASE_XYZ) + [0.2, 0.3, 0.1]
    first, second = kinematics.ik(target), kinematics.ik(target)
    np.testing.assert_array_equal(first.q, second.q)


def test_invalid_queries_raise(kinematics):
    with pytest.raises(RobotError):
        kinematics.fk([0.0] * (kinematics.model.dof + 1))
    with pytest.raises(RobotError):
        kinematics.ik([np.nan, 0.0, 0.0])


def test_closed_kinematics_refuses_queries():
    solver = Kinematics(get_robot_model("xarm6"))
    solver.close()
    solver.close()  # idempotent
    with pytest.raises(RobotError, match="after close"):
        solver.fk(solver.model.home)


def test_queries_do_not_disturb_a_world():
    world = BulletClient(connection_mode=pybullet.DIRECT)
    try:
        robot = Robot(world, get_robot_model("panda"), "robot")
        before = robot.joint_positions()
        with Kinematics(robot.model) as solver:
            solver.ik([0.3, 0.3, 0.3])
            solver.fk(np.zeros(7))
        np.testing.assert_array_equal(robot.joint_positions(), before)
    finally:
        world.disconnect()


@pytest.mark.parametrize("name", MODELS)
def test_home_pose_in_base_points_down(name):
    _, quat = home_ee_pose_in_base(get_robot_model(name))
    tool_z = Rotation.from_quat(quat).as_matrix()[:, 2]
    assert tool_z[2] < -0.999


def test_position_only_ik_round_trip(kinematics):
    rng = np.random.default_rng(11)
    for _ in range(10):
        pos, _ = kinematics.fk(rng.uniform(kinematics.lower, kinematics.upper))
        result = kinematics.ik(pos)
        assert result.reachable, result.reason
        reached_pos, _ = kinematics.fk(result.q)
        assert np.linalg.norm(reached_pos - pos) < 1e-3
