"""Line planning on cell twins: layout check, layout run KPIs, compare, sweep, bad input.

The commands run in-process through the CLI's dispatcher (the same error path as the console
script) with tiny budgets: a few parts, the bin feed where a run must never be starved.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import astuple

import pytest

from celltwin.layout import check_layout, find_jobs, parse_param, with_values
from celltwin.layout.jobs import LayoutError
from celltwin.spec import load_cell
from celltwin.spec import validate_cell_data
from celltwin.world import World


def celltwin(cli, *args: str) -> tuple[int, str, str]:
    """Run `celltwin ARGS` in-process (the ``cli`` fixture); return exit code, stdout, stderr."""
    return astuple(cli(*args))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def blocked_cell(tmp_path_factory):
    """pick_station with a post through the path to the tray and a target out of reach."""
    data = load_cell("pick_station").model_dump(mode="json")
    data["name"] = "blocked_station"
    data["equipment"].append({"name": "guard_post", "shape": "box", "size_m": [0.06, 0.06, 0.2],
                              "pose": {"xyz": [0.45, -0.2, 1.0]}})
    data["targets"].append({"name": "place_far", "pose": {"xyz": [1.6, 0.0, 0.8],
                                                          "rpy_deg": [180, 0, 0]}})
    path = tmp_path_factory.mktemp("cells") / "blocked.yaml"
    path.write_text(validate_cell_data(data).to_yaml())
    return path


@pytest.fixture(scope="module")
def sunk_tray_cell(tmp_path_factory):
    """pick_station with its outfeed tray built 5 cm into the table."""
    data = load_cell("pick_station").model_dump(mode="json")
    data["name"] = "sunk_tray"
    data["bins"][1]["pose"]["xyz"][2] = 0.70
    path = tmp_path_factory.mktemp("cells") / "sunk_tray.yaml"
    path.write_text(validate_cell_data(data).to_yaml())
    return path


# ---------------------------------------------------------------------------------- check
def test_check_reports_unreachable_target_and_colliding_fixture(cli, tmp_path, blocked_cell):
    code, out, err = celltwin(cli, "layout", "check", str(blocked_cell),
                              "--out", str(tmp_path))
    assert code == 1, out + err
    assert "place_far" in out and "NOT reachable" in out
    assert "guard_post" in out and "collides" in out
    report = json.loads((tmp_path / "layout_check.json").read_text())
    assert report["ok"] is False
    reach = {r["target"]: r for r in report["reach"]}
    assert reach["place_far"]["reachable"] is False
    assert "out of reach" in reach["place_far"]["reason"]
    hits = reach["place_tray"]["collisions"]
    assert hits and {hit["body"] for hit in hits} == {"guard_post"}
    assert all(hit["robot"] == "arm" and hit["link"].startswith("panda_") and
               hit["distance_m"] < 0 for hit in hits)
    assert reach["pick_bin"]["ok"] and reach["pick_belt_end"]["ok"]
    assert (tmp_path / "layout_check.png").stat().st_size > 10_000


def test_check_of_a_sound_cell_passes_and_measures_clearances():
    with World("pick_station") as world:
        before = world.client.getJointStates(world.robots["arm"].body_id, range(7))
        report = check_layout(world, margin_deg=5)
        after = world.client.getJointStates(world.robots["arm"].body_id, range(7))
    assert report.ok and not report.problems
    assert {r.target for r in report.reach} == {"pick_bin", "pick_belt_end", "place_tray"}
    assert all(r.path_checked and not r.collisions for r in report.reach)
    clearance = {c.body: c.distance_m for c in report.home}
    assert clearance["table"] > 0.05 and clearance["outfeed_tray"] > 0.05
    assert 0.8 < report.envelopes_m["arm"] < 1.1
    assert [s[0] for s in before] == [s[0] for s in after]  # the world is left as it was


def test_joint_margin_makes_a_target_unreachable():
    # The Panda's elbow (joint 4) bends to about -2.4 rad for the table-height targets; a
    # 60 deg margin allows no more than -2.09.
    with World("pick_station") as world:
        loose = {r.target: r.reachable for r in check_layout(world, margin_deg=0).reach}
        strict = {r.target: r for r in check_layout(world, margin_deg=60).reach}
    assert all(loose.values())
    assert not strict["pick_bin"].reachable
    assert "joint limit on panda_joint4" in strict["pick_bin"].reason


# ---------------------------------------------------------------------------------- run
def run_kpis(cli, out_dir, *args: str) -> tuple[dict, str]:
    code, out, err = celltwin(cli, "layout", "run", *args, "--out", str(out_dir))
    assert code == 0, out + err
    return json.loads((out_dir / "kpis.json").read_text()), out


def test_run_never_starved_kpis_are_consistent(cli, tmp_path):
    kpis, out = run_kpis(cli, tmp_path, "pick_station", "--pick", "pick_bin",
                         "--parts", "3")
    assert kpis["parts_in"] == kpis["parts_out"] + kpis["parts_in_process"] \
        + kpis["parts_dropped"] + kpis["parts_missed"] == 3
    assert kpis["parts_out"] == 3
    sim_h = kpis["sim_time_s"] / 3600
    assert kpis["throughput_per_h"] == pytest.approx(kpis["parts_out"] / sim_h, rel=1e-3)
    robot = kpis["robots"]["arm"]
    assert robot["starved_s"] < 0.1  # the bin is refilled as soon as its part is taken
    assert robot["busy_s"] + robot["starved_s"] + robot["blocked_s"] == \
        pytest.approx(kpis["sim_time_s"], abs=1e-6)
    assert kpis["throughput_per_h"] == pytest.approx(3600 / kpis["cycle_time_s"]["mean"],
                                                     rel=0.03)
    assert kpis["capacity_per_h"] == pytest.approx(kpis["throughput_per_h"], rel=0.03)
    assert 1.5 < kpis["cycle_time_s"]["mean"] < 6
    assert sum(kpis["phase_times_s"].values()) == pytest.approx(kpis["cycle_time_s"]["mean"],
                                                                abs=0.01)
    assert kpis["line_station"]["cycle_time_s"]["dist"] == "empirical"
    assert len(kpis["line_station"]["cycle_time_s"]["samples"]) == 3
    rows = list(csv.DictReader((tmp_path / "parts.csv").open()))
    assert [row["outcome"] for row in rows] == ["out"] * 3
    assert {"cycle_time_s", "carry_s", "wait_s"} <= set(rows[0])
    assert (tmp_path / "cycle_times.png").stat().st_size > 5_000
    assert "# Layout run: pick_station" in (tmp_path / "summary.md").read_text()
    assert "faster than real time" in out and "throughput" in out


def test_run_on_the_belt_balances_parts_and_splits_robot_time(cli, tmp_path):
    kpis, _ = run_kpis(cli, tmp_path, "pick_station", "--parts", "3",
                       "--spacing-m", "0.5")
    assert kpis["feeds"]["belt_start"]["kind"] == "belt"
    assert kpis["feeds"]["belt_start"]["arrival_interval_s"] == pytest.approx(5.0)
    assert kpis["parts_in"] == kpis["parts_out"] + kpis["parts_in_process"] \
        + kpis["parts_dropped"] + kpis["parts_missed"]
    assert kpis["parts_out"] >= 2
    robot = kpis["robots"]["arm"]
    # The first can rides the belt for seconds before the robot can take it: starved.
    assert robot["starved_s"] > 3.0
    assert robot["utilization"] + robot["starved_share"] + robot["blocked_share"] == \
        pytest.approx(1.0, abs=1e-3)
    assert kpis["throughput_per_h"] < kpis["capacity_per_h"]
    assert kpis["throughput_per_h"] == pytest.approx(
        kpis["parts_out"] / (kpis["sim_time_s"] / 3600), rel=1e-3)


def test_two_robots_intercept_parts_passing_on_one_belt(cli, tmp_path):
    # two_arm_line's belt has no end stop: parts are taken while they move. With a part every
    # 2 s and ~3 s cycles, the second part passes busy arm_a and arm_b takes it downstream.
    kpis, _ = run_kpis(cli, tmp_path, "two_arm_line", "--parts", "2",
                       "--spacing-m", "0.16")
    assert kpis["parts_out"] == 2
    assert {name: robot["parts_out"] for name, robot in kpis["robots"].items()} == \
        {"arm_a": 1, "arm_b": 1}
    assert kpis["collisions"]["events"] == 0
    rows = {row["part"]: row for row in csv.DictReader((tmp_path / "parts.csv").open())}
    assert (rows["part_0"]["robot"], rows["part_1"]["robot"]) == ("arm_a", "arm_b")


def test_run_stopped_early_counts_parts_in_process(cli, tmp_path):
    kpis, out = run_kpis(cli, tmp_path, "pick_station", "--parts", "4",
                         "--max-sim-s", "6")
    assert kpis["stopped_by"] == "max_sim_s" and kpis["sim_time_s"] == pytest.approx(6.0)
    assert kpis["parts_in"] == kpis["parts_out"] + kpis["parts_in_process"] \
        + kpis["parts_dropped"] + kpis["parts_missed"]
    assert kpis["parts_in_process"] >= 1
    assert "--max-sim-s" in out


def test_run_refuses_bodies_that_overlap_as_built(cli, tmp_path, sunk_tray_cell):
    code, out, err = celltwin(cli, "layout", "run", str(sunk_tray_cell), "--pick", "pick_bin",
                              "--out", str(tmp_path / "out"))
    assert code == 2, out + err
    lines = error_lines(err)
    assert lines and len(lines) == len(err.splitlines())   # nothing but the error lines
    assert any("'outfeed_tray'" in line and "'table'" in line for line in lines), err
    assert all("overlap by" in line and " mm as built" in line and "--allow-overlap" in line
               for line in lines)
    assert not (tmp_path / "out").exists()


def test_run_of_an_overlapping_layout_when_asked_to(cli, tmp_path, sunk_tray_cell):
    code, out, err = celltwin(cli, "layout", "run", str(sunk_tray_cell), "--pick", "pick_bin",
                              "--allow-overlap", "--parts", "1", "--max-sim-s", "1",
                              "--out", str(tmp_path))
    assert code == 0 and err == "", out + err
    assert (tmp_path / "kpis.json").is_file()


def test_compare_refuses_an_overlapping_layout_before_running_any(cli, tmp_path,
                                                                  sunk_tray_cell):
    code, out, err = celltwin(cli, "layout", "compare", "pick_station", str(sunk_tray_cell),
                              "--pick", "pick_bin", "--out", str(tmp_path / "out"))
    assert code == 2 and out == "", out + err
    assert all("cell 'sunk_tray'" in line for line in error_lines(err))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- compare
def test_compare_ranks_the_layout_with_the_longer_reach_path_slower(cli, tmp_path):
    code, out, err = celltwin(cli, "layout", "compare", "pick_station",
                              "pick_station_far_tray", "--pick", "pick_bin", "--parts", "3",
                              "--out", str(tmp_path))
    assert code == 0, out + err
    document = json.loads((tmp_path / "compare.json").read_text())
    assert document["ranking"] == ["pick_station", "pick_station_far_tray"]
    verdict = document["verdict"]
    assert verdict["best"] == "pick_station"
    assert verdict["deciding_bottleneck"] == "carry"
    layouts = {layout["label"]: layout for layout in document["layouts"]}
    assert layouts["pick_station_far_tray"]["cycle_mean"] > layouts["pick_station"]["cycle_mean"]
    assert layouts["pick_station_far_tray"]["tcp_path"] > layouts["pick_station"]["tcp_path"]
    assert "better layout: 'pick_station'" in out
    table = (tmp_path / "compare.md").read_text()
    assert "| throughput [parts/h] |" in table and "carry" in table
    for name in ("compare.png", "top_views.png", "pick_station/kpis.json",
                 "pick_station_far_tray/top_view.png"):
        assert (tmp_path / name).is_file(), name


def test_compare_calls_a_difference_within_the_spread_a_tie():
    from celltwin.layout.compare import Entry, verdict, welch
    from celltwin.layout.kpis import kpis
    from celltwin.layout.records import RunOptions
    from celltwin.layout.runner import run_layout

    result = run_layout(load_cell("pick_station"), RunOptions(parts=3, pick="pick_bin"))
    entries = [Entry(label, load_cell("pick_station"), result, kpis(result), label)
               for label in ("a", "b")]
    decision = verdict(entries)
    assert decision["tie"] is True and decision["best"] is None
    assert decision["text"].startswith("no better layout: 'a' and 'b' tie")
    assert "95% interval" in decision["text"]
    # Welch's interval is scipy's: the same half width as its t-test's confidence interval.
    from scipy import stats

    first, second = [2.1, 2.4, 2.2, 2.9], [2.6, 3.1, 2.8]
    interval = stats.ttest_ind(first, second, equal_var=False).confidence_interval(0.95)
    difference = welch(first, second, "cycle")
    assert difference.difference_s - difference.half_width_s == pytest.approx(interval.low)
    assert difference.difference_s + difference.half_width_s == pytest.approx(interval.high)
    assert not welch([2.0], [3.0], "cycle").significant   # one sample has no spread


# ---------------------------------------------------------------------------------- sweep
def test_sweep_runs_grid_points_on_local_ray_and_drops_overlapping_ones(cli, tmp_path):
    pytest.importorskip("ray", reason="sweep needs Ray (pip install 'ray>=2.9')")
    # z = 0.70 sinks the tray 5 cm into the table: dropped, never run, never the best.
    code, out, err = celltwin(cli, "sweep", "pick_station",
                              "--param", "bins[1].pose.xyz[0]=0.4:0.5:2",
                              "--param", "bins[1].pose.xyz[2]=0.70:0.75:2", "--pick", "pick_bin",
                              "--parts", "1", "--workers", "2", "--out", str(tmp_path))
    assert code == 0, out + err
    document = json.loads((tmp_path / "sweep.json").read_text())
    points = document["points"]
    assert [(p["values"]["bins[1].pose.xyz[0]"], p["values"]["bins[1].pose.xyz[2]"])
            for p in points] == [(0.4, 0.7), (0.4, 0.75), (0.5, 0.7), (0.5, 0.75)]
    run, dropped = points[1::2], points[0::2]
    assert all(p["parts_out"] == 1 and p["throughput_per_h"] > 0 and not p["error"]
               and not p["overlap"] for p in run)
    assert all("'outfeed_tray'" in p["overlap"] and "'table'" in p["overlap"]
               and p["throughput_per_h"] is None and p["folder"] is None for p in dropped)
    assert document["dropped_overlapping"] == 2
    assert document["best"]["index"] in (1, 3)
    assert (tmp_path / "heatmap.png").is_file() and (tmp_path / "sweep.md").is_file()
    assert (tmp_path / "points" / "001" / "kpis.json").is_file()
    assert not (tmp_path / "points" / "000").exists()
    assert "bins[1].pose.xyz[0]" in out and "2 of 4 candidates dropped" in out


def test_sweep_without_ray_says_how_to_install(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    code, out, err = celltwin(cli, "sweep", "pick_station",
                              "--param", "conveyors[0].speed_mps=0.1:0.2:2", "--parts", "1",
                              "--out", str(tmp_path))
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and 'pip install "ray>=2.9"' in lines[0]
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, expected", [
    (["sweep", "pick_station", "--param", "robots[0].bse.xyz[0]=-0.1:0.1:3",
      "--param", "conveyors[3].speed_mps=0.1:0.2:2"],
     ["robots[0] has no key 'bse'; did you mean 'base'?", "conveyors has 1 entries"]),
    (["sweep", "pick_station", "--param", "robots[0].base=0:1:2"],
     ["robots[0].base is a mapping, not a number"]),
    # Suggestions are only keys the path can go on through: no 'model' (a name, not a
    # number) for a typo at the end, and 'speed_mps' (a number) for one in a conveyor.
    (["sweep", "pick_station", "--param", "robots[0].modle=0:1:2",
      "--param", "conveyors[0].sped_mps=0.1:0.2:2"],
     ["no key 'modle' (expected a path to a number", "did you mean 'speed_mps'?"]),
    (["sweep", "pick_station", "--param", "conveyors[0].speed_mps=fast",
      "--param", "robots[0].base.xyz[0]"],
     ["cannot read the values 'fast'", "expected PATH=LO:HI:N"]),
    (["sweep", "pick_station", "--param", "conveyors[0].speed_mps=4:9:2"],
     ["conveyors[0].speed_mps"]),
    (["layout", "run", "no_such_dir/missing.yaml"], ["cell file not found"]),
    (["layout", "check", "pick_statoin"], ["did you mean 'pick_station'?"]),
    (["layout", "compare", "missing_a.yaml", "missing_b.yaml"],
     ["missing_a.yaml", "missing_b.yaml"]),
    (["layout", "run", "table_top"], ["has no pick target"]),
    (["layout", "run", "pick_station", "--pick", "pick_bni", "--place", "place_trya"],
     ["no target 'pick_bni'; did you mean 'pick_bin'?", "no target 'place_trya'"]),
])
def test_bad_input_exits_2_with_one_line_per_problem(cli, tmp_path, args, expected):
    code, out, err = celltwin(cli, *args, "--out", str(tmp_path / "out"))
    assert code == 2, out + err
    lines = error_lines(err)
    assert len(lines) == len(expected), err
    for line, text in zip(lines, expected):
        assert text in line, (line, text)
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_bad_number_on_the_command_line_is_a_usage_error(cli):
    code, _, err = celltwin(cli, "layout", "run", "pick_station", "--parts", "0")
    assert code == 2
    assert "must be >= 1" in err


# ---------------------------------------------------------------------------------- pieces
def test_param_paths_set_values_through_cell_validation():
    cell = load_cell("pick_station")
    param = parse_param("robots[0].base.xyz[0]=-0.1:0.1:3")
    assert param.values == (-0.1, 0.0, 0.1)
    moved = with_values(cell, {"robots[0].base.xyz[0]": -0.1, "physics.substeps": 10.0})
    assert moved.robots[0].base.xyz[0] == -0.1 and moved.physics.substeps == 10
    assert cell.robots[0].base.xyz[0] == 0.0  # the original is untouched
    with pytest.raises(LayoutError, match="no key 'speed'"):
        with_values(cell, {"conveyors[0].speed": 1.0})


def test_jobs_follow_the_target_naming_convention():
    pick_station = {job.robot: job for job in find_jobs(load_cell("pick_station"))}
    job = pick_station["arm"]
    assert (job.pick.name, job.place.name, job.feed.kind, job.feed.part.name) == \
        ("pick_belt_end", "place_tray", "belt", "can")
    bin_job = find_jobs(load_cell("pick_station"), pick="pick_bin")[0]
    assert (bin_job.feed.kind, bin_job.feed.part.name) == ("bin", "part")
    two_arms = {job.robot: (job.pick.name, job.place.name)
                for job in find_jobs(load_cell("two_arm_line"))}
    assert two_arms == {"arm_a": ("pick_a", "place_a"), "arm_b": ("pick_b", "place_b")}


def test_run_honours_the_robots_actuation_latency(cli, tmp_path):
    # Latency is the robot's actuation, which the world steps: a run with set-points arriving
    # 5 control periods late is another run, not a copy of the prompt one.
    physics = tmp_path / "latency.yaml"
    physics.write_text("robots: {arm: {latency_steps: 5}}\n")
    runs = {}
    for name, extra in (("prompt", ()), ("late", ("--physics", str(physics)))):
        out_dir = tmp_path / name
        runs[name] = run_kpis(cli, out_dir, "pick_station", "--pick",
                              "pick_bin", "--parts", "2", *extra)[0]
        runs[name]["csv"] = (out_dir / "parts.csv").read_text()
    assert runs["late"]["csv"] != runs["prompt"]["csv"]
    assert runs["late"]["cycle_time_s"]["mean"] != runs["prompt"]["cycle_time_s"]["mean"]
