"""`layout run --policy BUNDLE`: a learned policy works the cell, so the KPIs are those of what
will run (celltwin.layout.policy_cycle).

The bundle is tests/data/pickplace_bundle: PickPlace trained on pick_station by `celltwin demo`
(full budget, seed 0, under the joint motion limits of celltwin.core.joint_motion: 97% nominal
and 93% randomized success in its evaluation, 9/10 deployed over OPC UA), exported with
`celltwin export RUN/train -o tests/data/pickplace_bundle --no-torchscript --samples 300`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

BUNDLE = Path(__file__).parent / "data" / "pickplace_bundle"
RUN = ("layout", "run", "pick_station", "--pick", "pick_bin")


def _kpis(folder: Path) -> dict:
    return json.loads((folder / "kpis.json").read_text())


def test_a_bundle_works_the_cell_and_its_cycles_are_what_is_measured(cli, tmp_path):
    learned = cli(*RUN, "--parts", "3", "--policy", BUNDLE, "--out", tmp_path / "policy")
    scripted = cli(*RUN, "--parts", "3", "--out", tmp_path / "expert")
    assert learned.returncode == 0 and scripted.returncode == 0, learned.stderr
    assert learned.stderr == ""
    assert f"worked by the policy of {BUNDLE}" in learned.stdout
    policy, expert = _kpis(tmp_path / "policy"), _kpis(tmp_path / "expert")
    assert policy["policy"] == str(BUNDLE) and expert["policy"] == "expert"
    assert policy["parts_out"] == 3 and policy["parts_dropped"] == 0, policy["balance"]
    phases = policy["phase_times_s"]
    # The policy approaches, grasps and carries in one motion of its own; the scripted place
    # lowers, releases and retreats; the arm then goes home, where training episodes began.
    assert phases["approach"] > 0 and phases["carry"] > 0
    assert phases["descend"] == phases["grasp"] == phases["lift"] == 0
    assert min(phases["lower"], phases["release"], phases["retreat"], phases["posture"]) > 0
    assert expert["phase_times_s"]["descend"] > 0 and expert["phase_times_s"]["posture"] == 0
    assert policy["cycle_time_s"]["mean"] != expert["cycle_time_s"]["mean"]
    with open(tmp_path / "policy" / "parts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:   # every second of a part's cycle is in one of its phases
        phase_sum = sum(float(value) for key, value in row.items()
                        if key.endswith("_s") and key[:-2] in phases and value)
        assert phase_sum == pytest.approx(float(row["cycle_time_s"]), abs=1e-6)
    # What a line planner takes into the line model is the policy's cycle.
    assert policy["line_station"]["cycle_time_s"]["samples"] == [
        round(float(row["cycle_time_s"]), 3) for row in rows]


def test_layout_compare_takes_the_policy_too(cli, tmp_path):
    result = cli("layout", "compare", "pick_station", "--pick", "pick_bin", "--parts", "1",
                 "--policy", BUNDLE, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert _kpis(tmp_path / "pick_station")["policy"] == str(BUNDLE)


@pytest.mark.parametrize("args, words, lines", [
    (("two_arm_line",), ["--pick", "moving on belt 'line'", "arm_a"], 2),
    (("pick_station_far_tray", "--pick", "pick_bin"),
     ["--policy", "place_tray", "beside the goals the policy was trained on"], 1),
    (("pick_station", "--pick", "pick_bin", "--robot", "kuka_iiwa"),
     ["--policy", "drives a panda", "kuka_iiwa"], 1),
])
def test_a_policy_that_does_not_fit_the_job_is_refused_before_the_run(cli, tmp_path, args,
                                                                      words, lines):
    result = cli("layout", "run", *args, "--policy", BUNDLE, "--out", tmp_path / "run")
    assert result.returncode == 2
    errors = result.stderr.splitlines()
    assert len(errors) == lines and all(line.startswith("error: ") for line in errors)
    for word in words:
        assert word in errors[0], (word, errors)
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("where, words", [
    ("missing", ["no such policy"]),
    ("folder", ["is not a policy bundle (no manifest.json)"]),
    ("run", ["is a training run, not a bundle: export it first"]),
])
def test_a_policy_that_is_not_a_bundle_is_one_error_line(cli, tmp_path, where, words):
    folder = tmp_path / where
    if where != "missing":
        folder.mkdir()
    if where == "run":
        (folder / "config.yaml").write_text("task: PickPlace\n")
    result = cli(*RUN, "--policy", folder, "--out", tmp_path / "out")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: --policy: ")
    for word in words:
        assert word in result.stderr


def test_a_job_with_other_parts_than_the_policy_learned_is_warned_about(cli, tmp_path):
    # pick_station's default job takes cans at the belt's end; the policy learned the box.
    result = cli("layout", "run", "pick_station", "--parts", "1", "--policy", BUNDLE,
                 "--out", tmp_path)
    assert result.returncode == 0
    assert result.stderr.startswith("warning: the policy learned to pick 'part'; robot 'arm' "
                                    "of cell 'pick_station' picks 'can' parts")
