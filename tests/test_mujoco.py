"""The MuJoCo twin: built from the same cell and PhysicsParams as the pybullet world, driven by
the deployment adapter through the controller interface, and measured against pybullet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import trimesh

pytest.importorskip("mujoco")   # an extra: without it this module is skipped, not failed

from celltwin.core.errors import PhysicsParamsError, WorldError
from celltwin.mujoco.compare import compare_engines, rise_time
from celltwin.mujoco.controller import MujocoVirtualController
from celltwin.mujoco.errors import MujocoError
from celltwin.mujoco.source import TwinSource
from celltwin.mujoco.twin import MujocoTwin
from celltwin.physics import BodyDynamics, PhysicsParams
from celltwin.policies.deploy.adapter import Adapter
from celltwin.robots.registry import get_robot_model, robot_model_names
from celltwin.serve.in_process import InProcessController
from celltwin.spec import load_cell
from celltwin.world import World

REACH = "celltwin.envs:celltwin/Reach-v0"  # the module part registers the ids


@pytest.fixture(scope="module")
def pick_station():
    """The pybullet world of pick_station (with a heavier part) and its MuJoCo twin."""
    physics = PhysicsParams(bodies={"part": BodyDynamics(mass_kg=0.25, lateral_friction=0.6)})
    world = World("pick_station", physics=physics)
    twin = MujocoTwin.from_source(TwinSource.of_world(world))
    yield world, twin
    world.close()


# --- one builder, one mapping ---------------------------------------------------------------


def test_the_twin_takes_every_value_from_the_cell_and_its_physics_params(pick_station):
    world, twin = pick_station
    model, params = twin.model, world.physics_params()
    assert model.opt.timestep == params.timestep_s == world.spec.physics.timestep_s
    assert twin.control_period_s == pytest.approx(world.control_period_s)
    np.testing.assert_allclose(model.opt.gravity, world.spec.physics.gravity_mps2)
    assert model.opt.iterations == params.solver_iterations
    for name in world.parts:  # free parts, with the overridden mass
        assert model.body(name).mass[0] == pytest.approx(params.bodies[name].mass_kg)
        np.testing.assert_allclose(twin.part_pose(name)[0], world.part_pose(name)[0], atol=1e-9)
    assert model.body("part").mass[0] == pytest.approx(0.25)
    for key, entry in params.bodies.items():  # robot links: the URDF's masses, as simulated
        if "/" in key:
            assert model.body(key).mass[0] == pytest.approx(entry.mass_kg)
    # Friction per contact pair: Bullet's product of the two bodies' coefficients.
    pair = next(i for i in range(model.npair)
                if {model.geom(model.pair_geom1[i]).name, model.geom(model.pair_geom2[i]).name}
                == {"part", "part_bin/floor"})
    assert model.pair_friction[pair][0] == pytest.approx(0.6 * params.bodies["part_bin"]
                                                         .lateral_friction)
    # Motors bound by the joints' force limits (the driven finger drives two: twice the grip).
    robot = world.robot()
    limits = [params.joints[f"arm/{joint}"].force_limit for joint in robot.model.arm_joint_names]
    np.testing.assert_allclose(model.actuator_forcerange[:7, 1], limits)
    assert model.actuator_forcerange[7, 1] == pytest.approx(2 * robot.gripper_force_n)
    # The belt's surface runs at the conveyor's speed.
    belt = model.geom("infeed").id
    assert model.geom_surfacevel[belt][0] == pytest.approx(world.conveyors["infeed"].speed_mps)


def test_cad_equipment_collides_as_the_hulls_pybullet_collides_with(tmp_path):
    bracket = trimesh.util.concatenate([
        trimesh.creation.box(extents=[200.0, 100.0, 20.0]),
        trimesh.creation.box(extents=[20.0, 100.0, 150.0],
                             transform=trimesh.transformations.translation_matrix([90, 0, 85]))])
    bracket.export(tmp_path / "bracket.stl")
    (tmp_path / "cell.yaml").write_text(textwrap.dedent("""
        name: bracket_cell
        robots: [{name: arm, model: panda}]
        equipment:
          - {name: fixture, shape: mesh, mesh: bracket.stl, mesh_units: mm,
             pose: {xyz: [0.5, 0, 0]}}
        """))
    with World(tmp_path / "cell.yaml") as world:
        twin = MujocoTwin.from_source(TwinSource.of_world(world))
        hulls = [twin.model.geom(i).name for i in range(twin.model.ngeom)
                 if twin.model.geom(i).name.startswith("fixture/hull")]
        assert len(hulls) == world.meshes["fixture"].hulls >= 2


def test_cell_names_that_mujoco_uses_itself_still_build(tmp_path):
    # MuJoCo calls its world body `world`, and the robot's elements `arm/<link>`. (A part
    # named after a simulated link, `arm/panda_link1`, would share that link's PhysicsParams
    # key, in pybullet as well: panda_hand is merged into link 7 and has no key of its own.)
    (tmp_path / "cell.yaml").write_text(textwrap.dedent("""
        name: names
        robots: [{name: arm, model: panda, base: {xyz: [0, 0, 0.4]}}]
        equipment:
          - {name: world, shape: box, size_m: [0.3, 0.3, 0.4], pose: {xyz: [0, 0, 0.2]}}
        bins:
          - {name: tray, size_m: [0.2, 0.2, 0.03], pose: {xyz: [0.5, -0.4, 0]}}
        parts:
          - {name: arm/panda_hand, shape: box, size_m: [0.04, 0.04, 0.04], mass_kg: 0.2,
             spawn: in_tray}
        spawn_regions:
          - {name: in_tray, on: tray, low_m: [0, 0, 0.031], high_m: [0, 0, 0.031]}
        """))
    with World(tmp_path / "cell.yaml") as world:
        twin = MujocoTwin.from_source(TwinSource.of_world(world))
        np.testing.assert_allclose(twin.pose("world")[0], [0, 0, 0.2], atol=1e-9)
        np.testing.assert_allclose(twin.part_pose("arm/panda_hand")[0],
                                   world.part_pose("arm/panda_hand")[0], atol=1e-9)
        assert twin.physics_params().bodies["arm/panda_hand"].mass_kg == 0.2
        twin.step(10)  # the part settles on the tray's 1 cm floor, the robot on its pedestal
        world.step(10)
        np.testing.assert_allclose(twin.part_pose("arm/panda_hand")[0], [0.5, -0.4, 0.03],
                                   atol=1e-4)
        np.testing.assert_allclose(twin.part_pose("arm/panda_hand")[0],
                                   world.part_pose("arm/panda_hand")[0], atol=1e-4)


def test_snapshots_replay_bit_exactly(pick_station):
    _, twin = pick_station
    start = twin.snapshot()
    robot = twin.robot()
    robot.command_joint_positions(robot.joint_positions() + 0.05)
    robot.command_gripper_width(0.02)
    twin.step(5)
    middle = twin.snapshot()
    twin.step(5)
    first = (twin.data.qpos.copy(), twin.data.qvel.copy())
    twin.restore(middle)
    twin.step(5)
    np.testing.assert_array_equal(twin.data.qpos, first[0])
    np.testing.assert_array_equal(twin.data.qvel, first[1])
    twin.restore(start)


def test_physics_changes_act_and_unknown_names_are_refused():
    with MujocoTwin("reach_table") as twin:
        twin.apply_physics(PhysicsParams(bodies={"arm/panda_link7": BodyDynamics(mass_kg=2.0)},
                                         gravity_mps2=(0.0, 0.0, -9.0)))
        assert twin.model.body("arm/panda_link7").mass[0] == pytest.approx(2.0)
        assert twin.model.opt.gravity[2] == pytest.approx(-9.0)
        assert twin.physics_params().bodies["arm/panda_link7"].mass_kg == 2.0
        with pytest.raises(PhysicsParamsError, match="arm/panda_link77"):
            twin.apply_physics(PhysicsParams(bodies={"arm/panda_link77": BodyDynamics()}))
        with pytest.raises(PhysicsParamsError, match="table.*fixed in place"):
            twin.apply_physics(PhysicsParams(bodies={"table": BodyDynamics(mass_kg=3.0)}))
    with pytest.raises(WorldError, match="closed"):
        twin.step()


# --- agreement with pybullet ----------------------------------------------------------------


@pytest.mark.parametrize("model", robot_model_names())
def test_kinematics_and_step_responses_agree_for_every_shipped_robot(model):
    report = compare_engines(load_cell("reach_table").with_robot_model(model), fk_samples=50)
    kinematics = [check for check in report.checks if check.limit == 1e-3]
    steps = [check for check in report.checks if check.section == "step response"]
    assert len(kinematics) == 1 and kinematics[0].error < 1e-3
    assert len(steps) == get_robot_model(model).dof
    assert all(check.passed for check in steps), [(c.name, c.error) for c in steps]
    assert report.ok


def test_a_step_response_that_touches_something_says_so(cli, tmp_path):
    # A post right where the Panda's hand is at home: the steps push against it.
    (tmp_path / "cell.yaml").write_text(textwrap.dedent("""
        name: crowded
        robots: [{name: arm, model: panda}]
        equipment:
          - {name: post, shape: box, size_m: [0.2, 0.2, 0.2], pose: {xyz: [0.64, 0, 0.1]}}
        """))
    result = cli("twin", "compare", tmp_path / "cell.yaml", "--samples", "5", "--out", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "outside their limit" in result.stdout
    report = json.loads((tmp_path / "agreement.json").read_text())
    failed = [check for check in report["checks"] if check["passed"] is False]
    assert failed and all("touched 'post'" in check["note"] for check in failed)


def test_rise_time_interpolates_between_samples():
    trace = np.array([0.05, 0.15, 0.5, 0.85, 0.95, 1.0])  # samples at 1..6 ms
    assert rise_time(trace, 0.0, 1.0, 0.001) == pytest.approx(0.0045 - 0.0015)
    assert rise_time(trace[:3], 0.0, 1.0, 0.001) is None


def test_cli_compare_reports_parts_and_conveyors(cli, tmp_path):
    result = cli("twin", "compare", "pick_station", "--samples", "20", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "agreement: ok" in result.stdout
    report = json.loads((tmp_path / "agreement.json").read_text())
    checks = {check["name"]: check for check in report["checks"]}
    travel = checks["infeed: can travel along the belt"]
    assert travel["pybullet"] == pytest.approx(0.2, abs=0.005)   # 2 s at 0.1 m/s
    assert travel["mujoco"] == pytest.approx(0.2, abs=0.005)
    assert checks["part settling position"]["error"] < 0.002
    assert report["engines"]["mujoco"] and report["ok"] is True
    assert "| step response |" in (tmp_path / "agreement.md").read_text()


# --- the controller interface ---------------------------------------------------------------


def test_the_adapter_drives_the_mujoco_twin_to_reach_goals(reacher_bundle, tmp_path):
    env = gym.make(REACH)
    goals = [env.reset(seed=300 + episode)[0]["desired_goal"].copy() for episode in range(5)]
    env.close()
    virtual = MujocoVirtualController.from_cell("reach_table", held_grippers=("arm",))
    start = virtual.world.snapshot()
    with InProcessController(virtual) as controller, \
            Adapter(reacher_bundle, controller, goals[0], paced=False,
                    telemetry=tmp_path / "t.jsonl") as adapter:
        for goal in goals:
            virtual.rebase(lambda: virtual.world.restore(start))
            adapter.set_goal(goal)
            adapter.rearm()
            summary = adapter.run(50)
            adapter.stop("episode finished")
            assert summary.success and summary.stop_reason is None, summary
            tcp, _ = virtual.world.robot().ee_pose()
            to_goal = tcp - (goal + virtual.robot.base_xyz)  # goals are in the base frame
            assert np.linalg.norm(to_goal) < 0.05


def test_the_adapter_reads_the_mujoco_twin_over_opcua_on_loopback(reacher_bundle):
    from celltwin.policies.deploy.opcua_client import OpcUaController
    from celltwin.serve.opcua_server import ServerSecurity, ServerThread

    virtual = MujocoVirtualController.from_cell("reach_table", held_grippers=("arm",))
    server = ServerThread(virtual, port=0, security=ServerSecurity(insecure=True))
    server.start()
    try:
        assert server.endpoint.startswith("opc.tcp://127.0.0.1:")
        with OpcUaController(server.endpoint) as controller, \
                Adapter(reacher_bundle, controller, [0.5, 0.1, 0.25]) as adapter:
            summary = adapter.run(150)
    finally:
        server.stop()
        virtual.close()
    assert summary.success and summary.stop_reason is None, summary


def test_the_mujoco_controller_holds_on_a_stop_and_reports_tracked_bodies():
    with MujocoVirtualController.from_cell("pick_station", tracked_objects=("part",),
                                           latency_steps=2) as controller:
        state = controller.state()
        part, _ = controller.world.pose("part")
        np.testing.assert_allclose(state.objects["part"], part - controller.robot.base_xyz)
        before = controller.active_setpoint
        assert controller.command(before + 0.1)
        controller.tick(2)
        np.testing.assert_array_equal(controller.active_setpoint, before)  # 2 ticks latency
        controller.tick()
        np.testing.assert_allclose(controller.active_setpoint, before + 0.1)
        controller.raise_emergency_stop()
        assert controller.command(before) is False
        held = controller.robot.joint_positions()
        controller.tick(5)
        np.testing.assert_allclose(controller.robot.joint_positions(), held, atol=2e-3)


# --- bad input ------------------------------------------------------------------------------


def test_a_bounce_mujoco_cannot_express_is_one_error_line_per_pair(cli, tmp_path):
    physics = tmp_path / "bounce.yaml"
    physics.write_text("bodies:\n  part: {restitution: 0.5}\n  part_bin: {restitution: 0.3}\n")
    result = cli("twin", "compare", "pick_station", "--physics", physics, "--out", tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines == [line for line in lines if line.startswith("error: ")] and len(lines) == 1
    assert "restitution" in lines[0] and "'part'" in lines[0] and "'part_bin'" in lines[0]
    with pytest.raises(MujocoError, match="restitution"):
        MujocoTwin("pick_station", physics=PhysicsParams.load(physics))


def test_a_run_directory_that_is_a_file_is_refused_before_measuring(cli, tmp_path):
    (tmp_path / "taken").write_text("")
    result = cli("twin", "compare", "reach_table", "--out", tmp_path / "taken")
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()   # the shared output_dir type: before any measuring
    assert line.startswith("error: celltwin twin compare: argument --out: ")
    assert "is an existing file, not a folder" in line


def test_without_mujoco_the_command_says_what_to_install(tmp_path):
    script = ("import sys; sys.modules['mujoco'] = None\n"  # as if it were not installed
              "from celltwin.cli.main import main\n"
              f"sys.exit(main(['twin', 'compare', 'reach_table', '--out', {str(tmp_path)!r}]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'error: MuJoCo is not installed (expected the mujoco extra: '
        'pip install "celltwin[mujoco]")']
