"""`celltwin cell check` and `celltwin cell render`."""

from __future__ import annotations

import json

from celltwin.cli.arguments import group_handler, integer, output_file
from celltwin.cli.common import add_world_arguments, build_world
from celltwin.core.atomic import atomic_write_text

# Image sizes pybullet's renderer is asked for: below a few pixels a view shows nothing, and
# a huge size exhausts memory inside the renderer (it aborts the process).
MIN_PX, MAX_PX = 16, 4096


def register(subparsers) -> None:
    cell = subparsers.add_parser("cell", help="validate, inspect and render cell layouts")
    commands = cell.add_subparsers(dest="cell_command", metavar="ACTION")

    check = commands.add_parser("check", help="validate a cell, build it, report bodies, reach "
                                              "of every target and initial interpenetrations")
    add_world_arguments(check)
    check.add_argument("--json", metavar="FILE", type=output_file,
                       help="also write the report as JSON")
    check.set_defaults(handler=run_check)

    render = commands.add_parser("render", help="write a perspective and a top view as PNG")
    add_world_arguments(render)
    render.add_argument("-o", "--output", type=output_file, default="cell.png",
                        help="PNG path")
    render.add_argument("--width", type=integer(MIN_PX, MAX_PX), default=640,
                        help=f"width of each view [px], {MIN_PX} to {MAX_PX}")
    render.add_argument("--height", type=integer(MIN_PX, MAX_PX), default=480,
                        help=f"height of each view [px], {MIN_PX} to {MAX_PX}")
    render.set_defaults(handler=run_render)

    cell.set_defaults(handler=group_handler(cell, commands))


def run_check(args) -> int:
    from celltwin.check import check_cell
    from celltwin.envs.tasks import hosting

    with build_world(args) as world:
        report = check_cell(world)
        report.task_robot = world.spec.robots[0].name
        report.tasks = hosting(world, report.task_robot)
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
