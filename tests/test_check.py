"""`cell check`'s findings: reach of every target by every robot, overlaps at start."""

from __future__ import annotations

import pytest

from celltwin.robots import robot_model_names
from celltwin.check import check_cell
from celltwin.spec import load_cell
from celltwin.world import World


@pytest.mark.parametrize("robot", robot_model_names())
@pytest.mark.parametrize("cell", ["pick_station", "two_arm_line", "table_top"])
def test_example_cells_are_sound_with_every_robot(cell, robot):
    with World(load_cell(cell).with_robot_model(robot)) as world:
        report = check_cell(world)
    assert report.reach, "every example names targets"
    assert report.ok, report.to_text()


def test_unreachable_target_and_overlap_are_reported():
    spec = load_cell("table_top")
    data = spec.model_dump(mode="json")
    data["targets"].append({"name": "too_far", "pose": {"xyz": [2.5, 0.0, 0.8], "rpy_deg": [180, 0, 0]}})
    data["equipment"].append({"name": "crate", "shape": "box", "size_m": [0.2, 0.2, 0.2],
                              "pose": {"xyz": [0.3, 0.0, 0.8]}})
    with World(type(spec).model_validate(data)) as world:
        report = check_cell(world)
    assert not report.ok
    far = next(r for r in report.reach if r.target == "too_far")
    assert not far.reachable and "out of reach" in far.reason
    assert any({i.body_a, i.body_b} == {"crate", "table"} for i in report.interpenetrations)
    assert "NOT reachable" in report.to_text() and "crate" in report.to_text()
