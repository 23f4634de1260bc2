"""Files of a layout run: kpis.json, parts.csv, summary.md and cycle_times.png, all atomic."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from celltwin.core.atomic import atomic_write_text
from celltwin.layout.kpis import kpis as compute_kpis
from celltwin.layout.records import PHASES, RunResult

PART_COLUMNS = ("part", "feed", "robot", "outcome", "arrived_s", "ready_s", "start_s", "done_s",
                "wait_s", "cycle_time_s", "lead_time_s", "place_error_m", "retries", "collisions",
                *(f"{phase}_s" for phase in PHASES))


def parts_csv(result: RunResult) -> str:
    """One row per part that arrived; times in simulated seconds, empty where not reached."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PART_COLUMNS)
    for part in result.parts:
        row = [part.part, part.feed, part.robot, part.outcome, part.arrived_s, part.ready_s,
               part.start_s, part.done_s, part.wait_s, part.cycle_time_s, part.lead_time_s,
               part.place_error_m, part.retries, part.collisions,
               *(part.phase_times_s.get(phase) if part.start_s is not None else None
                 for phase in PHASES)]
        writer.writerow(["" if value is None else
                         round(value, 4) if isinstance(value, float) else value for value in row])
    return buffer.getvalue()


def summary_lines(k: dict) -> list[str]:
    """A few lines for the terminal."""
    cycle = k["cycle_time_s"]
    lines = [f"cell '{k['cell']}': {k['balance']}"
             + {"done": "", "max_sim_s": " (stopped at --max-sim-s)",
                "stalled": " (stopped: parts left where no robot takes them)"}[k["stopped_by"]],
             f"throughput {k['throughput_per_h']:.1f} parts/h over {k['sim_time_s']:.1f} s "
             f"simulated; capacity if never starved {k['capacity_per_h']:.1f} parts/h"]
    if cycle["count"]:
        lines.append(f"cycle time mean {cycle['mean']:.2f} s (min {cycle['min']:.2f}, "
                     f"p90 {cycle['p90']:.2f}, max {cycle['max']:.2f}); longest phase "
                     f"{k['longest_phase']} {k['phase_times_s'][k['longest_phase']]:.2f} s")
    for name, robot in k["robots"].items():
        lines.append(f"robot {name}: busy {robot['utilization']:.0%}, starved "
                     f"{robot['starved_share']:.0%}, blocked {robot['blocked_share']:.0%}; "
                     f"TCP path {robot['tcp_path_per_part_m'] or 0:.2f} m per part")
    lines.append(f"collisions {k['collisions']['events']}, near misses (< "
                 f"{k['near_misses']['threshold_m'] * 1000:g} mm) {k['near_misses']['events']}"
                 + _worst(k))
    lines.append(f"simulated {k['sim_time_s']:.1f} s in {k['wall_time_s']:.2f} s of wall time: "
                 f"{k['real_time_factor']:.1f}x faster than real time")
    return lines


def _worst(k: dict) -> str:
    events = k["collisions"]["list"] or k["near_misses"]["list"]
    if not events:
        return ""
    worst = min(events, key=lambda e: e["distance_m"])
    return (f"; closest: {worst['robot']}/{worst['link']} - {worst['body']} "
            f"{worst['distance_m'] * 1000:.1f} mm")


def summary_md(k: dict) -> str:
    """The run for people: KPIs, robot time split, phases, events, a line-file station."""
    cycle = k["cycle_time_s"]
    fmt = (lambda v, spec=".2f": "-" if v is None else format(v, spec))
    out = [f"# Layout run: {k['cell']}", "",
           f"{k['parts_in']} parts fed, policy `{k['policy']}`, {k['sim_time_s']:.1f} s simulated "
           f"({k['real_time_factor']:.1f}x real time).", "",
           "| KPI | value |", "| --- | --- |",
           f"| throughput | {k['throughput_per_h']:.1f} parts/h |",
           f"| capacity if never starved | {k['capacity_per_h']:.1f} parts/h |",
           f"| parts in / out / in process / dropped / missed | {k['parts_in']} / {k['parts_out']}"
           f" / {k['parts_in_process']} / {k['parts_dropped']} / {k['parts_missed']} |",
           f"| cycle time mean / p90 / max | {fmt(cycle['mean'])} / {fmt(cycle['p90'])} / "
           f"{fmt(cycle['max'])} s |",
           f"| lead time mean (arrival to out) | {fmt(k['lead_time_s']['mean'])} s |",
           f"| wait for a robot, mean | {fmt(k['wait_for_robot_s']['mean'])} s |",
           f"| collisions / near misses | {k['collisions']['events']} / "
           f"{k['near_misses']['events']} |",
           f"| pick retries | {k['pick_retries']} |", "",
           "## Robots", "",
           "| robot | pick | place | busy | starved | blocked | cycles | out | TCP path / part |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in k["robots"].items():
        out.append(f"| {name} | {r['pick']} | {r['place']} | {r['utilization']:.1%} | "
                   f"{r['starved_share']:.1%} | {r['blocked_share']:.1%} | {r['cycles']} | "
                   f"{r['parts_out']} | {fmt(r['tcp_path_per_part_m'])} m |")
    if k["phase_times_s"]:
        out += ["", "## Cycle phases (mean per placed part)", "", "| phase | s | share |",
                "| --- | --- | --- |"]
        total = sum(k["phase_times_s"].values()) or 1.0
        for phase, seconds in k["phase_times_s"].items():
            out.append(f"| {phase} | {seconds:.2f} | {seconds / total:.0%} |")
    out += ["", "## Feeds", "", "| feed | kind | part | interval | arrivals | delayed |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, f in k["feeds"].items():
        interval = ("refill" if f["arrival_interval_s"] is None
                    else f"{f['arrival_interval_s']:.2f} s")
        out.append(f"| {name} | {f['kind']} | {f['part_type']} | {interval} | {f['arrivals']} | "
                   f"{f['arrivals_delayed']} ({f['delayed_s']:.1f} s) |")
    events = k["collisions"]["list"] + k["near_misses"]["list"]
    out += ["", "## Collisions and near misses", ""]
    if events:
        out += ["| kind | time s | robot link | body | closest mm | lasted s |",
                "| --- | --- | --- | --- | --- | --- |"]
        for e in sorted(events, key=lambda e: e["start_s"])[:50]:
            body = f"{e['body']}/{e['body_link']}" if e["body_link"] else e["body"]
            out.append(f"| {e['kind']} | {e['start_s']:.2f} | {e['robot']}/{e['link']} | {body} | "
                       f"{e['distance_m'] * 1000:.1f} | {e['duration_s']:.2f} |")
        if len(events) > 50:
            out.append(f"\n({len(events) - 50} more in kpis.json)")
    else:
        out.append("none")
    if k["line_station"]:
        samples = ", ".join(f"{s:g}" for s in k["line_station"]["cycle_time_s"]["samples"])
        out += ["", "## As a station of a line file", "",
                "Paste into `stations:` of a line file (docs/line.md):", "", "```yaml",
                f"- name: {k['cell']}",
                f"  cycle_time_s: {{dist: empirical, samples: [{samples}]}}", "```"]
    return "\n".join(out) + "\n"


def cycle_times_figure(result: RunResult, title: str = ""):
    """Stacked bars of each placed part's cycle by phase, with the mean marked."""
    import matplotlib

    from celltwin.core.plots import new_figure

    placed = [p for p in result.parts if p.outcome == "out"]
    figure = new_figure(figsize=(max(6.0, 0.35 * len(placed) + 2), 4.2), dpi=100)
    axes = figure.subplots()
    bottoms = [0.0] * len(placed)
    colors = matplotlib.colormaps["tab10"]
    for index, phase in enumerate(PHASES):
        heights = [p.phase_times_s.get(phase, 0.0) for p in placed]
        axes.bar(range(len(placed)), heights, bottom=bottoms, color=colors(index), label=phase)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    if placed:
        mean = sum(p.cycle_time_s for p in placed) / len(placed)
        axes.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.2f} s")
    axes.set_xticks(range(len(placed)), [p.part for p in placed], rotation=60, fontsize=7)
    axes.set_ylabel("cycle time [s]")
    axes.set_title(title or f"{result.cell}: cycle time per placed part")
    axes.legend(fontsize=7, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.08),
                frameon=False)
    figure.tight_layout()
    return figure


def write_run(result: RunResult, out_dir: str | Path) -> tuple[dict, list[Path]]:
    """Write the run directory; return the KPIs and the paths written."""
    from celltwin.layout.topview import save_figure

    out_dir = Path(out_dir)
    k = compute_kpis(result)
    paths = [atomic_write_text(out_dir / "kpis.json", json.dumps(k, indent=2)),
             atomic_write_text(out_dir / "parts.csv", parts_csv(result)),
             atomic_write_text(out_dir / "summary.md", summary_md(k))]
    paths.append(save_figure(cycle_times_figure(result), out_dir / "cycle_times.png"))
    return k, paths
