"""The GPU machine's figures in one prepared run: env throughput, CPU vs CUDA training,
ConveyorPick's time to target, camera frames per second.

Stages, in this order (``--stages`` picks some):

* ``camera``: frames/s of the PickPlace twin's camera at 84 and 128 px squared, pybullet's EGL
  plugin (GPU) against TinyRenderer (CPU), each in its own pybullet client.
* ``throughput``: env steps/s of ``celltwin/PickPlace-v0`` and panda-gym's
  ``PandaPickAndPlace-v3`` over 1 / 4 / 8 / 16 ``SubprocVecEnv`` workers, random actions,
  sides alternating per worker count (``--tiny``: 1 / 2).
* ``conveyor``: ``celltwin train`` of the ConveyorPick preset on the fastest device, stopping at
  its 90% randomized-success target, capped at 8 minutes (less when the deadline leaves less,
  keeping 160 s for ``train``); the run's final evaluation on the randomized twin.
* ``train``: the same configurations on ``cpu`` and on ``cuda``: PickPlace with demonstrations
  (its preset, stopping at its 95% target) and PickPlace from RL alone with the zoo's TQC + HER
  settings (``benchmarks/learning.py``'s ``RL_ALONE``), each for a fixed wall time.

Every stage's budget is cut to what is left of ``--deadline-s`` (a lent GPU runs one command
for at most 10 minutes), and the summary (``summary.json`` + ``summary.md`` in ``--out``) is
rewritten after each stage, so a run stopped by its time limit still returns what it measured.
A stage that cannot run here (no CUDA, no EGL, panda-gym not installed) says why in the summary.

    bash benchmarks/gpu.sh                 # on the GPU machine (see the script's header)
    bash benchmarks/gpu.sh --tiny          # on a CPU machine: tiny budgets, under 2 minutes
    python benchmarks/gpu.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # learning.py: the training configurations, shared with it

STAGES = ("camera", "throughput", "conveyor", "train")
# Nominal wall-time caps [s] of the full run; each is cut to the time left of the deadline.
FULL = {"worker_counts": (1, 4, 8, 16), "throughput_s": 6.0, "camera_frames": 200,
        "conveyor_s": 480.0, "pickplace_s": 120.0, "rl_alone_s": 30.0, "final_episodes": 50}
TINY = {"worker_counts": (1, 2), "throughput_s": 1.0, "camera_frames": 5,
        "conveyor_s": 8.0, "pickplace_s": 8.0, "rl_alone_s": 4.0, "final_episodes": 2}
# Tiny training: a few demonstrations and gradient steps, enough to run every phase once.
TINY_TRAINING = {"steps": 300, "eval.every_steps": 150, "eval.episodes": 2,
                 "checkpoint_every_steps": 1_000_000, "demos.episodes": 4,
                 "demos.bc_epochs": 2, "demos.dagger_rounds": 1, "demos.dagger_episodes": 2,
                 "demos.dagger_epochs": 1}
TINY_RL = {"steps": 400, "eval.every_steps": 200, "eval.episodes": 2,
           "checkpoint_every_steps": 1_000_000,
           "hyperparameters": {"learning_starts": 100, "batch_size": 64, "buffer_size": 5_000,
                               "policy_kwargs": {"net_arch": [64, 64], "n_critics": 2}}}


class Clock:
    """Time left of the run's deadline; a stage asks for its cap and gets at most what is left,
    less a reserve for the stages after it."""

    def __init__(self, deadline_s: float):
        self.started = time.perf_counter()
        self.deadline_s = deadline_s

    def left(self) -> float:
        return self.deadline_s - (time.perf_counter() - self.started)

    def budget(self, cap_s: float, reserve_s: float = 0.0) -> float:
        return max(0.0, min(cap_s, self.left() - reserve_s))


# ------------------------------------------------------------------------------ camera
def camera_stage(plan: dict) -> dict:
    import gymnasium as gym
    import pybullet as p

    import celltwin.envs  # noqa: F401
    from celltwin.render import render_view, renderer_for

    results = {}
    for size in (84, 128):
        row = {}
        for name in ("tiny", "egl"):
            os.environ["CELLTWIN_RENDERER"] = name
            env = gym.make("celltwin/PickPlace-v0", render_mode="rgb_array",
                           render_width=size, render_height=size)
            try:
                env.reset(seed=0)
                world = env.unwrapped.world
                renderer = renderer_for(world.client)
                if name == "egl" and renderer != p.ER_BULLET_HARDWARE_OPENGL:
                    row[name] = {"skipped": "pybullet's EGL plugin did not load here (no GPU "
                                            "driver or GL libraries)"}
                    continue
                render_view(world, width=size, height=size, renderer=renderer)  # warm-up
                seconds = 0.0
                for _ in range(plan["camera_frames"]):
                    env.step(env.action_space.sample())  # a new state per frame
                    started = time.perf_counter()
                    render_view(world, width=size, height=size, renderer=renderer)
                    seconds += time.perf_counter() - started
                row[name] = {"fps": plan["camera_frames"] / seconds}
            finally:
                env.close()
                os.environ.pop("CELLTWIN_RENDERER", None)
        results[f"{size}px"] = row
    return results


# -------------------------------------------------------------------------- throughput
def _make_celltwin():
    import gymnasium as gym

    import celltwin.envs  # noqa: F401  (registers the ids in a fresh worker process)

    return gym.make("celltwin/PickPlace-v0")


def _make_panda():
    import gymnasium as gym
    import panda_gym  # noqa: F401

    return gym.make("PandaPickAndPlace-v3")


def _steps_per_s(make, workers: int, seconds: float, seed: int) -> float:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    env = SubprocVecEnv([make] * workers)
    try:
        env.seed(seed)
        env.reset()
        rng = np.random.default_rng(seed)
        shape = (workers,) + env.action_space.shape
        low, high = env.action_space.low, env.action_space.high
        for _ in range(20):  # warm-up: first episodes, page faults
            env.step(rng.uniform(low, high, shape).astype(np.float32))
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            env.step(rng.uniform(low, high, shape).astype(np.float32))
            steps += workers
        return steps / (time.perf_counter() - started)
    finally:
        env.close()


def throughput_stage(plan: dict, clock: Clock) -> dict:
    try:
        import panda_gym  # noqa: F401
        peer = True
    except ImportError:
        peer = False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    results = {"cores": cores}
    if not peer:
        results["panda-gym"] = {"skipped": "panda-gym is not installed "
                                           "(pip install panda-gym==3.0.7)"}
    for workers in plan["worker_counts"]:
        row = {}
        seconds = plan["throughput_s"]
        if clock.left() < 2 * (seconds + 5):
            results[str(workers)] = {"skipped": "deadline reached"}
            continue
        row["celltwin"] = _steps_per_s(_make_celltwin, workers, seconds, seed=0)
        if peer:
            row["panda-gym"] = _steps_per_s(_make_panda, workers, seconds, seed=0)
            row["ratio"] = row["celltwin"] / row["panda-gym"]
        results[str(workers)] = row
        print(f"  {workers:>2} workers: " + ", ".join(
            f"{k} {v:,.0f}" if k != "ratio" else f"ratio {v:.2f}x" for k, v in row.items()),
              flush=True)
    return results


# ---------------------------------------------------------------------------- training
def _train(task: str, budget_s: float, device: str, out: Path, seed: int, tiny: bool,
           final_episodes: int) -> dict:
    import learning

    extra = {"eval.final_episodes": final_episodes}
    if tiny:
        extra.update(TINY_RL if task == "PickPlaceRL" else TINY_TRAINING)
    if tiny and task == "PickPlaceRL":
        # Nested hyperparameters replace the zoo's whole: merge them (n_envs 0: one per core).
        extra["hyperparameters"] = {**learning.RL_ALONE["hyperparameters"],
                                    **TINY_RL["hyperparameters"]}
    every = extra.get("eval.every_steps", learning.EVAL_EVERY[task])
    result = learning.run_celltwin(task, budget_s, every, device, out, seed, extra=extra)
    # The run's own final evaluation: final_episodes on the nominal twin and as many on the
    # randomized one (when the preset randomizes).
    result.update(budget_s=budget_s, target=learning.TARGET[task],
                  final_episodes=final_episodes)
    return result


def _devices() -> tuple[list[str], str | None]:
    import torch

    if torch.cuda.is_available():
        return ["cpu", "cuda"], None
    return ["cpu"], "no CUDA device is usable here (torch.cuda.is_available() is False)"


def conveyor_stage(plan: dict, clock: Clock, out: Path, seed: int, tiny: bool) -> dict:
    devices, _ = _devices()
    device = devices[-1]
    # Keep enough for the CPU vs CUDA runs after it: their shortest useful budgets.
    budget = clock.budget(plan["conveyor_s"], reserve_s=0.0 if tiny else 160.0)
    if budget < (5 if tiny else 60):
        return {"skipped": f"deadline reached ({clock.left():.0f} s left)"}
    return {device: _train("ConveyorPick", budget, device, out / f"conveyor-{device}", seed,
                           tiny, plan["final_episodes"])}


def train_stage(plan: dict, clock: Clock, out: Path, seed: int, tiny: bool) -> dict:
    devices, why = _devices()
    results: dict = {} if why is None else {"cuda runs": {"skipped": why}}
    for task, cap in (("PickPlace", plan["pickplace_s"]), ("PickPlaceRL", plan["rl_alone_s"])):
        for device in devices:
            # Both devices get the same budget: the one the deadline allows for two runs.
            runs_left = len(devices) - devices.index(device)
            budget = min(cap, clock.left() / max(runs_left, 1) - (2 if tiny else 20))
            if budget < (3 if tiny else 20):
                results[f"{task} {device}"] = {"skipped": "deadline reached"}
                continue
            results[f"{task} {device}"] = _train(
                task, budget, device, out / f"{task.lower()}-{device}", seed, tiny,
                plan["final_episodes"])
    return results


# ----------------------------------------------------------------------------- summary
def markdown(summary: dict) -> str:
    lines = [f"# GPU run summary ({summary['machine']['gpu'] or 'no GPU'})", "",
             f"Command: `{summary['command']}`; "
             f"{summary['machine']['cores']} cores; torch {summary['machine']['torch']}; "
             f"{summary['wall_s']:.0f} s in all.", ""]
    stages = summary["stages"]
    if "camera" in stages:
        lines += ["## Camera frames/s", "", "| size | TinyRenderer | EGL | ratio |",
                  "| --- | --- | --- | --- |"]
        for size, row in stages["camera"].items():
            tiny, egl = row.get("tiny", {}), row.get("egl", {})
            ratio = (f"{egl['fps'] / tiny['fps']:.1f}x"
                     if "fps" in egl and "fps" in tiny else "")
            lines.append(f"| {size} | {_cell(tiny, 'fps')} | {_cell(egl, 'fps')} | {ratio} |")
        lines.append("")
    if "throughput" in stages:
        lines += ["## Env steps/s, PickPlace, SubprocVecEnv", "",
                  "| workers | celltwin | panda-gym | ratio |", "| --- | --- | --- | --- |"]
        for workers, row in stages["throughput"].items():
            if workers in ("cores", "panda-gym"):
                continue
            if "skipped" in row:
                lines.append(f"| {workers} | {row['skipped']} | | |")
                continue
            ratio = f"{row['ratio']:.2f}x" if "ratio" in row else ""
            lines.append(f"| {workers} | {row['celltwin']:,.0f} | "
                         f"{row.get('panda-gym', 0):,.0f} | {ratio} |")
        if "panda-gym" in stages["throughput"]:
            lines.append(f"\npanda-gym: {stages['throughput']['panda-gym']['skipped']}")
        lines.append("")
    runs = {f"ConveyorPick {device}": row for device, row in stages.get("conveyor", {}).items()
            if isinstance(row, dict)}
    runs.update({name: row for name, row in stages.get("train", {}).items()
                 if isinstance(row, dict)})
    if runs:
        lines += ["## Training", "", "| run | budget | time to target | best eval | "
                  "final randomized | env steps | wall |", "| --- | --- | --- | --- | --- | "
                  "--- | --- |"]
        for name, row in runs.items():
            if "skipped" in row:
                lines.append(f"| {name} | {row['skipped']} | | | | | |")
                continue
            reached = (f"{row['time_to_target_s']:.0f} s" if row["time_to_target_s"] is not None
                       else f"not reached ({row['target']:.0%})")
            final = (f"{row['final_randomized']:.0%} of {row['final_episodes']}"
                     if row.get("final_randomized") is not None else "")
            lines.append(f"| {name} | {row['budget_s']:.0f} s | {reached} | {row['best']:.0%} "
                         f"| {final} | {row['steps']:,} | {row['wall_s']:.0f} s |")
        lines.append("")
    for stage, row in stages.items():
        if isinstance(row, dict) and "failed" in row:
            lines.append(f"- {stage} failed: {row['failed']}")
    return "\n".join(lines) + "\n"


def _cell(row: dict, key: str) -> str:
    return f"{row[key]:,.0f}" if key in row else row.get("skipped", "")


def _write(out: Path, summary: dict) -> None:
    from celltwin.core.atomic import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    atomic_write_text(out / "summary.md", markdown(summary))


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"gpu": gpu, "cores": cores, "torch": torch.__version__,
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="tiny budgets: the whole run in under 2 minutes on 2 CPU cores")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--deadline-s", type=float, default=None,
                        help="stop starting work after this many seconds (default 540; "
                             "--tiny: 110)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for summary.json, summary.md and the run directories")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    plan = TINY if args.tiny else FULL
    clock = Clock(args.deadline_s or (110.0 if args.tiny else 540.0))
    out = args.out or Path(tempfile.mkdtemp(prefix="celltwin-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    summary = {"command": "bash benchmarks/gpu.sh " + " ".join(argv or sys.argv[1:]),
               "machine": machine(), "plan": {k: list(v) if isinstance(v, tuple) else v
                                              for k, v in plan.items()},
               "stages": {}, "wall_s": 0.0}
    for stage in [s for s in STAGES if s in args.stages]:
        print(f"[{time.perf_counter() - clock.started:5.0f} s] {stage}", flush=True)
        try:
            if stage == "camera":
                result = camera_stage(plan)
            elif stage == "throughput":
                result = throughput_stage(plan, clock)
            elif stage == "conveyor":
                result = conveyor_stage(plan, clock, out, args.seed, args.tiny)
            else:
                result = train_stage(plan, clock, out, args.seed, args.tiny)
        except Exception as error:  # one stage's failure must not lose the others' figures
            result = {"failed": f"{type(error).__name__}: {error}"}
        summary["stages"][stage] = result
        summary["wall_s"] = time.perf_counter() - clock.started
        _write(out, summary)
    print(markdown(summary))
    print(f"summary: {out / 'summary.json'}, {out / 'summary.md'}")
    failed = [s for s, r in summary["stages"].items() if isinstance(r, dict) and "failed" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
