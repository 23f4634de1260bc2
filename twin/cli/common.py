"""Arguments and helpers shared by subcommands that build a world."""

from __future__ import annotations

import argparse

from celltwin.cli.arguments import (input_file, non_negative_float, non_negative_int,
                                    positive_float, positive_int)
from celltwin.physics import PhysicsParams
from celltwin.serve.virtual_controller import VirtualController

# The number types live in celltwin.cli.arguments; named here too for commands that import
# them from this module.
__all__ = ["ENGINES", "add_engine", "add_task_names", "add_world_arguments", "build_world",
           "load_physics", "load_spec", "non_negative_float", "non_negative_int",
           "positive_float", "positive_int", "task_help", "virtual_controller"]


def add_world_arguments(parser: argparse.ArgumentParser, *, cell_default: str | None = None) -> None:
    """Add CELL and ``--physics FILE`` to a subcommand that builds a world."""
    if cell_default is None:
        parser.add_argument("cell", metavar="CELL",
                            help="cell file (YAML) or the name of a shipped example cell")
    else:
        parser.add_argument("--cell", default=cell_default,
                            help=f"cell file or example name (default: {cell_default})")
    parser.add_argument("--physics", metavar="FILE", type=input_file, default=None,
                        help="physics parameter overrides (YAML) applied after building")
    parser.add_argument("--robot", metavar="MODEL", default=None,
                        help="swap every robot in the cell for this registered model")


# The physics engines a twin runs in: pybullet (the world celltwin trains in) and MuJoCo (the
# second engine built from the same cell, docs/mujoco.md; the mujoco extra).
ENGINES = ("pybullet", "mujoco")


def add_engine(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--engine pybullet|mujoco``: which engine's twin ``what`` runs in."""
    parser.add_argument("--engine", choices=ENGINES, default="pybullet",
                        help=f"physics engine of {what}: pybullet (default) or mujoco (the "
                             "MuJoCo twin of the same cell, docs/mujoco.md; needs the mujoco "
                             "extra)")


def virtual_controller(world, engine: str, robot: str | None = None, **options):
    """A virtual controller of one robot of ``world`` (a pybullet World) in ``engine``:
    the world itself, or its MuJoCo twin built from it as it stands now (which the
    controller owns; ``world`` stays the caller's)."""
    if engine == "mujoco":
        from celltwin.mujoco.controller import MujocoVirtualController

        return MujocoVirtualController.of_world(world, robot, **options)
    return VirtualController(world, robot, **options)


def add_task_names(parser: argparse.ArgumentParser) -> None:
    """Add ``--pick`` and ``--place``: what a task uses of the cell, when its names are not
    the conventional ones (docs/cells.md, "What the tasks look for"). The env checks them."""
    parser.add_argument("--pick", default=None, metavar="REGION",
                        help="the spawn region the task's part starts in "
                             "(default: by the cell's names, docs/cells.md)")
    parser.add_argument("--place", default=None, metavar="NAME",
                        help="where the task's part goes: a target, or a bin or tray "
                             "(default: by the cell's names, docs/cells.md)")


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


def task_help(what: str) -> str:
    """Help text of a ``--task`` option: ``what``, then the registered tasks. (Names are
    checked by the command, not by argparse: an unknown one is a located error with a
    suggestion, one line and exit 2, as every other bad value.)"""
    from celltwin.envs.tasks import TASKS

    return f"{what}: {', '.join(TASKS)}"
