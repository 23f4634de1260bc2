"""`layout compare`: several layouts run the same way, side by side, with a verdict.

The better layout places more parts per hour; when the throughputs cannot be told apart (both
held back by the same feed, say), the shorter mean cycle time decides: that layout has more
slack. A difference only counts when it is larger than the runs' own spread: every placed part
is one sample of a layout's cycle time, and every gap between two consecutive parts leaving
the cell one sample of its time per part (throughput is 3600 s over the mean gap). Welch's
two-sample *t* interval (95 %) of the difference of the means must exclude zero; when neither
the throughput nor the cycle time differs beyond that, the verdict is a tie, with the
intervals. With fewer than two samples a layout has no spread to judge by: more ``--parts``.

The *deciding bottleneck* is the phase of the cycle in which the runner-up loses the most time
against the winner (approach, carry, ...); if the runner-up is starved much more, the feed is
named instead.
"""

from __future__ import annotations

import functools
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celltwin.core.atomic import atomic_write_text
from celltwin.core.atomic import atomic_write_bytes
from celltwin.layout.check import reach_envelope_m
from celltwin.layout.jobs import find_jobs
from celltwin.check import target_pose
from celltwin.layout.kpis import kpis
from celltwin.layout.report import write_run
from celltwin.layout.records import PHASES, RunOptions, RunResult
from celltwin.layout.runner import run_layout
from celltwin.spec import CellSpec
from celltwin.world import World

CONFIDENCE = 0.95


@dataclass
class Entry:
    """One layout of a comparison."""

    label: str
    cell: CellSpec
    result: RunResult
    kpis: dict
    folder: str

    @property
    def throughput(self) -> float:
        return self.kpis["throughput_per_h"]

    @property
    def mean_cycle(self) -> float:
        mean = self.kpis["cycle_time_s"]["mean"]
        return float("inf") if mean is None else mean

    @property
    def starved_share(self) -> float:
        robots = self.kpis["robots"].values()
        return max((r["starved_share"] for r in robots), default=0.0)

    @property
    def cycle_samples(self) -> list[float]:
        """Cycle time of every placed part [s]."""
        return [p.cycle_time_s for p in self.result.parts if p.outcome == "out"]

    @property
    def gap_samples(self) -> list[float]:
        """Time between consecutive parts leaving the cell placed [s]."""
        done = sorted(p.done_s for p in self.result.parts if p.outcome == "out")
        return [later - earlier for earlier, later in zip(done, done[1:])]


@dataclass(frozen=True)
class Difference:
    """The difference of two layouts' means of one measure, with its confidence interval.

    Attributes:
        measure: ``gap`` (time per part out) or ``cycle`` (cycle time).
        difference_s: mean of the first layout less mean of the second [s].
        half_width_s: half the width of the 95 % interval [s]; ``None`` when a layout has
            fewer than two samples (no spread to judge by).
    """

    measure: str
    difference_s: float
    half_width_s: float | None

    @property
    def significant(self) -> bool:
        return self.half_width_s is not None and abs(self.difference_s) > self.half_width_s

    def text(self) -> str:
        """``+0.50 s (95% interval +0.25 .. +0.75 s)``."""
        if self.half_width_s is None:
            return f"{self.difference_s:+.2f} s (too few parts for a spread)"
        low, high = self.difference_s - self.half_width_s, self.difference_s + self.half_width_s
        return (f"{self.difference_s:+.2f} s ({CONFIDENCE:.0%} interval "
                f"{low:+.2f} .. {high:+.2f} s)")


def welch(first: list[float], second: list[float], measure: str) -> Difference:
    """Welch's *t* interval of ``mean(first) - mean(second)`` (unequal variances)."""
    from scipy import stats

    if not first or not second:
        return Difference(measure, math.nan, None)
    difference = statistics.fmean(first) - statistics.fmean(second)
    if len(first) < 2 or len(second) < 2:
        return Difference(measure, difference, None)
    share_a = statistics.variance(first) / len(first)
    share_b = statistics.variance(second) / len(second)
    error = math.sqrt(share_a + share_b)
    if error == 0.0:   # no spread at all in either layout: the difference is exact
        return Difference(measure, difference, 0.0)
    freedom = (share_a + share_b) ** 2 / (share_a ** 2 / (len(first) - 1)
                                          + share_b ** 2 / (len(second) - 1))
    return Difference(measure, difference,
                      float(stats.t.ppf(0.5 + CONFIDENCE / 2, freedom)) * error)


def differences(a: Entry, b: Entry) -> tuple[Difference, Difference]:
    """``a`` less ``b``: time per part out (throughput), then cycle time."""
    return (welch(a.gap_samples, b.gap_samples, "gap"),
            welch(a.cycle_samples, b.cycle_samples, "cycle"))


def _better(a: Entry, b: Entry) -> int:
    """-1 when ``a`` is the better layout, 1 when ``b`` is, 0 when the runs cannot tell."""
    for difference in differences(a, b):
        if difference.significant:   # a shorter time per part, or a shorter cycle, wins
            return -1 if difference.difference_s < 0 else 1
    return 0


def rank(entries: list[Entry]) -> list[Entry]:
    """Entries best first (ties keep the order given)."""
    return sorted(entries, key=functools.cmp_to_key(_better))


def verdict(ranked: list[Entry]) -> dict:
    """Who wins, by how much and how surely, and which phase (or the feed) decides it; or a
    tie, when neither throughput nor cycle time differs beyond the runs' spread."""
    best = ranked[0]
    if len(ranked) == 1:
        return {"best": best.label, "tie": False, "text": f"only one layout: {best.label}"}
    runner = ranked[1]
    gap, cycle = differences(runner, best)
    intervals = {"time_per_part_s": {"difference": _round(gap.difference_s),
                                     "half_width": _round(gap.half_width_s)},
                 "cycle_time_s": {"difference": _round(cycle.difference_s),
                                  "half_width": _round(cycle.half_width_s)},
                 "confidence": CONFIDENCE}
    if not (gap.significant or cycle.significant):
        text = (f"no better layout: '{best.label}' and '{runner.label}' tie within their "
                f"run-to-run spread (throughput {best.throughput:.1f} vs "
                f"{runner.throughput:.1f} parts/h, time per part differs by {gap.text()}; "
                f"cycle {best.mean_cycle:.2f} vs {runner.mean_cycle:.2f} s, differs by "
                f"{cycle.text()}); more --parts narrow the intervals")
        return {"best": None, "tie": True, "tied": [best.label, runner.label],
                "intervals": intervals, "text": text}
    deltas = {phase: runner.kpis["phase_times_s"].get(phase, 0.0)
              - best.kpis["phase_times_s"].get(phase, 0.0) for phase in PHASES}
    phase = max(deltas, key=deltas.get) if best.kpis["phase_times_s"] else None
    how = (f"{best.throughput:.1f} vs {runner.throughput:.1f} parts/h; '{runner.label}' takes "
           f"{gap.text()} per part" if gap.significant else
           f"throughput alike within the spread ({best.throughput:.1f} vs "
           f"{runner.throughput:.1f} parts/h), shorter cycle {best.mean_cycle:.2f} vs "
           f"{runner.mean_cycle:.2f} s, {cycle.text()})")
    starved_gap = runner.starved_share - best.starved_share
    if phase is not None and (deltas[phase] > 0 or starved_gap <= 0.05):
        bottleneck = phase
        why = (f"'{runner.label}' loses most in {phase}: "
               f"{runner.kpis['phase_times_s'].get(phase, 0.0):.2f} s vs "
               f"{best.kpis['phase_times_s'].get(phase, 0.0):.2f} s per part "
               f"({deltas[phase]:+.2f} s)")
    else:
        bottleneck = "feed"
        why = (f"'{runner.label}' waits for parts {runner.starved_share:.0%} of the time "
               f"vs {best.starved_share:.0%}")
    longest = {entry.label: entry.kpis["longest_phase"] for entry in ranked}
    text = f"better layout: '{best.label}' ({how}); deciding bottleneck: {bottleneck}: {why}"
    return {"best": best.label, "tie": False, "runner_up": runner.label,
            "deciding_bottleneck": bottleneck,
            "phase_deltas_s": {p: round(d, 4) for p, d in deltas.items()},
            "longest_phase": longest, "intervals": intervals, "text": text}


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


def run_compare(cells: list[CellSpec], options: RunOptions, *, physics=None,
                progress=None, policy=None) -> list[Entry]:
    """Run every cell with the same options (and the same learned ``policy``, if one is
    given: see :func:`celltwin.layout.runner.run_layout`); return the entries in order."""
    entries = []
    labels = _labels([cell.name for cell in cells])
    for index, (cell, label) in enumerate(zip(cells, labels)):
        if progress is not None:
            progress(index, len(cells), label)
        result = run_layout(cell, options, physics=physics, policy=policy)
        entries.append(Entry(label, cell, result, kpis(result), _folder(label)))
    return entries


def _labels(names: list[str]) -> list[str]:
    labels = []
    for index, name in enumerate(names):
        labels.append(name if names.count(name) == 1 else f"{name}#{names[:index + 1].count(name)}")
    return labels


def _folder(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


ROW_KEYS = (("throughput_per_h", "throughput [parts/h]", ".1f"),
            ("capacity_per_h", "capacity if never starved [parts/h]", ".1f"),
            ("cycle_mean", "cycle time mean [s]", ".2f"),
            ("cycle_p90", "cycle time p90 [s]", ".2f"),
            ("utilization", "robot busy", ".0%"),
            ("starved", "robot starved", ".0%"),
            ("tcp_path", "TCP path per part [m]", ".2f"),
            ("longest_phase", "longest phase", "s"),
            ("parts", "parts in / out / dropped / missed", "s"),
            ("collisions", "collisions / near misses", "s"))


def table_rows(entry: Entry) -> dict:
    """The figures of one layout as they appear in the table (and compare.json)."""
    k = entry.kpis
    robots = list(k["robots"].values())
    longest = k["longest_phase"]
    return {
        "throughput_per_h": k["throughput_per_h"], "capacity_per_h": k["capacity_per_h"],
        "cycle_mean": k["cycle_time_s"]["mean"], "cycle_p90": k["cycle_time_s"]["p90"],
        "utilization": float(np.mean([r["utilization"] for r in robots])),
        "starved": float(np.mean([r["starved_share"] for r in robots])),
        "tcp_path": float(np.mean([r["tcp_path_per_part_m"] or 0.0 for r in robots])),
        "longest_phase": f"{longest} ({k['phase_times_s'][longest]:.2f} s)" if longest else "-",
        "parts": f"{k['parts_in']} / {k['parts_out']} / {k['parts_dropped']} / "
                 f"{k['parts_missed']}",
        "collisions": f"{k['collisions']['events']} / {k['near_misses']['events']}"}


def compare_md(ranked: list[Entry], decision: dict) -> str:
    order = sorted(ranked, key=lambda e: e.label == decision["best"], reverse=True)
    rows = {entry.label: table_rows(entry) for entry in order}
    out = ["# Layout comparison", "", decision["text"], "",
           "| | " + " | ".join(f"**{e.label}**" if e.label == decision["best"] else e.label
                               for e in order) + " |",
           "| --- |" + " --- |" * len(order)]
    for key, title, spec in ROW_KEYS:
        cells = []
        for entry in order:
            value = rows[entry.label][key]
            cells.append("-" if value is None else value if spec == "s" else format(value, spec))
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    out += ["", "## Mean phase times per placed part [s]", "",
            "| phase | " + " | ".join(e.label for e in order) + " |",
            "| --- |" + " --- |" * len(order)]
    for phase in PHASES:
        out.append(f"| {phase} | " + " | ".join(
            f"{e.kpis['phase_times_s'].get(phase, 0.0):.2f}" for e in order) + " |")
    out += ["", "Each layout's run directory (kpis.json, parts.csv, summary.md, cycle_times.png) "
                "and top view are in the folder named after it."]
    return "\n".join(out) + "\n"


def compare_figure(entries: list[Entry], best: str):
    """Throughput bars and stacked mean cycle phases, one bar per layout."""
    import matplotlib

    from celltwin.core.plots import new_figure

    labels = [e.label for e in entries]
    figure = new_figure(figsize=(max(9.0, 2.2 * len(entries) + 5), 4.5), dpi=100)
    left, right = figure.subplots(1, 2)
    x = np.arange(len(entries))
    colors = ["tab:green" if label == best else "tab:gray" for label in labels]
    left.bar(x, [e.throughput for e in entries], color=colors, label="throughput")
    left.scatter(x, [e.kpis["capacity_per_h"] for e in entries], marker="_", s=600,
                 color="black", label="capacity if never starved", zorder=3)
    left.set_xticks(x, labels, rotation=15)
    left.set_ylabel("parts per hour")
    left.set_title("throughput (higher is better)")
    left.legend(fontsize=8)
    bottom = np.zeros(len(entries))
    cmap = matplotlib.colormaps["tab10"]
    for index, phase in enumerate(PHASES):
        heights = np.array([e.kpis["phase_times_s"].get(phase, 0.0) for e in entries])
        right.bar(x, heights, bottom=bottom, color=cmap(index), label=phase)
        bottom += heights
    right.set_xticks(x, labels, rotation=15)
    right.set_ylabel("mean cycle time [s]")
    right.set_title("cycle time by phase (lower is better)")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def top_view_image(cell: CellSpec, options: RunOptions, title: str) -> np.ndarray:
    """A top view of ``cell`` with reach circles and each robot's pick and place targets."""
    from celltwin.layout.topview import Mark, draw_top_view

    with World(cell) as world:
        marks = []
        for job in find_jobs(cell, options.pick, options.place):
            marks.append(Mark(tuple(target_pose(world, job.pick)[0]), f"{job.pick.name}",
                              "limegreen"))
            marks.append(Mark(tuple(target_pose(world, job.place)[0]), f"{job.place.name}",
                              "deepskyblue"))
        envelopes = {name: reach_envelope_m(robot.model) for name, robot in world.robots.items()}
        figure = draw_top_view(world, None, envelopes_m=envelopes, marks=marks, title=title,
                               width=640, height=480)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[:, :, :3].copy()


def write_compare(entries: list[Entry], out_dir: str | Path,
                  options: RunOptions) -> tuple[dict, list[Path]]:
    """Write every run directory, the table, the chart and the top views; return the verdict."""
    import io

    from PIL import Image

    from celltwin.layout.topview import save_figure

    out_dir = Path(out_dir)
    ranked = rank(entries)
    decision = verdict(ranked)
    paths = []
    tops = []
    for entry in entries:
        _, written = write_run(entry.result, out_dir / entry.folder)
        paths += written
        image = top_view_image(entry.cell, options, entry.label)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        paths.append(atomic_write_bytes(out_dir / entry.folder / "top_view.png", buffer.getvalue()))
        tops.append(image)
    height = max(image.shape[0] for image in tops)
    padded = [np.pad(image, ((0, height - image.shape[0]), (0, 0), (0, 0)), constant_values=255)
              for image in tops]
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(padded, axis=1)).save(buffer, format="PNG")
    paths.append(atomic_write_bytes(out_dir / "top_views.png", buffer.getvalue()))
    document = {"verdict": decision, "ranking": [e.label for e in ranked],
                "layouts": [{"label": e.label, "cell": e.cell.name, "folder": e.folder,
                             **table_rows(e), "phase_times_s": e.kpis["phase_times_s"],
                             "kpis": {key: value for key, value in e.kpis.items()
                                      if key not in ("collisions", "near_misses")}}
                            for e in entries]}
    paths.append(atomic_write_text(out_dir / "compare.json", json.dumps(document, indent=2)))
    paths.append(atomic_write_text(out_dir / "compare.md", compare_md(ranked, decision)))
    paths.append(save_figure(compare_figure(entries, decision["best"]), out_dir / "compare.png"))
    return decision, paths
