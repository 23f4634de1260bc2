"""The World: building every example cell with every robot, names, snapshots, isolation."""

from __future__ import annotations

import numpy as np
import pytest

from celltwin.robots import robot_model_names
from celltwin.core.errors import WorldError
from celltwin.spec import load_cell
from celltwin.world import World

EXAMPLE_CELLS = ("pick_station", "two_arm_line", "table_top")


def full_state(world: World) -> np.ndarray:
    """Every base pose and velocity and every joint position and velocity, as one vector."""
    client = world.client
    values = []
    for body in sorted(world.bodies.values()):
        position, orientation = client.getBasePositionAndOrientation(body)
        linear, angular = client.getBaseVelocity(body)
        values += [*position, *orientation, *linear, *angular]
        joints = client.getNumJoints(body)
        if joints:
            for state in client.getJointStates(body, range(joints)):
                values += [state[0], state[1]]
    return np.asarray(values)


@pytest.mark.parametrize("robot_model", robot_model_names())
@pytest.mark.parametrize("cell", EXAMPLE_CELLS)
def test_every_example_cell_builds_with_every_robot(cell, robot_model):
    spec = load_cell(cell).with_robot_model(robot_model)
    with World(spec) as world:
        assert set(spec.body_names()) <= set(world.bodies)
        assert set(world.robots) == {r.name for r in spec.robots}
        for robot in world.robots.values():
            assert robot.model.name == robot_model
        world.step(25)  # one simulated second: nothing may explode
        state = full_state(world)
        assert np.all(np.isfinite(state))
        for name in world.parts:
            position, _ = world.pose(name)
            assert position[2] > 0.5, f"{name} fell through to z={position[2]:.3f}"


def test_bodies_are_addressed_by_name():
    with World("pick_station") as world:
        assert world.body("table") == world.bodies["table"]
        with pytest.raises(WorldError, match="did you mean 'table'"):
            world.body("tabel")
        with pytest.raises(WorldError, match="no robot named"):
            world.robot("armm")
        assert world.robot() is world.robots["arm"]
        assert world.link_index("arm", "panda_hand") >= 0
        with pytest.raises(WorldError, match="has no link"):
            world.link_index("arm", "panda_foot")


def test_snapshot_restore_is_bit_exact_after_100_steps():
    with World("pick_station") as world:
        robot = world.robot()
        rng = np.random.default_rng(0)
        targets = [robot.joint_positions() + rng.normal(0, 0.05, robot.dof) for _ in range(100)]

        def run() -> list[np.ndarray]:
            states = []
            for q in targets:
                robot.command_joint_positions(q)
                world.step()
                states.append(full_state(world))
            return states

        snapshot = world.snapshot()
        before = full_state(world)
        first = run()
        world.restore(snapshot)
        assert np.array_equal(full_state(world), before)
        second = run()
        assert not np.array_equal(first[0], first[-1]), "the robot must actually have moved"
        for a, b in zip(first, second):
            assert np.array_equal(a, b)


def test_worlds_in_one_process_do_not_interfere():
    with World("pick_station") as a, World("pick_station") as b:
        robot = a.robot()
        robot.command_joint_positions(robot.joint_positions() + 0.3)
        a.step(25)
        b.step(25)
        with World("pick_station") as c:
            c.step(25)
            untouched = full_state(c)
        # a moved; b was never commanded and evolves exactly like a third, untouched world.
        assert not np.array_equal(full_state(a), untouched)
        assert np.array_equal(full_state(b), untouched)


def test_conveyor_carries_parts_at_its_speed():
    with World("pick_station") as world:
        world.step(10)  # let the can settle onto the belt
        start, _ = world.pose("can")
        world.step(25)  # one second
        end, _ = world.pose("can")
        travelled = start - end  # the infeed runs towards -x
        assert travelled[0] == pytest.approx(0.1, abs=0.01)
        assert abs(travelled[1]) < 0.005


def test_closed_world_refuses_work():
    world = World("pick_station")
    world.close()
    assert world.closed
    world.close()  # closing twice is harmless
    with World("pick_station") as other:  # may well get the closed world's client id
        before = other.robot().joint_positions()
        part = other.part_pose("part")[0]
        with pytest.raises(WorldError, match="closed"):
            world.step()
        for call in (lambda: world.place_part("part", (0.5, 0.2, 1.0), 0.0),
                     lambda: world.move_part("part", 0.1, 0.0, 0.3),
                     lambda: world.part_pose("part")):
            with pytest.raises(WorldError, match="closed"):
                call()
        assert np.array_equal(other.robot().joint_positions(), before)
        assert np.array_equal(other.part_pose("part")[0], part)  # the other world's part stays


def test_held_grippers_are_checked_and_weld_only_the_named_robot():
    with pytest.raises(WorldError, match="no robot named 'arm2'.*did you mean 'arm'"):
        World("pick_station", held_grippers=["arm2"])
    with World("two_arm_line", held_grippers=["arm_a"]) as world:
        assert len(world.robots["arm_a"].gripper_joint_indices) == 0
        assert len(world.robots["arm_b"].gripper_joint_indices) == 2
        world.step(25)
        assert np.all(np.isfinite(full_state(world)))


def test_the_only_robot_is_found_unnamed_and_several_must_be_named():
    with World("pick_station") as world:
        assert world.robot() is world.robot("arm")
    with World("two_arm_line") as world:
        with pytest.raises(WorldError) as error:
            world.robot()
        problem = error.value.problems[0]
        assert "several robots; name one" in problem.message
        assert all(name in problem.expected for name in world.robots)
        with pytest.raises(WorldError, match="no robot named 'arn'"):
            world.robot("arn")
