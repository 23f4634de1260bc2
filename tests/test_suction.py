"""The suction cup: it seals on a part's face within its tolerance, lets go when the vacuum goes
off or the pull exceeds its rated force, and the experts, envs, layout runs, snapshots,
PhysicsParams, randomization and the served twin all work with it.

The robot is a robot file written here: the KUKA iiwa from pybullet_data with celltwin's suction
cup on its media flange, in a hand-written table cell.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from celltwin.core.errors import PhysicsParamsError
from celltwin.envs import ENV_IDS
from celltwin.experts.by_task import make_expert
from celltwin.training.evaluation import run_episodes
from celltwin.physics import PhysicsParams
from celltwin.randomization import RandomizationError
from celltwin.robots import Kinematics, load_robot_file
from celltwin.world import World

ROBOT_FILE = """\
name: iiwa_suction
urdf: kuka_iiwa/model.urdf
urdf_package: pybullet_data
arm_joints: [lbr_iiwa_joint_1, lbr_iiwa_joint_2, lbr_iiwa_joint_3, lbr_iiwa_joint_4,
             lbr_iiwa_joint_5, lbr_iiwa_joint_6, lbr_iiwa_joint_7]
home_deg: [0, 25.2, 0, -101.4, 0, 53.4, 0]
end_effector:
  type: suction
  mount_link: lbr_iiwa_link_7
  xyz_m: [0, 0, 0.045]
"""

CELL = """\
name: suction_table
robots:
  - {name: arm, model: iiwa_suction.yaml, base: {xyz: [0.0, 0.0, 0.75]}}
equipment:
  - {name: table, shape: box, size_m: [1.1, 0.8, 0.75], pose: {xyz: [0.4, 0.0, 0.375]}}
parts:
  - {name: part, shape: box, size_m: [0.04, 0.04, 0.04], mass_kg: 0.1, friction: 0.8,
     spawn: object_space}
spawn_regions:
  - {name: object_space, on: table, low_m: [0.05, -0.1, 0.395], high_m: [0.2, 0.1, 0.395]}
  - {name: goal_space, low_m: [0.45, -0.1, 0.8], high_m: [0.6, 0.1, 0.95]}
targets:
  - {name: pick_part, relative_to: table, pose: {xyz: [0.125, 0.0, 0.395], rpy_deg: [180, 0, 0]}}
  - {name: place_spot, pose: {xyz: [0.52, 0.25, 0.77], rpy_deg: [180, 0, 0]}}
"""

PART_TOP_Z = 0.79  # the 4 cm cube rests on the 0.75 m table


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suction")
    (folder / "iiwa_suction.yaml").write_text(ROBOT_FILE)
    (folder / "cell.yaml").write_text(CELL)
    return folder


@pytest.fixture
def world(files):
    with World(files / "cell.yaml") as world:
        yield world


def put_cup(world: World, xyz, steps: int = 1) -> None:
    """Teleport the arm so that the cup's face is at ``xyz`` pointing down, then step."""
    robot = world.robot()
    with Kinematics(robot.model, robot.base_xyz, robot.base_quat_xyzw) as kinematics:
        down = kinematics.fk(robot.model.home)[1]
        result = kinematics.ik(xyz, down, position_tol_m=1e-4)
    assert result.reachable, result.reason
    robot.reset_joints(result.q)
    world.step(steps)


def part_xyz(world: World) -> np.ndarray:
    return world.part_pose("part")[0]


def vacuum(world: World, on: bool, steps: int = 1) -> None:
    closed, opened = world.robot().model.gripper_width_range_m
    world.robot().command_gripper_width(closed if on else opened)
    world.step(steps)


def lift(world: World, height_m: float, steps: int = 40) -> None:
    """Raise the cup by ``height_m`` in small joint-space steps (the arm's own motors)."""
    robot = world.robot()
    start = robot.ee_pose()[0]
    with Kinematics(robot.model, robot.base_xyz, robot.base_quat_xyzw) as kinematics:
        down = kinematics.fk(robot.model.home)[1]
        for fraction in np.linspace(0.0, 1.0, steps)[1:]:
            q = kinematics.ik(start + [0.0, 0.0, height_m * fraction], down,
                              seed=robot.joint_positions()).q
            robot.command_joint_positions(q)
            world.step()


# --- the model ---------------------------------------------------------------------------


def test_a_suction_robot_file_builds_a_cup_without_finger_joints(files):
    model = load_robot_file(files / "iiwa_suction.yaml")
    assert model.suction is not None and model.gripper_joint_names == ()
    assert model.suction.force_n == 30.0 and model.suction.seal_tolerance_m == 0.003
    assert model.gripper_width_range_m == (0.0, 0.03)  # the cup's diameter
    with Kinematics(model) as kinematics:
        position, quat = kinematics.fk(model.home)
    assert abs(quat[1]) == pytest.approx(1.0, abs=1e-3)  # the cup points straight down


def test_robot_check_passes_for_the_suction_robot(cli, files, tmp_path):
    result = cli("robot", "check", files / "iiwa_suction.yaml", "--samples", "20",
                 "-o", tmp_path / "reach.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-collision at home: none" in result.stdout


# --- sealing and letting go ---------------------------------------------------------------


@pytest.mark.parametrize("gap_m, seals", [(0.001, True), (0.0025, True), (0.006, False)])
def test_the_cup_seals_on_a_face_within_its_seal_tolerance(world, gap_m, seals):
    x, y, _ = part_xyz(world)
    put_cup(world, [x, y, PART_TOP_Z + gap_m])
    assert world.robot().gripper_width() == pytest.approx(0.03)  # vacuum off: open
    vacuum(world, True)
    cup = world.robot().suction
    assert (cup.held == world.body("part")) is seals
    # The cup's state as an opening: closed holding, half open with the vacuum on and nothing.
    assert world.robot().gripper_width() == pytest.approx(0.0 if seals else 0.015)


def test_the_cup_does_not_seal_on_a_side_face_or_on_a_fixed_body(world):
    x, y, z = part_xyz(world)
    # Beside the part, its rim 1 mm from the part's side face: that face does not face it.
    put_cup(world, [x + 0.02 + 0.015 + 0.001, y, z])
    vacuum(world, True, steps=3)
    assert world.robot().suction.held is None
    # On the table, away from the part: the table has no mass, it is no part.
    vacuum(world, False)
    put_cup(world, [x, y + 0.15, 0.7505])
    vacuum(world, True, steps=3)
    assert world.robot().suction.held is None


def test_a_held_part_rises_with_the_cup_and_falls_when_the_vacuum_goes_off(world):
    x, y, _ = part_xyz(world)
    put_cup(world, [x, y, PART_TOP_Z + 0.001])
    vacuum(world, True)
    lift(world, 0.1)
    assert part_xyz(world)[2] == pytest.approx(0.77 + 0.1, abs=0.005)
    vacuum(world, False, steps=25)
    assert world.robot().suction.held is None
    assert part_xyz(world)[2] == pytest.approx(0.77, abs=0.005)  # back on the table


@pytest.mark.parametrize("mass_kg, force_n, held", [(1.0, 30.0, True), (1.0, 5.0, False),
                                                     (5.0, 30.0, False)])
def test_a_pull_beyond_the_rated_force_tears_the_part_off(files, mass_kg, force_n, held):
    physics = PhysicsParams.from_mapping({"bodies": {"part": {"mass_kg": mass_kg}},
                                          "robots": {"arm": {"suction_force_n": force_n}}})
    with World(files / "cell.yaml", physics=physics) as world:
        assert world.robot().suction.force_n == force_n  # PhysicsParams reach the cup
        x, y, _ = part_xyz(world)
        put_cup(world, [x, y, PART_TOP_Z + 0.001])
        vacuum(world, True)
        assert world.robot().suction.held is not None
        lift(world, 0.1, steps=60)  # gently: the part's weight is the pull
        assert (world.robot().suction.held is not None) is held
        assert bool(part_xyz(world)[2] > 0.85) is held


def test_a_snapshot_holds_the_grip_and_restores_it(world):
    x, y, _ = part_xyz(world)
    put_cup(world, [x, y, PART_TOP_Z + 0.001])
    vacuum(world, True)
    lift(world, 0.05)
    snapshot = world.snapshot()
    lifted = part_xyz(world)
    vacuum(world, False, steps=25)
    assert part_xyz(world)[2] < lifted[2] - 0.04
    world.restore(snapshot)
    assert world.robot().suction.held == world.body("part")
    assert np.allclose(part_xyz(world), lifted)
    lift(world, 0.05)  # held again: it goes up with the cup
    assert part_xyz(world)[2] == pytest.approx(lifted[2] + 0.05, abs=0.005)


# --- PhysicsParams and randomization ------------------------------------------------------


def test_physics_params_read_and_set_the_cup(world):
    actuation = world.physics_params().robots["arm"]
    assert (actuation.suction_force_n, actuation.suction_seal_tolerance_m) == (30.0, 0.003)
    world.apply_physics(PhysicsParams.from_mapping(
        {"robots": {"arm": {"suction_seal_tolerance_m": 0.001}}}))
    assert world.robot().suction.seal_tolerance_m == 0.001
    x, y, _ = part_xyz(world)
    put_cup(world, [x, y, PART_TOP_Z + 0.0025])  # sealed with 3 mm, not with 1 mm
    vacuum(world, True)
    assert world.robot().suction.held is None


def test_suction_params_on_a_robot_without_a_cup_are_a_located_error():
    with World("table_top") as world:
        assert world.physics_params().robots["arm"].suction_force_n is None
        with pytest.raises(PhysicsParamsError) as caught:
            world.apply_physics(PhysicsParams.from_mapping(
                {"robots": {"arm": {"suction_force_n": 20.0}}}))
    (problem,) = caught.value.problems
    assert problem.path == "robots.arm.suction_force_n" and "no suction cup" in problem.message


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf])
def test_an_invalid_suction_force_is_refused(value):
    with pytest.raises(PhysicsParamsError):
        PhysicsParams.from_mapping({"robots": {"arm": {"suction_force_n": value}}})


def test_randomization_draws_the_suction_force(files):
    terms = {"name": "vacuum", "terms": [
        {"target": "{robot}", "parameter": "suction_force_n",
         "distribution": {"type": "uniform", "low": 0.5, "high": 0.6}}]}
    env = gym.make("celltwin/PickPlace-v0", cell=str(files / "cell.yaml"), randomization=terms)
    try:
        _, info = env.reset(seed=3)
        drawn = info["randomization"]["arm.suction_force_n"]
        assert 15.0 <= drawn <= 18.0
        assert env.unwrapped.robot.suction.force_n == pytest.approx(drawn)
        # The shipped presets draw it too; without one, the nominal force comes back.
        env.unwrapped.set_randomization("standard")
        _, info = env.reset(seed=3)
        assert "arm.suction_force_n" in info["randomization"]
        env.unwrapped.set_randomization(None)
        env.reset(seed=3)
        assert env.unwrapped.robot.suction.force_n == 30.0
    finally:
        env.close()


def test_a_suction_term_on_a_robot_without_a_cup_is_an_error_in_a_file_not_in_a_preset():
    terms = {"name": "vacuum", "terms": [
        {"target": "{robot}", "parameter": "suction_force_n",
         "distribution": {"type": "uniform", "low": 0.5, "high": 0.6}}]}
    with pytest.raises(RandomizationError, match="no suction cup"):
        gym.make("celltwin/PickPlace-v0", randomization=terms)
    env = gym.make("celltwin/PickPlace-v0", randomization="standard")  # the Panda's fingers
    try:
        _, info = env.reset(seed=0)
        assert not any("suction" in key for key in info["randomization"])
    finally:
        env.close()


# --- envs, experts, layout runs, the served twin --------------------------------------------


def test_the_gripper_action_switches_the_vacuum_and_the_observation_says_so(files):
    env = gym.make("celltwin/PickPlace-v0", cell=str(files / "cell.yaml"))
    try:
        observation, _ = env.reset(seed=0)
        width = env.unwrapped.layout.slices["gripper_width"]
        assert observation["observation"][width] == pytest.approx(0.03)  # vacuum off
        observation, *_ = env.step(np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32))
        assert observation["observation"][width] == pytest.approx(0.015)  # on, nothing held
        observation, *_ = env.step(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32))
        assert observation["observation"][width] == pytest.approx(0.03)
    finally:
        env.close()


def run_expert(env, episodes: int) -> int:
    """Episodes the task's scripted expert succeeds in, over seeds 0 to ``episodes - 1``."""
    outcome = run_episodes(env, make_expert(env), episodes, seed=0)
    return round(outcome.success_rate * episodes)


def test_the_suction_pick_place_expert_succeeds(files):
    assert "celltwin/PickPlace-v0" in ENV_IDS
    env = gym.make("celltwin/PickPlace-v0", cell=str(files / "cell.yaml"))
    try:
        assert type(make_expert(env)).__name__ == "ReactiveSuctionExpert"
        assert run_expert(env, 20) >= 19
    finally:
        env.close()


@pytest.mark.slow
def test_the_suction_experts_succeed_under_the_standard_preset(files):
    env = gym.make("celltwin/PickPlace-v0", cell=str(files / "cell.yaml"),
                   randomization="standard")
    try:
        assert run_expert(env, 100) >= 95
    finally:
        env.close()
    env = gym.make("celltwin/ConveyorPick-v0", robot=str(files / "iiwa_suction.yaml"),
                   randomization="standard")
    try:
        assert run_expert(env, 60) >= 51  # 85 %
    finally:
        env.close()


def test_the_suction_conveyor_expert_picks_off_the_belt(files):
    env = gym.make("celltwin/ConveyorPick-v0", robot=str(files / "iiwa_suction.yaml"))
    try:
        assert type(make_expert(env)).__name__ == "ReactiveSuctionConveyorExpert"
        assert run_expert(env, 5) == 5
    finally:
        env.close()


def test_push_never_grips_with_a_suction_cup(files):
    # Push holds the gripper closed; a cup held closed keeps its vacuum off.
    env = gym.make("celltwin/Push-v0", cell=str(files / "cell.yaml"))
    try:
        assert env.unwrapped.robot.suction is None
        assert run_expert(env, 3) >= 2
    finally:
        env.close()


def test_a_layout_run_places_every_part_with_the_suction_cup(cli, files, tmp_path):
    result = cli("layout", "run", files / "cell.yaml", "--parts", "3", "--out", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 in = 3 out + 0 in process + 0 dropped + 0 missed" in result.stdout


def test_the_served_twin_maps_its_gripper_set_point_to_the_vacuum(files):
    from celltwin.serve.virtual_controller import VirtualController

    world = World(files / "cell.yaml")
    x, y, _ = part_xyz(world)
    put_cup(world, [x, y, PART_TOP_Z + 0.001])
    with VirtualController(world, owns_world=True) as controller:
        assert controller.state().gripper_width_m == pytest.approx(0.03)
        assert controller.command(None, 0.0) is True  # below the middle: vacuum on
        controller.tick(2)
        assert controller.state().gripper_width_m == pytest.approx(0.0)  # holding
        assert world.robot().suction.held == world.body("part")
        controller.command(None, 0.03)
        controller.tick(2)
        assert world.robot().suction.held is None


@pytest.mark.parametrize("edit, path, words", [
    (("mount_link: lbr_iiwa_link_7", "mount_link: lbr_iiwa_link_77"), "end_effector.mount_link",
     "did you mean 'lbr_iiwa_link_7'"),
    (("xyz_m: [0, 0, 0.045]", "xyz_m: [0, 0, 0.045]\n  seal_tolerance_m: 0.05"),
     "end_effector.seal_tolerance_m", "0.01"),
    (("xyz_m: [0, 0, 0.045]", "xyz_m: [0, 0, 0.045]\n  force_n: 0"), "end_effector.force_n",
     "must be > 0"),
    (("xyz_m: [0, 0, 0.045]", "xyz_m: [0, 0, 0.045]\n  width_m: [0, 0.03]"),
     "end_effector.width_m", "unknown key"),
])
def test_a_mistake_in_a_suction_end_effector_is_one_located_error(cli, tmp_path, edit, path,
                                                                   words):
    robot_file = tmp_path / "iiwa_suction.yaml"
    robot_file.write_text(ROBOT_FILE.replace(*edit))
    result = cli("robot", "check", robot_file)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {robot_file}:") and f": {path}: " in line, line
    assert words in line, line
