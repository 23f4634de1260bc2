"""`celltwin evaluate`: success of a policy on the nominal, randomized and perturbed twin."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="success rate and return of a policy, nominal / randomized / swept",
        description="Runs POLICY (the task's scripted 'expert' or an SB3 checkpoint .zip) on the "
                    "nominal twin, the randomized twin, and a grid of perturbations; writes "
                    "evaluation.json, evaluation.md and heatmap.png into the run directory.")
    parser.add_argument("policy", metavar="POLICY", help="'expert' or a path to an SB3 .zip")
    parser.add_argument("--task", required=True, help="Reach, Push, PickPlace or ConveyorPick")
    parser.add_argument("--cell", default=None, help="cell file or example (default: the task's)")
    parser.add_argument("--robot", default=None, help="swap the cell's robots for this model")
    parser.add_argument("--physics", type=Path, default=None, help="physics overrides (YAML)")
    parser.add_argument("--dr", default="standard",
                        help="randomization for the randomized run: preset or YAML (default standard)")
    parser.add_argument("--sweep", action="append", default=[], metavar="TARGET.PARAM=LO:HI:N",
                        help="sweep a parameter (values set absolutely); give one or two")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per twin")
    parser.add_argument("--grid-episodes", type=int, default=10, help="episodes per grid point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="run directory")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    import twin.envs  # noqa: F401  (registers the env ids)
    from twin.errors import CelltwinError, Problem, did_you_mean, one_of
    from twin.envs import MAX_EPISODE_STEPS
    from training.evaluation import Sweep, evaluate, write_report

    if args.task not in MAX_EPISODE_STEPS:
        raise CelltwinError(Problem(f"unknown task '{args.task}'" + did_you_mean(args.task, MAX_EPISODE_STEPS),
                                    path="--task", expected=one_of(MAX_EPISODE_STEPS)))
    sweeps = [Sweep.parse(text) for text in args.sweep]
    if len(sweeps) > 2:
        raise CelltwinError(Problem("at most two --sweep parameters", path="--sweep",
                                    value=len(sweeps), expected="one or two"))
    kwargs = {key: value for key, value in (("cell", args.cell), ("robot", args.robot),
                                            ("physics", args.physics)) if value is not None}

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rgrid {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    results = evaluate(args.policy, f"celltwin/{args.task}-v0", kwargs,
                       episodes=args.episodes, grid_episodes=args.grid_episodes,
                       randomization=args.dr, sweeps=sweeps, seed=args.seed, progress=progress)
    written = write_report(results, args.out)
    print(f"nominal:    {results['nominal']['success_rate']:.0%} success, "
          f"return {results['nominal']['mean_return']:.2f}")
    if "randomized" in results:
        print(f"randomized: {results['randomized']['success_rate']:.0%} success ({args.dr})")
    if results["grid"]:
        worst = min(results["grid"], key=lambda p: p["success_rate"])
        print(f"grid: {len(results['grid'])} points, worst {worst['success_rate']:.0%} at {worst['settings']}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
