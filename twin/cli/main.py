"""Entry point of the `celltwin` command.

Each subcommand lives in a module with ``register(subparsers)`` that adds its parser and sets
``handler``. This dispatcher owns the one error path: a :class:`CelltwinError` becomes one line
per problem on stderr and exit code 2, never a traceback. Usage errors (a missing or refused
argument, see :mod:`celltwin.cli.arguments`) come out the same way, as does a file system
refusal (a full disk, a path that cannot be written) met while a command runs.
"""

from __future__ import annotations

import importlib
import sys

import celltwin.core.client  # noqa: F401  (first pybullet import, with its banner muted)
from celltwin import __version__
from celltwin.cli.arguments import EXIT_USAGE, CliParser, group_handler
from celltwin.cli.logs import configure_logging
from celltwin.core.errors import CelltwinError

# Modules that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES = ("celltwin.cli.demo", "celltwin.cli.cell", "celltwin.cli.robot",
                   "celltwin.cli.layout", "celltwin.cli.line",
                   "celltwin.cli.serve", "celltwin.cli.train", "celltwin.cli.policy",
                   "celltwin.cli.twin", "celltwin.cli.gap", "celltwin.cli.calibrate")


def build_parser() -> CliParser:
    parser = CliParser(
        prog="celltwin",
        description="Physics twins of production cells: build, check, render, run.")
    parser.add_argument("--version", action="version", version=f"celltwin {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    parser.set_defaults(handler=group_handler(parser, subparsers, "command"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    try:
        return int(args.handler(args) or 0)
    except CelltwinError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # The file system refused what a command needed (disk full, permissions, a path
        # taken by a file): the user's to fix, so one line, not a traceback.
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
