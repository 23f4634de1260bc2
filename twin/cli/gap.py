"""`celltwin gap`: a bundle's sim-to-sim gap, the same episodes in pybullet and in MuJoCo."""

from __future__ import annotations

import sys
from pathlib import Path

from celltwin.cli.arguments import count, output_dir, seed
from celltwin.cli.common import ENGINES
from celltwin.mujoco.engine import load_mujoco
from celltwin.policies.gap import measure_gap, write_gap_report
from celltwin.training.config import MAX_EPISODE_STEPS

MAX_EPISODES = 100_000


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gap", help="a bundle's sim-to-sim gap: the same episodes in pybullet and MuJoCo",
        description="Draws each episode once in the bundle's training env (goal, part poses "
                    "and, with --dr, every randomized draw, from its seed) and runs the bundle "
                    "through the deployment adapter and its safety layer in each engine from "
                    "that state: the pybullet twin and its MuJoCo twin (docs/mujoco.md; the "
                    "mujoco extra). Writes gap.json, gap.md (success, final distance, cycle "
                    "time, safety-layer interventions per engine, the phase failures stopped "
                    "in, and MuJoCo minus pybullet with 95 % paired bootstrap intervals) and "
                    "gap.png.")
    parser.add_argument("bundle", metavar="BUNDLE", type=Path, help="bundle folder")
    parser.add_argument("--engine", nargs="+", choices=ENGINES, default=list(ENGINES),
                        metavar="ENGINE", help="engines to run, from pybullet and mujoco "
                                               "(default: both; the difference needs both)")
    parser.add_argument("--episodes", type=count(MAX_EPISODES), default=100,
                        help="seeded episodes per engine (default 100)")
    parser.add_argument("--seed", type=seed, default=1000,
                        help="seed of the first episode (default 1000)")
    parser.add_argument("--steps", type=count(MAX_EPISODE_STEPS), default=None,
                        help="control steps per episode at most (default: the training "
                             "episode length)")
    parser.add_argument("--dr", default="none", metavar="PRESET",
                        help="randomization of the drawn episodes: none (default), a preset "
                             "(light, standard, aggressive) or a YAML file")
    parser.add_argument("--out", type=output_dir, default="runs/gap", help="run directory")
    parser.set_defaults(handler=run_gap)


def run_gap(args) -> int:
    if "mujoco" in args.engine:
        load_mujoco()   # no MuJoCo: one error line before any episode

    def progress(engine: str, done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{engine} {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr)

    report = measure_gap(args.bundle, episodes=args.episodes, seed=args.seed, steps=args.steps,
                         randomization=args.dr, engines=tuple(dict.fromkeys(args.engine)),
                         progress=progress)
    written = write_gap_report(report, args.out)
    for engine, row in report["engines"].items():
        failed = ", ".join(f"{phase} {n}" for phase, n in sorted(row["failed_in"].items()))
        print(f"{engine}: success {row['successes']}/{row['episodes']}"
              + (f"; failed in: {failed}" if failed else ""))
    difference = report.get("difference")
    if difference:
        entry = difference["success_rate"]
        low, high = entry["ci95"]
        print(f"mujoco - pybullet success: {100 * entry['mean']:+.1f} pt, 95 % CI "
              f"[{100 * low:+.1f}, {100 * high:+.1f}], McNemar p = {entry['mcnemar_p']:.3g}")
    print("wrote " + ", ".join(str(path) for path in written))
    return 0
