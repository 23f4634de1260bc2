"""`sweep`: layout runs over a grid of layout parameters, in parallel on Ray.

Every grid point is one ``layout run`` of the cell with the parameters set (see
:mod:`celltwin.layout.params`). Points run as Ray tasks, one CPU each: on a local Ray started with
``workers`` CPUs by default, or on an existing cluster (``address``). Each task returns its
:class:`~celltwin.layout.records.RunResult`; the driver writes every file, so a remote cluster
needs no shared disk.

Ray is an optional dependency (``pip install "ray>=2.9"``); without it the sweep says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import Problem
from celltwin.layout.jobs import LayoutError, find_jobs
from celltwin.layout.kpis import kpis
from celltwin.layout.overlap import OverlapError
from celltwin.layout.params import SweepParam, check_param, grid, with_values
from celltwin.layout.report import write_run
from celltwin.layout.records import RunOptions, RunResult, check_options
from celltwin.layout.runner import run_layout
from celltwin.spec import CellSpec

RAY_HINT = 'sweep runs on Ray, which is not installed: pip install "ray>=2.9"'
METRICS = ("throughput_per_h", "cycle_mean_s", "utilization", "collisions", "near_misses",
           "parts_out", "parts_dropped")


def import_ray():
    """Return the ``ray`` module, or raise LayoutError with the install line."""
    try:
        import ray
    except ImportError:
        raise LayoutError(Problem(RAY_HINT, expected="ray importable in this Python")) from None
    return ray


@dataclass
class SweepPoint:
    """One grid point and what its run measured (``error`` when the run failed)."""

    index: int
    values: dict[str, float]
    kpis: dict | None = None
    result: RunResult | None = None
    error: str = ""
    overlap: str = ""   # why the candidate was dropped: bodies overlap as built

    def metrics(self) -> dict:
        if self.kpis is None:
            return {metric: None for metric in METRICS}
        k = self.kpis
        robots = list(k["robots"].values())
        return {"throughput_per_h": k["throughput_per_h"],
                "cycle_mean_s": k["cycle_time_s"]["mean"],
                "utilization": round(float(np.mean([r["utilization"] for r in robots])), 4),
                "collisions": k["collisions"]["events"], "near_misses": k["near_misses"]["events"],
                "parts_out": k["parts_out"], "parts_dropped": k["parts_dropped"]}


def plan(cell: CellSpec, params: list[SweepParam]) -> list[tuple[dict, CellSpec]]:
    """Check every parameter and build every grid point's cell before anything runs.

    Raises:
        LayoutError / CellSpecError: every bad path at once, or the first bad value.
    """
    problems = []
    for param in params:
        try:
            check_param(cell, param)
        except LayoutError as error:
            problems += error.problems
    if problems:
        raise LayoutError(problems)
    return [(values, with_values(cell, values)) for values in grid(params)]


def _run_point(cell: CellSpec, options: RunOptions, physics) -> RunResult | list[str]:
    # A module-level function: Ray ships it to workers by reference. Overlapping bodies come
    # back as text: the candidate is dropped, not failed.
    try:
        return run_layout(cell, options, physics=physics)
    except OverlapError as error:
        return [problem.message for problem in error.problems]


def run_sweep(cell: CellSpec, params: list[SweepParam], options: RunOptions, *, workers: int = 2,
              address: str | None = None, physics=None, progress=None) -> list[SweepPoint]:
    """Run every grid point on Ray and return the points in grid order.

    Args:
        cell: the cell.
        params: the swept parameters.
        options: run settings of every point.
        workers: CPUs of the local Ray started when ``address`` is ``None``.
        address: an existing Ray cluster to join (``ray://host:10001``, ``auto``).
        physics: physics overrides for every point.
        progress: optional callback ``progress(done, total)``.
    """
    if workers < 1:
        raise LayoutError(Problem(f"--workers must be >= 1, got {workers}", path="--workers",
                                  value=workers, expected="an integer >= 1"))
    points_cells = plan(cell, params)
    check_options(options)
    find_jobs(cell, options.pick, options.place)  # a cell without jobs fails before Ray starts
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_run_point)
        pending = {remote.remote(point_cell, options, physics): index
                   for index, (_, point_cell) in enumerate(points_cells)}
        points = [SweepPoint(index, values) for index, (values, _) in enumerate(points_cells)]
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                point = points[pending.pop(ref)]
                try:
                    outcome = ray.get(ref)
                    if isinstance(outcome, list):
                        point.overlap = "; ".join(outcome)
                    else:
                        point.result, point.kpis = outcome, kpis(outcome)
                except Exception as exc:  # a failed point is reported, the others go on
                    point.error = _error_text(exc)
                done += 1
                if progress is not None:
                    progress(done, len(points))
    finally:
        if started_here:
            ray.shutdown()
    return points


def _error_text(exc: Exception) -> str:
    cause = getattr(exc, "cause", None) or exc
    problems = getattr(cause, "problems", None)
    if problems:
        return "; ".join(str(problem) for problem in problems)
    return f"{type(cause).__name__}: {cause}".splitlines()[0]


def sweep_md(cell: CellSpec, params: list[SweepParam], points: list[SweepPoint]) -> str:
    paths = [param.path for param in params]
    best = _best(points)
    out = [f"# Sweep of {cell.name}", "",
           f"{len(points)} grid points over {', '.join(paths)}; each a layout run.", ""]
    dropped = dropped_count(points)
    if dropped:
        out += [f"{dropped} of {len(points)} candidates dropped: their bodies overlap as "
                "built (not run, never the best).", ""]
    if best is not None:
        setting = ", ".join(f"{path} = {best.values[path]:g}" for path in paths)
        out += [f"Best throughput: {best.metrics()['throughput_per_h']:.1f} parts/h at {setting}.",
                ""]
    header = [*paths, "throughput [parts/h]", "cycle mean [s]", "busy", "out", "dropped",
              "collisions", "near misses"]
    out += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for point in points:
        m = point.metrics()
        values = [f"{point.values[path]:g}" for path in paths]
        if point.error or point.overlap:
            why = f"failed: {point.error}" if point.error else f"dropped: {point.overlap}"
            out.append("| " + " | ".join(values) + f" | {why} |" + " |" * 6)
            continue
        cycle = "-" if m["cycle_mean_s"] is None else f"{m['cycle_mean_s']:.2f}"
        out.append("| " + " | ".join(values + [
            f"{m['throughput_per_h']:.1f}", cycle, f"{m['utilization']:.0%}", str(m["parts_out"]),
            str(m["parts_dropped"]), str(m["collisions"]), str(m["near_misses"])]) + " |")
    return "\n".join(out) + "\n"


def dropped_count(points: list[SweepPoint]) -> int:
    """Candidates dropped because their bodies overlap as built."""
    return sum(1 for point in points if point.overlap)


def _best(points: list[SweepPoint]) -> SweepPoint | None:
    done = [point for point in points if point.kpis is not None]
    if not done:
        return None
    return max(done, key=lambda p: (p.metrics()["throughput_per_h"],
                                    -(p.metrics()["cycle_mean_s"] or math.inf)))


def heatmap_figure(params: list[SweepParam], points: list[SweepPoint], metric="throughput_per_h"):
    """Throughput over the first two parameters (the best over any others); one row for one."""
    from celltwin.core.plots import new_figure

    rows_param = params[0]
    cols_param = params[1] if len(params) > 1 else None
    rows = rows_param.values
    cols = cols_param.values if cols_param else (None,)
    table = np.full((len(rows), len(cols)), np.nan)
    for point in points:
        value = point.metrics()[metric]
        if value is None:
            continue
        i = rows.index(point.values[rows_param.path])
        j = cols.index(point.values[cols_param.path]) if cols_param else 0
        table[i, j] = value if np.isnan(table[i, j]) else max(table[i, j], value)
    figure = new_figure(figsize=(max(4.5, 1.3 * len(cols) + 2.5),
                                 max(3.0, 0.8 * len(rows) + 1.8)), dpi=100)
    axes = figure.subplots()
    image = axes.imshow(table, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=axes, label="throughput [parts/h]")
    for i in range(len(rows)):
        for j in range(len(cols)):
            text = "-" if np.isnan(table[i, j]) else f"{table[i, j]:.0f}"
            axes.text(j, i, text, ha="center", va="center", color="white", fontsize=9)
    axes.set_yticks(range(len(rows)), [f"{v:g}" for v in rows])
    axes.set_ylabel(rows_param.path)
    if cols_param:
        axes.set_xticks(range(len(cols)), [f"{v:g}" for v in cols])
        axes.set_xlabel(cols_param.path)
    else:
        axes.set_xticks([])
    title = "throughput per grid point"
    if len(params) > 2:
        title += f" (best over {', '.join(p.path for p in params[2:])})"
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def write_sweep(cell: CellSpec, params: list[SweepParam], points: list[SweepPoint],
                out_dir: str | Path) -> list[Path]:
    """Write sweep.json, sweep.md, heatmap.png and every point's run directory."""
    from celltwin.layout.topview import save_figure

    out_dir = Path(out_dir)
    paths = []
    for point in points:
        if point.result is not None:
            paths += write_run(point.result, out_dir / "points" / f"{point.index:03d}")[1]
    best = _best(points)
    document = {"cell": cell.name, "params": [{"path": p.path, "values": list(p.values)}
                                              for p in params],
                "best": None if best is None else {"index": best.index, "values": best.values,
                                                   **best.metrics()},
                "dropped_overlapping": dropped_count(points),
                "points": [{"index": p.index, "values": p.values, **p.metrics(),
                            "error": p.error, "overlap": p.overlap,
                            "folder": f"points/{p.index:03d}"
                            if p.result is not None else None} for p in points]}
    paths.append(atomic_write_text(out_dir / "sweep.json", json.dumps(document, indent=2)))
    paths.append(atomic_write_text(out_dir / "sweep.md", sweep_md(cell, params, points)))
    paths.append(save_figure(heatmap_figure(params, points), out_dir / "heatmap.png"))
    return paths
