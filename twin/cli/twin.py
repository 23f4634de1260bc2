"""`celltwin twin compare`: how far the MuJoCo twin of a cell agrees with its pybullet world."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from celltwin.cli.arguments import count, group_handler, output_dir, seed
from celltwin.cli.common import add_world_arguments, load_physics, load_spec
from celltwin.core.errors import CelltwinError, Problem


def register(subparsers) -> None:
    twin = subparsers.add_parser(
        "twin", help="the cell's twin in a second physics engine (MuJoCo)",
        description="MuJoCo twins built from the same cell and PhysicsParams as the pybullet "
                    'world. Needs the mujoco extra: pip install "celltwin[mujoco]". '
                    "See docs/mujoco.md.")
    commands = twin.add_subparsers(dest="twin_command", metavar="ACTION")

    compare = commands.add_parser(
        "compare", help="agreement report, pybullet vs MuJoCo: kinematics, joint step "
                        "responses, a dropped part, conveyor travel",
        description="Builds both twins of CELL and measures each check in both engines. "
                    "Writes agreement.json and agreement.md into --out. Exit 0 when every "
                    "check with a limit (TCP within 1 mm, rise time within 5 %) is within "
                    "it, 1 when one is not, 2 on invalid input or a cell MuJoCo cannot "
                    "express.")
    add_world_arguments(compare)
    compare.add_argument("--samples", type=count(100_000), default=200, metavar="N",
                         help="joint configurations per robot for the kinematics check "
                              "(default: 200)")
    compare.add_argument("--seed", type=seed, default=0,
                         help="seed of the sampled configurations (default: 0)")
    compare.add_argument("--out", type=output_dir, default=Path("runs/twin_compare"), metavar="DIR",
                         help="run directory (default: runs/twin_compare)")
    compare.set_defaults(handler=run_compare)

    twin.set_defaults(handler=group_handler(twin, commands))


def run_compare(args: argparse.Namespace) -> int:
    spec = load_spec(args.cell, args.robot)
    physics = load_physics(args)
    # Imported here: without the mujoco extra this is where the one-line error comes from.
    from celltwin.mujoco.compare import compare_engines
    from celltwin.mujoco.report import summary_lines, write_report

    print(f"cell '{spec.name}': pybullet vs MuJoCo")
    report = compare_engines(spec, physics, fk_samples=args.samples, seed=args.seed,
                             progress=_progress())
    try:
        paths = write_report(report, args.out)
    except OSError as error:
        raise CelltwinError(Problem(f"cannot write the report: {error.strerror}", path="--out",
                                    file=error.filename or str(args.out))) from None
    for line in summary_lines(report):
        print(line)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0 if report.ok else 1


def _progress():
    if not sys.stderr.isatty():
        return None

    def show(section: str) -> None:
        print(f"measuring {section}", file=sys.stderr, flush=True)
    return show
