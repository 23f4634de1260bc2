"""Cell files: every fault is reported with its dotted path and line; valid cells round-trip."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from scipy.spatial.transform import Rotation

from celltwin.robots.registry import get_robot_model, robot_model_names
from celltwin.core.errors import CellSpecError
from celltwin.spec import (BinSpec, BoxEquipment, BoxPart, CellSpec, ConveyorSpec,
                           CylinderEquipment, CylinderPart, MeshEquipment, PhysicsSection, Pose,
                           RobotSpec, SpawnRegionSpec, SpherePart, TargetSpec, load_cell,
                           parse_cell, shipped_cell_names)
from celltwin.core.documents import parse_yaml_document, validation_problems

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "cells.md"
ASSETS = ROOT / "assets"

BASE = """\
name: test_cell
physics:
  timestep_s: 0.002
  substeps: 20
robots:
  - name: arm
    model: panda
    base: {xyz: [0, 0, 0.75], rpy_deg: [0, 0, 0]}
    control: ee_delta
    home_deg: [0, -45, 0, -135, 0, 90, 45]
equipment:
  - {name: table, shape: box, size_m: [1.0, 0.8, 0.75], pose: {xyz: [0.5, 0, 0.375]}}
  - {name: post, shape: cylinder, radius_m: 0.05, height_m: 1.2}
conveyors:
  - {name: infeed, pose: {xyz: [0.45, -0.5, 0.75], rpy_deg: [0, 0, 90]}, length_m: 1.2, width_m: 0.25, speed_mps: 0.1}
bins:
  - {name: part_bin, pose: {xyz: [0.5, 0.2, 0.75]}, size_m: [0.3, 0.2, 0.12]}
  - {name: tray, kind: tray, pose: {xyz: [0.5, -0.2, 0.75]}, size_m: [0.3, 0.2, 0.03], color: [0.2, 0.2, 0.2, 1]}
parts:
  - {name: cube, shape: box, size_m: [0.04, 0.04, 0.04], mass_kg: 0.1, spawn: bin_region, count: 2}
  - {name: ball, shape: sphere, radius_m: 0.02, mass_kg: 0.05, spawn: belt_start}
spawn_regions:
  - name: bin_region
    on: part_bin
    low_m: [-0.1, -0.05, 0.03]
    high_m: [0.1, 0.05, 0.03]
    yaw_deg: [-45, 45]
  - {name: belt_start, on: infeed, low_m: [-0.5, 0, 0.03], high_m: [-0.5, 0, 0.03]}
targets:
  - {name: place_pose, pose: {xyz: [0, 0, 0.05], rpy_deg: [180, 0, 0]}, relative_to: tray, robot: arm}
"""


def _line(text: str, marker: str) -> int:
    """1-based line of the only line containing ``marker``."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} is on lines {hits}"
    return hits[0]


def _problems(text: str, **kwargs) -> list:
    with pytest.raises(CellSpecError) as caught:
        parse_cell(text, file="cell.yaml", **kwargs)
    return caught.value.problems


# (id, replace this, with this, dotted path, marker of the expected line, words in the message)
FAULTS = [
    ("unknown_top_key", "name: test_cell", "name: test_cell\nrobts: []",
     "robts", "robts:", "did you mean 'robots'"),
    ("unknown_nested_key", "height_m: 1.2}", "height_m: 1.2, colour: [1, 0, 0, 1]}",
     "equipment[1].colour", "name: post", "did you mean 'color'"),
    ("unknown_pose_key", "rpy_deg: [0, 0, 0]}", "rpy: [0, 0, 0]}",
     "robots[0].base.rpy", "base:", "rpy_deg"),
    ("missing_model", "    model: panda\n", "",
     "robots[0].model", "- name: arm", "missing required key"),
    ("missing_bin_name", "{name: part_bin, ", "{",
     "bins[0].name", "size_m: [0.3, 0.2, 0.12]", "missing"),
    ("missing_part_shape", "{name: ball, shape: sphere,", "{name: ball,",
     "parts[1].shape", "name: ball", "missing"),
    ("string_for_number", "width_m: 0.25", 'width_m: "0.25"',
     "conveyors[0].width_m", "name: infeed", "the string '0.25'"),
    ("bool_for_number", "mass_kg: 0.05", "mass_kg: yes",
     "parts[1].mass_kg", "name: ball", "true is not a number"),
    ("mapping_for_list", "size_m: [0.3, 0.2, 0.12]", "size_m: {x: 0.3}",
     "bins[0].size_m", "part_bin,", "mapping"),
    ("list_for_mapping", "physics:\n  timestep_s: 0.002\n  substeps: 20", "physics: [1, 2]",
     "physics", "physics:", "a list is not a mapping"),
    ("number_for_name", "name: test_cell", "name: 42",
     "name", "name: 42", "not a string"),
    ("short_vector", "xyz: [0, 0, 0.75]", "xyz: [0, 0]",
     "robots[0].base.xyz", "base:", "has 2 values, needs 3"),
    ("long_vector", "size_m: [0.04, 0.04, 0.04]", "size_m: [0.04, 0.04, 0.04, 0.04]",
     "parts[0].size_m", "name: cube", "has 4 values, needs 3"),
    ("nan", "timestep_s: 0.002", "timestep_s: .nan",
     "physics.timestep_s", "timestep_s", "finite"),
    ("inf_in_vector", "high_m: [0.1, 0.05, 0.03]", "high_m: [0.1, .inf, 0.03]",
     "spawn_regions[0].high_m[1]", "high_m: [0.1", "finite"),
    ("negative_size", "size_m: [0.04, 0.04, 0.04]", "size_m: [0.04, -0.04, 0.04]",
     "parts[0].size_m[1]", "name: cube", "must be > 0"),
    ("zero_mass", "mass_kg: 0.1", "mass_kg: 0",
     "parts[0].mass_kg", "name: cube", "must be > 0"),
    ("timestep_too_long", "timestep_s: 0.002", "timestep_s: 0.1",
     "physics.timestep_s", "timestep_s", "<= 0.05"),
    ("zero_substeps", "substeps: 20", "substeps: 0",
     "physics.substeps", "substeps", ">= 1"),
    ("fractional_substeps", "substeps: 20", "substeps: 20.5",
     "physics.substeps", "substeps", "not an integer"),
    ("bool_count", "count: 2", "count: true",
     "parts[0].count", "name: cube", "true is not an integer"),
    ("zero_count", "count: 2", "count: 0",
     "parts[0].count", "name: cube", ">= 1"),
    ("int_for_bool", "height_m: 1.2}", "height_m: 1.2, collision: 1}",
     "equipment[1].collision", "name: post", "true or false"),
    ("color_out_of_range", "color: [0.2, 0.2, 0.2, 1]", "color: [0.2, 0.2, 1.5, 1]",
     "bins[1].color[2]", "name: tray", "<= 1"),
    ("speed_too_high", "speed_mps: 0.1", "speed_mps: 7",
     "conveyors[0].speed_mps", "name: infeed", "<= 5"),
    ("wall_too_thick", "size_m: [0.3, 0.2, 0.12]}",
     "size_m: [0.3, 0.2, 0.12], wall_thickness_m: 0.1}",
     "bins[0].wall_thickness_m", "part_bin,", "no room"),
    ("low_above_high", "low_m: [-0.1, -0.05, 0.03]", "low_m: [-0.1, 0.5, 0.03]",
     "spawn_regions[0].high_m", "high_m: [0.1", "along y"),
    ("yaw_reversed", "yaw_deg: [-45, 45]", "yaw_deg: [45, -45]",
     "spawn_regions[0].yaw_deg", "yaw_deg", "reversed"),
    ("unknown_shape", "shape: cylinder", "shape: cylindre",
     "equipment[1].shape", "name: post", "did you mean 'cylinder'"),
    ("unknown_control", "control: ee_delta", "control: ee_delt",
     "robots[0].control", "control:", "did you mean 'ee_delta'"),
    ("unknown_model", "model: panda", "model: pnada",
     "robots[0].model", "model:", "did you mean 'panda'"),
    ("home_wrong_length", "home_deg: [0, -45, 0, -135, 0, 90, 45]", "home_deg: [0, -45, 0]",
     "robots[0].home_deg", "home_deg", "7 arm joints"),
    ("duplicate_name", "{name: post,", "{name: table,",
     "equipment[1].name", "shape: cylinder", "already used at equipment[0].name (line 12)"),
    ("duplicate_across_sections", "name: belt_start", "name: infeed",
     "spawn_regions[1].name", "low_m: [-0.5", "already used at conveyors[0].name"),
    ("duplicate_expanded_part", "{name: tray,", "{name: cube_1,",
     "parts[0].name", "name: cube,", "a body of part 'cube'"),
    ("reserved_name", "{name: post,", "{name: floor,",
     "equipment[1].name", "shape: cylinder", "reserved"),
    ("duplicate_key", "substeps: 20", "substeps: 20\n  substeps: 30",
     "physics.substeps", "substeps: 30", "twice"),
    ("unknown_spawn_region", "spawn: belt_start}", "spawn: belt_strat}",
     "parts[1].spawn", "name: ball", "did you mean 'belt_start'"),
    ("unknown_on_body", "on: part_bin", "on: part_bim",
     "spawn_regions[0].on", "on: part_bim", "did you mean 'part_bin'"),
    ("unknown_relative_to", "relative_to: tray", "relative_to: trya",
     "targets[0].relative_to", "place_pose", "did you mean 'tray'"),
    ("unknown_target_robot", "robot: arm}", "robot: arms}",
     "targets[0].robot", "place_pose", "did you mean 'arm'"),
    ("empty_robots", BASE[BASE.index("robots:"):BASE.index("equipment:")], "robots: []\n",
     "robots", "robots: []", "at least 1"),
]


@pytest.mark.parametrize("old, new, path, marker, words",
                         [case[1:] for case in FAULTS], ids=[case[0] for case in FAULTS])
def test_fault_is_reported_at_its_path_and_line(old, new, path, marker, words):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    problems = _problems(text)
    at_path = [problem for problem in problems if problem.path == path]
    assert at_path, f"nothing at {path}; got:\n" + "\n".join(map(str, problems))
    problem = at_path[0]
    assert problem.line == _line(text, marker), str(problem)
    assert words in problem.message, str(problem)
    assert problem.file == "cell.yaml"
    assert problem.expected, str(problem)


def test_faults_are_distinct_and_many():
    assert len({case[0] for case in FAULTS}) == len(FAULTS) >= 25


@pytest.mark.parametrize("text, line, words", [
    ("", 1, "empty"),
    ("# nothing but a comment\n", 1, "empty"),
    ("- name: a\n- name: b\n", 1, "top level must be a mapping"),
    ("name: cell\nrobots: [{name: arm\n", 3, "not valid YAML"),
    ("name: cell\n---\nname: other\n", 2, "not valid YAML"),
    ("name: !!python/object:os.system ls\n", 1, "not valid YAML"),
], ids=["empty", "comment_only", "top_level_list", "syntax_error", "two_documents", "python_tag"])
def test_documents_that_are_not_cells(text, line, words):
    problems = _problems(text)
    assert len(problems) == 1
    assert problems[0].line == line and words in problems[0].message


def test_several_faults_are_reported_together():
    text = (BASE.replace("substeps: 20", "substeps: 0")
            .replace("model: panda", "model: pnada")
            .replace("height_m: 1.2}", "height_m: 1.2, colour: [1, 0, 0, 1]}")
            .replace("speed_mps: 0.1", "speed_mps: .inf")
            .replace("spawn: belt_start}", "spawn: nowhere}")
            .replace("relative_to: tray", "relative_to: trya")
            .replace("{name: post,", "{name: table,"))
    paths = {problem.path for problem in _problems(text)}
    assert {"physics.substeps", "robots[0].model", "equipment[1].colour", "conveyors[0].speed_mps",
            "parts[1].spawn", "targets[0].relative_to", "equipment[1].name"} <= paths


def test_reference_checks_run_despite_schema_errors_and_duplicates_are_dropped():
    text = (BASE.replace("mass_kg: 0.05", "mass_kg: -1")
            .replace("spawn: belt_start}", "spawn: nowhere}"))
    problems = _problems(text)
    assert [p.path for p in problems].count("parts[1].mass_kg") == 1
    assert "parts[1].spawn" in {p.path for p in problems}
    assert len({(p.path, p.message) for p in problems}) == len(problems)


def test_valid_cell_fills_defaults():
    cell = parse_cell(BASE)
    assert cell.physics == PhysicsSection(timestep_s=0.002, substeps=20, solver_iterations=50,
                                          gravity_mps2=(0.0, 0.0, -9.81))
    assert math.isclose(cell.physics.control_period_s, 0.04)
    assert cell.robot("arm").home_deg == (0, -45, 0, -135, 0, 90, 45)
    table, post = cell.equipment
    assert isinstance(table, BoxEquipment) and isinstance(post, CylinderEquipment)
    assert post.pose == Pose() and post.color == (0.7, 0.7, 0.7, 1.0) and post.collision is True
    assert cell.conveyors[0].height_m == 0.1
    assert cell.bins[0].kind == "bin" and cell.bins[0].wall_thickness_m == 0.01
    cube, ball = cell.parts
    assert isinstance(cube, BoxPart) and isinstance(ball, SpherePart)
    assert ball.friction == 0.8 and ball.count == 1
    assert cell.spawn_regions[0].on == "part_bin"  # YAML 1.1 would have read the key `on` as True
    assert cell.spawn_regions[1].yaw_deg == (0.0, 0.0)
    assert cell.body_names() == ["table", "post", "infeed", "part_bin", "tray",
                                 "cube_0", "cube_1", "ball"]
    assert cube.body_names() == ["cube_0", "cube_1"] and ball.body_names() == ["ball"]
    assert cell.description == ""


def test_empty_sections_and_exponent_numbers():
    cell = parse_cell("name: c\nphysics:\n  timestep_s: 2e-3\nrobots: [{name: arm, model: panda}]\n"
                      "equipment:\nparts:\n")
    assert cell.physics.timestep_s == 0.002
    assert cell.equipment == () and cell.parts == () and cell.body_names() == []


def test_models_are_frozen():
    from pydantic import ValidationError

    cell = parse_cell(BASE)
    with pytest.raises(ValidationError):
        cell.name = "other"  # type: ignore[misc]


def test_unknown_robot_is_an_error():
    with pytest.raises(CellSpecError, match="did you mean 'arm'"):
        parse_cell(BASE).robot("amr")


@pytest.mark.parametrize("rpy_deg", [(0, 0, 0), (180, 0, 0), (10, 20, 30), (-90, 45, 170)])
def test_pose_quaternion_matches_fixed_axis_rpy(rpy_deg):
    quat = Pose(rpy_deg=rpy_deg).quaternion_xyzw()
    expected = Rotation.from_euler("xyz", rpy_deg, degrees=True).as_quat()
    assert abs(sum(a * b for a, b in zip(quat, expected))) == pytest.approx(1.0)


def test_to_yaml_round_trips():
    cell = parse_cell(BASE)
    assert parse_cell(cell.to_yaml()) == cell


@pytest.mark.parametrize("model", robot_model_names())
def test_with_robot_model_replaces_every_robot(model):
    cell = parse_cell(BASE).with_robot_model(model)
    assert all(robot.model == model and robot.home_deg is None for robot in cell.robots)
    assert len(get_robot_model(model).arm_joint_names) in (6, 7)


def test_with_robot_model_rejects_unknown_models():
    with pytest.raises(CellSpecError, match="unknown robot model 'ur5'"):
        parse_cell(BASE).with_robot_model("ur5")


def test_spec_built_in_python_is_checked_too():
    with pytest.raises(CellSpecError) as caught:
        CellSpec(name="c", robots=[RobotSpec(name="arm", model="panda")],
                 parts=[BoxPart(name="cube", size_m=(0.1, 0.1, 0.1), mass_kg=1, spawn="nowhere")])
    assert caught.value.problems[0].path == "parts[0].spawn"
    conveyor = ConveyorSpec(name="belt", length_m=1, width_m=0.2, speed_mps=0.1)
    region = SpawnRegionSpec(name="start", on="belt", low_m=(0, 0, 0), high_m=(0, 0, 0))
    part = CylinderPart(name="can", radius_m=0.03, height_m=0.1, mass_kg=0.2, spawn="start")
    target = TargetSpec(name="goal", pose=Pose(), relative_to="can", robot="arm")
    cell = CellSpec(name="c", robots=[RobotSpec(name="arm", model="xarm6")], conveyors=[conveyor],
                    bins=[BinSpec(name="bin", size_m=(0.3, 0.2, 0.1))], parts=[part],
                    spawn_regions=[region], targets=[target])
    assert cell.body_names() == ["belt", "bin", "can"]


# ----------------------------------------------------------------------------- meshes
_STL = """\
solid t
facet normal 0 0 1
outer loop
vertex 0 0 0
vertex 1 0 0
vertex 0 1 0
endloop
endfacet
endsolid t
"""
_MESH_CELL = """\
name: c
robots: [{name: arm, model: panda}]
equipment:
  - {name: fence, shape: mesh, mesh: MESH, mesh_units: mm}
"""


def test_relative_mesh_resolves_against_the_cell_folder(tmp_path, monkeypatch):
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "fence.stl").write_text(_STL)
    cell_file = tmp_path / "cell.yaml"
    cell_file.write_text(_MESH_CELL.replace("MESH", "meshes/fence.stl"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fence = load_cell(cell_file).equipment[0]
    assert isinstance(fence, MeshEquipment)
    assert fence.mesh == (tmp_path / "meshes" / "fence.stl").resolve() and fence.mesh.is_absolute()
    assert fence.vertex_scale == pytest.approx(0.001)
    assert parse_cell(load_cell(cell_file).to_yaml()) == load_cell(cell_file)


@pytest.mark.parametrize("mesh, words", [
    ("meshes/missing.stl", "not found"),
    ("meshes/fence.step", "unsupported mesh format"),
    ("meshes/fence", "unsupported mesh format"),
])
def test_bad_mesh_paths(tmp_path, mesh, words):
    cell_file = tmp_path / "cell.yaml"
    cell_file.write_text(_MESH_CELL.replace("MESH", mesh))
    with pytest.raises(CellSpecError) as caught:
        load_cell(cell_file)
    problem = caught.value.problems[0]
    assert (problem.path, problem.line, problem.file) == ("equipment[0].mesh", 4, str(cell_file))
    assert words in problem.message


def test_unknown_mesh_units(tmp_path):
    (tmp_path / "fence.stl").write_text(_STL)
    text = _MESH_CELL.replace("MESH", "fence.stl").replace("mm}", "ft}")
    problem = _problems(text, base_dir=tmp_path)[0]
    assert problem.path == "equipment[0].mesh_units" and "one of: cm, in, m, mm" in problem.expected


# ----------------------------------------------------------------------------- loading
def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CellSpecError) as caught:
        load_cell(tmp_path / "nope.yaml")
    assert caught.value.problems[0].file == str(tmp_path / "nope.yaml")


def test_syntax_error_in_a_file_has_file_and_line(tmp_path):
    cell_file = tmp_path / "broken.yaml"
    cell_file.write_text("name: c\nrobots:\n  - {name: arm\n")
    with pytest.raises(CellSpecError) as caught:
        load_cell(str(cell_file))
    problem = caught.value.problems[0]
    assert problem.file == str(cell_file) and problem.line == 4


def test_unknown_example_name_suggests_and_lists():
    names = shipped_cell_names()
    if not names:
        pytest.skip("no example cells shipped yet")
    typo = names[0][:-1] + "x"
    with pytest.raises(CellSpecError) as caught:
        load_cell(typo)
    problem = caught.value.problems[0]
    assert f"did you mean '{names[0]}'" in problem.message
    assert all(name in problem.expected for name in names)


@pytest.mark.parametrize("name", shipped_cell_names())
def test_example_cells_load_with_every_robot(name):
    cell = load_cell(name)
    assert cell == load_cell(ASSETS / "cells" / f"{name}.yaml")
    assert parse_cell(cell.to_yaml()) == cell
    for model in robot_model_names():
        assert {robot.model for robot in cell.with_robot_model(model).robots} == {model}


def test_generic_helpers_locate_errors_of_other_models():
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    class Knob(BaseModel):
        model_config = ConfigDict(extra="forbid")
        gain: float = Field(ge=0)

    class Knobs(BaseModel):
        model_config = ConfigDict(extra="forbid")
        bodies: dict[str, Knob] = {}

    data, lines = parse_yaml_document("bodies:\n  cube:\n    gain: -1\n    gian: 2\n")
    with pytest.raises(ValidationError) as caught:
        Knobs.model_validate(data)
    problems = validation_problems(caught.value, Knobs, file="k.yaml", lines=lines)
    located = {(problem.path, problem.line) for problem in problems}
    assert located == {("bodies.cube.gain", 3), ("bodies.cube.gian", 4)}


# ----------------------------------------------------------------------------- docs
def test_docs_describe_every_key_and_their_example_parses():
    text = DOCS.read_text()
    models = [CellSpec, PhysicsSection, Pose, RobotSpec, BoxEquipment, CylinderEquipment,
              MeshEquipment, ConveyorSpec, BinSpec, BoxPart, CylinderPart, SpherePart,
              SpawnRegionSpec, TargetSpec]
    missing = [f"{model.__name__}.{key}" for model in models for key in model.model_fields
               if f"`{key}`" not in text]
    assert not missing
    example = re.search(r"## A complete example\n\n```yaml\n(.*?)```", text, re.S).group(1)
    assert parse_cell(example).name == "pick_station"
