"""Arguments and helpers shared by subcommands that build a world."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from celltwin.physics import PhysicsParams


def add_world_arguments(parser: argparse.ArgumentParser, *, cell_default: str | None = None) -> None:
    """Add CELL and ``--physics FILE`` to a subcommand that builds a world."""
    if cell_default is None:
        parser.add_argument("cell", metavar="CELL",
                            help="cell file (YAML) or the name of a shipped example cell")
    else:
        parser.add_argument("--cell", default=cell_default,
                            help=f"cell file or example name (default: {cell_default})")
    parser.add_argument("--physics", metavar="FILE", type=Path, default=None,
                        help="physics parameter overrides (YAML) applied after building")
    parser.add_argument("--robot", metavar="MODEL", default=None,
                        help="swap every robot in the cell for this registered model")


def build_world(args: argparse.Namespace):
    """Load the cell named by ``args`` and build its world with any physics overrides."""
    from celltwin.world import World

    return World(load_spec(args.cell, args.robot), physics=load_physics(args))


def load_spec(source, robot: str | None):
    """The cell ``source`` names (a file or a shipped example), its robots swapped for
    ``robot`` when one is given (``--robot``)."""
    from celltwin.spec import load_cell

    spec = load_cell(source)
    return spec.with_robot_model(robot) if robot else spec


def load_physics(args: argparse.Namespace) -> PhysicsParams | None:
    """The overrides of ``--physics FILE``, if given."""
    return PhysicsParams.load(args.physics) if args.physics else None


def _number(text: str, kind: type, minimum: float, strict: bool):
    """An argparse type: a finite ``kind`` above (``strict``) or at least ``minimum``."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not {'an integer' if kind is int else 'a number'}: '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: '{text}'")
    if value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, 1, strict=False)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, 0, strict=False)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, float, 0.0, strict=True)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, float, 0.0, strict=False)


def task_help(what: str) -> str:
    """Help text of a ``--task`` option: ``what``, then the registered tasks. (Names are
    checked by the command, not by argparse: an unknown one is a located error with a
    suggestion, one line and exit 2, as every other bad value.)"""
    from celltwin.envs.tasks import TASKS

    return f"{what}: {', '.join(TASKS)}"
