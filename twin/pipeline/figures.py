"""The report's figures, drawn from the files the stages wrote (never from memory).

- the learning curve: the clone's success measured before each DAgger round
  (``train/summary.json``) and the evaluations on the nominal and the randomized twin
  (``train/metrics.csv``);
- the layout KPIs: throughput, mean cycle time and parts placed of each policy that worked the
  cell (``layout/<policy>/kpis.json``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from celltwin.core.atomic import atomic_write_bytes
from celltwin.core.plots import new_figure
from celltwin.training.metrics import MetricsLog


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue(), mode=0o644)


def learning_curve_points(run_dir: Path) -> dict:
    """The curve's data: ``cloning`` (round, clone success) and ``evaluations`` (step,
    nominal, randomized), read from a training run directory."""
    summary = json.loads((run_dir / "summary.json").read_text())
    rounds = (summary.get("demonstrations") or {}).get("dagger") or []
    cloning = [(index, record["clone_success"]) for index, record in enumerate(rounds)]
    evaluations = []
    for row in MetricsLog(run_dir / "metrics.csv").rows():
        nominal = float(row["success_nominal"]) if row["success_nominal"] else None
        randomized = float(row["success_randomized"]) if row["success_randomized"] else None
        evaluations.append((int(float(row["step"])), nominal, randomized))
    return {"cloning": cloning, "evaluations": evaluations}


def learning_curve_png(run_dir: Path, path: Path) -> Path | None:
    """Draw the learning curve of the run in ``run_dir``; ``None`` when it has no points."""
    points = learning_curve_points(run_dir)
    if not points["cloning"] and not points["evaluations"]:
        return None
    panels = [name for name in ("cloning", "evaluations") if points[name]]
    figure = new_figure(figsize=(4.2 * len(panels), 3.6))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, name in zip(axes[0], panels):
        if name == "cloning":
            rounds, success = zip(*points["cloning"])
            axis.plot(rounds, success, marker="o", color="tab:purple")
            axis.set_xlabel("DAgger round (0: the plain clone)")
            axis.set_xticks(rounds)
            axis.set_title("clone, relabelled by the expert")
        else:
            steps = [step for step, _, _ in points["evaluations"]]
            for column, label in ((1, "nominal twin"), (2, "randomized twin")):
                values = [row[column] for row in points["evaluations"]]
                if any(value is not None for value in values):
                    axis.plot(steps, values, marker="o", label=label)
            axis.set_xlabel("env steps of RL")
            if len(set(steps)) == 1:   # one evaluation: a point, not an axis of hundredths
                axis.set_xticks(steps, [f"{steps[0]}" + (" (before RL)" if not steps[0]
                                                         else "")])
                axis.set_xlim(steps[0] - 1, steps[0] + 1)
            axis.legend(loc="lower right")
            axis.set_title("evaluations")
        axis.set_ylabel("success rate")
        axis.set_ylim(-0.05, 1.05)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def kpi_png(kpis: dict[str, dict], path: Path) -> Path:
    """Bars of throughput, mean cycle time and parts placed, one bar per policy (label)."""
    labels = list(kpis)
    measures = (("throughput_per_h", "throughput [parts/h]"),
                ("cycle_mean_s", "mean cycle time [s]"),
                ("parts_out", "parts placed"))
    figure = new_figure(figsize=(10.5, 3.4))
    axes = figure.subplots(1, len(measures))
    colors = ["tab:gray", "tab:blue", "tab:orange", "tab:green"]
    for axis, (key, title) in zip(axes, measures):
        values = [kpi_value(kpis[label], key) or 0.0 for label in labels]
        bars = axis.bar(labels, values, color=colors[:len(labels)])
        axis.bar_label(bars, fmt="%.1f" if key != "parts_out" else "%d")
        axis.set_title(title)
        axis.margins(y=0.2)
    figure.tight_layout()
    return _save(figure, path)


def kpi_value(kpis: dict, key: str):
    """One of the figures :func:`kpi_png` draws, out of a ``kpis.json``."""
    if key == "cycle_mean_s":
        return kpis["cycle_time_s"]["mean"]
    if key == "parts_out":
        return kpis["parts_out"]
    return kpis[key]
