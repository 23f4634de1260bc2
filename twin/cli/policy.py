"""`celltwin export` and `celltwin deploy`: training run -> bundle -> controller.

``export`` writes a verified bundle from a training run directory. ``deploy`` runs a bundle
through the deployment adapter against the twin (``--controller twin``: the training cell as an
in-process virtual controller, one episode per goal drawn as in training) or any OPC UA
controller (``--controller opc.tcp://HOST:PORT``, with ``--goal``). Heavy imports (torch,
pybullet, gymnasium) happen only inside the commands that need them: deploying to OPC UA needs
none of them.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from celltwin.cli.arguments import (count, input_file, integer, number, output_dir, output_file,
                                    seed)
from celltwin.cli.common import add_engine, virtual_controller
from celltwin.cli.deploy_target import check_engine, opcua_controller
from celltwin.cli.program import run_program
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import CelltwinError, Problem
from celltwin.envs.tasks import task_class
from celltwin.policies.bundle import check_goal, load_bundle
from celltwin.policies.deploy.adapter import Adapter
from celltwin.policies.deploy.program import is_program
from celltwin.policies.export import ExportOptions, export_run
from celltwin.policies.manifest import episode_steps
from celltwin.serve.in_process import InProcessController
from celltwin.training.config import MAX_EPISODE_STEPS

EXIT_STOPPED = 1
# Bounds on typing mistakes.
MAX_SAMPLES = 1_000_000
MAX_EPISODES = 100_000
MAX_LATENCY_STEPS = 1_000
MAX_COORDINATE_M = 10.0    # a cell is a few metres across
MAX_WAIT_S = 600.0
coordinate = number(-MAX_COORDINATE_M, MAX_COORDINATE_M)   # in a robot base frame [m]


def register(subparsers) -> None:
    _register_export(subparsers)
    _register_deploy(subparsers)


# --- export ----------------------------------------------------------------------------------


def _register_export(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a trained policy to a bundle (ONNX + manifest)",
        description="Exports the policy of a training run to BUNDLE_DIR: policy.onnx with "
                    "observation normalization and action post-processing baked in, policy.pt "
                    "(TorchScript), and manifest.json (robot, limits, observation and action "
                    "semantics, safety limits, SHA-256 of every file). Fails unless the ONNX "
                    "matches SB3's own actions on recorded observations.")
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                        help="a `celltwin train` run directory")
    parser.add_argument("-o", "--out", metavar="BUNDLE_DIR", type=output_dir, required=True,
                        help="bundle folder to write: new, empty, or a bundle to replace")
    parser.add_argument("--checkpoint", action="store_true",
                        help="export the newest checkpoint instead of the final model")
    parser.add_argument("--samples", type=count(MAX_SAMPLES), default=1000,
                        help="recorded observations for the parity check (default 1000)")
    parser.add_argument("--tolerance", type=number(0.0, 1.0, low_open=True), default=1e-5,
                        help="largest accepted |ONNX - SB3| in action units (default 1e-5)")
    parser.add_argument("--no-torchscript", action="store_true", help="skip policy.pt")
    parser.add_argument("--workspace-low", type=coordinate, nargs=3, metavar=("X", "Y", "Z"),
                        help="TCP safety box corner, robot base frame [m]")
    parser.add_argument("--workspace-high", type=coordinate, nargs=3, metavar=("X", "Y", "Z"),
                        help="TCP safety box corner, robot base frame [m]")
    parser.add_argument("--max-joint-step", type=number(0.0, math.pi, low_open=True), default=None,
                        help="largest joint change per control step [rad] (default: the "
                             "limit the policy trained under, 0.1 unless changed; another "
                             "value deploys a different arm than the one it learned on)")
    parser.add_argument("--acceleration-time", type=number(0.0, 60.0, low_open=True), default=None,
                        help="joint acceleration limit = velocity limit / this [s] (default: "
                             "the limit the policy trained under, 0.2 unless changed)")
    parser.set_defaults(handler=run_export)


def run_export(args) -> int:
    options = ExportOptions(
        samples=args.samples, tolerance=args.tolerance, torchscript=not args.no_torchscript,
        workspace_low_m=tuple(args.workspace_low) if args.workspace_low else None,
        workspace_high_m=tuple(args.workspace_high) if args.workspace_high else None,
        max_joint_step_rad=args.max_joint_step, acceleration_time_s=args.acceleration_time)
    _progress(f"exporting {args.run_dir} (recording {args.samples} observations, parity check)")
    result = export_run(args.run_dir, args.out, checkpoint=args.checkpoint, options=options)
    manifest = result.manifest
    print(f"bundle: {result.path}")
    print(f"robot {manifest['robot']['model']}, control {manifest['control']['mode']} at "
          f"{1 / manifest['control']['period_s']:g} Hz, task {manifest['training']['task']} "
          f"({manifest['training']['algo']})")
    print(f"parity: max |ONNX - SB3| = {result.parity_max_abs_diff:.2e} action units over "
          f"{manifest['policy']['parity']['samples']} observations"
          + (f"; TorchScript {result.torchscript_max_abs_diff:.2e}"
             if result.torchscript_max_abs_diff is not None else ""))
    return 0


# --- deploy ----------------------------------------------------------------------------------


def _register_deploy(subparsers) -> None:
    parser = subparsers.add_parser(
        "deploy", help="run a policy bundle (or a set-point program) against the twin or an "
                       "OPC UA controller",
        description="Verifies BUNDLE, checks it fits the controller's robot and joints, and runs "
                    "it through the safety layer at the bundle's control period, writing one "
                    "telemetry line per step. Exit 0 when every episode ran, 1 when the "
                    "adapter stopped (e-stop, watchdog, mode), 2 on errors.")
    parser.add_argument("bundle", metavar="BUNDLE", type=Path,
                        help="bundle folder, or a set-point program folder (`celltwin "
                             "calibrate excite`), played once through the safety layer")
    parser.add_argument("--controller", required=True, metavar="twin|opc.tcp://HOST:PORT",
                        help="'twin' (the training cell, in process) or an OPC UA endpoint")
    parser.add_argument("--dry-run", action="store_true",
                        help="compute and log every set-point but send none")
    parser.add_argument("--episodes", type=count(MAX_EPISODES), default=1,
                        help="episodes to run (default 1)")
    parser.add_argument("--steps", type=count(MAX_EPISODE_STEPS), default=None,
                        help="control steps per episode (default: the training episode length)")
    parser.add_argument("--goal", type=coordinate, nargs=3, metavar=("X", "Y", "Z"),
                        help="desired goal in the robot base frame [m] (required for OPC UA; "
                             "the twin draws one per episode as in training)")
    parser.add_argument("--allow-outside-goal-region", action="store_true",
                        help="run a --goal that lies outside the region the policy was "
                             "trained on (refused by default: the policy never saw one)")
    parser.add_argument("--telemetry", type=output_file, default=None, metavar="FILE",
                        help="JSON-lines telemetry file (appended)")
    parser.add_argument("--reduced-speed", action="store_true",
                        help="cap TCP speed at the bundle's reduced-mode speed (0.25 m/s)")
    parser.add_argument("--object", default=None, help="tracked object name (default: the bundle's)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the twin's episode draws")
    add_engine(parser, "the twin (twin only)")
    parser.add_argument("--fast", action="store_true",
                        help="twin only: lock-step, as fast as the physics (no real-time pacing)")
    parser.add_argument("--latency-steps", type=integer(0, MAX_LATENCY_STEPS), default=None,
                        help="twin only: actuation latency [control periods]")
    parser.add_argument("--noise-rad", type=number(0.0, 1.0), default=None,
                        help="twin only: joint position noise [rad]")
    parser.add_argument("--wait-s", type=number(0.0, MAX_WAIT_S), default=0.0, metavar="S",
                        help="OPC UA only: wait up to S seconds for the controller to accept "
                             "connections, e.g. a server just started in the background "
                             "(default 0: connect at once)")
    parser.add_argument("--username", default=None, help="OPC UA user")
    parser.add_argument("--password", default=None, help="OPC UA password")
    parser.add_argument("--certificate", type=input_file, default=None,
                        help="OPC UA client certificate")
    parser.add_argument("--private-key", type=input_file, default=None, help="key of --certificate")
    parser.add_argument("--server-certificate", type=input_file, default=None,
                        help="OPC UA server certificate to trust (pins the server)")
    parser.add_argument("--json", type=output_file, default=None, metavar="FILE",
                        help="write the episode results as JSON")
    parser.add_argument("--video", type=output_file, default=None, metavar="FILE",
                        help="twin only: film the episodes into FILE (.gif, or .mp4 with "
                             "imageio-ffmpeg); the twin then runs lock-step, as with --fast")
    parser.set_defaults(handler=run_deploy)


def run_deploy(args) -> int:
    if is_program(args.bundle):   # a set-point program (`celltwin calibrate excite`)
        return run_program(args)
    bundle = load_bundle(args.bundle)
    manifest = bundle.manifest
    if args.goal is not None and not args.allow_outside_goal_region:
        problem = check_goal(manifest, args.goal)
        if problem is not None:
            raise CelltwinError(Problem(problem.message, path="--goal", value=problem.value,
                                        expected=f"{problem.expected}, or "
                                                 "--allow-outside-goal-region"))
        if "goal_low_m" not in manifest["observation"]:
            print(f"warning: {args.bundle} does not record the region its goals were drawn "
                  "from (exported by an older celltwin): --goal is not checked", file=sys.stderr)
    steps = args.steps or episode_steps(manifest)
    if args.video is not None:
        _check_video(args)
    check_engine(args)
    if args.controller == "twin":
        results = _deploy_twin(bundle, args, steps)
    elif args.controller.startswith("opc.tcp://"):
        if args.goal is None:
            raise CelltwinError(Problem("a goal is needed to drive an OPC UA controller",
                                        path="--goal", expected="--goal X Y Z (robot base frame [m])"))
        results = _deploy_opcua(bundle, args, steps)
    else:
        raise CelltwinError(Problem("unknown controller", path="--controller", value=args.controller,
                                    expected="'twin' or opc.tcp://HOST:PORT"))
    successes = sum(1 for r in results if r["success"])
    stopped = [r for r in results if r["stop_reason"]]
    print(f"success {successes}/{len(results)}"
          + (f"; stopped: {stopped[0]['stop_reason']}" if stopped else "")
          + (f"; telemetry {args.telemetry}" if args.telemetry else ""))
    if args.json:
        atomic_write_text(args.json, json.dumps({"bundle": str(args.bundle), "episodes": results},
                                                indent=2))
    return EXIT_STOPPED if stopped else 0


def _check_video(args) -> None:
    """Refuse a --video that would film nothing, before anything moves."""
    from celltwin.video import video_format

    video_format(args.video)
    if args.controller != "twin":
        raise CelltwinError(Problem("--video films the twin run in this process; the cell of "
                                    "an OPC UA controller is not here to film", path="--video",
                                    value=str(args.video), expected="--controller twin"))
    if args.engine != "pybullet":
        raise CelltwinError(Problem("--video films the pybullet twin; the MuJoCo twin is not "
                                    "rendered", path="--video", value=str(args.video),
                                    expected="--video with --engine pybullet"))
    if args.dry_run:
        raise CelltwinError(Problem("a dry run sends no set-points, so the twin never moves "
                                    "for the film", path="--video", value=str(args.video),
                                    expected="--video without --dry-run"))


def _deploy_twin(bundle, args, steps: int) -> list[dict]:
    """Episodes on the training cell: the env draws goal and object as in training; with
    ``--engine mujoco`` each episode runs in the MuJoCo twin of the env's world as drawn."""
    import gymnasium as gym

    from celltwin.video import EpisodeRecorder, RecordingController, write_video

    manifest = bundle.manifest
    env_kwargs = dict(manifest["training"]["env_kwargs"])
    env = gym.make(task_class(manifest["training"]["task"], path="manifest training.task").env_id,
                   **env_kwargs)
    object_name = args.object or manifest["observation"]["object_name"]
    world = env.unwrapped.world
    period_s = world.control_period_s
    # Filming draws the twin between control steps, which only a lock-step twin allows.
    recorder = EpisodeRecorder() if args.video is not None else None
    results = []
    adapter = None
    try:
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=args.seed + episode)
            goal = obs["desired_goal"] if args.goal is None else args.goal
            virtual = virtual_controller(world, args.engine, latency_steps=args.latency_steps,
                                         noise_rad=args.noise_rad, seed=args.seed + episode,
                                         tracked_objects=[object_name] if object_name else ())
            # A dry run sends no set-points, and a lock-step twin only advances on one: dry runs
            # therefore run the twin on its own clock.
            realtime = (args.dry_run or not args.fast) and recorder is None
            with InProcessController(virtual, realtime=realtime) as controller:
                if recorder is not None:
                    recorder.start(f"episode {episode + 1}/{args.episodes}")
                    recorder.draw(world)
                    controller = RecordingController(controller, world, recorder)
                if adapter is None:
                    adapter = Adapter(bundle, controller, goal, telemetry=args.telemetry,
                                      reduced_mode=args.reduced_speed, dry_run=args.dry_run,
                                      object_name=object_name, paced=realtime)
                else:
                    adapter.controller = controller
                    adapter.set_goal(goal)
                results.append(_episode(adapter, episode, steps))
            if recorder is not None:
                outcome = "success" if results[-1]["success"] else "no success"
                recorder.hold(f"episode {episode + 1}/{args.episodes}: {outcome}")
            if results[-1]["stop_reason"]:
                break
    finally:
        if adapter is not None:
            adapter.close()
        env.close()
    if recorder is not None:
        write_video(recorder.frames, args.video, fps=recorder.fps(period_s))
        print(f"video: {args.video} ({len(recorder.frames)} frames)")
    return results


def _deploy_opcua(bundle, args, steps: int) -> list[dict]:
    results = []
    with opcua_controller(args) as controller:
        with Adapter(bundle, controller, args.goal, telemetry=args.telemetry,
                     reduced_mode=args.reduced_speed, dry_run=args.dry_run,
                     object_name=args.object) as adapter:
            for episode in range(args.episodes):
                results.append(_episode(adapter, episode, steps))
                if results[-1]["stop_reason"]:
                    break
    return results


def _episode(adapter, episode: int, steps: int) -> dict:
    adapter.rearm()  # each episode starts from an explicit arming, never by itself
    summary = adapter.run(steps)
    adapter.stop("episode finished")  # the next episode re-arms once the robot stands still
    flags = ", ".join(f"{name} x{count}" for name, count in sorted(summary.safety_counts.items()))
    outcome = "success" if summary.success else ("stopped" if summary.stop_reason else "no success")
    distance = f"{summary.final_distance_m:.3f} m" if summary.final_distance_m is not None else "n/a"
    print(f"episode {episode + 1}: {outcome} after {summary.steps} steps (distance {distance}"
          f"; overruns {summary.overruns}" + (f"; safety: {flags}" if flags else "") + ")")
    return {"episode": episode + 1, "success": summary.success, "steps": summary.steps,
            "final_distance_m": summary.final_distance_m, "stop_reason": summary.stop_reason,
            "overruns": summary.overruns, "safety_counts": summary.safety_counts}


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(message, file=sys.stderr)
