"""The `celltwin` console script, run as a user runs it: exit codes and one line per problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CELLTWIN = str(Path(sys.executable).with_name("celltwin"))

BROKEN_CELL = """\
name: broken
robots:
  - name: arm
    model: pandda
    base: {xyz: [0, 0, 0.75]}
    control: ee_delt
equipment:
  - name: table
    shape: box
    size_m: [1.0, 0.8, -0.75]
    pose: {xyz: [0.5, 0, 0.375]}
parts:
  - name: part
    shape: box
    size_m: [0.04, 0.04, 0.04]
    mass_kg: 0.1
    spawn: nowhere
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CELLTWIN, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_help_lists_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("demo", "cell"):
        assert command in result.stdout


def test_cell_check_valid_cell_exits_0(tmp_path):
    result = run("cell", "check", "pick_station", "--json", str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reachable" in result.stdout and "interpenetrations: none" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True
    assert {r["target"] for r in report["reach"]} == {"pick_bin", "pick_belt_end", "place_tray"}


def test_cell_check_broken_cell_lists_every_fault_and_exits_2(tmp_path):
    cell = tmp_path / "broken.yaml"
    cell.write_text(BROKEN_CELL)
    result = run("cell", "check", str(cell))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    for path in ("robots[0].model", "robots[0].control", "equipment[0].size_m[2]", "parts[0].spawn"):
        assert any(path in line for line in lines), (path, lines)
    assert all(line.startswith("error: ") for line in lines)
    assert "did you mean 'panda'" in result.stderr


def test_missing_cell_file_exits_2(tmp_path):
    result = run("cell", "check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")


def test_bad_physics_override_exits_2(tmp_path):
    physics = tmp_path / "physics.yaml"
    physics.write_text("bodies:\n  prat: {mass_kg: 1.0}\n")
    result = run("cell", "check", "pick_station", "--physics", str(physics))
    assert result.returncode == 2
    assert "bodies.prat" in result.stderr and "did you mean 'part'" in result.stderr


def test_unknown_robot_swap_exits_2():
    result = run("cell", "check", "pick_station", "--robot", "ur5")
    assert result.returncode == 2 and "unknown robot model 'ur5'" in result.stderr


def test_usage_error_exits_2():
    assert run("cell", "check").returncode == 2
    assert run("no-such-command").returncode == 2


def test_render_writes_two_views(tmp_path):
    from PIL import Image

    out = tmp_path / "cell.png"
    result = run("cell", "render", "two_arm_line", "-o", str(out), "--width", "160", "--height", "120")
    assert result.returncode == 0, result.stderr
    image = Image.open(out)
    assert image.size == (320, 120)
    import numpy as np

    colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # a real picture, not a blank frame


def test_demo_places_the_part(tmp_path):
    result = run("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["success"] is True
    assert 1.0 < summary["cycle_time_s"] < 15.0
    assert "cycle time" in result.stdout
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 1000


@pytest.mark.parametrize("robot", ["kuka_iiwa", "xarm6"])
def test_demo_runs_with_other_robots(tmp_path, robot):
    result = run("demo", "--robot", robot, "--out", str(tmp_path / robot))
    assert result.returncode == 0, result.stdout + result.stderr
