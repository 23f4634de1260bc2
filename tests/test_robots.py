"""Robot models, URDF composition and the runtime Robot handle (robots/registry, urdf, robot)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pybullet
import pytest
from pybullet_utils.bullet_client import BulletClient

from celltwin.robots import Robot, RobotError, get_robot_model, robot_model_names
from celltwin.robots.kinematics import quaternion_angle
from celltwin.robots.urdf import GripperMount, compose_urdf
from celltwin.core.resources import asset_path

MODELS = robot_model_names()
# The grippers with fingers; the suction cup (ur5e) has tests of its own (test_suction.py).
FINGER_MODELS = [name for name in MODELS if get_robot_model(name).suction is None]
TIMESTEP_S = 1.0 / 500.0


@pytest.fixture
def client():
    world = BulletClient(connection_mode=pybullet.DIRECT)
    world.setGravity(0.0, 0.0, -9.81)
    world.setTimeStep(TIMESTEP_S)
    try:
        yield world
    finally:
        world.disconnect()


def _step(client, n: int) -> None:
    for _ in range(n):
        client.stepSimulation()


# --- registry ------------------------------------------------------------------------------


def test_registry_lists_the_shipped_models():
    assert MODELS == ["kuka_iiwa", "panda", "ur5e", "xarm6"]


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(RobotError) as caught:
        get_robot_model("pandaa")
    problem = caught.value.problems[0]
    assert "did you mean 'panda'" in problem.message
    assert problem.expected == "one of: kuka_iiwa, panda, ur5e, xarm6"
    assert problem.value == "pandaa"


@pytest.mark.parametrize("name", MODELS)
def test_model_is_consistent(name):
    model = get_robot_model(name)
    assert model.dof == len(model.home) == len(model.arm_joint_names)
    closed, opened = model.gripper_width_range_m
    assert 0.0 <= closed < opened
    assert model.gripper_force_n > 0
    assert model.urdf_path().is_file()


# --- URDF composition ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kuka_iiwa", "xarm6"])
def test_composed_urdf_has_gripper_and_absolute_meshes(name):
    root = ET.parse(get_robot_model(name).urdf_path()).getroot()
    links = {link.get("name") for link in root.findall("link")}
    assert {"gripper_palm", "gripper_left_finger", "gripper_right_finger", "tcp"} <= links
    assert "world" not in links
    meshes = [mesh.get("filename") for mesh in root.iter("mesh")]
    assert meshes and all(Path(m).is_absolute() and Path(m).is_file() for m in meshes)


def test_composition_is_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLTWIN_CACHE", str(tmp_path))
    import pybullet_data
    arm = Path(pybullet_data.getDataPath()) / "kuka_iiwa/model.urdf"
    mount = GripperMount(asset_path("robots/grippers/parallel_jaw.urdf"), "lbr_iiwa_link_7",
                         (0.0, 0.0, 0.045))
    first = compose_urdf("kuka_iiwa", arm, mount)
    built_at = first.stat().st_mtime_ns
    assert compose_urdf("kuka_iiwa", arm, mount) == first
    assert first.stat().st_mtime_ns == built_at
    assert first.parent == tmp_path / "robots"
    moved = GripperMount(mount.gripper_urdf, mount.flange_link, (0.0, 0.0, 0.05))
    assert compose_urdf("kuka_iiwa", arm, moved) != first


def test_composition_rejects_an_unknown_flange(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLTWIN_CACHE", str(tmp_path))
    import pybullet_data
    arm = Path(pybullet_data.getDataPath()) / "kuka_iiwa/model.urdf"
    mount = GripperMount(asset_path("robots/grippers/parallel_jaw.urdf"), "lbr_iiwa_link_77")
    with pytest.raises(RobotError, match="did you mean 'lbr_iiwa_link_7'"):
        compose_urdf("kuka_iiwa", arm, mount)


# --- Robot ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_robot_loads_with_named_joints_and_home_pointing_down(client, name):
    model = get_robot_model(name)
    robot = Robot(client, model, "robot")
    for joint in model.arm_joint_names + model.gripper_joint_names:
        assert robot.joint_index(joint) >= 0
    assert robot.link_index(model.ee_link) == robot.ee_link_index
    home = np.array(model.home)
    assert np.all(robot.arm_lower + 0.1 < home) and np.all(home < robot.arm_upper - 0.1)
    np.testing.assert_allclose(robot.joint_positions(), model.home, atol=1e-9)
    assert robot.gripper_width() == pytest.approx(model.gripper_width_range_m[1])
    pos, quat = robot.ee_pose()
    tool_z = np.array(client.getMatrixFromQuaternion(quat.tolist())).reshape(3, 3)[:, 2]
    assert tool_z @ np.array([0.0, 0.0, -1.0]) > 0.999
    assert 0.4 <= pos[0] <= 0.65 and abs(pos[1]) < 1e-3 and 0.18 <= pos[2] <= 0.35
    # Held at home by its motors: gravity does not pull it away.
    _step(client, 200)
    np.testing.assert_allclose(robot.joint_positions(), model.home, atol=2e-3)


def test_unknown_joint_and_link_names_are_reported(client):
    robot = Robot(client, get_robot_model("panda"), "left_arm")
    with pytest.raises(RobotError, match="did you mean 'panda_joint1'"):
        robot.joint_index("panda_joint_1")
    with pytest.raises(RobotError, match="left_arm"):
        robot.link_index("panda_hnd")


def test_robot_base_pose_is_applied(client):
    robot = Robot(client, get_robot_model("xarm6"), "robot", (1.0, 2.0, 0.5))
    pos, _ = robot.ee_pose()
    np.testing.assert_allclose(pos, [1.45, 2.0, 0.5 + 0.268], atol=5e-3)


def test_commands_are_validated_and_clipped(client):
    robot = Robot(client, get_robot_model("panda"), "robot")
    with pytest.raises(RobotError):
        robot.command_joint_positions([np.nan] * 7)
    with pytest.raises(RobotError):
        robot.command_joint_positions([0.0] * 6)
    with pytest.raises(RobotError):
        robot.command_gripper_width(float("inf"))
    target = np.array(robot.model.home)
    target[0] = 10.0
    robot.command_joint_positions(target)
    _step(client, 1000)
    assert robot.joint_positions()[0] == pytest.approx(robot.arm_upper[0], abs=1e-2)


def test_physics_parameters_can_be_set(client):
    robot = Robot(client, get_robot_model("kuka_iiwa"), "robot")
    np.testing.assert_array_equal(robot.arm_force_limits, [300.0] * 7)
    robot.position_gain, robot.velocity_gain, robot.gripper_force_n = 0.2, 0.8, 10.0
    robot.arm_force_limits = [100.0] * 7
    assert robot.arm_force_limits[0] == 100.0
    with pytest.raises(ValueError):  # in-place edits would bypass the setter
        robot.arm_force_limits[0] = 5.0
    with pytest.raises(RobotError):
        robot.arm_force_limits = [1.0, 2.0]
    # Starved motors cannot hold the arm against gravity.
    robot.arm_force_limits = np.zeros(7)
    _step(client, 100)
    assert np.abs(robot.joint_positions() - np.array(robot.model.home)).max() > 0.01


class _MotorCallCounter:
    """A physics client that records which joints each motor-array command addressed."""

    def __init__(self, client):
        self.client = client
        self.sends = []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def setJointMotorControlArray(self, body, joints, *args, **kwargs):
        self.sends.append(list(joints))
        return self.client.setJointMotorControlArray(body, joints, *args, **kwargs)


def test_motor_batch_sends_once_and_the_new_limits_act(client):
    counter = _MotorCallCounter(client)
    robot = Robot(counter, get_robot_model("panda"), "robot")
    sends = counter.sends
    sends.clear()   # what building the robot sent
    with robot.motor_batch():
        robot.actuation.resend()
        robot.position_gain, robot.gripper_force_n = 0.2, 10.0
        robot.arm_force_limits = np.zeros(7)
        assert sends == []  # nothing is sent while the batch is open
    assert len(sends) == 2  # then the arm array and the finger array, once each
    _step(client, 100)  # the starved motors were really sent: the arm sags
    assert np.abs(robot.joint_positions() - np.array(robot.model.home)).max() > 0.01


@pytest.mark.parametrize("name", FINGER_MODELS)
def test_gripper_reaches_commanded_widths(client, name):
    robot = Robot(client, get_robot_model(name), "robot")
    closed, opened = robot.model.gripper_width_range_m
    for width in (0.02, closed, 0.05, opened):
        robot.command_gripper_width(width)
        _step(client, 250)
        assert robot.gripper_width() == pytest.approx(width, abs=1e-3)


def test_two_robots_in_two_clients_do_not_interfere():
    worlds = [BulletClient(connection_mode=pybullet.DIRECT) for _ in range(2)]
    try:
        robots = []
        for world in worlds:
            world.setGravity(0.0, 0.0, -9.81)
            world.setTimeStep(TIMESTEP_S)
            robots.append(Robot(world, get_robot_model("panda"), "robot"))
        moved, still = robots
        target = np.array(moved.model.home) + 0.3
        moved.command_joint_positions(target)
        moved.command_gripper_width(0.0)
        assert moved.body_id == still.body_id  # same ids: only the client tells them apart
        for _ in range(300):
            for world in worlds:
                world.stepSimulation()
        np.testing.assert_allclose(moved.joint_positions(), target, atol=2e-2)
        np.testing.assert_allclose(still.joint_positions(), np.array(still.model.home), atol=2e-3)
        assert still.gripper_width() == pytest.approx(0.08, abs=1e-3)
    finally:
        for world in worlds:
            world.disconnect()


def test_hold_keeps_a_restored_state(client):
    # A pybullet snapshot restores joint states but not motor targets.
    robot = Robot(client, get_robot_model("xarm6"), "robot")
    snapshot = client.saveState()
    robot.command_joint_positions(np.array(robot.model.home) + 0.2)
    robot.command_gripper_width(0.0)
    _step(client, 50)
    client.restoreState(snapshot)
    robot.hold()
    _step(client, 200)
    np.testing.assert_allclose(robot.joint_positions(), robot.model.home, atol=2e-3)
    assert robot.gripper_width() == pytest.approx(0.08, abs=1e-3)


# --- merged description ----------------------------------------------------------------------


def _load_full(client, model):
    """The full description, loaded as celltwin loaded robots before merging (and panda-gym)."""
    return client.loadURDF(str(model.urdf_path()), useFixedBase=True)


@pytest.mark.parametrize("name", MODELS)
def test_merged_robot_has_the_dynamics_of_the_full_description(client, name):
    model = get_robot_model(name)
    robot = Robot(client, model, "robot")
    full = _load_full(client, model)
    assert client.getNumJoints(robot.body_id) < client.getNumJoints(full)
    rng = np.random.default_rng(3)
    client.setGravity(0.0, 0.0, -9.81)
    for _ in range(5):
        q = list(rng.uniform(-1.0, 1.0, model.dof)) + [0.02] * len(model.gripper_joint_names)
        qd = list(rng.normal(0.0, 1.0, len(q)))
        np.testing.assert_allclose(client.calculateMassMatrix(robot.body_id, q),
                                   client.calculateMassMatrix(full, q), atol=1e-9)
        # Gravity, Coriolis and centrifugal torques: same masses in the same places.
        zero = [0.0] * len(q)
        np.testing.assert_allclose(client.calculateInverseDynamics(robot.body_id, q, qd, zero),
                                   client.calculateInverseDynamics(full, q, qd, zero), atol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_tcp_pose_and_velocity_match_the_full_description(client, name):
    model = get_robot_model(name)
    robot = Robot(client, model, "robot")
    full = _load_full(client, model)
    infos = [client.getJointInfo(full, j) for j in range(client.getNumJoints(full))]
    full_joints = {info[1].decode(): info[0] for info in infos}
    full_links = {info[12].decode(): info[0] for info in infos}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        q, qd = rng.uniform(robot.arm_lower, robot.arm_upper), rng.normal(0.0, 1.0, robot.dof)
        for joint, position, velocity in zip(model.arm_joint_names, q, qd):
            client.resetJointState(robot.body_id, robot.joint_index(joint), position, velocity)
            client.resetJointState(full, full_joints[joint], position, velocity)
        tcp = client.getLinkState(full, full_links[model.ee_link], 1, 1)
        position, quat = robot.ee_pose()
        np.testing.assert_allclose(position, tcp[4], atol=1e-6)
        assert quaternion_angle(quat, tcp[5]) < 1e-5  # pybullet reports poses in float32
        np.testing.assert_allclose(robot.ee_velocity(), tcp[6], atol=1e-6)
        both = robot.ee_position_and_velocity()
        np.testing.assert_allclose(both[0], position, atol=1e-12)
        np.testing.assert_allclose(both[1], robot.ee_velocity(), atol=1e-12)


def test_merged_links_resolve_to_the_link_that_carries_them(client):
    robot = Robot(client, get_robot_model("panda"), "robot")
    link7 = robot.link_index("panda_link7")
    assert robot.link_index("panda_hand") == robot.link_index("panda_link8") == link7
    assert robot.ee_link_index == link7
    np.testing.assert_allclose(robot.ee_offset_xyz, [0.0, 0.0, 0.212], atol=1e-12)
    assert {"panda_hand", "panda_grasptarget", "panda_link7"} <= set(robot.link_indices())
    names = {client.getJointInfo(robot.body_id, j)[12].decode()
             for j in range(client.getNumJoints(robot.body_id))}
    assert "panda_hand" not in names  # what physics_io and world enumerate: the real links


@pytest.mark.parametrize("name", FINGER_MODELS)
def test_one_motor_grips_with_the_force_of_each_finger(client, name):
    model = get_robot_model(name)
    robot = Robot(client, model, "robot")
    client.setPhysicsEngineParameter(numSolverIterations=50)
    position, _ = robot.ee_pose()
    box = client.createMultiBody(0.0, client.createCollisionShape(
        pybullet.GEOM_BOX, halfExtents=[0.015] * 3), -1, position.tolist())
    robot.command_gripper_width(0.0)
    _step(client, 500)
    assert robot.gripper_width() == pytest.approx(0.03, abs=2e-3)
    squeeze = sum(point[9] for point in client.getContactPoints(robot.body_id, box))
    # Both fingers press on the box, each with the per-finger force.
    assert squeeze == pytest.approx(2.0 * model.gripper_force_n, rel=0.1)


def test_gear_force_follows_the_grip_and_skips_unchanged_sends(client):
    model = get_robot_model("panda")
    changes = []
    inner = client.changeConstraint
    # An instance attribute wins over BulletClient's lookup; the gear binds it when built.
    client.changeConstraint = lambda *args, **kwargs: (changes.append(kwargs), inner(*args, **kwargs))
    robot = Robot(client, model, "robot")
    changes.clear()  # building set the gear's ratio and force

    def gear_force():
        return client.getConstraintInfo(robot.finger_gear.constraint_id)[10]

    margin = 4.0 * model.gripper_force_n
    robot.gripper_force_n = 0.5 * model.gripper_force_n  # weaker: the gear keeps its margin
    assert gear_force() == pytest.approx(margin) and changes == []
    robot.gripper_force_n = 2.0 * model.gripper_force_n  # stronger: the gear follows
    assert gear_force() == pytest.approx(2.0 * margin) and len(changes) == 1
    robot.gripper_force_n = 0.8 * model.gripper_force_n  # weaker again: back to the margin
    assert gear_force() == pytest.approx(margin) and len(changes) == 2


# --- a gripper held closed -----------------------------------------------------------------


@pytest.mark.parametrize("name", FINGER_MODELS)
def test_held_gripper_is_the_closed_hand_made_rigid(client, name):
    model = get_robot_model(name)
    robot = Robot(client, model.held_closed(), "robot")
    full = _load_full(client, model)
    infos = [client.getJointInfo(full, j) for j in range(client.getNumJoints(full))]
    index = {info[1].decode(): info[0] for info in infos}
    movable = [info[1].decode() for info in infos if info[2] != pybullet.JOINT_FIXED]
    closed = model.gripper_width_range_m[0]
    arm = [movable.index(joint) for joint in model.arm_joint_names]
    tcp_link = {info[12].decode(): info[0] for info in infos}[model.ee_link]
    assert len(robot.gripper_joint_indices) == 0
    assert client.getNumJoints(robot.body_id) == robot.dof + 1  # the fingers: one link
    fingers = robot.dof  # the last link, hung from the hand by the first finger joint
    assert client.getJointInfo(robot.body_id, fingers)[1].decode() == model.gripper_joint_names[0]
    assert len(client.getCollisionShapeData(robot.body_id, fingers)) == 2
    # The fingers' own pads (friction 1.0; the Panda's soft contact too), not the hand's.
    first_finger = next(info[0] for info in infos
                        if info[1].decode() == model.gripper_joint_names[0])
    pads = client.getDynamicsInfo(full, first_finger)
    assert pads[1] == pytest.approx(1.0)
    # lateral, rolling, spinning friction, contact damping and stiffness
    for field in (1, 6, 7, 8, 9):
        assert client.getDynamicsInfo(robot.body_id, fingers)[field] == pytest.approx(pads[field])
    rng = np.random.default_rng(5)
    for _ in range(5):
        q = rng.uniform(robot.arm_lower, robot.arm_upper)
        qd = rng.normal(0.0, 1.0, robot.dof)
        arm_q = dict(zip(model.arm_joint_names, q))
        arm_qd = dict(zip(model.arm_joint_names, qd))
        full_q = [arm_q.get(joint, 0.5 * closed) for joint in movable]
        full_qd = [arm_qd.get(joint, 0.0) for joint in movable]
        # The arm carries the same masses in the same places as the full hand with its
        # fingers standing still at the closed opening.
        np.testing.assert_allclose(
            client.calculateMassMatrix(robot.body_id, q.tolist()),
            np.asarray(client.calculateMassMatrix(full, full_q))[np.ix_(arm, arm)], atol=1e-9)
        np.testing.assert_allclose(
            client.calculateInverseDynamics(robot.body_id, q.tolist(), qd.tolist(),
                                            [0.0] * robot.dof),
            np.asarray(client.calculateInverseDynamics(full, full_q, full_qd,
                                                       [0.0] * len(movable)))[arm], atol=1e-9)
        for joint, position in zip(movable, full_q):
            client.resetJointState(full, index[joint], position)
        for joint, position in arm_q.items():
            client.resetJointState(robot.body_id, robot.joint_index(joint), position)
        tcp = client.getLinkState(full, tcp_link, 1)
        np.testing.assert_allclose(robot.ee_pose()[0], tcp[4], atol=1e-6)


def test_held_gripper_reads_closed_and_ignores_width_commands(client):
    model = get_robot_model("panda")
    robot = Robot(client, model.held_closed(), "robot")
    position, _ = robot.ee_pose()
    robot.command_gripper_width(0.08)  # what a task's closed-gripper action never asks
    robot.gripper_force_n = 5.0
    _step(client, 200)
    assert robot.gripper_width() == model.gripper_width_range_m[0]
    assert robot.motor_targets()[1] == ()
    np.testing.assert_allclose(robot.ee_pose()[0], position, atol=2e-3)  # holds its pose
    with pytest.raises(RobotError, match="not finite"):
        robot.command_gripper_width(float("nan"))


_TOY_HAND = """<?xml version="1.0"?>
<robot name="toy">
  <link name="base"><inertial><mass value="0"/><inertia ixx="0" ixy="0" ixz="0" iyy="0" iyz="0" izz="0"/></inertial></link>
  <link name="hand">
    <inertial><mass value="1"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial>
    <collision><geometry><box size="0.1 0.1 0.04"/></geometry></collision>
  </link>
  <link name="slider">
    <contact><lateral_friction value="1.0"/></contact>
    <inertial><origin xyz="0.01 0 0.02"/><mass value="0.1"/><inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>
    <collision><origin xyz="0 0.01 0.03" rpy="0.2 0 0"/><geometry><box size="0.02 0.01 0.05"/></geometry></collision>
  </link>
  <link name="swing">
    <contact>
      <lateral_friction   value="1.0" />
    </contact>
    <inertial><origin xyz="0 0.02 0"/><mass value="0.2"/><inertia ixx="2e-4" ixy="0" ixz="0" iyy="2e-4" iyz="0" izz="2e-4"/></inertial>
    <collision><origin xyz="0.03 0 0.01"/><geometry><box size="0.01 0.04 0.02"/></geometry></collision>
  </link>
  <link name="pad">
    <contact><lateral_friction value="0.3"/></contact>
    <inertial><mass value="0.05"/><inertia ixx="1e-5" ixy="0" ixz="0" iyy="1e-5" iyz="0" izz="1e-5"/></inertial>
    <collision><geometry><box size="0.01 0.01 0.01"/></geometry></collision>
  </link>
  <joint name="wrist" type="revolute">
    <parent link="base"/><child link="hand"/><origin xyz="0 0 0.3" rpy="0.1 0.2 0.3"/>
    <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="10" velocity="1"/>
  </joint>
  <joint name="slide" type="prismatic">
    <parent link="hand"/><child link="slider"/><origin xyz="0.02 0.01 0.05" rpy="0.3 -0.2 0.5"/>
    <axis xyz="0 1 0"/><limit lower="0.005" upper="0.04" effort="10" velocity="1"/>
  </joint>
  <joint name="hinge" type="revolute">
    <parent link="hand"/><child link="swing"/><origin xyz="-0.02 0 0.05" rpy="-0.4 0.1 0.2"/>
    <axis xyz="1 0 0"/><limit lower="-1" upper="1" effort="10" velocity="1"/>
  </joint>
  <link name="cap">
    <contact>
        <lateral_friction value="1.0"/>
    </contact>
    <inertial><mass value="0.01"/><inertia ixx="1e-6" ixy="0" ixz="0" iyy="1e-6" iyz="0" izz="1e-6"/></inertial>
  </link>
  <joint name="pad_mount" type="fixed">
    <parent link="swing"/><child link="pad"/><origin xyz="0 0 0.02"/>
  </joint>
  <joint name="cap_mount" type="fixed">
    <parent link="slider"/><child link="cap"/><origin xyz="0 0 0.05"/>
  </joint>
</robot>
"""


def _link_poses(client, body) -> dict:
    poses = {}
    for joint in range(client.getNumJoints(body)):
        state = client.getLinkState(body, joint, computeForwardKinematics=1)
        poses[client.getJointInfo(body, joint)[12].decode()] = (state[4], state[5])
    return poses


def test_welding_keeps_every_link_where_the_joints_held_it(client, tmp_path, monkeypatch):
    """Rotated joint origins, a prismatic and a revolute finger, a weld away from zero."""
    monkeypatch.setenv("CELLTWIN_CACHE", str(tmp_path / "cache"))
    from celltwin.robots.held_gripper import hold_gripper_closed

    source = tmp_path / "toy.urdf"
    source.write_text(_TOY_HAND)
    width = 0.06  # each finger joint at 0.03: the slide in its limits, the hinge 0.03 rad
    held = hold_gripper_closed("toy", source, ("slide", "hinge"), width)
    assert hold_gripper_closed("toy", source, ("slide", "hinge"), width) == held  # cached
    full = client.loadURDF(str(source), useFixedBase=True)
    welded = client.loadURDF(str(held), useFixedBase=True)
    joints = {client.getJointInfo(full, j)[1].decode(): j for j in range(client.getNumJoints(full))}
    client.resetJointState(full, joints["slide"], 0.03)
    client.resetJointState(full, joints["hinge"], 0.03)
    before = _link_poses(client, full)
    after = _link_poses(client, welded)
    for link in ("hand", "slider", "swing", "pad"):
        np.testing.assert_allclose(after[link][0], before[link][0], atol=1e-9)
        assert quaternion_angle(after[link][1], before[link][1]) < 1e-6
    # Clipped to the joint's limits as a command would be: 0.001 m is below the slide's 5 mm.
    tight = hold_gripper_closed("toy", source, ("slide",), 0.002)
    shut = client.loadURDF(str(tight), useFixedBase=True)
    client.resetJointState(full, joints["slide"], 0.005)
    np.testing.assert_allclose(_link_poses(client, shut)["slider"][0],
                               _link_poses(client, full)["slider"][0], atol=1e-9)
    with pytest.raises(RobotError, match="finger joint 'pad_mount' is missing or does not move"):
        hold_gripper_closed("toy", source, ("pad_mount",), width)


def test_fixed_links_merge_only_into_links_with_the_same_contact(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLTWIN_CACHE", str(tmp_path / "cache"))
    from celltwin.robots.fixed_links import merge_fixed_links
    from celltwin.robots.held_gripper import hold_gripper_closed
    from celltwin.robots.registry import simulated_inertials as inertials

    source = tmp_path / "toy.urdf"
    source.write_text(_TOY_HAND)
    # As written: the pad (friction 0.3) is fixed to the swing (1.0) and stays a link; the
    # cap has the slider's contact, laid out differently, and merges into it.
    merged = merge_fixed_links("toy", source, inertials)
    assert {link: frame.link for link, frame in merged.merged.items()} == {"cap": "slider"}
    # Welded: the swing hangs from the slider with the same contact and merges too; the
    # slider (1.0) stays off the hand (none).
    held = hold_gripper_closed("toy", source, ("slide", "hinge"), 0.06)
    merged = merge_fixed_links("toy", held, inertials)
    assert {link: frame.link for link, frame in merged.merged.items()} == \
        {"cap": "slider", "swing": "slider"}
