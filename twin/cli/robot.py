"""`celltwin robot check`: is a robot file (or a registered model) fit for a twin?"""

from __future__ import annotations

import json
from pathlib import Path

from celltwin.cli.arguments import count, fraction, group_handler, output_file, seed
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import Problem
from celltwin.robots.check import check_robot, write_reach_png
from celltwin.robots.errors import RobotError
from celltwin.robots.registry import get_robot_model, is_robot_file


def register(subparsers) -> None:
    robot = subparsers.add_parser("robot", help="check robot models and robot files")
    commands = robot.add_subparsers(dest="robot_command", metavar="ACTION")

    check = commands.add_parser(
        "check", help="load a robot, print its joints and limits, FK at home, IK round trips "
                      "over the workspace and self-collision at home; draw its reach envelope")
    check.add_argument("robot", metavar="FILE|NAME",
                       help="robot file (YAML, docs/robots.md) or registered model name")
    check.add_argument("-o", "--output", type=output_file, default=None,
                       help="reach envelope PNG (default: FILE's name with .reach.png, "
                            "beside it; for a model NAME, NAME.reach.png here)")
    check.add_argument("--samples", type=count(100_000), default=200,
                       help="IK round trips over sampled configurations (default: 200)")
    check.add_argument("--seed", type=seed, default=0, help="seed of the sampling (default: 0)")
    check.add_argument("--min-ik-success", type=fraction, default=0.95, metavar="SHARE",
                       help="least share of IK round trips within 1 mm and 0.57 deg for "
                            "exit code 0 (default: 0.95)")
    check.add_argument("--json", metavar="FILE", type=output_file,
                       help="also write the report as JSON")
    check.set_defaults(handler=run_check)

    robot.set_defaults(handler=group_handler(robot, commands))


def run_check(args) -> int:
    model = get_robot_model(args.robot)
    report = check_robot(model, ik_samples=args.samples, seed=args.seed)
    output = args.output or _default_png(args.robot, model)
    _write(output, lambda: write_reach_png(report, output))
    if args.json:
        _write(args.json, lambda: atomic_write_text(args.json, json.dumps(report.to_dict(),
                                                                         indent=2)))
    print(report.to_text())
    print(f"reach envelope: {output}")
    ok = report.ok(args.min_ik_success)
    print("OK" if ok else f"NOT OK: needs IK success >= {100 * args.min_ik_success:g}% "
                          "and no self-collision at home")
    return 0 if ok else 1


def _default_png(named: str, model) -> Path:
    """Beside a robot file the user named; here for a model name (a shipped robot file's
    folder is the installation's)."""
    if is_robot_file(named) and model.source is not None:
        return Path(model.source).with_name(f"{Path(model.source).stem}.reach.png")
    return Path(f"{model.name}.reach.png")


def _write(path: Path, write) -> None:
    try:
        write()
    except OSError as exc:
        raise RobotError(Problem(f"cannot write {path}: {exc.strerror or exc}", file=str(path),
                                 expected="a writable path (-o/--json)")) from None
