"""`celltwin layout check|run|compare` and `celltwin sweep`: line planning on cell twins."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from celltwin.cli.arguments import count, group_handler, input_file, number, output_dir
from celltwin.cli.common import add_world_arguments, build_world, load_physics, load_spec
from celltwin.core.errors import CelltwinError, Problem
from celltwin.policies.bundle_policy import BundlePolicy

# Bounds on typing mistakes: a run is a simulation of minutes to hours of a cell.
MAX_PARTS = 100_000
MAX_SIM_S = 1e6          # about 11.6 simulated days
MAX_SPACING_M = 100.0
MAX_INTERVAL_S = 3600.0
MAX_WORKERS = 1024


def register(subparsers) -> None:
    layout = subparsers.add_parser(
        "layout", help="check a layout's reach and paths, run it with parts, compare layouts",
        description="Line planning on a cell twin. See docs/layout.md.")
    commands = layout.add_subparsers(dest="layout_command", metavar="ACTION")

    check = commands.add_parser(
        "check", help="reach of every target with a joint margin, collisions along the paths "
                      "there, clearances at home; a top view with the findings",
        description="Writes layout_check.json and layout_check.png into --out. Exit 0 when "
                    "all is well, 1 when a target is unreachable, a path collides or bodies "
                    "overlap, 2 on invalid input.")
    add_world_arguments(check)
    check.add_argument("--margin-deg", type=number(0.0, 90.0), default=5.0, metavar="DEG",
                       help="every joint must stay this far inside its limits (default: 5)")
    check.add_argument("--clearance-m", type=number(0.0, 1.0, low_open=True), default=0.01,
                       metavar="M",
                       help="closer than this is a near miss (default: 0.01)")
    check.add_argument("--approach-m", type=number(0.0, 2.0), default=0.12, metavar="M",
                       help="paths pass this far above each target, as the expert does; "
                            "0 goes straight from home (default: 0.12)")
    check.add_argument("--out", type=output_dir, default="runs/layout_check",
                       help="run directory (default: runs/layout_check)")
    check.set_defaults(handler=run_check)

    run = commands.add_parser(
        "run", help="run the cell in physics with arriving parts, worked by the scripted "
                    "expert or a learned policy; cycle times, throughput, utilization, "
                    "collisions",
        description="Feeds --parts parts into the cell and measures every one. Writes "
                    "kpis.json, parts.csv, summary.md and cycle_times.png into --out.")
    add_world_arguments(run)
    _add_run_options(run, parts=10, bundles=True)
    run.add_argument("--out", type=output_dir, default="runs/layout_run",
                     help="run directory (default: runs/layout_run)")
    run.set_defaults(handler=run_run)

    compare = commands.add_parser(
        "compare", help="run several layouts the same way and name the better one",
        description="Runs each cell as `layout run` does and writes compare.md, compare.json, "
                    "compare.png, top_views.png and one run directory per layout into --out.")
    compare.add_argument("cells", metavar="CELL", nargs="+",
                         help="cell files (YAML) or names of shipped example cells")
    compare.add_argument("--physics", metavar="FILE", type=input_file, default=None,
                         help="physics parameter overrides (YAML) applied to every layout")
    compare.add_argument("--robot", metavar="MODEL", default=None,
                         help="swap every robot of every layout for this registered model")
    _add_run_options(compare, parts=10, bundles=True)
    compare.add_argument("--out", type=output_dir, default="runs/layout_compare",
                         help="run directory (default: runs/layout_compare)")
    compare.set_defaults(handler=run_compare)

    layout.set_defaults(handler=group_handler(layout, commands))

    sweep = subparsers.add_parser(
        "sweep", help="layout runs over a grid of layout parameters, in parallel on Ray",
        description="Each grid point is a `layout run` of CELL with the parameters set. "
                    "Writes sweep.md, sweep.json, heatmap.png and points/NNN/ into --out. "
                    'Needs Ray: pip install "ray>=2.9".')
    add_world_arguments(sweep)
    sweep.add_argument("--param", action="append", required=True, metavar="PATH=LO:HI:N",
                       help="a cell number by dotted path and its values, e.g. "
                            "robots[0].base.xyz[0]=-0.1:0.1:3; repeat for a grid")
    sweep.add_argument("--workers", type=count(MAX_WORKERS), default=2,
                       help="CPUs of the local Ray (default: 2)")
    sweep.add_argument("--address", default=None, metavar="ADDR",
                       help="join this Ray cluster instead of starting a local one")
    _add_run_options(sweep, parts=3)
    sweep.add_argument("--out", type=output_dir, default="runs/sweep",
                       help="run directory (default: runs/sweep)")
    sweep.set_defaults(handler=run_sweep)


def _add_run_options(parser: argparse.ArgumentParser, *, parts: int,
                     bundles: bool = False) -> None:
    parser.add_argument("--parts", type=count(MAX_PARTS), default=parts, metavar="N",
                        help=f"parts fed into the cell (default: {parts})")
    if bundles:
        parser.add_argument("--policy", default="expert", metavar="POLICY",
                            help="what works the cell: 'expert' (the scripted expert, the "
                                 "default) or an exported bundle folder (celltwin export): "
                                 "the learned policy picks and carries, the scripted place "
                                 "puts the part down (docs/layout.md)")
    else:
        parser.add_argument("--policy", default="expert", choices=["expert"],
                            help="what works the cell (default: the scripted expert)")
    parser.add_argument("--max-sim-s", type=number(0.0, MAX_SIM_S, low_open=True), default=None,
                        metavar="S",
                        help="stop after this much simulated time (default: 60 s + 30 s a part)")
    parser.add_argument("--spacing-m", type=number(0.0, MAX_SPACING_M, low_open=True), default=0.4,
                        metavar="M",
                        help="distance between parts on a belt; with the belt speed it sets "
                             "the arrival interval (default: 0.4)")
    parser.add_argument("--arrival-interval-s",
                        type=number(0.0, MAX_INTERVAL_S, low_open=True), default=None,
                        metavar="S",
                        help="time between arrivals, overriding --spacing-m; bins are "
                             "otherwise refilled as soon as their part is taken")
    parser.add_argument("--pick", default=None, metavar="TARGET",
                        help="pick target to use (default: a conveyor-fed pick* target)")
    parser.add_argument("--place", default=None, metavar="TARGET",
                        help="place target to use (default: the first place* target)")
    parser.add_argument("--allow-overlap", action="store_true",
                        help="run a layout whose bodies overlap as built (refused by default; "
                             "a sweep drops such candidates)")
    parser.add_argument("--multibody-parts", action="store_true",
                        help="build parts exactly as a world does (one-link multibodies) "
                             "instead of as rigid bodies, about 20%% slower to simulate")


def _options(args):
    from celltwin.layout.records import RunOptions

    return RunOptions(parts=args.parts, max_sim_s=args.max_sim_s, spacing_m=args.spacing_m,
                      arrival_interval_s=args.arrival_interval_s, pick=args.pick,
                      place=args.place, policy=args.policy,
                      multibody_parts=args.multibody_parts, allow_overlap=args.allow_overlap)


# ---------------------------------------------------------------------------------- handlers
def run_check(args) -> int:
    from celltwin.layout.check import check_layout, write_check

    with build_world(args) as world:
        report = check_layout(world, margin_deg=args.margin_deg, clearance_m=args.clearance_m,
                              approach_m=args.approach_m)
        paths = write_check(world, report, args.out)
    print(report.to_text())
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0 if report.ok else 1


def _policy(args):
    """The learned policy ``--policy`` names (``None`` for the scripted expert)."""
    if args.policy == "expert":
        return None
    from celltwin.layout.jobs import LayoutError

    folder = Path(args.policy)
    if not (folder / "manifest.json").is_file():
        if (folder / "config.yaml").is_file():
            why = f"'{folder}' is a training run, not a bundle: export it first"
        elif folder.is_dir():
            why = f"'{folder}' is not a policy bundle (no manifest.json)"
        else:
            why = f"no such policy: '{args.policy}'"
        raise LayoutError(Problem(why, path="--policy", value=args.policy,
                                  expected="expert, or a bundle folder (celltwin export RUN_DIR "
                                           "-o BUNDLE)"))
    return BundlePolicy(folder)


def _warn_other_parts(policy, cells, options) -> None:
    """Say so when a robot's job feeds it parts of another type than the policy learned on
    (it may still cope; the KPIs will tell)."""
    from celltwin.layout.jobs import find_jobs

    learned = policy.manifest["observation"].get("object_name")
    for cell in cells:
        for job in find_jobs(cell, options.pick, options.place):
            part = job.feed.part
            if learned and learned != part.name and learned not in part.body_names():
                print(f"warning: the policy learned to pick '{learned}'; robot '{job.robot}' "
                      f"of cell '{cell.name}' picks '{part.name}' parts at "
                      f"'{job.pick.name}' (--pick chooses another target)", file=sys.stderr)


def run_run(args) -> int:
    from celltwin.layout.report import summary_lines, write_run
    from celltwin.layout.runner import run_layout

    cell = load_spec(args.cell, args.robot)
    options = _options(args)
    policy = _policy(args)
    if policy is not None:
        _warn_other_parts(policy, [cell], options)
    print(f"cell '{cell.name}': feeding {options.parts} parts"
          + (f", worked by the policy of {args.policy}" if policy is not None else ""))
    result = run_layout(cell, options, physics=load_physics(args), progress=_run_progress(),
                        policy=policy)
    kpis, paths = write_run(result, args.out)
    for line in summary_lines(kpis):
        print(line)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


def run_compare(args) -> int:
    from celltwin.layout.compare import run_compare as compare, write_compare
    from celltwin.layout.jobs import find_jobs
    from celltwin.layout.overlap import check_cell_overlaps

    cells, problems = [], []
    for source in args.cells:  # every unreadable cell at once
        try:
            cells.append(load_spec(source, args.robot))
        except CelltwinError as error:
            problems += error.problems
    if problems:
        raise CelltwinError(problems)
    options = _options(args)
    for cell in cells:  # and every cell without a job or with overlaps, before anything runs
        try:
            jobs = find_jobs(cell, options.pick, options.place)
            if not options.allow_overlap:
                check_cell_overlaps(cell, jobs)
        except CelltwinError as error:
            problems += error.problems
    if problems:
        raise CelltwinError(problems)
    policy = _policy(args)
    if policy is not None:
        _warn_other_parts(policy, cells, options)
    entries = compare(cells, options, physics=load_physics(args), progress=_compare_progress(),
                      policy=policy)
    decision, paths = write_compare(entries, args.out, options)
    for entry in entries:
        k = entry.kpis
        print(f"  {entry.label:<28} {k['throughput_per_h']:8.1f} parts/h, cycle "
              f"{k['cycle_time_s']['mean'] or float('nan'):.2f} s, longest phase "
              f"{k['longest_phase']}, {k['real_time_factor']:.1f}x real time")
    print(decision["text"])
    print(f"wrote {args.out / 'compare.md'}, compare.json, compare.png, top_views.png and "
          f"{len(entries)} run directories")
    return 0


def run_sweep(args) -> int:
    from celltwin.layout.params import parse_param
    from celltwin.layout.sweep import plan, run_sweep as sweep, write_sweep

    params, problems = [], []
    for text in args.param:
        try:
            params.append(parse_param(text))
        except CelltwinError as error:
            problems += error.problems
    if problems:
        raise CelltwinError(problems)
    cell = load_spec(args.cell, args.robot)
    points = plan(cell, params)  # bad paths and values fail here, before Ray starts
    print(f"sweeping cell '{cell.name}': {len(points)} grid points, {args.parts} parts each, "
          + (f"Ray at {args.address}" if args.address
             else f"local Ray with {args.workers} workers"))
    results = sweep(cell, params, _options(args), workers=args.workers, address=args.address,
                    physics=load_physics(args), progress=_sweep_progress())
    paths = write_sweep(cell, params, results, args.out)
    for line in (args.out / "sweep.md").read_text().splitlines()[2:]:
        print(line)
    failed = sum(1 for point in results if point.error)
    print(f"wrote {args.out / 'sweep.md'}, sweep.json, heatmap.png and "
          f"{len(paths) - 3} files under points/")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------- progress
def _bar(fraction: float, width: int = 30) -> str:
    filled = round(width * min(max(fraction, 0.0), 1.0))
    return f"[{'#' * filled}{'.' * (width - filled)}]"


def _run_progress():
    if not sys.stderr.isatty():
        return None

    def show(sim_s: float, done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\rrunning {_bar(done / total)} {done}/{total} parts, {sim_s:7.1f} s simulated",
              end=end, file=sys.stderr, flush=True)
    return show


def _compare_progress():
    if not sys.stderr.isatty():
        return None

    def show(index: int, total: int, label: str) -> None:
        print(f"running layout {index + 1}/{total}: {label}", file=sys.stderr, flush=True)
    return show


def _sweep_progress():
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\rsweeping {_bar(done / total)} {done}/{total} points", end=end,
              file=sys.stderr, flush=True)
    return show
