"""`celltwin demo`: the main job end to end on the default cell (:mod:`celltwin.pipeline`)."""

from __future__ import annotations

from celltwin.cli.arguments import output_dir, seed


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="the main job end to end: train, evaluate, export, serve and deploy, "
                     "layout KPIs; one report",
        description="Trains a PickPlace policy under domain randomization (expert "
                    "demonstrations, cloning, DAgger), evaluates it on the nominal twin, the "
                    "randomized twin and a robustness grid, films a few episodes, exports the "
                    "bundle, serves the twin over OPC UA on 127.0.0.1 and deploys the bundle "
                    "through the adapter, then runs the cell's layout KPIs with the policy "
                    "and with the scripted expert. Everything goes into one run directory "
                    "with report.html and report.md. About 5 minutes on 2 cores; --quick "
                    "runs every stage with tiny budgets in under a minute.")
    demo.add_argument("--cell", default="pick_station",
                      help="cell file or example name (default: pick_station); it needs what "
                           "PickPlace needs (a part, a goal_space region) and pick/place "
                           "targets")
    demo.add_argument("--quick", action="store_true",
                      help="tiny budgets: every stage in under a minute (the policy is a "
                           "clone of a dozen demonstrations, not a working one)")
    demo.add_argument("--seed", type=seed, default=0, help="seed of the run (default 0)")
    demo.add_argument("--out", type=output_dir, default="runs/demo",
                      help="run directory (default: runs/demo; a previous demo there is "
                           "replaced)")
    demo.set_defaults(handler=run_demo)


def run_demo(args) -> int:
    from celltwin.pipeline import FULL, QUICK, run_demo as run

    run(args.out, cell=args.cell, seed=args.seed, budget=QUICK if args.quick else FULL,
        echo=lambda line: print(line, flush=True))
    return 0
