"""The main job of celltwin end to end, stage by stage, into one run directory (`celltwin demo`).

:data:`STAGES` is the list, in order; a stage is a :class:`~celltwin.pipeline.frame.Stage`
(its work and its report section). Later stages (a sim-to-sim check, a calibration fit) are
appended to the list. Budgets (the full run, ``--quick``) are in
:mod:`celltwin.pipeline.budgets`.

Run directory::

    pipeline.json          every stage: status, seconds, record
    report.md, report.html the run's figures and tables, read from the files below
    figures/               the report's plots (learning curve, heatmap, KPIs)
    train/                 celltwin train's run directory
    evaluate/              evaluation.json, evaluation.md, heatmap.png
    video/                 episodes.gif, video.json
    bundle/                the exported bundle (policy.onnx, manifest.json)
    deploy/                deploy.json, telemetry.jsonl
    layout/                expert/ and policy/ (layout run directories), layout.json
"""

from __future__ import annotations

from pathlib import Path

from celltwin.pipeline.budgets import BUDGETS, FULL, QUICK, Budget
from celltwin.pipeline.cell_kpis import layout_section, run_layout_kpis
from celltwin.pipeline.frame import Context, Stage, prepare_out, read_record, run_pipeline
from celltwin.pipeline.learn import (evaluate_section, run_evaluate, run_train, run_video,
                                     train_section, video_section)
from celltwin.pipeline.report import write_report
from celltwin.pipeline.ship import deploy_section, export_section, run_deploy, run_export
from celltwin.spec import load_cell

TITLE = "celltwin demo: the main job end to end"

STAGES: list[Stage] = [
    Stage("train", "train a PickPlace policy under domain randomization", run_train,
          train_section),
    Stage("evaluate", "evaluate it on the nominal twin, the randomized twin and a robustness "
                      "grid", run_evaluate, evaluate_section),
    Stage("video", "film a few of its episodes", run_video, video_section),
    Stage("export", "export the bundle (ONNX + manifest, parity-checked)", run_export,
          export_section),
    Stage("deploy", "serve the twin over OPC UA on 127.0.0.1 and deploy the bundle",
          run_deploy, deploy_section),
    Stage("layout", "the cell's layout KPIs, worked by the policy and by the scripted expert",
          run_layout_kpis, layout_section),
]


def run_demo(out: str | Path, *, cell: str = "pick_station", seed: int = 0,
             budget: Budget = FULL, stages: list[Stage] | None = None, echo=print) -> dict:
    """Run the demo's stages into ``out`` (see the module docstring); return ``pipeline.json``.

    Raises:
        CelltwinError: a cell that cannot be read (before anything is written), ``out``
            holding files of something else, or what a stage raised (after the report).
    """
    stages = STAGES if stages is None else stages
    load_cell(cell)   # a bad cell is one error line before the run directory is touched
    out = Path(out)
    prepare_out(out, stages)
    context = Context(out=out, cell=str(cell), seed=seed, budget=budget)
    echo(f"celltwin demo: {len(stages)} stages on cell '{cell}', {budget.name} budget "
         f"({budget.about}), into {out}")
    return run_pipeline(context, stages, description=TITLE, echo=echo,
                        write_report=lambda ctx, entries, ran: write_report(
                            ctx, entries, ran, title=TITLE))


__all__ = ["BUDGETS", "FULL", "QUICK", "STAGES", "Budget", "Context", "Stage", "read_record",
           "run_demo", "run_pipeline"]
