"""Key figures of a layout run, computed from its records so that they always agree.

Definitions (all over the simulated time of the run):

- ``parts_in``: parts that arrived in the cell; ``parts_out``: placed at the place target;
  ``parts_in_process``: still in the cell when the run stopped (on a feed or in a gripper);
  ``parts_dropped``: picked but lost (fell, or placed off target) or given up after
  ``max_retries`` failed picks; ``parts_missed``: fell off a feed without being picked.
  ``parts_in = parts_out + parts_in_process + parts_dropped + parts_missed`` holds by
  construction: every arrived part has exactly one outcome.
- ``throughput_per_h``: ``parts_out`` per simulated hour.
- ``cycle_time_s``: per placed part, from the moment its robot starts towards it until the
  robot has retreated from the place target (retried picks included).
- ``capacity_per_h``: what the robots would place per hour if never starved:
  ``sum over robots of 3600 / mean cycle time``. Equal to the throughput when the robots are
  never starved; the gap is the feed's share of the loss.
- robot shares: ``busy`` (working on a part), ``starved`` (no part ready), ``blocked`` (holding a
  finished part it cannot put down; never, the outfeed takes every part); they sum to 1.
  ``utilization`` is the busy share.
"""

from __future__ import annotations

import math
import statistics

from celltwin.layout.records import PHASES, RunResult


def summary_stats(values: list[float]) -> dict[str, float | int | None]:
    """count, mean, std, min, p50, p90, max of ``values`` (``None`` for an empty list)."""
    if not values:
        return {"count": 0, "mean": None, "std": None, "min": None, "p50": None, "p90": None,
                "max": None}
    ordered = sorted(values)

    def quantile(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {"count": len(values), "mean": round(statistics.fmean(values), 4),
            "std": round(statistics.pstdev(values), 4), "min": round(ordered[0], 4),
            "p50": round(quantile(0.5), 4), "p90": round(quantile(0.9), 4),
            "max": round(ordered[-1], 4)}


def kpis(result: RunResult) -> dict:
    """The KPI document of a run (what ``kpis.json`` holds)."""
    parts = result.parts
    outcomes = {kind: sum(1 for p in parts if p.outcome == kind)
                for kind in ("out", "in_process", "dropped", "missed")}
    placed = [p for p in parts if p.outcome == "out"]
    cycles = [p.cycle_time_s for p in placed]
    sim_h = result.sim_time_s / 3600.0
    phase_means = {phase: round(statistics.fmean(p.phase_times_s.get(phase, 0.0)
                                                 for p in placed), 4)
                   for phase in PHASES} if placed else {}
    robots = {}
    capacity = 0.0
    for robot in result.robots:
        total = robot.busy_s + robot.starved_s + robot.blocked_s
        own = [p.cycle_time_s for p in placed if p.robot == robot.robot]
        if own:
            capacity += 3600.0 / statistics.fmean(own)
        robots[robot.robot] = {
            "pick": robot.pick, "place": robot.place, "feed": robot.feed,
            "busy_s": round(robot.busy_s, 3), "starved_s": round(robot.starved_s, 3),
            "blocked_s": round(robot.blocked_s, 3),
            "utilization": round(robot.busy_s / total, 4) if total else 0.0,
            "starved_share": round(robot.starved_s / total, 4) if total else 0.0,
            "blocked_share": round(robot.blocked_s / total, 4) if total else 0.0,
            "cycles": robot.cycles, "parts_out": robot.parts_out,
            "cycle_timeouts": robot.cycle_timeouts,
            "tcp_path_length_m": round(robot.path_length_m, 3),
            "tcp_path_per_part_m": round(robot.path_length_m / robot.parts_out, 3)
            if robot.parts_out else None,
            "min_clearance_m": {body: round(distance, 4) for body, distance in
                                sorted(result.min_clearance_m.get(robot.robot, {}).items())}}
    collisions = [e for e in result.events if e.kind == "collision"]
    near_misses = [e for e in result.events if e.kind == "near_miss"]
    return {
        "cell": result.cell,
        "policy": result.options.policy,
        "parts_requested": result.options.parts,
        "parts_in": len(parts),
        "parts_out": outcomes["out"],
        "parts_in_process": outcomes["in_process"],
        "parts_dropped": outcomes["dropped"],
        "parts_missed": outcomes["missed"],
        "balance": f"{len(parts)} in = {outcomes['out']} out + {outcomes['in_process']} in "
                   f"process + {outcomes['dropped']} dropped + {outcomes['missed']} missed",
        "pick_retries": sum(p.retries for p in parts),
        "sim_time_s": round(result.sim_time_s, 3),
        "stopped_by": result.stopped_by,
        "throughput_per_h": round(outcomes["out"] / sim_h, 3) if sim_h > 0 else 0.0,
        "capacity_per_h": round(capacity, 3),
        "cycle_time_s": summary_stats(cycles),
        "phase_times_s": phase_means,
        "longest_phase": max(phase_means, key=phase_means.get) if phase_means else None,
        "wait_for_robot_s": summary_stats([p.wait_s for p in placed if p.wait_s is not None]),
        "lead_time_s": summary_stats([p.lead_time_s for p in placed]),
        "robots": robots,
        "feeds": {f.feed: {"kind": f.kind, "part_type": f.part_type,
                           "arrival_interval_s": None if f.arrival_interval_s is None
                           else round(f.arrival_interval_s, 4),
                           "arrivals": f.arrivals, "arrivals_delayed": f.arrivals_delayed,
                           "delayed_s": round(f.delayed_s, 3)} for f in result.feeds},
        "collisions": {"events": len(collisions),
                       "contact_s": round(sum(e.duration_s for e in collisions), 3),
                       "list": [e.to_dict() for e in collisions]},
        "near_misses": {"events": len(near_misses), "threshold_m": result.options.near_miss_m,
                        "list": [e.to_dict() for e in near_misses]},
        "control_period_s": result.control_period_s,
        "wall_time_s": round(result.wall_time_s, 3),
        "real_time_factor": round(result.real_time_factor, 2),
        # A station of a line file (docs/line.md) with the measured cycle times.
        "line_station": {"name": result.cell,
                         "cycle_time_s": {"dist": "empirical",
                                          "samples": [round(c, 3) for c in cycles]}}
        if cycles else None,
    }
