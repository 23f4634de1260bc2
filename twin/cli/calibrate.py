"""`celltwin calibrate excite|fit`: from a controller's logs to the twin's PhysicsParams.

``excite`` writes a set-point program (a safe multi-sine around home) that ``celltwin deploy``
plays through the safety layer against the twin or an OPC UA controller, logging telemetry.
``fit`` replays the logged set-points in the pybullet twin and fits the named parameters to the
logged joint positions; its ``physics.yaml`` goes to any ``--physics`` option and to
``--dr-center``.
"""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

from celltwin.cli.arguments import (count, group_handler, input_file, integer, name_list, number,
                                    output_dir, seed)
from celltwin.calibrate.excite import ExcitationOptions, design, write_program
from celltwin.calibrate.fit import FitOptions, fit
from celltwin.calibrate.logs import read_logs
from celltwin.calibrate.parameters import parse_params
from celltwin.calibrate.report import write_outputs
from celltwin.cli.common import load_spec
from celltwin.core.actuation_limits import LATENCY_STEPS_RANGE
from celltwin.core.errors import CelltwinError, Problem
from celltwin.physics import PhysicsParams
from celltwin.robots.registry import get_robot_model

MAX_DURATION_S = 3600.0
MAX_WORKERS = 64
MAX_RESTARTS = 50


def register(subparsers) -> None:
    calibrate = subparsers.add_parser(
        "calibrate", help="fit the twin's physics to a controller's logs",
        description="excite: write a safe excitation program for `celltwin deploy`. fit: fit "
                    "the twin's physics parameters to the logs of a run (telemetry, CSV or "
                    "NPZ). See docs/calibration.md.")
    commands = calibrate.add_subparsers(dest="calibrate_command", metavar="ACTION")
    _register_excite(commands)
    _register_fit(commands)
    calibrate.set_defaults(handler=group_handler(calibrate, commands))


def _register_excite(commands) -> None:
    excite = commands.add_parser(
        "excite", help="write an excitation program (multi-sine per joint around home)",
        description="Writes a set-point program into --out: each arm joint moves around home "
                    "on its own sum of sines, ramped in and out, starting and ending at home, "
                    "inside the joint position, speed, acceleration and step limits and the "
                    "reduced-speed TCP cap of the deployment safety layer. Run it with "
                    "`celltwin deploy DIR --controller twin|opc.tcp://...`.")
    excite.add_argument("--robot", metavar="MODEL|FILE", default=None,
                        help="registered robot model or robot file (default: the --cell's)")
    excite.add_argument("--cell", default=None,
                        help="cell file or example name: its robot's home, base and control "
                             "period, and the twin `deploy --controller twin` runs")
    excite.add_argument("-o", "--out", type=output_dir, required=True, metavar="DIR",
                        help="program folder to write")
    excite.add_argument("--duration", type=number(1.0, MAX_DURATION_S), default=60.0,
                        metavar="S", help="program length [s] (default 60)")
    excite.add_argument("--amplitude", type=number(0.0, 3.0, low_open=True), default=0.4,
                        metavar="RAD", help="largest joint amplitude around home [rad] "
                                            "(default 0.4; scaled down to fit the limits)")
    excite.add_argument("--period", type=number(0.0, 1.0, low_open=True), default=None,
                        metavar="S", help="control period [s] (default: the cell's, else 0.04)")
    excite.add_argument("--ramp", type=number(0.0, 60.0, low_open=True), default=3.0,
                        metavar="S", help="ramp in and out [s] (default 3)")
    excite.add_argument("--seed", type=seed, default=0, help="seed of the sine phases")
    excite.set_defaults(handler=run_excite)


def _register_fit(commands) -> None:
    fit = commands.add_parser(
        "fit", help="fit the twin's physics parameters to logged joint trajectories",
        description="Replays the logged set-points in the pybullet twin of --cell and fits "
                    "--params to the logged joint positions (SciPy least squares, latency "
                    "searched, restarts for a spread). Writes physics.yaml, fit.json, "
                    "report.md and report.html into --out.")
    fit.add_argument("--telemetry", type=input_file, nargs="+", required=True, metavar="LOG",
                     help="logs: `celltwin deploy` telemetry (.jsonl), or .csv / .npz "
                          "(columns in docs/calibration.md)")
    fit.add_argument("--cell", required=True, help="cell file or example name of the twin")
    fit.add_argument("--robot-name", default=None, metavar="NAME",
                     help="the logged robot's name in the cell (default: its only robot)")
    fit.add_argument("--physics", type=input_file, default=None, metavar="FILE",
                     help="physics overrides applied before fitting (YAML)")
    fit.add_argument("--params", type=name_list, default=None, metavar="NAME,...",
                     help="parameters to fit: position_gain, velocity_gain, latency_steps, "
                          "joint_damping, joint_friction, payload_mass_kg (default "
                          "position_gain,latency_steps)")
    fit.add_argument("--max-latency", type=integer(0, LATENCY_STEPS_RANGE[1]), default=5,
                     metavar="N", help="largest latency searched [control steps] (default 5)")
    fit.add_argument("--restarts", type=count(MAX_RESTARTS), default=3,
                     help="fits from different starting points (default 3)")
    fit.add_argument("--workers", type=count(MAX_WORKERS), default=2,
                     help="processes replaying in parallel (default 2)")
    fit.add_argument("--seed", type=seed, default=0, help="seed of the restarts' starts")
    fit.add_argument("-o", "--out", type=output_dir, required=True, metavar="DIR",
                     help="folder for physics.yaml, fit.json and the report")
    fit.set_defaults(handler=run_fit)


def run_excite(args) -> int:
    home, base, period, cell = None, ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)), 0.04, None
    if args.cell is not None:
        spec = load_spec(args.cell, args.robot)
        if len(spec.robots) != 1:
            raise CelltwinError(Problem("the cell has several robots; excite names one cell "
                                        "robot", path="--cell", value=args.cell,
                                        expected="a cell with one robot"))
        robot_spec = spec.robots[0]
        model = get_robot_model(robot_spec.model)
        if robot_spec.home_deg is not None:
            home = tuple(math.radians(v) for v in robot_spec.home_deg)
        base = (robot_spec.base.xyz, robot_spec.base.quaternion_xyzw())
        period = spec.physics.control_period_s
        cell = str(Path(args.cell).resolve()) if Path(args.cell).is_file() else args.cell
    elif args.robot is not None:
        model = get_robot_model(args.robot)
    else:
        raise CelltwinError(Problem("name the robot to excite", path="--robot",
                                    expected="--robot MODEL|FILE or --cell CELL"))
    options = ExcitationOptions(duration_s=args.duration, amplitude_rad=args.amplitude,
                                period_s=args.period or period, ramp_s=args.ramp,
                                seed=args.seed)
    excitation = design(model, options, home=home, base_xyz=base[0], base_quat_xyzw=base[1])
    write_program(excitation, args.out, options=options, cell=cell)
    amplitude = abs(excitation.setpoints - excitation.setpoints[0]).max(axis=0)
    print(f"excitation of {model.name}: {len(excitation.times_s)} set-points over "
          f"{options.duration_s:g} s, amplitudes {', '.join(f'{a:.3f}' for a in amplitude)} "
          f"rad, peak TCP speed {excitation.peak_tcp_speed_mps:.3f} m/s")
    # Only a program that names its cell can run on the twin: say so here, not at deploy.
    controllers = "twin|opc.tcp://HOST:PORT" if cell else "opc.tcp://HOST:PORT"
    print(f"wrote {args.out}; run it with: celltwin deploy {args.out} --controller "
          f"{controllers} --telemetry LOG"
          + ("" if cell else " (on the twin: write it with --cell CELL)"))
    return 0


def run_fit(args) -> int:
    params = parse_params(args.params)
    spec = load_spec(args.cell, None)
    physics = PhysicsParams.load(args.physics) if args.physics else None
    logs = [log for path in args.telemetry for log in read_logs(path)]
    options = FitOptions(params=params, max_latency=args.max_latency, restarts=args.restarts,
                         workers=args.workers, seed=args.seed)
    result = fit(spec, logs, options, robot=args.robot_name, physics=physics,
                 progress=_progress)
    words = ["celltwin", "calibrate", "fit", "--telemetry", *map(str, args.telemetry),
             "--cell", args.cell, "--params", ",".join(params), "-o", str(args.out)]
    command = " ".join(shlex.quote(word) for word in words)
    write_outputs(result, logs, args.out, cell=args.cell, command=command)
    for label, value, spread in zip(result.labels, result.estimate, result.spread):
        print(f"{label}: {value:.6g} (spread {spread:.2g})")
    if result.latency_steps is not None:
        print(f"latency_steps: {result.latency_steps}")
    print(f"joint RMSE {result.rmse_before.mean():.5f} rad -> {result.rmse_after.mean():.5f} "
          f"rad; fit {result.elapsed_s:.1f} s; wrote {args.out}/physics.yaml, fit.json, "
          "report.md, report.html")
    return 0


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)
