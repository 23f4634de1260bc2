"""The sim-to-sim gap of a bundle: the same episodes through the adapter in pybullet and MuJoCo.

:func:`measure_gap` draws each episode once in the bundle's training env (its goal, part poses
and, with ``randomization``, every randomized draw, from the episode's seed) and runs the bundle
through the deployment adapter and its safety layer in each engine from that same drawn state:
the pybullet world itself (:class:`celltwin.serve.VirtualController`), and its MuJoCo twin built
from it as drawn (:meth:`celltwin.mujoco.controller.MujocoVirtualController.of_world`). Each
engine reports per episode its success, the final distance, the cycle time (control steps to
success times the period), the safety layer's interventions (flagged steps), and how far the
episode got: the phase an unsuccessful episode failed in (approach, grasp, carry; see
:func:`failed_phase`).

The difference (MuJoCo minus pybullet) of each figure comes with a 95 % paired bootstrap
interval over episodes (the episodes are the same, so pairs are resampled together), and the
success difference with McNemar's exact test on the discordant episodes (scipy).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from celltwin.core.atomic import atomic_write_bytes, atomic_write_text
from celltwin.policies.bundle import load_bundle
from celltwin.policies.deploy.adapter import STOPPED, Adapter
from celltwin.policies.manifest import episode_steps

ENGINES = ("pybullet", "mujoco")
# How close the TCP must come to the part for the approach to count [m], and how high the part
# must rise above where it started for the grasp to count [m].
APPROACH_M = 0.03
LIFT_M = 0.01
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass
class Episode:
    """One episode in one engine."""

    seed: int
    success: bool
    steps: int
    cycle_time_s: float | None
    final_distance_m: float | None
    interventions: int
    stop_reason: str | None
    closest_approach_m: float | None = None
    max_lift_m: float | None = None
    phase: str | None = None
    safety_counts: dict = field(default_factory=dict)


def failed_phase(success: bool, closest_approach_m: float | None,
                 max_lift_m: float | None) -> str | None:
    """Where an unsuccessful pick-and-place episode stopped making progress: ``approach`` (the
    TCP never came within :data:`APPROACH_M` of the part), ``grasp`` (it did, but the part never
    rose :data:`LIFT_M` above its start), ``carry`` (lifted, never brought within the success
    threshold); None for a success or a task without a part."""
    if success or closest_approach_m is None:
        return None
    if closest_approach_m > APPROACH_M:
        return "approach"
    if max_lift_m is None or max_lift_m < LIFT_M:
        return "grasp"
    return "carry"


def measure_gap(bundle_path: Path, *, episodes: int, seed: int, steps: int | None = None,
                randomization: str | None = None, engines=ENGINES,
                progress: Callable[[str, int, int], None] | None = None,
                frames: Callable[[str, int, object, int], None] | None = None) -> dict:
    """Run the bundle on ``episodes`` seeded episodes in each engine (see the module
    docstring); the results as a JSON-ready dict. ``frames(engine, seed, world, step)``, when
    given, is called after every control step (for pictures of a failing episode)."""
    import gymnasium as gym

    from celltwin.envs.tasks import task_class
    from celltwin.serve.in_process import InProcessController

    bundle = load_bundle(bundle_path)
    manifest = bundle.manifest
    training = manifest["training"]
    env_kwargs = dict(training["env_kwargs"])
    if randomization not in (None, "none"):
        env_kwargs["randomization"] = randomization
    env = gym.make(task_class(training["task"], path="manifest training.task").env_id,
                   **env_kwargs)
    steps = steps or episode_steps(manifest)
    object_name = manifest["observation"].get("object_name")
    world = env.unwrapped.world
    results = {engine: [] for engine in engines}
    adapters: dict[str, Adapter] = {}
    try:
        for index in range(episodes):
            episode_seed = seed + index
            for engine in engines:
                obs, _ = env.reset(seed=episode_seed)  # the same draw for every engine
                goal = np.asarray(obs["desired_goal"], dtype=float)
                virtual = _controller(world, engine, episode_seed, object_name)
                with InProcessController(virtual) as controller:
                    adapter = adapters.get(engine)
                    if adapter is None:
                        adapter = adapters[engine] = Adapter(bundle, controller, goal,
                                                             object_name=object_name,
                                                             paced=False)
                    else:
                        adapter.controller = controller
                        adapter.set_goal(goal)
                    results[engine].append(_episode(adapter, virtual, object_name, steps,
                                                    episode_seed, engine, frames))
                if progress is not None:
                    progress(engine, index + 1, episodes)
    finally:
        for adapter in adapters.values():
            adapter.close()
        env.close()
    period_s = float(manifest["control"]["period_s"])
    return summarize(results, bundle=str(bundle_path), task=training["task"],
                     randomization=randomization or "none", seed=seed, steps=steps,
                     period_s=period_s)


def _controller(world, engine: str, seed: int, object_name: str | None):
    tracked = (object_name,) if object_name else ()
    if engine == "mujoco":
        from celltwin.mujoco.controller import MujocoVirtualController

        return MujocoVirtualController.of_world(world, seed=seed, tracked_objects=tracked)
    from celltwin.serve.virtual_controller import VirtualController

    return VirtualController(world, seed=seed, tracked_objects=tracked)


def _episode(adapter, virtual, object_name, steps: int, seed: int, engine: str,
             frames) -> Episode:
    """One episode: the adapter's run loop, step by step, watching the part's progress."""
    twin = virtual.world
    robot = twin.robot()
    start_z = twin.pose(object_name)[0][2] if object_name else None
    closest, lift = math.inf, -math.inf
    adapter.rearm()
    counts: dict[str, int] = {}
    result, done = None, 0
    for done in range(1, steps + 1):
        result = adapter.step()
        for flag in result.flags:
            counts[flag] = counts.get(flag, 0) + 1
        if object_name:
            part = twin.pose(object_name)[0]
            closest = min(closest, float(np.linalg.norm(robot.ee_pose()[0] - part)))
            lift = max(lift, float(part[2] - start_z))
        if frames is not None:
            frames(engine, seed, twin, done)
        if adapter.state == STOPPED or result.success:
            break
    stop_reason = adapter.stop_reason
    adapter.stop("episode finished")
    success = bool(result.success) if result is not None else False
    period = adapter.period_s
    approach = closest if object_name else None
    lifted = lift if object_name else None
    return Episode(seed=seed, success=success, steps=done,
                   cycle_time_s=done * period if success else None,
                   final_distance_m=result.distance_m if result is not None else None,
                   interventions=sum(counts.values()), stop_reason=stop_reason,
                   closest_approach_m=approach, max_lift_m=lifted,
                   phase=failed_phase(success, approach, lifted), safety_counts=counts)


# --- statistics -----------------------------------------------------------------------------


def paired_bootstrap(a, b, *, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``b - a`` over pairs and its 95 % percentile bootstrap interval (pairs resampled
    together); NaN for no pairs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0:
        return math.nan, math.nan, math.nan
    differences = b - a
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, differences.size, size=(BOOTSTRAP_RESAMPLES, differences.size))
    means = differences[draws].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(differences.mean()), float(low), float(high)


def mcnemar_p(a, b) -> float:
    """Exact McNemar p-value of paired successes ``a`` vs ``b`` (two-sided binomial test on the
    discordant pairs); 1.0 when there are none."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_b, only_a + only_b, 0.5).pvalue)


def summarize(results: dict[str, list[Episode]], **about) -> dict:
    """Per-engine figures, and MuJoCo minus pybullet with 95 % paired intervals."""
    engines = {}
    for engine, episodes in results.items():
        successes = [e for e in episodes if e.success]
        distances = [e.final_distance_m for e in episodes if e.final_distance_m is not None]
        phases: dict[str, int] = {}
        for e in episodes:
            if e.phase:
                phases[e.phase] = phases.get(e.phase, 0) + 1
        engines[engine] = {
            "episodes": len(episodes), "successes": len(successes),
            "success_rate": len(successes) / len(episodes) if episodes else math.nan,
            "final_distance_m": float(np.mean(distances)) if distances else None,
            "cycle_time_s": (float(np.mean([e.cycle_time_s for e in successes]))
                             if successes else None),
            "interventions": float(np.mean([e.interventions for e in episodes]))
            if episodes else None,
            "stops": sum(1 for e in episodes if e.stop_reason),
            "failed_in": phases}
    report = {**about, "engines": engines,
              "episodes": {engine: [asdict(e) for e in episodes]
                           for engine, episodes in results.items()}}
    if set(results) == set(ENGINES):
        report["difference"] = _difference(results["pybullet"], results["mujoco"])
    return report


def _difference(bullet: list[Episode], mj: list[Episode]) -> dict:
    success = paired_bootstrap([e.success for e in bullet], [e.success for e in mj])
    distance = [(a.final_distance_m, b.final_distance_m) for a, b in zip(bullet, mj)
                if a.final_distance_m is not None and b.final_distance_m is not None]
    cycle = [(a.cycle_time_s, b.cycle_time_s) for a, b in zip(bullet, mj)
             if a.success and b.success]
    interventions = paired_bootstrap([e.interventions for e in bullet],
                                     [e.interventions for e in mj])

    def pairs(values):
        return paired_bootstrap([a for a, _ in values], [b for _, b in values])

    def figure(estimate, pairs_used):
        mean, low, high = estimate
        return {"mean": _finite(mean), "ci95": [_finite(low), _finite(high)], "pairs": pairs_used}

    return {
        "success_rate": {**figure(success, len(bullet)),
                         "mcnemar_p": mcnemar_p([e.success for e in bullet],
                                                [e.success for e in mj])},
        "final_distance_m": figure(pairs(distance), len(distance)),
        "cycle_time_s": figure(pairs(cycle), len(cycle)),
        "interventions": figure(interventions, len(bullet)),
    }


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# --- the report -----------------------------------------------------------------------------


def write_gap_report(report: dict, out: Path) -> list[Path]:
    """gap.json, gap.md (the table) and gap.png (the chart) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "gap.json", out / "gap.md", out / "gap.png"]
    atomic_write_text(paths[0], json.dumps(report, indent=2))
    atomic_write_text(paths[1], gap_table(report))
    atomic_write_bytes(paths[2], gap_chart(report))
    return paths


def _cell(value, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}{unit}"


def gap_table(report: dict) -> str:
    """The report as Markdown: one row per engine, one for the difference."""
    engines = report["engines"]
    lines = [f"# Sim-to-sim gap: {report['bundle']}", "",
             f"Task {report['task']}, {next(iter(engines.values()))['episodes']} episodes "
             f"(seeds {report['seed']}..), at most {report['steps']} control steps each, "
             f"randomization {report['randomization']}; through the adapter and its safety "
             "layer.", "",
             "| engine | success | final distance | cycle time (successes) | safety-layer "
             "interventions (flags) per episode | stopped | failed in |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for engine, row in engines.items():
        failed = ", ".join(f"{phase} {count}" for phase, count in sorted(row["failed_in"].items()))
        lines.append(f"| {engine} | {row['successes']}/{row['episodes']} "
                     f"({_cell(row['success_rate'], 100, 0, ' %')}) "
                     f"| {_cell(row['final_distance_m'], 1e3, 1, ' mm')} "
                     f"| {_cell(row['cycle_time_s'], 1, 2, ' s')} "
                     f"| {_cell(row['interventions'], 1, 1)} | {row['stops']} "
                     f"| {failed or '-'} |")
    difference = report.get("difference")
    if difference:
        def ci(name, scale, digits, unit):
            entry = difference[name]
            low, high = entry["ci95"]
            return (f"{_cell(entry['mean'], scale, digits, unit)} "
                    f"[{_cell(low, scale, digits)}, {_cell(high, scale, digits)}]")
        lines.append(f"| MuJoCo - pybullet (95 % paired bootstrap) "
                     f"| {ci('success_rate', 100, 1, ' pt')} "
                     f"(McNemar p = {difference['success_rate']['mcnemar_p']:.3g}) "
                     f"| {ci('final_distance_m', 1e3, 1, ' mm')} "
                     f"| {ci('cycle_time_s', 1, 2, ' s')} "
                     f"| {ci('interventions', 1, 1, '')} | | |")
    return "\n".join(lines) + "\n"


def gap_chart(report: dict) -> bytes:
    """Success rate and final distance per engine, with the difference's interval, as PNG."""
    import io

    from celltwin.core.plots import new_figure

    engines = report["engines"]
    names = list(engines)
    figure = new_figure(figsize=(8, 3.2), dpi=100)
    success, distance = figure.subplots(1, 2)
    rates = [100 * engines[name]["success_rate"] for name in names]
    success.bar(names, rates, color=["tab:blue", "tab:orange"][:len(names)])
    success.set_ylim(0, 105)
    success.set_ylabel("success [%]")
    for x, rate in enumerate(rates):
        success.text(x, rate + 1, f"{rate:.0f} %", ha="center")
    millimetres = [1e3 * (engines[name]["final_distance_m"] or 0.0) for name in names]
    distance.bar(names, millimetres, color=["tab:blue", "tab:orange"][:len(names)])
    distance.set_ylabel("final distance, mean [mm]")
    difference = report.get("difference")
    if difference:
        entry = difference["success_rate"]
        low, high = entry["ci95"]
        success.set_title(f"MuJoCo - pybullet: {100 * (entry['mean'] or 0):.1f} pt "
                          f"[{100 * (low or 0):.1f}, {100 * (high or 0):.1f}]", fontsize=9)
    figure.suptitle(f"{report['task']}: the same {engines[names[0]]['episodes']} episodes "
                    "in each engine", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

