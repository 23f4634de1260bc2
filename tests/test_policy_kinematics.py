"""numpy kinematics of bundles (celltwin.policies.kinematics) against pybullet, for every robot."""

from __future__ import annotations

import numpy as np
import pytest

from celltwin.policies.kinematics import (KinematicChain, matrix_to_quat, quat_to_matrix,
                                          rotation_vector)
from celltwin.policies.robot_description import describe_robot
from celltwin.robots.kinematics import Kinematics
from celltwin.robots.registry import get_robot_model, robot_model_names
from celltwin.robots.robot import Robot
from celltwin.core.client import direct_client

# A tilted, shifted base: FK must come out in the base frame whatever the base pose.
BASE_XYZ = np.array([0.3, -0.2, 0.75])
BASE_QUAT = np.array([0.0, 0.0, np.sin(0.3), np.cos(0.3)])


def _chain(name: str) -> tuple[KinematicChain, dict]:
    robot = describe_robot(get_robot_model(name), BASE_XYZ, BASE_QUAT)
    return KinematicChain.from_manifest(robot["kinematics"], robot["joint_names"]), robot


@pytest.mark.parametrize("name", robot_model_names())
def test_fk_matches_pybullet_for_random_configurations(name):
    chain, robot = _chain(name)
    lower = np.array(robot["joint_limits"]["position_lower_rad"])
    upper = np.array(robot["joint_limits"]["position_upper_rad"])
    base_rotation = quat_to_matrix(BASE_QUAT)
    rng = np.random.default_rng(7)
    with Kinematics(get_robot_model(name), BASE_XYZ, BASE_QUAT) as kinematics:
        for _ in range(100):
            q = rng.uniform(lower, upper)
            world_position, world_quat = kinematics.fk(q)
            position, rotation = chain.fk(q)
            assert np.linalg.norm(base_rotation.T @ (world_position - BASE_XYZ) - position) < 1e-6
            expected = base_rotation.T @ quat_to_matrix(world_quat)
            assert np.abs(expected - rotation).max() < 1e-5


@pytest.mark.parametrize("name", robot_model_names())
def test_tcp_velocity_matches_pybullet_link_velocity(name):
    chain, robot = _chain(name)
    lower = np.array(robot["joint_limits"]["position_lower_rad"])
    upper = np.array(robot["joint_limits"]["position_upper_rad"])
    rng = np.random.default_rng(3)
    client = direct_client()
    try:
        arm = Robot(client, get_robot_model(name), "arm", BASE_XYZ, BASE_QUAT)
        base_rotation = quat_to_matrix(BASE_QUAT)
        for _ in range(20):
            q, qdot = rng.uniform(lower, upper), rng.uniform(-1.0, 1.0, chain.dof)
            for joint, value, speed in zip(arm.arm_joint_indices, q, qdot):
                client.resetJointState(arm.body_id, int(joint), float(value), float(speed))
            _, world_velocity = arm.ee_position_and_velocity()
            velocity = chain.tcp_velocity(q, qdot)
            assert np.linalg.norm(base_rotation.T @ world_velocity - velocity) < 1e-5
    finally:
        client.disconnect()


@pytest.mark.parametrize("name", robot_model_names())
def test_ik_reaches_a_nearby_target_and_holds_orientation(name):
    chain, robot = _chain(name)
    home = np.array(robot["home_rad"])
    position, rotation = chain.fk(home)
    rng = np.random.default_rng(5)
    for _ in range(10):
        target = position + rng.uniform(-0.05, 0.05, 3)
        q = chain.ik(home, target, rotation)
        reached, reached_rotation = chain.fk(q)
        assert np.linalg.norm(reached - target) < 1e-4
        assert np.linalg.norm(rotation_vector(rotation @ reached_rotation.T)) < 1e-3


@pytest.mark.parametrize("name", robot_model_names())
def test_reach_weights_bound_tcp_displacement(name):
    chain, robot = _chain(name)
    lower = np.array(robot["joint_limits"]["position_lower_rad"])
    upper = np.array(robot["joint_limits"]["position_upper_rad"])
    weights = chain.reach_weights()
    rng = np.random.default_rng(11)
    for _ in range(200):
        q = rng.uniform(lower, upper)
        dq = rng.uniform(-0.2, 0.2, chain.dof)
        moved = np.linalg.norm(chain.fk(q + dq)[0] - chain.fk(q)[0])
        assert moved <= weights @ np.abs(dq) + 1e-12


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(2)
    for _ in range(50):
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        quat = quat if quat[3] >= 0 else -quat
        assert np.allclose(matrix_to_quat(quat_to_matrix(quat)), quat, atol=1e-9)
    angle = np.pi - 1e-9  # the log map stays finite and right near pi
    half = angle / 2
    rotation = quat_to_matrix([np.sin(half), 0.0, 0.0, np.cos(half)])
    assert np.allclose(np.abs(rotation_vector(rotation)), [angle, 0.0, 0.0], atol=1e-6)
