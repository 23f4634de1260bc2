"""`celltwin line run`: simulate a production line and write its run directory."""

from __future__ import annotations

import sys

from celltwin.cli.arguments import count, group_handler, non_negative_float, output_dir, seed

MAX_DAYS = 3660  # ten years, as a line file's shift.days allows


def register(subparsers) -> None:
    line = subparsers.add_parser("line", help="simulate production lines (discrete events)")
    commands = line.add_subparsers(dest="line_command", metavar="ACTION")

    run = commands.add_parser(
        "run", help="simulate a line over its shift calendar and report throughput, "
                    "station states, buffers and the bottleneck",
        description="Simulates LINE and writes line.json, line.md, stations.png and "
                    "buffers.png into the run directory. The format of LINE is in docs/line.md.")
    run.add_argument("line", metavar="LINE",
                     help="line file (YAML) or the name of a shipped example line")
    run.add_argument("--seed", type=seed, default=0,
                     help="seed of every random stream (default: 0)")
    run.add_argument("--days", type=count(MAX_DAYS), default=None,
                     help=f"days to simulate, at most {MAX_DAYS} (default: the file's shift.days)")
    run.add_argument("--warmup-h", type=non_negative_float, default=0.0, metavar="H",
                     help="on-shift hours at the start left out of the statistics (default: 0)")
    run.add_argument("--out", type=output_dir, default="runs/line", help="run directory")
    run.set_defaults(handler=run_line)

    line.set_defaults(handler=group_handler(line, commands))


def run_line(args) -> int:
    from celltwin.line import load_line, simulate, write_run
    from celltwin.line.report import summary_lines

    spec = load_line(args.line)
    result = simulate(spec, args.seed, warmup_h=args.warmup_h, days=args.days,
                      progress=_progress_bar() if sys.stderr.isatty() else None)
    paths = write_run(result, args.out)
    for text in summary_lines(result):
        print(text)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


def _progress_bar(width: int = 30):
    def show(day: int, days: int) -> None:
        filled = round(width * day / days)
        end = "\n" if day == days else ""
        print(f"\rsimulating [{'#' * filled}{'.' * (width - filled)}] day {day}/{days}",
              end=end, file=sys.stderr, flush=True)
    return show
