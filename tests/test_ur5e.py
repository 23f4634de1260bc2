"""The shipped UR5e: Universal Robots' kinematics, a robot check that passes, and its example
cell `ur5e_suction_station` (belt in, suction pick, box out) that layout runs, envs and the
scripted experts work in."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest

from celltwin.envs import ENV_IDS
from celltwin.robots import Kinematics, get_robot_model
from celltwin.robots.check import check_robot
from celltwin.robots.kinematics import quaternion_angle

CELL = "ur5e_suction_station"
# Universal Robots' published DH parameters of the UR5e [m, rad].
D = (0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996)
A = (0.0, -0.425, -0.3922, 0.0, 0.0, 0.0)
ALPHA = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)
CUP_M = 0.08  # celltwin's suction cup: its face, the TCP, this far along the flange's z axis


def dh_flange(q) -> np.ndarray:
    """The flange frame in UR's base frame, by the DH convention (4 x 4)."""
    frame = np.eye(4)
    for theta, d, a, alpha in zip(q, D, A, ALPHA):
        ct, st, ca, sa = math.cos(theta), math.sin(theta), math.cos(alpha), math.sin(alpha)
        frame = frame @ np.array([[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st],
                                  [0.0, sa, ca, d], [0.0, 0.0, 0.0, 1.0]])
    return frame


def test_the_kinematics_are_universal_robots_published_parameters():
    model = get_robot_model("ur5e")
    assert model.dof == 6 and model.suction is not None
    rng = np.random.default_rng(7)
    with Kinematics(model) as kinematics:
        for q in [np.zeros(6), *rng.uniform(kinematics.lower, kinematics.upper, (20, 6))]:
            flange = dh_flange(q)
            tcp = flange[:3, 3] + CUP_M * flange[:3, 2]
            # ROS's base_link (x forward) is UR's base frame turned by 180 deg about z.
            expected = np.array([-tcp[0], -tcp[1], tcp[2]])
            assert kinematics.fk(q)[0] == pytest.approx(expected, abs=1e-6)


def test_robot_check_round_trips_and_self_collision(tmp_path):
    report = check_robot(get_robot_model("ur5e"), ik_samples=200, reach_samples=200)
    assert report.ik_success_share >= 0.99
    assert report.worst_success_position_error_m <= 1e-3
    assert report.self_collisions == [] and report.points_down_at_home
    # Home: the cup straight down, 0.5 m ahead of the base and 0.3 m above it.
    assert report.tcp_home_xyz == pytest.approx((0.5, 0.0, 0.3), abs=1e-3)


def test_the_cell_checks_and_every_target_is_reached(cli):
    result = cli("cell", "check", CELL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pick_belt_end      by arm        reachable" in result.stdout


def test_a_layout_run_places_ten_of_ten(cli, tmp_path):
    result = cli("layout", "run", CELL, "--parts", "10", "--out", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"cell '{CELL}': 10 in = 10 out + 0 in process + 0 dropped + 0 missed" in result.stdout


@pytest.mark.parametrize("task", ["Reach", "Push", "PickPlace", "ConveyorPick"])
@pytest.mark.parametrize("control", ["ee_delta", "joint_delta"])
def test_envs_on_the_ur5e_cell_pass_gymnasium_and_sb3_check_env(task, control):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    assert f"celltwin/{task}-v0" in ENV_IDS
    env = gym.make(f"celltwin/{task}-v0", cell=CELL, control=control)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unbounded Box warnings are expected
            gym_check_env(env.unwrapped, skip_render_check=True)
            sb3_check_env(env.unwrapped, warn=False)
    finally:
        env.close()


def test_the_ee_delta_controller_holds_the_cup_pointing_down():
    env = gym.make("celltwin/ConveyorPick-v0", cell=CELL)
    try:
        env.reset(seed=0)
        robot = env.unwrapped.robot
        home_quat = robot.ee_pose()[1]
        for action in ([1, 0, -1, 1], [0, -1, 0, 1], [-1, 1, 1, 1]):
            for _ in range(5):
                env.step(np.array(action, dtype=np.float32))
            # At full speed the joint acceleration limits (core.joint_motion), per joint, let
            # the wrist trail a few degrees, as on the deployed arm; the IK brings it back.
            assert quaternion_angle(robot.ee_pose()[1], home_quat) < math.radians(6)
        for _ in range(5):
            env.step(np.array([0, 0, 0, 1], dtype=np.float32))
        assert quaternion_angle(robot.ee_pose()[1], home_quat) < math.radians(2)
    finally:
        env.close()


def test_the_suction_conveyor_expert_picks_cartons_off_the_belt_into_the_box():
    from celltwin.experts.by_task import make_expert

    env = gym.make("celltwin/ConveyorPick-v0", cell=CELL)
    expert, successes = make_expert(env), 0
    try:
        for seed in range(10):
            observation, _ = env.reset(seed=seed)
            expert.reset()
            while True:
                observation, _, terminated, truncated, info = env.step(expert(observation))
                if terminated or truncated:
                    break
            successes += info["is_success"]
    finally:
        env.close()
    assert successes == 10


def test_a_suction_policy_exports_and_deploys_to_the_twin(cli, tmp_path):
    """A bundle's robot section holds a suction cup (no finger joints, its width range), and
    the adapter's gripper set-points drive its vacuum on the twin."""
    import torch
    from stable_baselines3 import SAC

    from celltwin.policies.bundle import load_bundle
    from celltwin.policies.export import export_trained
    from celltwin.training.config import TrainConfig
    from celltwin.training.run_dir import Trained

    torch.set_num_threads(1)
    env = gym.make("celltwin/PickPlace-v0", cell=CELL)
    model = SAC("MultiInputPolicy", env, learning_starts=32, buffer_size=500, seed=0,
                policy_kwargs=dict(net_arch=[16, 16]))
    model.learn(48)
    config = TrainConfig(task="PickPlace", env={"cell": CELL})
    export_trained(Trained(model=model, config=config, obs_rms=None, summary={}),
                   tmp_path / "bundle")
    env.close()
    robot = load_bundle(tmp_path / "bundle").manifest["robot"]
    assert robot["model"] == "ur5e" and robot["gripper"] == {"joint_names": [],
                                                             "width_range_m": [0.0, 0.03]}
    result = cli("deploy", tmp_path / "bundle", "--controller", "twin", "--episodes", "1",
                 "--steps", "10", "--fast")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "episode 1:" in result.stdout
