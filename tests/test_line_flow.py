"""Line model: closed-form throughput, blocking and starving, failures, mix, file problems, CLI."""

from __future__ import annotations

import json
import math

import pytest

from celltwin.line import LineResult, LineSpecError, load_line, parse_line, simulate
from celltwin.line.result import STATES


def line(stations: str, *, extra: str = "", hours: float = 8, days: int = 1) -> str:
    shift = f"shift: {{hours_per_day: {hours}, days: {days}}}\n"
    return f"name: test\n{shift}{extra}stations:\n{stations}"


def run(text: str, seed: int = 0, **kwargs) -> LineResult:
    return simulate(parse_line(text), seed, **kwargs)


def test_balanced_line_matches_closed_form_throughput():
    result = run(line("  - {name: a, cycle_time_s: 30}\n  - {name: b, cycle_time_s: 30}\n"))
    assert result.throughput_per_h == pytest.approx(3600 / 30, rel=0.02)
    assert result.station("a").utilization == pytest.approx(1.0, abs=0.01)
    assert result.station("b").utilization == pytest.approx(1.0, abs=0.01)


def test_slowest_station_is_the_bottleneck_and_sets_the_pace():
    result = run(line("  - {name: fast, cycle_time_s: 20}\n  - {name: slow, cycle_time_s: 45}\n"
                      "  - {name: medium, cycle_time_s: 30}\n"))
    assert result.bottleneck == "slow"
    assert result.bottlenecks == ("slow", "medium", "fast")
    assert result.throughput_per_h == pytest.approx(3600 / 45, rel=0.02)


def test_blocking_upstream_and_starving_downstream_of_a_slow_station():
    result = run(line("  - {name: up, cycle_time_s: 20}\n  - {name: slow, cycle_time_s: 45}\n"
                      "  - {name: down, cycle_time_s: 30}\n",
                      extra="buffers:\n  - {after: up, capacity: 1}\n"))
    up, slow, down = (result.station(name) for name in ("up", "slow", "down"))
    assert up.state_shares["blocked"] == pytest.approx(1 - 20 / 45, abs=0.02)
    assert up.state_shares["starved"] + up.state_shares["waiting"] == pytest.approx(0, abs=1e-9)
    assert down.state_shares["starved"] == pytest.approx(1 - 30 / 45, abs=0.02)
    assert down.state_shares["blocked"] == pytest.approx(0, abs=1e-9)
    assert slow.state_shares["working"] == pytest.approx(1, abs=0.01)
    assert result.buffers[0].full_share > 0.95  # the buffer in front of the slow station is full


def test_direct_hand_over_and_unbounded_buffers_run():
    stations = "  - {name: a, cycle_time_s: 20}\n  - {name: b, cycle_time_s: 45}\n"
    direct = run(line(stations, extra="buffers:\n  - {after: a, capacity: 0}\n"))
    unbounded = run(line(stations, extra="buffers:\n  - {after: a, capacity: inf}\n"))
    assert direct.throughput_per_h == pytest.approx(80, rel=0.02)
    assert direct.buffers[0].max_occupancy == 0
    assert unbounded.station("a").state_shares["blocked"] == 0
    assert unbounded.buffers[0].max_occupancy > 500  # a grows a queue in front of b


def test_parallel_machines_add_capacity():
    result = run(line("  - {name: a, cycle_time_s: 30}\n"
                      "  - {name: b, cycle_time_s: 60, servers: 2}\n"))
    assert result.throughput_per_h == pytest.approx(3600 / 30, rel=0.02)


def test_failures_reduce_availability_to_mtbf_over_mtbf_plus_mttr():
    result = run(line("  - {name: press, cycle_time_s: 60, mtbf_h: 2, mttr_min: 12}\n",
                      hours=24, days=40), seed=3)
    expected = 2 / (2 + 12 / 60)
    press = result.station("press")
    assert press.failures > 300
    assert press.availability == pytest.approx(expected, rel=0.02)
    assert press.state_shares["working"] == pytest.approx(expected, rel=0.02)
    assert result.throughput_per_h == pytest.approx(expected * 60, rel=0.02)


def test_a_timed_source_sets_the_pace_of_an_underloaded_line():
    result = run(line("  - {name: a, cycle_time_s: 30}\n",
                      extra="source: {interarrival_s: {dist: constant, value: 40}}\n"))
    assert result.throughput_per_h == pytest.approx(90, rel=0.02)
    assert result.takt_s == 40
    assert result.station("a").state_shares["waiting"] == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("name", ["two_station", "body_shop"])
def test_state_shares_sum_to_one_and_hours_fill_the_calendar(name):
    result = simulate(load_line(name), seed=7, warmup_h=2)
    for station in result.stations:
        assert set(station.state_shares) == set(STATES)
        assert sum(station.state_shares.values()) == pytest.approx(1.0, abs=1e-9)
        assert all(share >= 0 for share in station.state_shares.values())
        on_shift_h = sum(h for state, h in station.state_hours.items() if state != "off_shift")
        assert on_shift_h == pytest.approx(result.measured_h)
        assert on_shift_h + station.state_hours["off_shift"] == pytest.approx(
            result.days * 24 - 2)
    assert result.measured_h == pytest.approx(result.days * result.hours_per_day - 2)


def test_same_seed_same_result_other_seed_other_result():
    spec = load_line("body_shop")
    first, again, other = simulate(spec, 11), simulate(spec, 11), simulate(spec, 12)
    assert first == again
    assert _comparable(first) == _comparable(again)
    assert first != other
    assert first.parts_completed != other.parts_completed or first.lead_time_s != other.lead_time_s


def test_changing_one_station_keeps_the_random_numbers_of_the_others():
    # Common random numbers: the streams follow station names, not positions or draw order.
    text = line("  - {name: a, cycle_time_s: {dist: normal, mean: 30, std: 5}}\n"
                "  - {name: b, cycle_time_s: {dist: normal, mean: 28, std: 5}}\n")
    base = run(text, seed=5)
    changed = run(text.replace("mean: 28", "mean: 29"), seed=5)
    assert base.station("a").mean_cycle_time_s == pytest.approx(
        changed.station("a").mean_cycle_time_s, rel=0.01)


def test_product_time_factors_change_cycle_times_and_throughput():
    stations = "  - {name: paint, cycle_time_s: 60}\n"
    plain = run(line(stations, extra="products:\n  - {name: a, share: 0.5}\n"
                                     "  - {name: b, share: 0.5}\n"))
    slow_b = run(line(stations, extra="products:\n  - {name: a, share: 0.5}\n"
                                      "  - {name: b, share: 0.5, time_factor: {paint: 2}}\n"))
    assert plain.throughput_per_h == pytest.approx(60, rel=0.01)
    assert slow_b.throughput_per_h == pytest.approx(3600 / 90, rel=0.04)  # mean 0.5*60 + 0.5*120
    assert slow_b.station("paint").nominal_cycle_time_s == pytest.approx(90)
    counts = slow_b.parts_by_product
    assert counts["a"] + counts["b"] == slow_b.parts_completed
    assert counts["b"] / slow_b.parts_completed == pytest.approx(0.5, abs=0.1)


def test_warmup_is_left_out_of_the_statistics():
    text = line("  - {name: a, cycle_time_s: 30}\n  - {name: b, cycle_time_s: 30}\n")
    result = run(text, warmup_h=1)
    assert result.measured_h == pytest.approx(7)
    assert result.station("b").state_shares["starved"] == 0  # the empty start was cut off
    with pytest.raises(LineSpecError) as caught:
        run(text, warmup_h=8)
    assert caught.value.problems[0].path == "warmup_h"


def test_spec_round_trips_through_yaml():
    spec = load_line("body_shop")
    assert parse_line(spec.to_yaml()) == spec


BROKEN_LINE = """\
name: broken
shift: {hours_per_day: 30, days: 5, nights: 2}
products:
  - {name: sedan, share: 0.7}
  - {name: suv, share: 0.2, time_factor: {wled: 1.2}}
source: {interarrival_s: {dist: weibull, value: 40}}
stations:
  - name: load
    cycle_time_s: {dist: normal, mean: -30, std: 2}
    mtbf_h: 8
  - name: weld
    cycle_time_s: {dist: constant, value: 45}
    cycel: 3
  - name: load
    cycle_time_s: 20
buffers:
  - {after: lod, capacity: 3}
  - {after: weld, capacity: -1}
"""

BROKEN_PATHS = {
    "shift.hours_per_day", "shift.nights", "products", "products[1].time_factor.wled",
    "source.interarrival_s.dist", "stations[0].cycle_time_s.mean", "stations[0].mttr_min",
    "stations[1].cycel", "stations[2].name", "buffers[0].after", "buffers[1].capacity",
}


def test_malformed_line_reports_every_fault_with_its_path_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_LINE)
    with pytest.raises(LineSpecError) as caught:
        load_line(path)
    problems = caught.value.problems
    assert {p.path for p in problems} == BROKEN_PATHS
    assert all(p.file == str(path) and p.line for p in problems)
    by_path = {p.path: p for p in problems}
    assert "did you mean 'load'" in by_path["buffers[0].after"].message
    assert "did you mean 'weld'" in by_path["products[1].time_factor.wled"].message
    assert by_path["stations[2].name"].line == 14
    assert "line 8" in by_path["stations[2].name"].message  # where the first 'load' is


@pytest.fixture
def celltwin(monkeypatch):
    import celltwin.cli.main as cli

    if "celltwin.cli.line" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "celltwin.cli.line"))
    return cli.main


def test_cli_bad_file_exits_2_with_one_line_per_problem(celltwin, tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_LINE)
    assert celltwin(["line", "run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(BROKEN_PATHS)
    assert all(text.startswith(f"error: {path}:") for text in err)
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "run").exists()


def test_cli_line_run_writes_its_four_files(celltwin, tmp_path, capsys):
    out = tmp_path / "run"
    assert celltwin(["line", "run", "two_station", "--days", "1", "--seed", "3",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "throughput" in printed and "bottleneck: weld" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["line.json", "line.md", "stations.png", "buffers.png"])
    data = json.loads((out / "line.json").read_text())
    assert data["bottleneck"] == "weld" and data["seed"] == 3 and data["days"] == 1
    assert math.isclose(sum(data["stations"][0]["state_shares"].values()), 1.0, abs_tol=1e-9)
    table = (out / "line.md").read_text()
    assert "| weld |" in table and "blocked %" in table and "starved %" in table
    for image in ("stations.png", "buffers.png"):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _comparable(result: LineResult) -> dict:
    data = result.to_dict()
    del data["wall_time_s"]
    return data
