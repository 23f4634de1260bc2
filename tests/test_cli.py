"""The `celltwin` command: exit codes and one line per problem.

Commands run in this process (the ``cli`` fixture calls ``celltwin.cli.main.main``); the first
test runs the installed console script, as a user does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_console_script_runs_and_reports_errors_without_a_traceback(tmp_path):
    # The installed entry point, in a real process: what a user's shell sees.
    result = subprocess.run([CELLTWIN, "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    for command in ("demo", "cell"):
        assert command in result.stdout
    result = subprocess.run([CELLTWIN, "cell", "check", str(tmp_path / "nope.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")


def test_cell_check_valid_cell_exits_0(cli, tmp_path):
    result = cli("cell", "check", "pick_station", "--json", str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reachable" in result.stdout and "interpenetrations: none" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True
    assert {r["target"] for r in report["reach"]} == {"pick_bin", "pick_belt_end", "place_tray"}


def test_cell_check_broken_cell_lists_every_fault_and_exits_2(cli, tmp_path):
    cell = tmp_path / "broken.yaml"
    cell.write_text(BROKEN_CELL)
    result = cli("cell", "check", cell)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    for path in ("robots[0].model", "robots[0].control", "equipment[0].size_m[2]", "parts[0].spawn"):
        assert any(path in line for line in lines), (path, lines)
    assert all(line.startswith("error: ") for line in lines)
    assert "did you mean 'panda'" in result.stderr


def test_missing_cell_file_exits_2(cli, tmp_path):
    result = cli("cell", "check", tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_bad_physics_override_exits_2(cli, tmp_path):
    physics = tmp_path / "physics.yaml"
    physics.write_text("bodies:\n  prat: {mass_kg: 1.0}\n")
    result = cli("cell", "check", "pick_station", "--physics", physics)
    assert result.returncode == 2
    assert "bodies.prat" in result.stderr and "did you mean 'part'" in result.stderr


def test_unknown_robot_swap_exits_2(cli):
    result = cli("cell", "check", "pick_station", "--robot", "ur5")
    assert result.returncode == 2 and "unknown robot model 'ur5'" in result.stderr


def test_usage_error_exits_2(cli):
    assert cli("cell", "check").returncode == 2
    assert cli("no-such-command").returncode == 2
    assert cli().returncode == 2   # no command: the help, and a usage exit


def test_render_writes_two_views(cli, tmp_path):
    from PIL import Image

    out = tmp_path / "cell.png"
    result = cli("cell", "render", "two_arm_line", "-o", out, "--width", "160", "--height", "120")
    assert result.returncode == 0, result.stderr
    image = Image.open(out)
    assert image.size == (320, 120)
    import numpy as np

    colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # a real picture, not a blank frame
