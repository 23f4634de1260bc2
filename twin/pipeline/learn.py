"""The researcher's stages: train PickPlace under domain randomization, evaluate the policy on
the nominal twin, the randomized twin and a robustness grid, and film a few of its episodes.

Each stage writes into its own folder what the matching command writes (``celltwin train``,
``celltwin evaluate``, ``celltwin evaluate --video``), and its report section reads those
files back.
"""

from __future__ import annotations

import json
from pathlib import Path

from celltwin.core.atomic import atomic_write_text
from celltwin.envs.tasks import task_class
from celltwin.pipeline.figures import learning_curve_png
from celltwin.pipeline.frame import Context, Section, Table
from celltwin.training.config import load_config, resolve_config
from celltwin.training.episode_video import record_video
from celltwin.training.evaluation import Sweep, check_grid, evaluate, heatmap_png, write_report
from celltwin.training.trainer import train
from celltwin.video import EpisodeRecorder

TASK = "PickPlace"
MODEL = Path("train") / "final" / "model.zip"


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


# --------------------------------------------------------------------------------- train
def run_train(context: Context) -> dict:
    overrides = {"env.cell": context.cell, "seed": context.seed, **context.budget.train}
    config = resolve_config(task=TASK, overrides=overrides)
    summary = train(config, context.out / "train", log=context.log)
    return {"summary": f"success {_percent(summary['success_nominal'])} nominal, "
                       f"{_percent(summary.get('success_randomized'))} randomized "
                       f"({config.randomization}) after {summary['train_wall_s']:.0f} s",
            "success_nominal": summary["success_nominal"],
            "success_randomized": summary.get("success_randomized"),
            "target_success": config.eval.target_success, "train_wall_s": summary["train_wall_s"],
            "files": ["train/summary.json", "train/metrics.csv", "train/config.yaml"]}


def train_section(out: Path, record: dict) -> Section:
    summary = json.loads((out / "train" / "summary.json").read_text())
    config = load_config(out / "train" / "config.yaml")
    demos = summary.get("demonstrations") or {}
    curve = learning_curve_png(out / "train", out / "figures" / "learning_curve.png")
    rows = [["success on the nominal twin", _percent(summary["success_nominal"])],
            ["success on the randomized twin", _percent(summary.get("success_randomized"))],
            ["target", _percent(config.eval.target_success)],
            ["evaluation episodes per twin", str(summary["eval_episodes"])],
            ["expert demonstrations", f"{demos.get('episodes', 0)} "
                                      f"({_percent(demos.get('expert_success'))} successful)"],
            ["DAgger rounds", str(len([r for r in demos.get("dagger", []) if "samples" in r]))],
            ["env steps of RL", str(summary["steps"])],
            ["stopped", summary["stop_reason"]],
            ["training wall time", f"{summary['train_wall_s']:.0f} s"]]
    return Section(
        f"Training: {summary['task']} under `{summary['randomization']}` randomization",
        [f"`{config.algo}` with HER on cell `{Path(str(config.env.cell)).stem}`, seeded with "
         "scripted-expert demonstrations (behaviour cloning, then DAgger relabelling of the "
         "clone's own states). Numbers from `train/summary.json`; the curve from "
         "`train/summary.json` (the clone measured before each DAgger round) and "
         "`train/metrics.csv` (the evaluations)."],
        [Table(["measure", "value"], rows)],
        [("Learning curve", str(curve.relative_to(out)))] if curve else [])


# ------------------------------------------------------------------------------ evaluate
def _task_part(config) -> str:
    """The body name of the part the trained task picks in this cell."""
    import gymnasium as gym

    env = gym.make(task_class(TASK).env_id, **config.env_kwargs())
    try:
        return env.unwrapped.task.object_name
    finally:
        env.close()


def run_evaluate(context: Context) -> dict:
    budget = context.budget
    config = load_config(context.out / "train" / "config.yaml")
    part = _task_part(config)
    # The budget's grid names the task's part "part"; the user's cell may call it otherwise.
    sweeps = [Sweep.parse(f"{part}.{text.partition('.')[2]}" if text.startswith("part.")
                          else text) for text in budget.sweeps]
    check_grid(sweeps)
    done = []

    def progress(finished: int, total: int) -> None:
        if finished == total or finished % max(1, total // 4) == 0:
            context.log(f"grid {finished}/{total} points")
        done.append(finished)

    results = evaluate(str(context.out / MODEL), task_class(TASK).env_id, config.env_kwargs(),
                       episodes=budget.eval_episodes, grid_episodes=budget.grid_episodes,
                       randomization=config.randomization, sweeps=sweeps, seed=context.seed,
                       progress=progress)
    write_report(results, context.folder("evaluate"))
    worst = min(results["grid"], key=lambda point: point["success_rate"])
    return {"summary": f"nominal {_percent(results['nominal']['success_rate'])}, randomized "
                       f"{_percent(results['randomized']['success_rate'])}, grid worst "
                       f"{_percent(worst['success_rate'])}",
            "files": ["evaluate/evaluation.json", "evaluate/evaluation.md",
                      "evaluate/heatmap.png"]}


def evaluate_section(out: Path, record: dict) -> Section:
    results = json.loads((out / "evaluate" / "evaluation.json").read_text())
    rows = [["nominal", str(results["nominal"]["episodes"]),
             _percent(results["nominal"]["success_rate"]),
             f"{results['nominal']['mean_return']:.2f}"]]
    if "randomized" in results:
        randomized = results["randomized"]
        rows.append([f"randomized ({results['randomization']}, "
                     f"{results['randomized_draws']} startup draws)",
                     str(randomized["episodes"]), _percent(randomized["success_rate"]),
                     f"{randomized['mean_return']:.2f}"])
    figure = heatmap_png(results, out / "figures" / "heatmap.png")
    labels = " and ".join(f"`{sweep['label']}`" for sweep in results["sweeps"])
    return Section(
        "Evaluation: nominal twin, randomized twin, robustness grid",
        [f"The trained checkpoint `{MODEL}` on {results['env']}. The grid sets {labels} "
         f"absolutely ({results['grid'][0]['episodes']} episodes per point); the training "
         "randomization drew the part's mass from 0.1-0.4 kg and its friction from "
         "0.5-1.25 times nominal. From `evaluate/evaluation.json`."],
        [Table(["twin", "episodes", "success", "mean return"], rows)],
        [("Robustness grid (success rate)", str(figure.relative_to(out)))])


# --------------------------------------------------------------------------------- video
def run_video(context: Context) -> dict:
    budget = context.budget
    config = load_config(context.out / "train" / "config.yaml")
    width, height = budget.video_size
    recorder = EpisodeRecorder(width=width, height=height, every=budget.video_every)
    path = context.folder("video") / "episodes.gif"
    filmed = record_video(str(context.out / MODEL), task_class(TASK).env_id,
                          config.env_kwargs(), path, episodes=budget.video_episodes,
                          seed=context.seed, randomization=config.randomization,
                          recorder=recorder)
    atomic_write_text(context.out / "video" / "video.json", json.dumps(filmed, indent=2))
    wins = sum(episode["success"] for episode in filmed["episodes"])
    count = len(filmed["episodes"])
    return {"summary": f"{count} episode{'s' if count != 1 else ''}, {wins} successful, "
                       f"{filmed['frames']} frames",
            "files": ["video/episodes.gif", "video/video.json"]}


def video_section(out: Path, record: dict) -> Section:
    filmed = json.loads((out / "video" / "video.json").read_text())
    outcomes = ", ".join(f"seed {episode['seed']}: {'success' if episode['success'] else 'failure'}"
                         for episode in filmed["episodes"])
    return Section("Episodes of the policy",
                   [f"On the randomized twin (`{filmed['randomization']}`), {outcomes}. "
                    "From `video/video.json`."], [],
                   [("Episodes (animated GIF)", "video/episodes.gif")])
