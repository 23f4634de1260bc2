"""Robot files: your own arm from a URDF in a folder of yours, checked, registered, in a cell.

The arm is written here: a 6-DOF URDF laid out as a ROS package (``my_arm/urdf``,
``my_arm/meshes``) whose base is an ASCII STL named by ``package://``, with celltwin's
parallel jaw on its ``tool0`` flange. It builds, passes ``celltwin robot check``, and the
scripted PickPlace expert succeeds with it in a cell written here too; every class of mistake
in a robot file is one located ``error:`` line and exit code 2.
"""

from __future__ import annotations

import math
import re
import struct
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from celltwin.envs import ENV_IDS
from celltwin.experts.by_task import make_expert
from celltwin.training.evaluation import run_episodes
from celltwin.robots import (Kinematics, RobotError, get_robot_model, load_robot_file, register,
                             robot_model_names, unregister)
from celltwin.robots.check import check_robot

# --- the arm ---------------------------------------------------------------------------------

LINKS = [  # name, mass [kg], cylinder radius and length [m] along its z axis
    ("link1", 3.0, 0.06, 0.10), ("link2", 3.0, 0.05, 0.40), ("link3", 2.0, 0.04, 0.30),
    ("link4", 1.0, 0.035, 0.05), ("link5", 1.0, 0.035, 0.05), ("link6", 0.5, 0.03, 0.02)]
JOINTS = [  # name, parent, child, z offset [m], axis, limits [deg], effort [N m]
    ("joint1", "base_link", "link1", 0.10, "0 0 1", 170, 150),
    ("joint2", "link1", "link2", 0.10, "0 1 0", 120, 150),
    ("joint3", "link2", "link3", 0.40, "0 1 0", 160, 150),
    ("joint4", "link3", "link4", 0.30, "0 0 1", 170, 30),
    ("joint5", "link4", "link5", 0.05, "0 1 0", 125, 30),
    ("joint6", "link5", "link6", 0.05, "0 0 1", 350, 30)]
HOME_DEG = [0, 30, 90, 0, 60, 0]  # TCP 0.50 m ahead of the base, 0.23 m up, pointing down


def _urdf() -> str:
    lines = ['<?xml version="1.0"?>', '<robot name="my_arm">', '  <link name="base_link">',
             '    <inertial><mass value="5"/>'
             '<inertia ixx="0.1" ixy="0" ixz="0" iyy="0.1" iyz="0" izz="0.1"/></inertial>']
    for kind in ("visual", "collision"):
        lines.append(f'    <{kind}><origin xyz="0 0 0.05"/><geometry>'
                     f'<mesh filename="package://my_arm/meshes/base.stl"/></geometry></{kind}>')
    lines.append("  </link>")
    for name, mass, radius, length in LINKS:
        geometry = (f'<origin xyz="0 0 {length / 2}"/><geometry><cylinder radius="{radius}" '
                    f'length="{length}"/></geometry>')
        lines.append(f'  <link name="{name}"><inertial><mass value="{mass}"/><inertia ixx="0.01" '
                     f'ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial>'
                     f'<visual>{geometry}</visual><collision>{geometry}</collision></link>')
    lines.append('  <link name="tool0"/>')
    for name, parent, child, z, axis, limit, effort in JOINTS:
        lines.append(f'  <joint name="{name}" type="revolute"><parent link="{parent}"/>'
                     f'<child link="{child}"/><origin xyz="0 0 {z}"/><axis xyz="{axis}"/>'
                     f'<limit lower="{-math.radians(limit)}" upper="{math.radians(limit)}" '
                     f'effort="{effort}" velocity="3.14"/></joint>')
    lines += ['  <joint name="tool0_joint" type="fixed"><parent link="link6"/>'
              '<child link="tool0"/><origin xyz="0 0 0.02"/></joint>', "</robot>", ""]
    return "\n".join(lines)


def _ascii_stl_box(half: tuple[float, float, float]) -> str:
    corners = [(sx * half[0], sy * half[1], sz * half[2])
               for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
             (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    out = ["solid base"]
    for face in faces:
        out += ["  facet normal 0 0 0", "    outer loop"]
        out += [f"      vertex {x} {y} {z}" for x, y, z in (corners[i] for i in face)]
        out += ["    endloop", "  endfacet"]
    return "\n".join(out + ["endsolid base", ""])


ROBOT_FILE = """\
# My own arm: a 6-DOF URDF of mine, with celltwin's parallel-jaw gripper on its flange.
name: my_arm
description: hand-written 6-DOF arm
urdf: my_arm/urdf/my_arm.urdf
arm_joints: [joint1, joint2, joint3, joint4, joint5, joint6]
home_deg: [0, 30, 90, 0, 60, 0]
end_effector:
  type: parallel_jaw
  mount_link: tool0
"""

# The table_top example's layout (docs/cells.md), with the arm named by its robot file.
CELL = """\
name: my_cell
robots:
  - name: arm
    model: robots/my_arm.yaml
    base: {xyz: [0.0, 0.0, 0.75]}
    control: ee_delta
equipment:
  - {name: table, shape: box, size_m: [1.1, 0.8, 0.75], pose: {xyz: [0.4, 0.0, 0.375]}}
parts:
  - {name: part, shape: box, size_m: [0.04, 0.04, 0.04], mass_kg: 0.1, friction: 0.8,
     spawn: object_space}
spawn_regions:
  - {name: object_space, low_m: [0.40, -0.15, 0.77], high_m: [0.65, 0.15, 0.77]}
  - {name: goal_space, low_m: [0.40, -0.15, 0.77], high_m: [0.65, 0.15, 0.97]}
"""

# The shipped Panda's URDF and fingers, read from pybullet_data, joint 1 limited to +-90 deg.
PANDA_FILE = """\
urdf: franka_panda/panda.urdf
urdf_package: pybullet_data
arm_joints: [panda_joint1, panda_joint2, panda_joint3, panda_joint4, panda_joint5,
             panda_joint6, panda_joint7]
tcp: {link: panda_hand, xyz_m: [0, 0, 0.105]}
home_deg: [0, 23.49, 0, -106, 0, 129.49, 45.26]
joint_limits:
  panda_joint1: {lower_deg: -90, upper_deg: 90}
end_effector: {type: own, finger_joints: [panda_finger_joint1, panda_finger_joint2],
               width_m: [0, 0.08]}
"""


@pytest.fixture
def arm(tmp_path) -> Path:
    """The robot file ``robots/my_arm.yaml`` beside its package ``robots/my_arm/``."""
    package = tmp_path / "robots" / "my_arm"
    (package / "urdf").mkdir(parents=True)
    (package / "meshes").mkdir()
    (package / "urdf" / "my_arm.urdf").write_text(_urdf())
    (package / "meshes" / "base.stl").write_text(_ascii_stl_box((0.08, 0.08, 0.05)))
    robot_file = tmp_path / "robots" / "my_arm.yaml"
    robot_file.write_text(ROBOT_FILE)
    return robot_file


def _line(path: Path, marker: str) -> int:
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


# --- it builds -------------------------------------------------------------------------------


def test_robot_file_builds_a_model_with_its_mesh_loaded(arm):
    model = load_robot_file(arm)
    assert model.name == "my_arm" and model.dof == 6 and model.source == str(arm)
    assert np.allclose(np.degrees(model.home), HOME_DEG)
    # The package:// mesh resolved from the file's folder; the ASCII STL became one pybullet
    # reads (binary), so the base has its box: 16 x 16 cm seen from above.
    meshes = re.findall(r'filename="([^"]+)"', model.merged_urdf().path.read_text())
    assert meshes and all(Path(mesh).is_file() for mesh in meshes)
    assert all(len(Path(mesh).read_bytes()) == 84 + 50 * 12 for mesh in meshes
               if mesh.endswith(".stl"))
    with Kinematics(model) as kinematics:
        position, quat = kinematics.fk(model.home)
        assert np.allclose(kinematics.lower, np.radians([-170, -120, -160, -170, -125, -350]))
    # TCP: the gripper's, 75 mm below the palm bolted to tool0, pointing straight down.
    assert position == pytest.approx([0.503, 0.0, 0.226], abs=1e-3)
    assert abs(quat[1]) == pytest.approx(1.0, abs=1e-6)


def test_robot_check_passes_and_draws_the_reach_envelope(cli, arm, tmp_path):
    png, report = tmp_path / "reach.png", tmp_path / "report.json"
    result = cli("robot", "check", arm, "-o", png, "--json", report)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # nothing from pybullet (the STL it could not read is converted)
    done, tried = map(int, re.search(r"IK round trips: (\d+)/(\d+)", result.stdout).groups())
    assert tried == 200 and done / tried >= 0.95
    for text in ("joint6", "-350.0", "FK at home", "points down", "self-collision at home: none",
                 f"reach envelope: {png}", "OK"):
        assert text in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"success_share"' in report.read_text()


def test_robot_check_of_a_registered_name_writes_its_png_in_the_working_folder(
        cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("robot", "check", "xarm6", "--samples", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "xarm6.reach.png").is_file()


def test_check_finds_links_in_contact_at_home(arm):
    arm.write_text(arm.read_text().replace("[0, 30, 90, 0, 60, 0]", "[0, 30, 90, 0, 120, 0]"))
    # Folded down by 120 deg at joint 5, the flange and gripper sit in the forearm.
    report = check_robot(load_robot_file(arm), ik_samples=5, reach_samples=5)
    assert report.self_collisions and not report.ok(0.0)


@pytest.mark.slow
def test_scripted_pick_place_expert_succeeds_with_the_arm_in_a_hand_written_cell(arm, tmp_path):
    assert "celltwin/PickPlace-v0" in ENV_IDS
    cell = tmp_path / "my_cell.yaml"
    cell.write_text(CELL)
    env = gym.make("celltwin/PickPlace-v0", cell=str(cell))
    try:
        successes = round(run_episodes(env, make_expert(env), 20, seed=0).success_rate * 20)
    finally:
        env.close()
    assert successes >= 19, f"{successes}/20"


@pytest.mark.parametrize("control", ["ee_delta", "joint_delta"])
def test_envs_on_the_hand_written_cell_pass_gymnasium_and_sb3_check_env(arm, tmp_path, control):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    cell = tmp_path / "my_cell.yaml"
    cell.write_text(CELL)
    env = gym.make("celltwin/PickPlace-v0", cell=str(cell), control=control)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unbounded Box warnings are expected
            gym_check_env(env.unwrapped, skip_render_check=True)
            sb3_check_env(env.unwrapped, warn=False)
    finally:
        env.close()


# --- every mistake is one located error --------------------------------------------------------


def _wrong_joint(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(arm.read_text().replace("joint3,", "jiont3,"))
    return arm, "arm_joints[2]", "did you mean 'joint3'"


def _missing_mesh(arm: Path) -> tuple[Path, str, str]:
    (arm.parent / "my_arm" / "meshes" / "base.stl").unlink()
    return arm.parent / "my_arm" / "urdf" / "my_arm.urdf", "link[base_link]", "mesh file not found"


def _tcp_link_absent(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(arm.read_text() + "tcp:\n  link: tol0\n")
    return arm, "tcp.link", "did you mean 'tool0'"


def _home_outside_limits(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(arm.read_text().replace("[0, 30, 90, 0, 60, 0]", "[0, 30, 170, 0, 60, 0]"))
    return arm, "home_deg[2]", "[-160, 160] deg"


def _urdf_not_xml(arm: Path) -> tuple[Path, str, str]:
    urdf = arm.parent / "my_arm" / "urdf" / "my_arm.urdf"
    urdf.write_text(_urdf().replace('<link name="tool0"/>', '<link name="tool0">'))
    return urdf, "", "not valid XML"


def _unsupported_mesh(arm: Path) -> tuple[Path, str, str]:
    urdf = arm.parent / "my_arm" / "urdf" / "my_arm.urdf"
    (arm.parent / "my_arm" / "meshes" / "base.ply").write_text("ply\n")
    urdf.write_text(_urdf().replace("base.stl", "base.ply"))
    return urdf, "link[base_link]", "pybullet cannot load '.ply' meshes"


def _wrong_finger_joint(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(PANDA_FILE.replace("panda_finger_joint2]", "panda_joint7]"))
    return arm, "end_effector.finger_joints[1]", "joint 'panda_joint7' is revolute"


def _unknown_key(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(arm.read_text().replace("description:", "descripton:"))
    return arm, "descripton", "did you mean 'description'"


def _limit_of_no_arm_joint(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(arm.read_text() + "joint_limits:\n  jont2: {upper_deg: 90}\n")
    return arm, "joint_limits.jont2", "did you mean 'joint2'"


def _joints_out_of_order(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(arm.read_text().replace("joint1, joint2", "joint2, joint1"))
    return arm, "arm_joints", "base to wrist, are joint1, joint2"


def _urdf_missing(arm: Path) -> tuple[Path, str, str]:
    arm.write_text(arm.read_text().replace("my_arm/urdf/my_arm.urdf", "my_arm/my_arm.urdf"))
    return arm, "urdf", "URDF file not found"


@pytest.mark.parametrize("mistake", [
    _wrong_joint, _missing_mesh, _tcp_link_absent, _home_outside_limits, _urdf_not_xml,
    _unsupported_mesh, _wrong_finger_joint, _unknown_key, _limit_of_no_arm_joint,
    _joints_out_of_order, _urdf_missing], ids=lambda mistake: mistake.__name__.strip("_"))
def test_a_mistake_in_a_robot_file_is_one_located_error(cli, arm, mistake):
    file, path, words = mistake(arm)
    result = cli("robot", "check", arm)
    assert result.returncode == 2 and result.stdout == ""
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    location = re.match(r"error: (.+?):(\d+): (?:([\w.\[\]]+): )?", errors[0])
    assert location and location.group(1) == str(file), errors[0]
    assert (location.group(3) or "") == path and words in errors[0]
    # The line is the one of the key (or the URDF's <mesh> element) the problem is about.
    line = file.read_text().splitlines()[int(location.group(2)) - 1]
    marker = "mesh" if path.startswith("link[") else path.split(".")[-1].split("[")[0]
    assert marker in line, (errors[0], line)


def test_home_line_is_the_line_of_the_home_pose(arm):
    _home_outside_limits(arm)
    with pytest.raises(RobotError) as caught:
        load_robot_file(arm)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (str(arm), _line(arm, "home_deg"),
                                                          "home_deg[2]")
    assert problem.value == 170


# --- cells and the registry ------------------------------------------------------------------


def test_a_cell_names_the_robot_by_path_and_reports_its_file_problems(cli, arm, tmp_path):
    cell = tmp_path / "my_cell.yaml"
    cell.write_text(CELL)
    assert cli("cell", "check", cell).returncode == 0
    _wrong_joint(arm)
    result = cli("cell", "check", cell)
    (error,) = result.stderr.splitlines()
    assert result.returncode == 2
    assert error.startswith(f"error: {cell}:{_line(cell, 'model:')}: robots[0].model: robot file: "
                            f"{arm}:{_line(arm, 'arm_joints')}: arm_joints[2]: ")


def test_register_adds_a_model_that_cells_and_envs_name(arm, tmp_path):
    assert "my_arm_2" not in robot_model_names()
    model = register("my_arm_2", arm)
    try:
        assert model.name == "my_arm_2" and get_robot_model("my_arm_2") == model
        assert "my_arm_2" in robot_model_names()
        with pytest.raises(RobotError, match="registered already"):
            register("my_arm_2", arm)
        cell = tmp_path / "cell.yaml"
        cell.write_text(CELL.replace("robots/my_arm.yaml", "my_arm_2"))
        env = gym.make("celltwin/PickPlace-v0", cell=str(cell))
        try:
            observation, _ = env.reset(seed=0)
            assert env.unwrapped.robot.model.name == "my_arm_2"
        finally:
            env.close()
        # A RobotModel from Python registers too, and is loaded once to check it.
        assert register("my_arm_3", model).name == "my_arm_3"
        unregister("my_arm_3")
    finally:
        unregister("my_arm_2")
    assert "my_arm_2" not in robot_model_names()


@pytest.mark.parametrize("name, words", [("panda", "shipped robot model"),
                                         ("my/arm", "invalid robot model name"),
                                         ("arm.yaml", "invalid robot model name")])
def test_register_refuses_shipped_and_invalid_names(arm, name, words):
    with pytest.raises(RobotError, match=words):
        register(name, arm)


def test_own_fingers_from_a_package_resource_match_the_shipped_panda(tmp_path):
    robot_file = tmp_path / "panda_copy.yaml"
    robot_file.write_text(PANDA_FILE)
    model, panda = load_robot_file(robot_file), get_robot_model("panda")
    assert model.name == "panda_copy" and model.gripper_joint_names == panda.gripper_joint_names
    with Kinematics(model) as mine, Kinematics(panda) as shipped:
        assert np.allclose(mine.fk(panda.home)[0], shipped.fk(panda.home)[0], atol=1e-6)
        assert math.degrees(mine.lower[0]) == pytest.approx(-90)  # overridden
        assert np.allclose(mine.lower[1:], shipped.lower[1:])  # the URDF's


def test_continuous_arm_joints_get_two_turns_of_limits(arm):
    urdf = arm.parent / "my_arm" / "urdf" / "my_arm.urdf"
    text = _urdf().replace('name="joint6" type="revolute"', 'name="joint6" type="continuous"')
    urdf.write_text(text)
    with Kinematics(load_robot_file(arm)) as kinematics:
        assert kinematics.lower[5] == pytest.approx(-2 * math.pi)
        assert kinematics.upper[5] == pytest.approx(2 * math.pi)


def test_a_tcp_offset_moves_the_tcp_along_its_link(arm):
    model = load_robot_file(arm)
    arm.write_text(arm.read_text() + "tcp: {link: tcp, xyz_m: [0, 0, 0.01]}\n")
    offset = load_robot_file(arm)
    with Kinematics(model) as plain, Kinematics(offset) as moved:
        # The gripper points down at home: 10 mm further along its z axis is 10 mm lower.
        assert moved.fk(model.home)[0] - plain.fk(model.home)[0] == pytest.approx(
            [0.0, 0.0, -0.01], abs=1e-6)


def test_binary_stl_is_used_as_it_is(arm):
    mesh = arm.parent / "my_arm" / "meshes" / "base.stl"
    header = b"solid but binary".ljust(80, b" ")  # some exporters start binary files so
    triangle = struct.pack("<12fH", 0, 0, 1, 0, 0, 0, 0.1, 0, 0, 0, 0.1, 0, 0)
    mesh.write_bytes(header + struct.pack("<I", 1) + triangle)
    meshes = re.findall(r'filename="([^"]+)"', load_robot_file(arm).urdf_path().read_text())
    assert str(mesh) in meshes


# --- the docs stay true ----------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "robots.md"


def test_docs_describe_every_key_and_their_robot_files_load(tmp_path, arm):
    from celltwin.robots.description import (JointLimitSpec, OwnFingers, ParallelJaw, RobotFile,
                                             SuctionCup, TcpSpec)

    text = DOCS.read_text()
    missing = [f"{model.__name__}.{key}" for model in (RobotFile, TcpSpec, JointLimitSpec,
                                                       OwnFingers, ParallelJaw, SuctionCup)
               for key in model.model_fields if f"`{key}`" not in text]
    assert not missing
    # Step 2 of "ten minutes" is the arm of these tests; the complete examples load as they are.
    step = re.search(r"\*\*2\. Write the robot file.*?```yaml\n(.*?)```", text, re.S).group(1)
    arm.write_text(step)
    assert load_robot_file(arm).dof == 6
    examples = re.findall(r"```yaml\n(.*?)```", text[text.index("## A complete example"):], re.S)
    assert len(examples) == 2
    for index, example in enumerate(examples):
        robot_file = tmp_path / f"example_{index}.yaml"
        robot_file.write_text(example)
        model = load_robot_file(robot_file)
        with Kinematics(model) as kinematics, Kinematics(get_robot_model(
                ("kuka_iiwa", "panda")[index])) as shipped:
            assert np.allclose(kinematics.fk(model.home)[0], shipped.fk(model.home)[0],
                               atol=1e-6)


def test_the_reach_envelope_follows_an_edited_robot_file_of_the_same_name(arm):
    from celltwin.layout.check import reach_envelope_m

    before = reach_envelope_m(load_robot_file(arm))
    urdf = arm.parent / "my_arm" / "urdf" / "my_arm.urdf"
    # The upper arm 0.2 m longer: the same name, another arm.
    urdf.write_text(_urdf().replace('<origin xyz="0 0 0.4"/><axis xyz="0 1 0"/>',
                                    '<origin xyz="0 0 0.6"/><axis xyz="0 1 0"/>'))
    assert reach_envelope_m(load_robot_file(arm)) > before + 0.1
