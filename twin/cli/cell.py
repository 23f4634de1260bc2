"""`celltwin cell check` and `celltwin cell render`."""

from __future__ import annotations

import json
from pathlib import Path

from celltwin.cli.common import add_world_arguments, build_world
from celltwin.core.atomic import atomic_write_text


def register(subparsers) -> None:
    cell = subparsers.add_parser("cell", help="validate, inspect and render cell layouts")
    commands = cell.add_subparsers(dest="cell_command", metavar="ACTION")

    check = commands.add_parser("check", help="validate a cell, build it, report bodies, reach "
                                              "of every target and initial interpenetrations")
    add_world_arguments(check)
    check.add_argument("--json", metavar="FILE", type=Path, help="also write the report as JSON")
    check.set_defaults(handler=run_check)

    render = commands.add_parser("render", help="write a perspective and a top view as PNG")
    add_world_arguments(render)
    render.add_argument("-o", "--output", type=Path, default=Path("cell.png"), help="PNG path")
    render.add_argument("--width", type=int, default=640, help="width of each view [px]")
    render.add_argument("--height", type=int, default=480, help="height of each view [px]")
    render.set_defaults(handler=run_render)

    cell.set_defaults(handler=lambda args: cell.print_help() or 2)


def run_check(args) -> int:
    from celltwin.check import check_cell

    with build_world(args) as world:
        report = check_cell(world)
    print(report.to_text())
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2))
    return 0 if report.ok else 1


def run_render(args) -> int:
    from celltwin.render import render_cell

    with build_world(args) as world:
        path = render_cell(world, args.output, args.width, args.height)
    print(f"wrote {path}")
    return 0
