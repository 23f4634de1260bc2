"""`celltwin demo`: the main job end to end (celltwin.pipeline), as `--quick` runs it.

One quick demo runs for the module (about 45 s on 2 cores): every stage runs for real (training,
evaluation, a GIF, export, an OPC UA server on 127.0.0.1 and the adapter, two layout runs), and
the report's numbers and figures are checked against the JSON files the stages wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celltwin.cli.main import main
from celltwin.core.errors import CelltwinError, Problem
from celltwin.pipeline import QUICK, STAGES, Context, Stage, read_record, run_pipeline
from celltwin.pipeline.figures import kpi_png, learning_curve_png
from celltwin.pipeline.frame import Section
from celltwin.pipeline.report import write_report
from celltwin.training.evaluation import heatmap_png


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """The installed CLI's `celltwin demo --quick`, its exit code, output and run directory."""
    out = tmp_path_factory.mktemp("demo") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--quick", "--out", str(out)])
    return code, stdout.getvalue(), stderr.getvalue(), out


def _table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first table under the ``## heading`` starting with it."""
    section = markdown.split("\n## " + heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_quick_demo_runs_every_stage_with_a_progress_display(quick_demo):
    code, stdout, stderr, out = quick_demo
    assert code == 0, stdout + stderr
    record = read_record(out)
    assert [stage["name"] for stage in record["stages"]] == [stage.name for stage in STAGES]
    assert all(stage["status"] == "done" for stage in record["stages"]), record
    assert record["budget"] == "quick" and record["wall_s"] < 90
    for index, stage in enumerate(STAGES, start=1):
        assert f"[{index}/{len(STAGES)}] {stage.name}" in stdout
    assert stdout.count(" done in ") == len(STAGES)
    assert "serving the twin at opc.tcp://127.0.0.1:" in stdout
    for name in ("report.md", "report.html", "train/summary.json", "evaluate/evaluation.json",
                 "video/episodes.gif", "bundle/policy.onnx", "deploy/deploy.json",
                 "deploy/telemetry.jsonl", "layout/expert/kpis.json", "layout/policy/kpis.json"):
        assert (out / name).is_file(), name


def test_report_numbers_are_those_of_the_stages_json(quick_demo):
    out = quick_demo[3]
    report = (out / "report.md").read_text()
    summary = json.loads((out / "train" / "summary.json").read_text())
    training = dict(_table(report, "Training"))
    assert training["success on the nominal twin"] == f"{summary['success_nominal']:.0%}"
    assert training["success on the randomized twin"] == f"{summary['success_randomized']:.0%}"
    assert training["env steps of RL"] == str(summary["steps"])

    evaluation = json.loads((out / "evaluate" / "evaluation.json").read_text())
    nominal, randomized = _table(report, "Evaluation")
    assert nominal[1:3] == [str(evaluation["nominal"]["episodes"]),
                            f"{evaluation['nominal']['success_rate']:.0%}"]
    assert randomized[2] == f"{evaluation['randomized']['success_rate']:.0%}"

    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    export = dict(_table(report, "Export"))
    assert export["parity \\|ONNX - SB3\\|"].startswith(
        f"{manifest['policy']['parity']['max_abs_diff']:.2e}")

    deployed = json.loads((out / "deploy" / "deploy.json").read_text())["episodes"]
    rows = _table(report, "Deployment")
    assert [(row[1], int(row[2])) for row in rows] == [
        ("yes" if episode["success"] else "no", episode["steps"]) for episode in deployed]
    steps = [line for line in (out / "deploy" / "telemetry.jsonl").read_text().splitlines()
             if json.loads(line).get("type") == "step"]
    assert len(steps) == sum(episode["steps"] for episode in deployed)

    layout = {row[0]: row for row in _table(report, "Layout KPIs")}
    for label, folder in (("scripted expert", "expert"), ("learned policy", "policy")):
        kpis = json.loads((out / "layout" / folder / "kpis.json").read_text())
        assert layout[label][1] == f"{kpis['parts_out']}/{kpis['parts_in']}"
        assert layout[label][3] == f"{kpis['throughput_per_h']:.1f}"
    expert = json.loads((out / "layout" / "expert" / "kpis.json").read_text())
    assert expert["policy"] == "expert" and expert["parts_out"] == expert["parts_in"]
    assert json.loads((out / "layout" / "policy" / "kpis.json").read_text())["policy"] == "bundle"


def test_report_figures_are_drawn_from_the_stages_files(quick_demo, tmp_path):
    out = quick_demo[3]
    report, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert set(figures) == {"figures/learning_curve.png", "figures/heatmap.png",
                            "video/episodes.gif", "figures/layout_kpis.png"}
    for figure in figures:
        assert (out / figure).stat().st_size > 1000 and f'src="{figure}"' in page
    # Drawn again from the files alone, each figure is the report's, pixel for pixel.
    evaluation = json.loads((out / "evaluate" / "evaluation.json").read_text())
    assert np.array_equal(_pixels(heatmap_png(evaluation, tmp_path / "heatmap.png")),
                          _pixels(out / "figures" / "heatmap.png"))
    curve = learning_curve_png(out / "train", tmp_path / "curve.png")
    assert np.array_equal(_pixels(curve), _pixels(out / "figures" / "learning_curve.png"))
    kpis = {label: json.loads((out / "layout" / folder / "kpis.json").read_text())
            for label, folder in (("scripted expert", "expert"), ("learned policy", "policy"))}
    assert np.array_equal(_pixels(kpi_png(kpis, tmp_path / "kpis.png")),
                          _pixels(out / "figures" / "layout_kpis.png"))
    filmed = json.loads((out / "video" / "video.json").read_text())
    import imageio.v3 as iio

    # Pillow folds a repeated frame (an episode's held last frame) into one longer frame.
    assert 5 < len(iio.imread(out / "video" / "episodes.gif")) <= filmed["frames"]


def test_a_foreign_folder_and_a_bad_cell_are_refused_before_any_work(cli, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    result = cli("demo", "--quick", "--out", foreign)
    assert result.returncode == 2 and result.stderr.count("error:") == 1, result.stderr
    assert "--out" in result.stderr and (foreign / "thesis.tex").read_text() == "keep me"
    result = cli("demo", "--quick", "--cell", "pick_statoin", "--out", tmp_path / "new")
    assert result.returncode == 2 and "did you mean 'pick_station'" in result.stderr
    assert not (tmp_path / "new").exists()


def _stage(name: str, fail: bool = False) -> Stage:
    def run(context: Context) -> dict:
        (context.folder(name) / "made.json").write_text(json.dumps({"stage": name}))
        if fail:
            raise CelltwinError(Problem(f"{name} cannot go on", path=name))
        return {"summary": f"{name} made its file"}

    def section(out: Path, record: dict) -> Section:
        made = json.loads((out / name / "made.json").read_text())
        return Section(f"Stage {made['stage']}", [record["summary"]])

    return Stage(name, f"the {name} stage", run, section)


def test_stages_are_a_list_a_later_stage_extends_and_a_failure_is_reported(tmp_path):
    stages = [_stage("first"), _stage("second", fail=True), _stage("third")]
    lines: list[str] = []
    context = Context(out=tmp_path, cell="pick_station", seed=0, budget=QUICK)
    with pytest.raises(CelltwinError, match="second cannot go on"):
        run_pipeline(context, stages, description="test", echo=lines.append,
                     write_report=lambda ctx, entries, ran: write_report(ctx, entries, ran,
                                                                          title="test"))
    record = read_record(tmp_path)
    assert [stage["status"] for stage in record["stages"]] == ["done", "failed", "not run"]
    assert "second cannot go on" in record["stages"][1]["error"]
    report = (tmp_path / "report.md").read_text()
    assert "## Stage first" in report and "## Stage second" not in report
    assert "[2/3] second  FAILED" in "\n".join(lines)
