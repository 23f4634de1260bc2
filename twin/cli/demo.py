"""`celltwin demo`: build the default cell and run one scripted pick-and-place cycle."""

from __future__ import annotations

import json
import time

from celltwin.cli.arguments import output_dir
from celltwin.cli.common import add_world_arguments, build_world
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import CelltwinError, Problem, did_you_mean, one_of
from celltwin.experts.cycle import run_pick_place


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="build the default cell and run a scripted pick-and-place cycle",
        description="Builds the cell, picks PART with the scripted expert and places it at "
                    "TARGET, then prints the cycle time and writes a picture and a JSON summary.")
    add_world_arguments(demo, cell_default="pick_station")
    demo.add_argument("--part", default=None, help="part to pick (default: the cell's first)")
    demo.add_argument("--target", "--place", dest="target", default=None,
                      help="named target to place it at (default: the first place* target, "
                           "else over the first tray or bin; docs/cells.md)")
    demo.add_argument("--out", type=output_dir, default="runs/demo", help="run directory")
    demo.set_defaults(handler=run_demo)


def run_demo(args) -> int:
    from celltwin.check import target_pose
    from celltwin.render import render_cell
    from celltwin.spec.conventions import default_place_target

    started = time.perf_counter()
    with build_world(args) as world:
        targets = {t.name: t for t in world.spec.targets}
        if args.target is None:
            target = default_place_target(world.spec)
            if target is None:
                raise CelltwinError(Problem(f"cell '{world.spec.name}' has nowhere to place a "
                                            "part", path="--target",
                                            expected="a target named place*, a tray or a bin"))
        elif args.target not in targets:
            raise CelltwinError(Problem(f"cell has no target '{args.target}'"
                                        + did_you_mean(args.target, targets),
                                        path="--target", expected=one_of(targets)))
        else:
            target = targets[args.target]
        if args.part is None:
            if not world.parts:
                raise CelltwinError(Problem(f"cell '{world.spec.name}' has no part to pick",
                                            path="--part", expected="a cell with parts"))
            args.part = world.parts[0]
        world.body(args.part)  # a clear error before the cycle starts if the part is unknown
        args.target = target.name
        goal, _ = target_pose(world, target)
        print(f"cell '{world.spec.name}': picking '{args.part}' and placing it at '{args.target}'")
        result = run_pick_place(world, target.robot, args.part, goal)
        args.out.mkdir(parents=True, exist_ok=True)
        image = render_cell(world, args.out / "demo.png")
    summary = {"cell": world.spec.name, "part": args.part, "target": args.target,
               "success": result.success, "cycle_time_s": round(result.cycle_time_s, 3),
               "place_error_m": round(result.place_error_m, 4),
               "phase_times_s": {k: round(v, 3) for k, v in result.phase_times_s.items()},
               "cycle_wall_time_s": round(result.wall_time_s, 3),
               "real_time_factor": round(result.cycle_time_s / result.wall_time_s, 1),
               "total_wall_time_s": round(time.perf_counter() - started, 2)}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2))
    for phase, seconds in summary["phase_times_s"].items():
        print(f"  {phase:<8} {seconds:6.2f} s")
    verdict = "placed" if result.success else "FAILED to place"
    print(f"cycle time {result.cycle_time_s:.2f} s (simulated), {verdict}, "
          f"place error {result.place_error_m * 1000:.1f} mm, "
          f"simulated {summary['real_time_factor']}x faster than real time")
    print(f"wrote {image} and {args.out / 'summary.json'}")
    return 0 if result.success else 1
