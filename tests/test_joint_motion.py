"""One limit law for joint set-points: the training twin moves the arm as deployment does.

A policy trained where the motors follow any set-point at once learned motions the deployment
adapter's safety layer cuts short (measured: 20/20 in the twin, 6/20 deployed). The twin's
action controllers and the safety layer now bound set-points by one law
(``celltwin.core.joint_motion``); these tests hold it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from celltwin.core.joint_motion import JointMotionLimiter, JointMotionLimits, limit_velocity
from celltwin.policies.deploy.safety import SafetyLayer, SafetyLimits
from celltwin.policies.kinematics import KinematicChain
from celltwin.policies.robot_description import describe_robot
from celltwin.serve.in_process import InProcessController
from celltwin.serve.virtual_controller import VirtualController

STEPS = 40


def _far_targets(robot, count: int, seed: int = 0) -> list[np.ndarray]:
    """Joint targets far apart: every limit of the law binds somewhere along them."""
    rng = np.random.default_rng(seed)
    low, high = robot.arm_lower, robot.arm_upper
    middle, half = 0.5 * (low + high), 0.5 * (high - low)
    return [middle + 0.6 * half * rng.uniform(-1.0, 1.0, low.shape) for _ in range(count)]


def _trajectory_in_env(targets) -> tuple[np.ndarray, np.ndarray]:
    env = gym.make("celltwin/Reach-v0", control="joint_position")
    try:
        env.reset(seed=3)
        robot = env.unwrapped.robot
        setpoints, joints = [], []
        for target in targets:
            env.step(target.astype(np.float32))
            setpoints.append(robot.motor_targets()[0])
            joints.append(robot.joint_positions())
        return np.array(setpoints), np.array(joints)
    finally:
        env.close()


def _trajectory_through_the_adapter_path(targets) -> tuple[np.ndarray, np.ndarray, set]:
    """The same targets through the safety layer (its limits: the trained robot's), sent to
    the twin served as a controller, lock-step."""
    env = gym.make("celltwin/Reach-v0", control="joint_position")
    try:
        env.reset(seed=3)
        base = env.unwrapped
        robot = base.robot
        described = describe_robot(robot.model)
        chain = KinematicChain.from_manifest(described["kinematics"], described["joint_names"])
        trained = robot.motion.limits
        limits = SafetyLimits(lower=trained.lower, upper=trained.upper,
                              velocity=trained.velocity, acceleration=trained.acceleration,
                              max_step=trained.max_step, workspace_low=np.full(3, -10.0),
                              workspace_high=np.full(3, 10.0))
        safety = SafetyLayer(limits, chain, base.world.control_period_s)
        virtual = VirtualController(base.world)
        setpoints, joints, flags = [], [], set()
        with InProcessController(virtual, owns_controller=False) as controller:
            safety.reset(controller.read_state().joint_positions)
            for target in targets:
                command = safety.filter(target.astype(np.float32))
                flags.update(command.flags)
                controller.send_joint_targets(command.positions)
                setpoints.append(robot.motor_targets()[0])
                joints.append(robot.joint_positions())
        virtual.close()
        return np.array(setpoints), np.array(joints), flags
    finally:
        env.close()


def test_the_env_and_the_deployment_path_move_the_arm_alike():
    # Probe the physics once for the robot's limits, then drive both paths.
    env = gym.make("celltwin/Reach-v0", control="joint_position")
    targets = _far_targets(env.unwrapped.robot, STEPS)
    env.close()
    trained_setpoints, trained_joints = _trajectory_in_env(targets)
    deployed_setpoints, deployed_joints, flags = _trajectory_through_the_adapter_path(targets)
    # The limits did act: speed, acceleration and per-step change all cut these targets.
    assert {"joint_velocity", "joint_acceleration"} <= flags
    np.testing.assert_allclose(trained_setpoints, deployed_setpoints, atol=1e-6)
    np.testing.assert_allclose(trained_joints, deployed_joints, atol=1e-6)
    # And the set-points kept the law: speed and acceleration within the limits.
    env = gym.make("celltwin/Reach-v0", control="joint_position")
    limits, dt = env.unwrapped.robot.motion.limits, env.unwrapped.world.control_period_s
    env.close()
    velocity = np.diff(trained_setpoints, axis=0) / dt
    assert np.all(np.abs(velocity) <= limits.velocity + 1e-9)
    assert np.all(np.abs(np.diff(velocity, axis=0)) / dt <= limits.acceleration + 1e-6)


def test_the_limiter_starts_from_rest_after_a_reset_and_follows_direct_commands():
    limits = JointMotionLimits.from_speeds([-1.0, -1.0], [1.0, 1.0], [2.0, 0.0])
    assert limits.acceleration[0] == pytest.approx(10.0) and np.isinf(limits.velocity[1])
    limiter = JointMotionLimiter(limits, 0.04)
    limiter.reset([0.0, 0.0])
    first = limiter([0.5, 0.25])
    # From rest, the first step is bounded by acceleration (10 * 0.04 * 0.04 = 0.016 rad);
    # the joint without a URDF speed limit (bounded only by the 0.1 rad per-step change) is
    # slowed by the same factor, so the move stays on its line in joint space.
    np.testing.assert_allclose(first, [0.016, 0.008])
    # Where the joints' intervals admit no common factor (moving one way, asked the other),
    # each joint is clipped on its own and still never leaves its interval.
    both = JointMotionLimits.from_speeds([-1.0, -1.0], [1.0, 1.0], [2.0, 2.0])
    moving = np.array([2.0, -2.0])
    velocity, _ = limit_velocity(both, np.zeros(2), moving, np.array([0.2, 0.2]), 0.04)
    np.testing.assert_allclose(velocity, [2.0, -1.6])
    limiter.follow([0.1, 0.1])
    assert limiter.v[0] == pytest.approx((0.1 - 0.016) / 0.04)
    velocity, flags = limit_velocity(limits, np.zeros(2), np.zeros(2), np.array([0.9, 0.0]), 0.04)
    assert "joint_acceleration" in flags and velocity[1] == 0.0
