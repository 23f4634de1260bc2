"""`celltwin train` and `celltwin evaluate`: learn a policy on the twin, and judge one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from celltwin.cli.arguments import (count, fraction, input_file, input_file_text, integer,
                                    number, output_dir, seed)
from celltwin.cli.common import add_task_names, task_help
from celltwin.core.errors import CelltwinError, Problem
from celltwin.envs.tasks import task_class
from celltwin.physics import CenteredRandomization, PhysicsParams
from celltwin.policies.bundle_policy import BundlePolicy
from celltwin.training.config import MAX_EPISODE_STEPS, resolve_config
from celltwin.training.errors import TrainingError

# Bounds on typing mistakes, far above what a run of celltwin needs.
MAX_TRAIN_STEPS = 10**10
MAX_ENVS = 1024
MAX_EPISODES = 100_000
MAX_WALL_S = 3e7     # about a year
MAX_VIDEO_EPISODES = 100


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_evaluate(subparsers)


def _register_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a policy (SB3) on the twin under domain randomization",
        description="Trains from CONFIG (YAML), or from the task's preset (training/presets) "
                    "with the flags on top, and writes a run directory: config.yaml, "
                    "metrics.csv, learning_curve.png, tensorboard/, checkpoints/, final/, "
                    "summary.json. --resume RUN_DIR continues an interrupted run.")
    parser.add_argument("config", nargs="?", type=input_file, default=None, metavar="CONFIG",
                        help="training config (YAML); default: the --task preset")
    parser.add_argument("--task", default=None, metavar="TASK",
                        help=task_help("the task to train, from its preset"))
    parser.add_argument("--robot", default=None, help="swap the cell's robots for this model")
    parser.add_argument("--cell", default=None, help="cell file or example name")
    add_task_names(parser)
    parser.add_argument("--control", default=None, help="ee_delta, joint_delta or joint_position")
    parser.add_argument("--reward", default=None, help="sparse or dense")
    parser.add_argument("--physics", type=input_file_text, default=None,
                        help="physics overrides (YAML)")
    parser.add_argument("--algo", default=None, help="sac, tqc or ppo")
    parser.add_argument("--her", default=None, choices=("on", "off"),
                        help="hindsight experience replay (off-policy algorithms)")
    parser.add_argument("--dr", default=None, metavar="PRESET",
                        help="randomization preset (none, light, standard, aggressive) or YAML")
    parser.add_argument("--dr-center", type=input_file_text, default=None, metavar="FILE",
                        help="centre the randomization's ranges on this physics file (`celltwin "
                             "calibrate fit`'s physics.yaml; docs/calibration.md)")
    parser.add_argument("--steps", type=count(MAX_TRAIN_STEPS), default=None,
                        help="env steps in total")
    parser.add_argument("--episode-steps", type=count(MAX_EPISODE_STEPS), default=None,
                        metavar="N", help="episode length [control steps] (default: the task's; "
                                          "a cell with latency or a slow servo may need more)")
    parser.add_argument("--seed", type=seed, default=None, help="seed of the run")
    parser.add_argument("--n-envs", type=integer(0, MAX_ENVS), default=None,
                        help="parallel envs (0: one per CPU core)")
    parser.add_argument("--device", default=None, help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--demos", type=integer(0, MAX_EPISODES), default=None, metavar="N",
                        help="scripted-expert episodes to seed the replay buffer and clone")
    parser.add_argument("--target-success", type=fraction, default=None,
                        help="stop early at this evaluated success rate (0-1)")
    parser.add_argument("--max-wall-s", type=number(0.0, MAX_WALL_S, low_open=True), default=None,
                        metavar="S",
                        help="wall-time budget: once spent, evaluate once more and stop")
    parser.add_argument("--out", type=output_dir, default=None,
                        help="run directory (default: runs/train/<task>-<time>)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the interrupted run in RUN_DIR from its last checkpoint")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")
    parser.set_defaults(handler=run_train)


_TRAIN_FLAGS = {"robot": "env.robot", "cell": "env.cell", "pick": "env.pick",
                "place": "env.place", "control": "env.control",
                "reward": "env.reward", "physics": "env.physics", "algo": "algo",
                "dr": "randomization", "dr_center": "randomization.center", "steps": "steps",
                "episode_steps": "env.max_episode_steps",
                "seed": "seed", "n_envs": "n_envs",
                "device": "device", "demos": "demos.episodes",
                "target_success": "eval.target_success", "max_wall_s": "max_wall_s"}


def run_train(args) -> int:
    from celltwin.training.trainer import resume, train

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.resume is not None:
        given = [flag for flag in ("config", "task", *_TRAIN_FLAGS, "her", "out")
                 if getattr(args, flag) is not None and flag != "steps"]
        if given:
            raise TrainingError(Problem("--resume continues a run with its own config.yaml",
                                        path="--" + given[0].replace("_", "-"),
                                        expected="--resume RUN_DIR, optionally with --steps"))
        resume(args.resume, steps=args.steps, progress_bar=progress)
        return 0
    overrides = {dotted: getattr(args, flag) for flag, dotted in _TRAIN_FLAGS.items()
                 if getattr(args, flag) is not None}
    if args.her is not None:
        overrides["her"] = args.her == "on"
    config = resolve_config(args.config, args.task, overrides)
    out = args.out or Path("runs/train") / f"{config.task.lower()}-{_stamp()}"
    summary = train(config, out, progress_bar=progress)
    print(f"wrote {out} (final model: {out / 'final' / 'model.zip'})")
    return 0 if summary else 1


def _stamp() -> str:
    from datetime import datetime

    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _register_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="success rate and return of a policy, nominal / randomized / swept",
        description="Runs POLICY (the task's scripted 'expert' or an SB3 checkpoint .zip) on the "
                    "nominal twin, the randomized twin, and a grid of perturbations; writes "
                    "evaluation.json, evaluation.md and heatmap.png into the run directory.")
    parser.add_argument("policy", metavar="POLICY",
                        help="'expert', an exported bundle folder, or a path to an SB3 .zip")
    parser.add_argument("--task", required=True, metavar="TASK", help=task_help("the task"))
    parser.add_argument("--cell", default=None, help="cell file or example (default: the task's)")
    add_task_names(parser)
    parser.add_argument("--robot", default=None, help="swap the cell's robots for this model")
    parser.add_argument("--physics", type=input_file, default=None, help="physics overrides (YAML)")
    parser.add_argument("--dr", default="standard",
                        help="randomization for the randomized run: preset or YAML (default standard)")
    parser.add_argument("--dr-center", type=input_file, default=None, metavar="FILE",
                        help="centre the randomized run's ranges on this physics file "
                             "(`celltwin calibrate fit`'s physics.yaml)")
    parser.add_argument("--sweep", action="append", default=[], metavar="TARGET.PARAM=LO:HI:N",
                        help="sweep a parameter (values set absolutely); give one or two, "
                             "N up to 1000 and up to 10000 grid points in all")
    parser.add_argument("--episodes", type=count(MAX_EPISODES), default=50,
                        help="episodes per twin (default 50)")
    parser.add_argument("--grid-episodes", type=count(MAX_EPISODES), default=10,
                        help="episodes per grid point (default 10)")
    parser.add_argument("--episode-steps", type=count(MAX_EPISODE_STEPS), default=None,
                        metavar="N", help="episode length [control steps] (default: what the "
                                          "policy was trained with, else the task's)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the first episode")
    parser.add_argument("--allow-outside-goal-region", action="store_true",
                        help="evaluate a trained policy on a twin whose goals reach beyond the "
                             "region it was trained on (refused by default)")
    parser.add_argument("--video", type=count(MAX_VIDEO_EPISODES), default=None, metavar="N",
                        help="film N episodes on the randomized twin (the nominal one with "
                             "--dr none), seeded as the evaluation's first N, into "
                             "episodes.gif in the run directory")
    parser.add_argument("--video-format", choices=("gif", "mp4"), default="gif",
                        help="gif (default) or mp4 (needs imageio-ffmpeg: "
                             'pip install "celltwin[mp4]")')
    parser.add_argument("--out", type=output_dir, default="runs/evaluate", help="run directory")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    from celltwin.training.evaluation import Sweep, check_grid, evaluate, write_report

    env_id = task_class(args.task, error=CelltwinError, path="--task").env_id
    sweeps, problems = [], []
    for text in args.sweep:   # every unreadable sweep at once
        try:
            sweeps.append(Sweep.parse(text))
        except CelltwinError as error:
            problems += error.problems
    if problems:
        raise CelltwinError(problems)
    check_grid(sweeps)
    video = args.out / f"episodes.{args.video_format}" if args.video else None
    if video is not None:
        from celltwin.video import video_format

        video_format(video, "--video-format")   # no MP4 encoder: said before any episode
    kwargs = {key: value for key, value in (("cell", args.cell), ("robot", args.robot),
                                            ("physics", args.physics), ("pick", args.pick),
                                            ("place", args.place),
                                            ("max_episode_steps", args.episode_steps))
              if value is not None}

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rgrid {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    # --dr-center: the randomized run's ranges around a calibrated twin (checked before work).
    dr = args.dr
    if args.dr_center is not None:
        PhysicsParams.load(args.dr_center)   # a bad centre file: its file, line and field
        dr = CenteredRandomization(preset=args.dr, center=str(args.dr_center)).model_dump()
    results = evaluate(args.policy, env_id, kwargs,
                       episodes=args.episodes, grid_episodes=args.grid_episodes,
                       randomization=dr, sweeps=sweeps, seed=args.seed, progress=progress,
                       bundle_policy=BundlePolicy,
                       allow_outside_goal_region=args.allow_outside_goal_region)
    written = write_report(results, args.out)
    print(f"nominal:    {results['nominal']['success_rate']:.0%} success, "
          f"return {results['nominal']['mean_return']:.2f}")
    if "randomized" in results:
        print(f"randomized: {results['randomized']['success_rate']:.0%} success ({args.dr}"
              + (f", centred on {args.dr_center})" if args.dr_center else ")"))
    if results["grid"]:
        worst = min(results["grid"], key=lambda p: p["success_rate"])
        print(f"grid: {len(results['grid'])} points, worst {worst['success_rate']:.0%} at {worst['settings']}")
    if video is not None:
        from celltwin.training.episode_video import record_video

        filmed = record_video(args.policy, env_id, kwargs, video, episodes=args.video,
                              seed=args.seed, randomization=dr, bundle_policy=BundlePolicy)
        written.append(Path(filmed["path"]))
        wins = sum(episode["success"] for episode in filmed["episodes"])
        twin = "nominal" if args.dr in (None, "none") else f"randomized ({args.dr})"
        print(f"video: {args.video} episode(s) on the {twin} twin, {wins} successful")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
