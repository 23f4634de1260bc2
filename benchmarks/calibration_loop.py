"""Close the loop with the MuJoCo twin standing in for the real cell (issue 20).

1. ``celltwin calibrate excite`` designs the excitation of the cell's robot;
2. the deployment adapter plays it, through its safety layer, against the MuJoCo twin of the
   cell (in process, ``MujocoVirtualController``: the served twin's contract over MuJoCo), with
   an actuation latency and joint noise the pybullet twin is not told about;
3. ``celltwin calibrate fit`` fits the pybullet twin to that telemetry;
4. it prints the joint trajectory RMSE of the pybullet twin against the MuJoCo log, before and
   after the fit, and the time the fit took.

With ``--retrain`` (on a PickPlace cell) it then trains PickPlace twice, same seed and budget
(the task's preset): randomization ``standard`` as shipped, and centred on the fit
(``--dr-center``); exports both, runs each through the adapter on the MuJoCo twin with the
MuJoCo cell's latency and servo gain (``celltwin gap --engine mujoco``, the same seeded
episodes), and compares the two pair by pair (``retrain.json``). About 4 minutes per training
on 2 cores; off by default.

    python benchmarks/calibration_loop.py [--cell reach_table] [--duration 60]
        [--latency-steps 2] [--noise-rad 1e-4] [--position-gain G] [--out runs/calibration_loop]
    python benchmarks/calibration_loop.py --cell pick_station --duration 30 --latency-steps 0 \
        --position-gain 0.3 --retrain [--seed 0] [--episode-steps N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from celltwin.calibrate.excite import ExcitationOptions, design, write_program
from celltwin.calibrate.fit import FitOptions, fit
from celltwin.calibrate.logs import read_log
from celltwin.calibrate.parameters import DEFAULT_PARAMS
from celltwin.calibrate.report import write_outputs
from celltwin.mujoco.controller import MujocoVirtualController
from celltwin.physics import PhysicsParams
from celltwin.policies.gap import mcnemar_p, paired_bootstrap
from celltwin.policies.deploy.program import ProgramAdapter
from celltwin.serve.in_process import InProcessController
from celltwin.spec import load_cell
from celltwin.robots.registry import get_robot_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="reach_table")
    parser.add_argument("--duration", type=float, default=60.0, help="excitation length [s]")
    parser.add_argument("--latency-steps", type=int, default=2,
                        help="the MuJoCo cell's actuation latency [control steps]")
    parser.add_argument("--noise-rad", type=float, default=1e-4,
                        help="the MuJoCo cell's joint noise [rad]")
    parser.add_argument("--position-gain", type=float, default=None,
                        help="the MuJoCo cell's servo position gain (default: the cell's)")
    parser.add_argument("--params", default=",".join(DEFAULT_PARAMS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/calibration_loop"))
    parser.add_argument("--retrain", action="store_true",
                        help="also train PickPlace centred and uncentred (slow)")
    parser.add_argument("--gap-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="training seed of both runs")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="episode length of both trainings (default: the task's 50)")
    args = parser.parse_args()

    spec = load_cell(args.cell)
    robot = spec.robots[0]
    options = ExcitationOptions(duration_s=args.duration, period_s=spec.physics.control_period_s)
    excitation = design(get_robot_model(robot.model), options, base_xyz=robot.base.xyz,
                        base_quat_xyzw=robot.base.quaternion_xyzw())
    program = write_program(excitation, args.out / "excitation", options=options, cell=args.cell)
    log_path = args.out / "mujoco.jsonl"
    log_path.unlink(missing_ok=True)
    hidden = None
    if args.position_gain is not None:
        hidden = PhysicsParams.model_validate(
            {"robots": {robot.name: {"position_gain": args.position_gain}}})
    virtual = MujocoVirtualController.from_cell(args.cell, physics=hidden,
                                                latency_steps=args.latency_steps,
                                                noise_rad=args.noise_rad, seed=0)
    started = time.perf_counter()
    with InProcessController(virtual) as controller:
        with ProgramAdapter(program, controller, telemetry=log_path, paced=False) as adapter:
            summary = adapter.play()
    print(f"excitation on MuJoCo: {summary.steps} set-points in "
          f"{time.perf_counter() - started:.1f} s, stop: {summary.stop_reason}, "
          f"safety flags: {summary.safety_counts or 'none'}")

    logs = [read_log(log_path)]
    params = tuple(args.params.split(","))
    result = fit(spec, logs, FitOptions(params=params, workers=args.workers))
    write_outputs(result, logs, args.out / "fit", cell=args.cell)
    before, after = float(result.rmse_before.mean()), float(result.rmse_after.mean())
    figures = {"cell": args.cell, "duration_s": args.duration,
               "mujoco_latency_steps": args.latency_steps, "mujoco_noise_rad": args.noise_rad,
               "mujoco_position_gain": args.position_gain,
               "estimates": dict(zip(result.labels, result.estimate)),
               "spread": dict(zip(result.labels, result.spread)),
               "latency_steps": result.latency_steps, "rmse_before_rad": before,
               "rmse_after_rad": after, "ratio": before / after if after else None,
               "fit_s": result.elapsed_s}
    print(json.dumps(figures, indent=2))
    (args.out / "loop.json").write_text(json.dumps(figures, indent=2) + "\n")
    if args.retrain:
        _retrain(args)
    return 0


REAL_CELL_DR = """name: real_cell
description: the stand-in real cell of calibration_loop.py, its latency as the MuJoCo twin had it
terms:
  - target: "{{robot}}"
    parameter: latency_steps
    distribution: {{type: choice, values: [{latency}]}}
    operation: set
"""
REAL_CELL_GAIN = """  - target: "{{robot}}"
    parameter: position_gain
    distribution: {{type: choice, values: [{gain}]}}
    operation: set
"""


def _celltwin(*words) -> None:
    command = [sys.executable, "-m", "celltwin.cli.main", *map(str, words)]
    print("$ celltwin " + " ".join(map(str, words)), flush=True)
    subprocess.run(command, check=True)


def _retrain(args) -> None:
    """PickPlace trained with the standard preset as shipped and centred on the fit, same seed
    and budget, each exported and run through the adapter on the MuJoCo twin of the cell with
    the MuJoCo cell's latency (celltwin gap), same 100 seeded episodes."""
    physics = args.out / "fit" / "physics.yaml"
    real_cell = args.out / "real_cell.yaml"
    real_cell.write_text(REAL_CELL_DR.format(latency=args.latency_steps) + (
        "" if args.position_gain is None else REAL_CELL_GAIN.format(gain=args.position_gain)))
    runs = {"uncentred": [], "centred": ["--dr-center", physics]}
    for name, extra in runs.items():
        run_dir, bundle = args.out / f"train_{name}", args.out / f"bundle_{name}"
        _celltwin("train", "--task", "PickPlace", "--cell", args.cell, "--dr", "standard",
                  "--seed", args.seed, "--out", run_dir, "--no-progress", *extra,
                  *(("--episode-steps", args.episode_steps) if args.episode_steps else ()))
        _celltwin("export", run_dir, "-o", bundle, "--no-torchscript")
        _celltwin("gap", bundle, "--engine", "mujoco", "--episodes", args.gap_episodes,
                  "--dr", real_cell, "--out", args.out / f"gap_{name}")
    # The same seeded episodes for both: compare them pair by pair (gap's statistics).
    outcomes, summary = {}, {"seed": args.seed, "episode_steps": args.episode_steps}
    for name in runs:
        gap = json.loads((args.out / f"gap_{name}" / "gap.json").read_text())
        outcomes[name] = [episode["success"] for episode in gap["episodes"]["mujoco"]]
        trained = json.loads((args.out / f"train_{name}" / "summary.json").read_text())
        summary[name] = {"own_randomized_success": trained.get("success_randomized"),
                         "own_nominal_success": trained.get("success_nominal"),
                         "mujoco_cell": gap["engines"]["mujoco"]}
        print(f"{name}: own randomized twin {trained.get('success_randomized'):.0%}, "
              f"MuJoCo cell {sum(outcomes[name])}/{len(outcomes[name])}")
    mean, low, high = paired_bootstrap(outcomes["uncentred"], outcomes["centred"])
    summary["centred_minus_uncentred"] = {
        "success_rate": mean, "ci95": [low, high],
        "mcnemar_p": mcnemar_p(outcomes["uncentred"], outcomes["centred"])}
    print(f"centred - uncentred on the MuJoCo cell: {mean * 100:+.1f} pt "
          f"[{low * 100:+.1f}, {high * 100:+.1f}], McNemar p = "
          f"{summary['centred_minus_uncentred']['mcnemar_p']:.3g}")
    (args.out / "retrain.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
