"""A line run for people and machines: ``line.json``, ``line.md``, two PNG figures.

Figures are drawn on a bare matplotlib ``Figure`` (no pyplot state, no display needed) and every
file is written atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from celltwin.core.atomic import atomic_write_bytes, atomic_write_text
from celltwin.line.result import SHIFTING_MARGIN, STATES, LineResult

STATE_COLORS = {"working": "#2e7d32", "waiting": "#90a4ae", "starved": "#fbc02d",
                "blocked": "#ef6c00", "failed": "#c62828"}
RUN_FILES = ("line.json", "line.md", "stations.png", "buffers.png")


def write_run(result: LineResult, out_dir: str | Path) -> list[Path]:
    """Write the four run files of ``result`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    json_path, md_path, stations_path, buffers_path = (out_dir / name for name in RUN_FILES)
    atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2) + "\n")
    atomic_write_text(md_path, markdown(result))
    atomic_write_bytes(stations_path, _png(stations_figure(result)))
    atomic_write_bytes(buffers_path, _png(buffers_figure(result)))
    return [json_path, md_path, stations_path, buffers_path]


def summary_lines(result: LineResult) -> list[str]:
    """A few lines for the terminal: throughput, takt, bottleneck."""
    lines = [f"line '{result.line}': {result.days} day(s) x {result.hours_per_day:g} h, "
             f"seed {result.seed}, {result.measured_h:g} h measured, "
             f"simulated in {result.wall_time_s:.2f} s"]
    takt = ""
    if result.takt_s is not None:
        takt = f"; takt {result.takt_s:g} s = {3600 / result.takt_s:.1f} parts/h"
    lines.append(f"throughput {result.throughput_per_h:.1f} parts/h "
                 f"({result.parts_completed} parts){takt}")
    lines.append(_bottleneck_sentence(result))
    return lines


def markdown(result: LineResult) -> str:
    """The run as a Markdown report: summary, a table per station, buffers, lead times."""
    out = [f"# Line `{result.line}`", ""]
    out.append(f"{result.days} day(s) x {result.hours_per_day:g} h on shift, seed {result.seed}, "
               f"warm-up {result.warmup_h:g} h, {result.measured_h:g} h measured.")
    out.append("")
    takt = (f"{result.takt_s:g} s ({3600 / result.takt_s:.1f} parts/h)"
            if result.takt_s is not None else "none given")
    mix = ", ".join(f"{name} {count}" for name, count in result.parts_by_product.items())
    out += ["| measure | value |", "|---|---|",
            f"| throughput | {result.throughput_per_h:.2f} parts/h |",
            f"| parts per day | {result.throughput_per_h * result.hours_per_day:.1f} |",
            f"| parts completed | {result.parts_completed} ({mix}) |",
            f"| takt | {takt} |",
            f"| bottleneck | {result.bottleneck} |",
            f"| mean work in progress | {result.wip_mean:.2f} parts |", ""]
    out += [_bottleneck_sentence(result), ""]
    out += ["## Stations", "",
            "Shares of on-shift time, averaged over a station's machines. "
            "Active = working + failed; the bottleneck has the highest active share.", "",
            "| station | machines | " + " | ".join(f"{s} %" for s in STATES)
            + " | utilization % | active % | availability % | cycle s | nominal cycle s "
              "| capacity parts/h | failures |",
            "|---|---:|" + "---:|" * (len(STATES) + 7)]
    for s in result.stations:
        shares = " | ".join(f"{100 * s.state_shares[state]:.1f}" for state in STATES)
        cycle = f"{s.mean_cycle_time_s:.1f}" if s.mean_cycle_time_s is not None else "-"
        out.append(f"| {s.name} | {s.servers} | {shares} | {100 * s.utilization:.1f} "
                   f"| {100 * s.active_share:.1f} | {100 * s.availability:.1f} | {cycle} "
                   f"| {s.nominal_cycle_time_s:.1f} | {s.capacity_per_h:.1f} | {s.failures} |")
    out += ["", "## Bottleneck ranking", "", "| rank | station | active % |", "|---:|---|---:|"]
    for rank, name in enumerate(result.bottlenecks, start=1):
        out.append(f"| {rank} | {name} | {100 * result.station(name).active_share:.1f} |")
    out += ["", "## Buffers", "",
            "| buffer | capacity | mean parts | max parts | full % |", "|---|---:|---:|---:|---:|"]
    for b in ([result.source_queue] if result.source_queue else []) + list(result.buffers):
        capacity = "inf" if b.capacity is None else str(b.capacity)
        out.append(f"| {b.name} | {capacity} | {b.mean_occupancy:.2f} | {b.max_occupancy} "
                   f"| {100 * b.full_share:.1f} |")
    out += ["", "## Lead time", "", "Release into the line to exit.", "",
            "| clock | parts | mean | p50 | p90 | p95 | max |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for clock, stats in (("on shift [min]", result.lead_time_s),
                         ("calendar [min]", result.lead_time_calendar_s)):
        values = [stats.mean, stats.p50, stats.p90, stats.p95, stats.max]
        cells = " | ".join("-" if v is None else f"{v / 60:.1f}" for v in values)
        out.append(f"| {clock} | {stats.count} | {cells} |")
    return "\n".join(out) + "\n"


def stations_figure(result: LineResult):
    """Stacked horizontal bars: each station's share of on-shift time per state."""
    from matplotlib.figure import Figure

    names = [s.name for s in result.stations]
    figure = Figure(figsize=(8, 1.2 + 0.5 * len(names)), layout="constrained")
    axes = figure.add_subplot()
    left = [0.0] * len(names)
    for state in STATES:
        widths = [100 * s.state_shares[state] for s in result.stations]
        axes.barh(names, widths, left=left, color=STATE_COLORS[state], label=state)
        left = [a + b for a, b in zip(left, widths)]
    axes.invert_yaxis()  # flow order top to bottom
    axes.set_xlim(0, 100)
    axes.set_xlabel("share of on-shift time [%]")
    axes.set_title(f"{result.line}: station states (bottleneck: {result.bottleneck})")
    figure.legend(*axes.get_legend_handles_labels(), ncol=len(STATES), loc="outside lower center",
                  frameon=False, fontsize="small")
    return figure


def buffers_figure(result: LineResult):
    """Buffer occupancy over the on-shift clock, one panel per buffer, mean dashed."""
    from matplotlib.figure import Figure

    stats = ([result.source_queue] if result.source_queue else []) + list(result.buffers)
    traced = [b for b in stats if b.name in result.buffer_traces]
    figure = Figure(figsize=(9, 1.2 + 1.4 * max(1, len(traced))), layout="constrained")
    if not traced:
        axes = figure.add_subplot()
        axes.axis("off")
        axes.text(0.5, 0.5, "no buffer traces (a one-station line with an unlimited source, "
                            "or traces were turned off)", ha="center", va="center")
        return figure
    panels = figure.subplots(len(traced), 1, sharex=True, squeeze=False)[:, 0]
    end_h = result.days * result.hours_per_day
    for axes, buffer in zip(panels, traced):
        times_h, levels = result.buffer_traces[buffer.name]
        axes.step(times_h, levels, where="post", color="#1565c0", linewidth=0.8)
        axes.axhline(buffer.mean_occupancy, color="black", linestyle="--", linewidth=0.8,
                     label=f"mean {buffer.mean_occupancy:.2f}")
        if buffer.capacity is not None:
            axes.axhline(buffer.capacity, color="#c62828", linewidth=0.8,
                         label=f"capacity {buffer.capacity}")
        if result.warmup_h > 0:
            axes.axvspan(0, result.warmup_h, color="0.9", label="warm-up")
        for day in range(1, result.days):  # the line is paused between shifts
            axes.axvline(day * result.hours_per_day, color="0.6", linewidth=0.5)
        axes.set_xlim(0, end_h)
        axes.set_ylabel("parts")
        axes.set_title(buffer.name, fontsize="medium", loc="left")
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    panels[-1].set_xlabel("on-shift time [h] (grey lines: shift ends)")
    figure.suptitle(f"{result.line}: buffer occupancy")
    return figure


def _bottleneck_sentence(result: LineResult) -> str:
    first = result.station(result.bottleneck)
    text = f"bottleneck: {first.name} (active {100 * first.active_share:.1f}%"
    if len(result.bottlenecks) > 1:
        second = result.station(result.bottlenecks[1])
        text += f"; next {second.name} {100 * second.active_share:.1f}%"
    text += ")"
    if result.bottleneck_shifts:
        text += (f" - within {100 * SHIFTING_MARGIN:g} points of each other: the bottleneck "
                 "shifts between them")
    return text


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
