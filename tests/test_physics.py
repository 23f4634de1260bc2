"""PhysicsParams: read from a world, applied to it (read back from pybullet), YAML round trip."""

from __future__ import annotations

import numpy as np
import pytest

from celltwin.core.errors import PhysicsParamsError
from celltwin.physics import BodyDynamics, JointDynamics, PhysicsParams, RobotActuation
from celltwin.world import World


@pytest.fixture
def world():
    with World("pick_station") as w:
        yield w


def test_read_covers_every_body_joint_and_robot(world):
    params = world.physics_params()
    assert params.timestep_s == pytest.approx(0.002)
    assert params.substeps == 20
    assert params.solver_iterations == 50
    assert params.gravity_mps2 == pytest.approx((0, 0, -9.81))
    assert world.control_period_s == pytest.approx(0.04)
    for name in world.bodies:
        assert name in params.bodies
    assert params.bodies["part"].mass_kg == pytest.approx(0.1)
    assert params.bodies["part"].lateral_friction == pytest.approx(0.8)
    assert params.bodies["table"].mass_kg is None  # fixed: nothing to set
    assert "arm/panda_link3" in params.bodies
    assert "arm/panda_joint2" in params.joints
    assert params.joints["arm/panda_joint2"].force_limit == pytest.approx(87.0)
    assert "arm" in params.robots


def test_apply_is_read_back_from_pybullet(world):
    client = world.client
    world.apply_physics(PhysicsParams(
        timestep_s=0.001, substeps=10, solver_iterations=80, gravity_mps2=(0, 0, -3.0),
        bodies={"part": BodyDynamics(mass_kg=0.37, lateral_friction=0.3, rolling_friction=0.01,
                                     spinning_friction=0.02, restitution=0.4),
                "arm/panda_link5": BodyDynamics(mass_kg=2.5)},
        joints={"arm/panda_joint2": JointDynamics(damping=0.7, force_limit=50.0, friction=5.0)},
        robots={"arm": RobotActuation(position_gain=0.2, velocity_gain=0.8, latency_steps=2)}))
    engine = client.getPhysicsEngineParameters()
    assert engine["fixedTimeStep"] == pytest.approx(0.001)
    assert engine["numSolverIterations"] == 80
    assert engine["gravityAccelerationZ"] == pytest.approx(-3.0)
    info = client.getDynamicsInfo(world.body("part"), -1)
    assert info[0] == pytest.approx(0.37)
    assert info[1] == pytest.approx(0.3)
    assert info[5] == pytest.approx(0.4)
    assert info[6] == pytest.approx(0.01)
    assert info[7] == pytest.approx(0.02)
    link5 = world.link_index("arm", "panda_link5")
    assert client.getDynamicsInfo(world.body("arm"), link5)[0] == pytest.approx(2.5)
    robot = world.robot()
    assert robot.position_gain == pytest.approx(0.2)
    assert robot.velocity_gain == pytest.approx(0.8)
    joint2 = list(robot.arm_joint_indices).index(world.link_index("arm", "panda_link2"))
    assert robot.arm_force_limits[joint2] == pytest.approx(45.0)  # limit minus friction
    after = world.physics_params()
    assert after.bodies["part"].mass_kg == pytest.approx(0.37)
    assert after.joints["arm/panda_joint2"].damping == pytest.approx(0.7)
    assert after.robots["arm"].latency_steps == 2
    assert world.control_period_s == pytest.approx(0.01)


def test_gravity_override_changes_behaviour():
    def fall(params):
        with World("pick_station", physics=params) as w:
            w.client.resetBasePositionAndOrientation(w.body("part"), [1.5, 1.5, 2.0], [0, 0, 0, 1])
            w.step(5)
            return w.pose("part")[0][2]

    assert fall(PhysicsParams(gravity_mps2=(0, 0, -1.0))) > fall(None) + 0.1


def test_yaml_round_trip_keeps_every_field(world, tmp_path):
    params = world.physics_params()
    path = params.save(tmp_path / "physics.yaml")
    again = PhysicsParams.load(path)
    assert again == params


def test_overrides_file_sets_only_what_it_names(world, tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text("bodies:\n  part:\n    mass_kg: 0.5\n")
    before = world.physics_params()
    world.apply_physics(PhysicsParams.load(path))
    after = world.physics_params()
    assert after.bodies["part"].mass_kg == 0.5
    assert after.bodies["part"].lateral_friction == before.bodies["part"].lateral_friction
    assert after.timestep_s == before.timestep_s


def test_unknown_names_are_reported_together_and_nothing_is_applied(world):
    before = world.physics_params()
    bad = PhysicsParams(bodies={"prat": BodyDynamics(mass_kg=1.0), "table": BodyDynamics(mass_kg=3.0)},
                        joints={"arm/panda_joint9": JointDynamics(damping=1.0)},
                        robots={"amr": RobotActuation(position_gain=1.0)})
    with pytest.raises(PhysicsParamsError) as caught:
        world.apply_physics(bad)
    paths = {p.path for p in caught.value.problems}
    assert paths == {"bodies.prat", "bodies.table.mass_kg", "joints.arm/panda_joint9", "robots.amr"}
    assert "did you mean 'part'" in str(caught.value)
    assert world.physics_params() == before


@pytest.mark.parametrize("text, path", [
    ("timestep_s: -0.01\n", "timestep_s"),
    ("substeps: 0\n", "substeps"),
    ("bodies:\n  part:\n    mass_kg: .nan\n", "bodies.part.mass_kg"),
    ("bodies:\n  part:\n    frction: 0.5\n", "bodies.part.frction"),
    ("gravity_mps2: [0, 0]\n", "gravity_mps2"),
])
def test_bad_physics_files_name_the_path(tmp_path, text, path):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(PhysicsParamsError) as caught:
        PhysicsParams.load(file)
    assert any(p.path == path for p in caught.value.problems), caught.value.problems
    assert all(p.file == str(file) for p in caught.value.problems)


def test_missing_physics_file_is_a_clear_error(tmp_path):
    with pytest.raises(PhysicsParamsError, match="physics file not found"):
        PhysicsParams.load(tmp_path / "nope.yaml")


def test_merged_prefers_overrides():
    base = PhysicsParams(timestep_s=0.002, substeps=20, bodies={"a": BodyDynamics(mass_kg=1.0, restitution=0.1)})
    top = PhysicsParams(substeps=10, bodies={"a": BodyDynamics(mass_kg=2.0)})
    merged = base.merged(top)
    assert merged.timestep_s == 0.002 and merged.substeps == 10
    assert merged.bodies["a"].mass_kg == 2.0 and merged.bodies["a"].restitution == 0.1
    assert np.isclose(merged.control_period_s, 0.02)


def _dynamics(world):
    client = world.client
    return [(body, link, client.getDynamicsInfo(body, link),
             client.getJointInfo(body, link)[6] if link >= 0 else None)
            for body in world.bodies.values() for link in range(-1, client.getNumJoints(body))]


_MIXED = ([("bodies", "part", "mass_kg"), ("bodies", "part", "lateral_friction"),
           ("bodies", "part", "restitution"), ("joints", "arm/panda_joint1", "force_limit"),
           ("joints", "arm/panda_joint1", "friction"), ("joints", "arm/panda_joint2", "friction"),
           ("joints", "arm/panda_joint3", "damping"),
           ("joints", "arm/panda_finger_joint1", "force_limit"),
           ("robots", "arm", "position_gain"), ("robots", "arm", "latency_steps")],
          [0.3, 1.1, 0.15, 50.0, 2.0, 3.5, 0.7, 12.0, 0.2, 1])
# Every arm motor's strength drawn (the presets' {robot}/* term): the writer's fast path.
_WHOLE_ARM = ([("joints", f"arm/panda_joint{i}", "force_limit") for i in range(1, 8)]
              + [("joints", "arm/panda_finger_joint2", "force_limit"), ("bodies", "part", "mass_kg")],
              [48.0, 80.0, 70.0, 60.0, 10.0, 11.0, 9.0, 15.0, 0.25])


@pytest.mark.parametrize("entries, values", [_MIXED, _WHOLE_ARM], ids=["mixed", "whole-arm"])
def test_entry_writer_applies_and_records_what_apply_entries_does(entries, values):
    # The compiled writer of randomized resets must be indistinguishable from the checked
    # generic path: same pybullet state, same motor settings, same record.
    from celltwin.physics_io import EntryWriter

    with World("pick_station") as generic, World("pick_station") as compiled:
        sections: dict = {"bodies": {}, "joints": {}, "robots": {}}
        for (section, key, field), value in zip(entries, values):
            sections[section].setdefault(key, {})[field] = value
        generic.apply_physics_entries({}, sections)
        EntryWriter(compiled, entries)(values)
        assert compiled.physics_params() == generic.physics_params()
        assert _dynamics(compiled) == _dynamics(generic)
        for name in ("arm_force_limits", "gripper_force_n", "position_gain", "velocity_gain"):
            np.testing.assert_array_equal(getattr(compiled.robot("arm"), name),
                                          getattr(generic.robot("arm"), name))
        assert compiled.robot("arm").arm_force_limits[0] == pytest.approx(48.0)  # 50 - friction 2
        if entries is _MIXED[0]:
            assert compiled.latency_steps("arm") == 1
        else:
            assert compiled.robot("arm").arm_force_limits.tolist() == values[:7]
            assert compiled.robot("arm").gripper_force_n == 15.0
