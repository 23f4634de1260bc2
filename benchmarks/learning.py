"""Time to success: celltwin against panda-gym 3.0.7, same algorithm, same budget, one run.

For each task, both sides train SB3 with HER, the celltwin preset's algorithm (SAC, or TQC for
ConveyorPick) and hyperparameters, for at most the same wall time, evaluating deterministic
success every ``--eval-every`` env steps (20 episodes; celltwin on its randomized twin when the
preset randomizes). Printed: the
wall time at which each first reached the target success (or "not reached" and the best seen).

* Reach: ``celltwin/Reach-v0`` vs ``PandaReach-v3``; target >= 95% within 3 minutes.
* PickPlace: ``celltwin/PickPlace-v0`` under the ``standard`` preset, with scripted-expert
  demonstrations (behaviour cloning + DAgger, then SAC + HER), vs ``PandaPickAndPlace-v3``
  (panda-gym ships no expert: RL alone, as its users get it); target >= 95% within 5 minutes,
  and >= 90% of the final policy under ``benchmarks/shifted_physics.yaml`` (physics outside the
  centre of the training ranges). The final policy (trained within the budget) is measured
  again on the randomized twin over ``--final-episodes`` (200) fresh seeds, since a 20-episode
  evaluation moves in steps of 5 points.
* ConveyorPick: ``celltwin/ConveyorPick-v0`` under the ``standard`` preset, with demonstrations
  and DAgger from the reactive interception expert, vs ``PandaPickAndPlace-v3`` with TQC + HER
  alone; target >= 90% within 8 minutes (the issue sets it for a 16-core GPU machine; this
  measures it wherever it runs), and the final policy over ``--final-episodes`` as above.

Run::

    pip install panda-gym==3.0.7   # or: bash scripts/setup.sh bench
    python benchmarks/learning.py [--tasks Reach PickPlace ConveyorPick] [--skip-peer]
                                  [--device auto] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym

BUDGET_S = {"Reach": 180.0, "PickPlace": 300.0, "ConveyorPick": 480.0}
TARGET = {"Reach": 0.95, "PickPlace": 0.95, "ConveyorPick": 0.90}
SHIFTED_TARGET = 0.90
PEER_IDS = {"Reach": "PandaReach-v3", "PickPlace": "PandaPickAndPlace-v3",
            "ConveyorPick": "PandaPickAndPlace-v3"}
EVAL_EVERY = {"Reach": 2000, "PickPlace": 2500, "ConveyorPick": 3000}
HERE = Path(__file__).resolve().parent


def run_celltwin(task: str, budget_s: float, eval_every: int, device: str, out: Path,
                 seed: int | None = None) -> dict:
    from training.config import resolve_config
    from training.metrics import MetricsLog
    from training.trainer import train

    config = resolve_config(task=task, overrides={
        "max_wall_s": budget_s, "device": device, "eval.every_steps": eval_every,
        "eval.episodes": 20, "eval.target_success": TARGET[task], "steps": 1_000_000,
        "checkpoint_every_steps": 1_000_000, **({} if seed is None else {"seed": seed})})
    summary = train(config, out, log=lambda text: print(f"  [celltwin] {text}", flush=True))
    rows = MetricsLog(out / "metrics.csv").rows()
    key = "success_randomized" if config.randomization != "none" else "success_nominal"
    return {"time_to_target_s": _first(rows, key, TARGET[task]), "best": max(float(r[key]) for r in rows),
            "final_nominal": summary["success_nominal"],
            "final_randomized": summary.get("success_randomized"),
            "steps": summary["steps"], "run": str(out), "config": config}


def run_peer(task: str, config, budget_s: float, eval_every: int, device: str) -> dict:
    import panda_gym  # noqa: F401
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.callbacks import BaseCallback

    from training.algorithms import algorithm_class
    from training.evaluation import SB3Policy, run_episodes

    env = gym.make(PEER_IDS[task])
    eval_env = gym.make(PEER_IDS[task])
    kwargs = dict(config.hyperparameters)
    # Without demonstrations HER cannot sample before the first episode has ended.
    kwargs["learning_starts"] = max(kwargs.get("learning_starts", 0), 1000)
    model = algorithm_class(config.algo)("MultiInputPolicy", env,
                                         replay_buffer_class=HerReplayBuffer, seed=config.seed,
                                         device=device, verbose=0, **kwargs)
    rows: list[tuple[float, int, float]] = []
    started = time.perf_counter()

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every:
                return True
            outcome = run_episodes(eval_env, SB3Policy(self.model), 20, seed=10_000_000)
            wall = time.perf_counter() - started
            rows.append((wall, self.num_timesteps, outcome.success_rate))
            print(f"  [panda-gym] step {self.num_timesteps:>7}  {wall:6.1f} s  success "
                  f"{outcome.success_rate:.0%}", flush=True)
            return outcome.success_rate < TARGET[task] and wall < budget_s

    model.learn(10_000_000, callback=Clock())
    env.close()
    eval_env.close()
    reached = [wall for wall, _, success in rows if success >= TARGET[task]]
    return {"time_to_target_s": reached[0] if reached else None,
            "best": max((s for _, _, s in rows), default=0.0),
            "steps": model.num_timesteps}


def final_success(run: Path, episodes: int, shifted: bool) -> float:
    """Success of a run's final policy over ``episodes`` fresh seeds: on the randomized twin
    it trained on (envs in turn, each with its own draw of the startup terms), or
    (``shifted``) under ``shifted_physics.yaml``.

    The training evaluations use 20 episodes, in steps of 5%: too coarse to tell 97% from
    93%, so the final policy is also measured on many more.
    """
    import twin.envs  # noqa: F401
    from training.algorithms import load_normalizer
    from training.evaluation import STARTUP_DRAWS, SB3Policy, run_episodes
    from training.run_dir import load_trained

    trained = load_trained(run)
    kwargs = {k: v for k, v in trained.env_kwargs().items() if k != "physics"}
    if shifted:
        kwargs["physics"] = str(HERE / "shifted_physics.yaml")
    else:
        kwargs["randomization"] = trained.config.randomization
    # Several envs, taken in turn: each draws its own startup terms (part size, masses).
    envs = [gym.make(trained.config.env_id(), **kwargs)
            for _ in range(1 if shifted else STARTUP_DRAWS)]
    try:
        policy = SB3Policy(trained.model, load_normalizer(run / "final" / "vecnormalize.pkl"))
        return run_episodes(envs, policy, episodes,
                            seed=20_000_000 if shifted else 30_000_000).success_rate
    finally:
        for env in envs:
            env.close()


def _first(rows: list[dict], key: str, target: float) -> float | None:
    for row in rows:
        if row.get(key) and float(row[key]) >= target:
            return float(row["wall_s"])
    return None


def _fmt(seconds: float | None, budget: float) -> str:
    return f"{seconds:.0f} s" if seconds is not None else f"not reached in {budget:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(BUDGET_S), choices=list(BUDGET_S))
    parser.add_argument("--skip-peer", action="store_true", help="celltwin only")
    parser.add_argument("--skip-celltwin", action="store_true", help="the peer only")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="env steps between evaluations (default: 2000 Reach, 2500 "
                             "PickPlace, 3000 ConveyorPick)")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="multiply the wall-time budgets (e.g. for a quick smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run directories here")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed of both sides (default: the preset's); a run is "
                             "repeatable by seed, so spread is judged over seeds")
    parser.add_argument("--final-episodes", type=int, default=200,
                        help="episodes of the final PickPlace and ConveyorPick policies on "
                             "the randomized twin")
    parser.add_argument("--shifted-episodes", type=int, default=50,
                        help="episodes of the final PickPlace policy under shifted physics")
    args = parser.parse_args()
    from training.algorithms import resolve_device

    device = resolve_device(args.device)
    root = args.out or Path(tempfile.mkdtemp(prefix="celltwin-learning-"))
    results = {}
    for task in args.tasks:
        budget = BUDGET_S[task] * args.budget_scale
        every = args.eval_every or EVAL_EVERY[task]
        print(f"{task}: budget {budget:.0f} s, device {device}", flush=True)
        result = {}
        config = None
        if not args.skip_celltwin:
            ours = run_celltwin(task, budget, every, device,
                                root / f"{task.lower()}-{int(time.time())}", args.seed)
            config = ours.pop("config")
            result["celltwin"] = ours
            if task != "Reach":
                result["celltwin"]["final_randomized_success"] = final_success(
                    Path(ours["run"]), args.final_episodes, shifted=False)
            if task == "PickPlace":
                result["celltwin"]["shifted_physics_success"] = final_success(
                    Path(ours["run"]), args.shifted_episodes, shifted=True)
        if not args.skip_peer:
            from training.config import resolve_config

            config = config or resolve_config(
                task=task, overrides={} if args.seed is None else {"seed": args.seed})
            result["panda-gym"] = run_peer(task, config, budget, every, device)
        results[task] = result
    print("\n| task | celltwin: time to target | best | peer (panda-gym 3.0.7) | best |")
    print("| --- | --- | --- | --- | --- |")
    for task, result in results.items():
        budget = BUDGET_S[task] * args.budget_scale
        ours = result.get("celltwin")
        peer = result.get("panda-gym")
        print(f"| {task} | "
              + (f"{_fmt(ours['time_to_target_s'], budget)} | {ours['best']:.0%} | " if ours
                 else "skipped | | ")
              + (f"{_fmt(peer['time_to_target_s'], budget)} | {peer['best']:.0%} |" if peer
                 else "skipped | |"))
        if ours and "final_randomized_success" in ours:
            print(f"  {task} final policy on the randomized twin: "
                  f"{ours['final_randomized_success']:.1%} over {args.final_episodes} episodes "
                  f"(target >= {TARGET[task]:.0%})")
        if ours and "shifted_physics_success" in ours:
            print(f"  {task} under shifted physics: {ours['shifted_physics_success']:.0%} "
                  f"(target >= {SHIFTED_TARGET:.0%})")
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
