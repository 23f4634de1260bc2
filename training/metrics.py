"""Metrics of a run: a CSV appended one flushed row at a time, and the learning-curve PNG.

Rows are written as they happen (flush + fsync per row), so a killed run keeps every
evaluation it finished. On resume, rows newer than the checkpoint being resumed are dropped:
that stretch of training is redone, and the curve should show it once.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from celltwin.core.atomic import atomic_write_bytes, atomic_write_text

FIELDS = ("step", "wall_s", "train_episodes", "train_success", "success_nominal",
          "return_nominal", "success_randomized", "return_randomized", "fps")


class MetricsLog:
    """The run's ``metrics.csv``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, row: dict) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({key: _format(row.get(key)) for key in FIELDS})
            handle.flush()
            os.fsync(handle.fileno())

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            lines = handle.read().splitlines(keepends=True)
        # A row cut short by a crash has too few fields; drop it rather than misread it.
        complete = [line for line in lines if line.endswith("\n")]
        rows = list(csv.DictReader(complete))
        return [row for row in rows if None not in row.values() and len(row) == len(FIELDS)]

    def truncate_after(self, step: int) -> None:
        kept = [row for row in self.rows() if int(float(row["step"])) <= step]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def plot_curve(rows: list[dict], path: Path, title: str) -> Path | None:
    """Success over env steps on the nominal and randomized twin; ``None`` without rows."""
    if not rows:
        return None
    from celltwin.core.plots import new_figure

    steps = [float(row["step"]) for row in rows]
    figure = new_figure(figsize=(6.4, 4.0))
    axes = figure.subplots()
    for key, label in (("success_nominal", "nominal twin"),
                       ("success_randomized", "randomized twin"),
                       ("train_success", "training episodes")):
        points = [(s, float(row[key])) for s, row in zip(steps, rows) if row.get(key)]
        if points:
            axes.plot(*zip(*points), marker="o" if key != "train_success" else None, label=label)
    axes.set_xlabel("env steps")
    axes.set_ylabel("success rate")
    axes.set_ylim(-0.05, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())
