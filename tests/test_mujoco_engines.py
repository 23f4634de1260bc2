"""Either engine behind one interface: `celltwin serve --engine mujoco` read by the adapter over
OPC UA, `celltwin deploy --engine mujoco` in process, tracked bodies through the one pose
accessor both worlds answer, and a randomized robot base where it really is."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mujoco")   # an extra: without it this module is skipped, not failed

from celltwin.mujoco.controller import MujocoVirtualController  # noqa: E402
from celltwin.serve.virtual_controller import VirtualController  # noqa: E402
from celltwin.world import World  # noqa: E402


def test_serve_engine_mujoco_is_read_by_the_adapter_and_deploy_succeeds(cli, reacher_bundle):
    command = [sys.executable, "-m", "celltwin.cli.main", "serve", "pick_station",
               "--engine", "mujoco", "--insecure", "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        first = server.stdout.readline()   # printed once the server listens
        assert "serving robot 'arm' (panda) at opc.tcp://127.0.0.1:" in first, \
            server.stderr.read()
        assert server.stdout.readline().strip() == "engine: mujoco"
        endpoint = first.split(" at ")[1].strip()
        result = cli("deploy", reacher_bundle, "--controller", endpoint,
                     "--goal", "0.45", "0.1", "0.25", "--steps", "100", "--wait-s", "30")
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success 1/1" in result.stdout, result.stdout
    assert server.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_deploy_runs_the_bundle_in_the_mujoco_twin_in_process(cli, reacher_bundle, tmp_path):
    result = cli("deploy", reacher_bundle, "--controller", "twin", "--engine", "mujoco",
                 "--fast", "--episodes", "3", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success 3/3" in result.stdout


@pytest.mark.parametrize("args, words", [
    (["--controller", "opc.tcp://127.0.0.1:4840", "--goal", "0.45", "0.1", "0.25"],
     ["--engine", "--controller twin"]),
    (["--controller", "twin", "--video", "v.gif"], ["--video", "--engine pybullet"]),
])
def test_deploy_engine_where_it_means_nothing_is_one_error(cli, reacher_bundle, tmp_path,
                                                          args, words):
    args = [str(tmp_path / a) if a.endswith(".gif") else a for a in args]
    result = cli("deploy", reacher_bundle, "--engine", "mujoco", *args)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and all(word in line for word in words), line


def test_tracked_bodies_and_a_randomized_base_agree_between_engines():
    # A base offset is what the `standard` preset's base_x_m / base_y_m draw: the body moves,
    # the controller keeps reporting in the frame it believes (a calibration error).
    with World("pick_station") as world:
        world.move_base("arm", 0.01, -0.02, 0.05)
        bullet = VirtualController(world, tracked_objects=("part", "can"))
        with MujocoVirtualController.of_world(world, tracked_objects=("part", "can")) as mj:
            for name in ("part", "can"):
                np.testing.assert_allclose(mj.state().objects[name],
                                           bullet.state().objects[name], atol=1e-6)
            np.testing.assert_allclose(mj.world.robot().ee_pose()[0],
                                       world.robot().ee_pose()[0], atol=1e-6)
            np.testing.assert_allclose(mj.robot.base_xyz, world.robot().base_xyz)


# --- the suction cup --------------------------------------------------------------------------


def _scripted_pick(twin) -> tuple[float, float]:
    """Let the carton reach the end stop, press the cup on it with the vacuum on, lift 15 cm;
    the carton's height before and after the lift [m]."""
    from celltwin.robots.kinematics import Kinematics

    robot = twin.robot()
    twin.step(100)
    carton, _ = twin.part_pose("carton")
    _, down = robot.ee_pose()
    top = carton[2] + 0.02   # the carton is 40 mm tall
    with Kinematics(robot.model, robot.base_xyz, robot.base_quat_xyzw) as kinematics:
        above = kinematics.ik([carton[0], carton[1], top + 0.1], down,
                              seed=robot.joint_positions()).q
        touch = kinematics.ik([carton[0], carton[1], top - 0.001], down, seed=above).q
        lift = kinematics.ik([carton[0], carton[1], top + 0.15], down, seed=above).q
    for q, steps, vacuum in ((above, 40, False), (touch, 30, True), (lift, 40, True)):
        robot.command_gripper_width(0.0 if vacuum else robot.model.gripper_width_range_m[1])
        robot.command_joint_positions(q)
        twin.step(steps)
    return carton[2], twin.part_pose("carton")[0][2]


def test_the_mujoco_suction_cup_lifts_a_carton_and_lets_go():
    from celltwin.mujoco.twin import MujocoTwin

    with MujocoTwin("ur5e_suction_station") as twin:
        robot = twin.robot()
        assert robot.has_gripper and robot.gripper_width() == 0.03   # vacuum off: open
        before, after = _scripted_pick(twin)
        assert after - before > 0.13 and robot.suction.held == "carton"
        assert robot.gripper_width() == 0.0   # holding: the vacuum sensor says closed
        held = twin.snapshot()
        robot.command_gripper_width(0.03)     # vacuum off: it falls back onto the belt
        twin.step(25)
        assert robot.suction.held is None and twin.part_pose("carton")[0][2] < before + 0.01
        twin.restore(held)                    # a snapshot keeps the grip
        twin.step(10)
        assert robot.suction.held == "carton"
        assert twin.part_pose("carton")[0][2] > before + 0.13


def test_a_carton_heavier_than_the_rated_force_is_lost_as_in_pybullet():
    from celltwin.mujoco.twin import MujocoTwin
    from celltwin.physics import PhysicsParams, RobotActuation

    # 0.15 kg weighs 1.47 N: a 1 N vacuum seals on it but cannot lift it.
    weak = PhysicsParams(robots={"arm": RobotActuation(suction_force_n=1.0)})
    with MujocoTwin("ur5e_suction_station", physics=weak) as twin:
        assert twin.robot().suction.force_n == 1.0
        before, after = _scripted_pick(twin)
        assert twin.robot().suction.held is None and after < before + 0.01


# --- the gap ----------------------------------------------------------------------------------


def test_gap_runs_the_same_episodes_in_both_engines_and_writes_table_and_chart(
        cli, reacher_bundle, tmp_path):
    import json

    result = cli("gap", reacher_bundle, "--episodes", "3", "--steps", "60", "--out", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pybullet: success 3/3" in result.stdout and "mujoco: success 3/3" in result.stdout
    report = json.loads((tmp_path / "gap.json").read_text())
    seeds = {engine: [e["seed"] for e in episodes]
             for engine, episodes in report["episodes"].items()}
    assert seeds == {"pybullet": [1000, 1001, 1002], "mujoco": [1000, 1001, 1002]}
    assert report["difference"]["success_rate"]["mean"] == 0.0
    low, high = report["difference"]["final_distance_m"]["ci95"]
    assert low <= report["difference"]["final_distance_m"]["mean"] <= high
    table = (tmp_path / "gap.md").read_text()
    assert "| mujoco | 3/3 (100 %)" in table and "MuJoCo - pybullet" in table
    assert (tmp_path / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_statistics_and_the_phase_a_failure_stopped_in():
    from celltwin.policies.gap import failed_phase, mcnemar_p, paired_bootstrap

    mean, low, high = paired_bootstrap([1, 1, 1, 1, 0] * 4, [1, 0, 1, 1, 0] * 4)
    assert mean == pytest.approx(-0.2) and low < mean < high <= 0.0
    assert mcnemar_p([1, 1, 0], [1, 1, 0]) == 1.0
    assert mcnemar_p([1] * 10, [0] * 10) < 0.01
    assert failed_phase(True, 0.0, 0.2) is None
    assert failed_phase(False, 0.10, 0.0) == "approach"
    assert failed_phase(False, 0.01, 0.002) == "grasp"
    assert failed_phase(False, 0.01, 0.10) == "carry"


# --- bad input and randomized draws -------------------------------------------------------------


def test_a_randomized_part_variant_is_built_with_its_centre_of_mass():
    from celltwin.mujoco.source import TwinSource
    from celltwin.mujoco.twin import MujocoTwin

    with World("pick_station") as world:
        world.rebuild_part("part", size_scale=1.05, com_m=(0.004, -0.003, 0.002))
        twin = MujocoTwin.from_source(TwinSource.of_world(world))
        np.testing.assert_allclose(twin.pose("part")[0], world.pose("part")[0], atol=1e-6)
        np.testing.assert_allclose(twin.part_pose("part")[0], world.part_pose("part")[0],
                                   atol=1e-6)
        body = twin.model.body(twin.cell.parts["part"].body).id
        _, _, inertia = world.client.getDynamicsInfo(world.body("part"), -1)[:3]
        np.testing.assert_allclose(twin.model.body_inertia[body], inertia, rtol=1e-6)


@pytest.mark.parametrize("physics, words", [
    ("bodies:\n  part: {restitution: 0.4}\n  part_bin: {restitution: 0.2}\n",
     ["restitution", "'part'", "'part_bin'"]),
    ("bodies:\n  can: {restitution: 0.4}\n  infeed: {restitution: 0.2}\n",
     ["restitution", "'can'", "'infeed'"]),
])
def test_serve_refuses_what_mujoco_cannot_express_in_one_line(cli, tmp_path, physics, words):
    path = tmp_path / "physics.yaml"
    path.write_text(physics)
    result = cli("serve", "pick_station", "--engine", "mujoco", "--insecure", "--port", "0",
                 "--physics", path)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and all(word in line for word in words), line


def test_a_part_named_as_a_robot_link_is_refused_naming_both(cli, tmp_path):
    # One PhysicsParams key for two bodies: each engine would read the other's mass.
    cell = tmp_path / "cell.yaml"
    cell.write_text(
        "name: names\nrobots: [{name: arm, model: panda, base: {xyz: [0, 0, 0.4]}}]\n"
        "bins:\n  - {name: tray, size_m: [0.2, 0.2, 0.03], pose: {xyz: [0.5, -0.4, 0]}}\n"
        "parts:\n  - {name: arm/panda_link1, shape: box, size_m: [0.04, 0.04, 0.04], "
        "mass_kg: 0.2, spawn: in_tray}\n"
        "spawn_regions:\n  - {name: in_tray, on: tray, low_m: [0, 0, 0.031], "
        "high_m: [0, 0, 0.031]}\n")
    result = cli("serve", cell, "--engine", "mujoco", "--insecure", "--port", "0")
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "'arm/panda_link1'" in line and "robot 'arm'" in line


def test_without_mujoco_serving_its_engine_says_what_to_install():
    # One subprocess (an interpreter start is seconds): serve and deploy share the one engine
    # switch (cli.common.virtual_controller); gap checks MuJoCo before any episode the same way.
    args = ["serve", "pick_station", "--engine", "mujoco", "--insecure", "--port", "0"]
    script = ("import sys; sys.modules['mujoco'] = None\n"  # as if it were not installed
              "from celltwin.cli.main import main\n"
              f"sys.exit(main({args!r}))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        'error: MuJoCo is not installed (expected the mujoco extra: '
        'pip install "celltwin[mujoco]")']
    assert "serving" not in result.stdout


@pytest.mark.parametrize("hover_m, seals", [(0.0015, True), (0.006, False)])
def test_the_cup_seals_within_the_seal_tolerance_only(hover_m, seals):
    from celltwin.mujoco.twin import MujocoTwin
    from celltwin.robots.kinematics import Kinematics

    with MujocoTwin("ur5e_suction_station") as twin:   # seal tolerance 3 mm
        robot = twin.robot()
        twin.step(100)
        carton, _ = twin.part_pose("carton")
        _, down = robot.ee_pose()
        with Kinematics(robot.model, robot.base_xyz, robot.base_quat_xyzw) as kinematics:
            q = kinematics.ik([carton[0], carton[1], carton[2] + 0.02 + hover_m], down,
                              seed=robot.joint_positions()).q
        robot.command_joint_positions(q)
        twin.step(40)
        assert robot.suction.held is None
        robot.command_gripper_width(0.0)
        twin.step(2)
        assert (robot.suction.held == "carton") is seals


def test_suction_values_for_a_robot_without_a_cup_are_refused_as_in_pybullet():
    from celltwin.core.errors import PhysicsParamsError
    from celltwin.mujoco.twin import MujocoTwin
    from celltwin.physics import PhysicsParams, RobotActuation

    cupless = PhysicsParams(robots={"arm": RobotActuation(suction_force_n=10.0)})
    messages = []
    for build in (lambda: World("pick_station"), lambda: MujocoTwin("pick_station")):
        with build() as twin:
            with pytest.raises(PhysicsParamsError) as raised:
                twin.apply_physics(cupless)
            messages.append([str(p) for p in raised.value.problems])
    assert messages[0] == messages[1] and "no suction cup" in messages[0][0]
