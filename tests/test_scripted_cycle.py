"""One scripted pick-and-place cycle (celltwin.experts.cycle) with every registered robot:
the part placed at the target in a plausible cycle time, its phases timed."""

from __future__ import annotations

import pytest

from celltwin.check import target_pose
from celltwin.experts.cycle import run_pick_place
from celltwin.spec import load_cell
from celltwin.world import World


@pytest.mark.parametrize("robot", ["panda", "kuka_iiwa", "xarm6"])
def test_scripted_cycle_places_the_part(robot):
    with World(load_cell("pick_station").with_robot_model(robot)) as world:
        target = next(t for t in world.spec.targets if t.name == "place_tray")
        goal, _ = target_pose(world, target)
        result = run_pick_place(world, target.robot, "part", goal)
    assert result.success, result
    assert 1.0 < result.cycle_time_s < 15.0 and result.place_error_m < 0.03
    assert set(result.phase_times_s) >= {"approach", "grasp", "carry", "release"}
