"""``celltwin deploy PROGRAM``: a set-point program played like a bundle, through the safety layer.

``deploy`` hands a folder whose manifest is a program (``celltwin calibrate excite``) to
:func:`run_program`; the options mean what they mean for a bundle: ``--controller twin`` runs
the cell the program names in process (``--fast`` lock-step, ``--latency-steps``,
``--noise-rad``, ``--engine mujoco`` for its MuJoCo twin), ``opc.tcp://...`` a real or served
controller; ``--telemetry`` logs each step.
"""

from __future__ import annotations

from celltwin.cli.common import virtual_controller
from celltwin.cli.deploy_target import check_engine, opcua_controller
from celltwin.core.errors import CelltwinError, Problem
from celltwin.policies.deploy.program import ProgramAdapter, load_program
from celltwin.serve.in_process import InProcessController
from celltwin.world import World


def run_program(args) -> int:
    """``celltwin deploy PROGRAM``: play a set-point program (``args``: deploy's options)."""
    program = load_program(args.bundle)
    check_engine(args)
    if args.controller == "twin":
        summary = _program_on_twin(program, args)
    elif args.controller.startswith("opc.tcp://"):
        with opcua_controller(args) as controller:
            with ProgramAdapter(program, controller, telemetry=args.telemetry,
                                reduced_mode=args.reduced_speed,
                                dry_run=args.dry_run) as adapter:
                summary = adapter.play()
    else:
        raise CelltwinError(Problem("unknown controller", path="--controller",
                                    value=args.controller,
                                    expected="'twin' or opc.tcp://HOST:PORT"))
    stopped = summary.stop_reason is not None
    print(f"program: {summary.steps}/{len(program.setpoints)} set-points"
          + (f"; stopped: {summary.stop_reason}" if stopped else "")
          + (f"; telemetry {args.telemetry}" if args.telemetry else ""))
    return 1 if stopped else 0


def _program_on_twin(program, args):
    cell = program.manifest.get("program", {}).get("cell")
    if not cell:
        raise CelltwinError(Problem("the program names no cell for the twin to run",
                                    path="--controller", value="twin",
                                    expected="a program written with `calibrate excite "
                                             "--cell CELL`, or an OPC UA controller"))
    realtime = not args.fast and not args.dry_run
    # The cell's pybullet world, or (--engine mujoco) its MuJoCo twin built from that world.
    with World(cell) as world:
        virtual = virtual_controller(world, args.engine, latency_steps=args.latency_steps,
                                     noise_rad=args.noise_rad, seed=args.seed)
        with InProcessController(virtual, realtime=realtime) as controller:
            with ProgramAdapter(program, controller, telemetry=args.telemetry,
                                reduced_mode=args.reduced_speed, dry_run=args.dry_run,
                                paced=realtime) as adapter:
                return adapter.play()
