"""Export a trained policy to a bundle: ONNX with normalization and post-processing baked in.

Reads a training run (``celltwin.training.run_dir.load_trained``) or a ``Trained`` object, rebuilds
the env it was trained on to learn what the policy's numbers mean (observation terms, action
scale, gripper range, control period, the robot and its limits), exports
:class:`celltwin.policies.actor.ExportableActor` to ONNX and TorchScript, and refuses to write a
bundle whose ONNX disagrees with SB3's own ``predict`` by more than the tolerance on observations
recorded from the env (random actions and the policy's own rollouts).

ONNX conventions (also written into the manifest):
    input ``observation``: float32 ``[batch, 3 + 3 + n]``, the concatenation of the Dict
        observation's ``achieved_goal``, ``desired_goal`` and ``observation`` entries (the
        sorted key order SB3's MultiInputPolicy and gymnasium's FlattenObservation use), raw:
        normalization is inside the graph.
    output ``action``: float32 ``[batch, arm + 1]`` in controller units: for ``ee_delta`` the
        TCP displacement of this step in the robot base frame [m] (x, y, z); for
        ``joint_delta`` each joint's displacement [rad]; for ``joint_position`` absolute
        joint targets [rad]; then the gripper opening [m].
"""

from __future__ import annotations

import datetime
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from celltwin import __version__
from celltwin.core.errors import Problem
from celltwin.core.joint_motion import ACCELERATION_TIME_S
from celltwin.policies.bundle import write_bundle
from celltwin.policies.errors import ExportError
from celltwin.policies.kinematics import KinematicChain
from celltwin.policies.manifest import FORMAT, INPUT_KEYS, SCHEMA_VERSION
from celltwin.policies.parity import check_parity, record_observations
from celltwin.policies.robot_description import describe_robot

ONNX_FILE = "policy.onnx"
TORCHSCRIPT_FILE = "policy.pt"
INPUT_NAME = "observation"
OUTPUT_NAME = "action"
OPSET = 18
LEGACY_OPSET = 17


@dataclass(frozen=True)
class ExportOptions:
    """Choices of one export.

    Attributes:
        samples: recorded observations the parity check runs on.
        tolerance: largest accepted |ONNX - SB3| over all samples and action elements, in
            the policy's action units ([-1, 1] per element).
        torchscript: also write ``policy.pt``.
        seed: seed of the recording rollouts.
        acceleration_time_s: joint acceleration limit = velocity limit / this [s]; ``None``:
            the limits the policy trained under (its robot's ``motion.limits``), which is what
            keeps the deployed arm the one it learned on.
        max_joint_step_rad: per-step joint change limit [rad]; ``None``: the trained one.
        workspace_low_m, workspace_high_m: TCP box in the robot base frame [m]; ``None``
            derives it from the robot's reach and the env's work surface.
        reduced_tcp_speed_mps: TCP speed cap of reduced mode [m/s] (ISO 10218-1: 0.25).
        stale_state_periods: control periods without a new controller sample before the
            adapter's watchdog stops.
    """

    samples: int = 1000
    tolerance: float = 1e-5
    torchscript: bool = True
    seed: int = 0
    acceleration_time_s: float | None = None
    max_joint_step_rad: float | None = None
    workspace_low_m: tuple[float, float, float] | None = None
    workspace_high_m: tuple[float, float, float] | None = None
    reduced_tcp_speed_mps: float = 0.25
    stale_state_periods: int = 3


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and measured."""

    path: Path
    manifest: dict
    parity_max_abs_diff: float
    torchscript_max_abs_diff: float | None


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
               checkpoint: bool = False, options: ExportOptions = ExportOptions()) -> ExportResult:
    """Export the final model (or newest checkpoint) of a training run directory."""
    from celltwin.training.run_dir import load_trained

    return export_trained(load_trained(run_dir, checkpoint=checkpoint), out_dir, options=options)


def export_trained(trained, out_dir: str | os.PathLike, *,
                   options: ExportOptions = ExportOptions()) -> ExportResult:
    """Export a trained policy (a ``celltwin.training.run_dir.Trained`` or an object like it).

    Raises:
        ExportError: the policy cannot be exported, or its ONNX (or TorchScript) disagrees
            with SB3 by more than ``options.tolerance``.
    """
    import gymnasium as gym
    import torch

    import celltwin.envs  # noqa: F401  (registers the env ids)
    from celltwin.policies.actor import ExportableActor

    config = trained.config
    env = gym.make(config.env_id(), **trained.env_kwargs())
    try:
        described = _describe_env(env, options)
        layout = [(key, size) for key, size in described["input_layout"]]
        actor_layout = [("flat", sum(size for _, size in layout))] if trained.flatten else layout
        module = ExportableActor(trained.model, actor_layout, trained.obs_rms, trained.clip_obs,
                                 trained.norm_epsilon, described["action_spec"]).eval()
        observations = record_observations(env, trained, options.samples, options.seed)
    finally:
        env.close()

    example = torch.as_tensor(observations[:1])
    onnx_bytes, exporter, opset = _to_onnx(module, example)
    parity = check_parity(onnx_bytes, trained, observations, layout,
                          described["action_spec"], options.tolerance)
    files = {ONNX_FILE: onnx_bytes}
    script_diff = None
    if options.torchscript:
        script_bytes = _to_torchscript(module, example)
        script_diff = _torchscript_diff(script_bytes, observations, parity.reference,
                                        described["unit_scale"])
        if not script_diff <= options.tolerance:
            raise ExportError(Problem("TorchScript policy disagrees with the SB3 policy",
                                      value=script_diff, expected=f"<= {options.tolerance}"))
        files[TORCHSCRIPT_FILE] = script_bytes

    manifest = _manifest(trained, described, options, exporter, opset, parity,
                         options.torchscript)

    path = write_bundle(out_dir, manifest, files)
    return ExportResult(Path(path), manifest, parity.max_abs_diff, script_diff)


# --- what the env says ------------------------------------------------------------------------


def _describe_env(env, options: ExportOptions) -> dict:
    from celltwin.policies.actor import ActionSpec
    from celltwin.robots.kinematics import home_ee_pose_in_base

    unwrapped = env.unwrapped
    robot, controller, task = unwrapped.robot, unwrapped.controller, unwrapped.task
    spaces = unwrapped.observation_space.spaces
    keys = tuple(sorted(spaces))
    if keys != INPUT_KEYS:
        raise ExportError(Problem("the env's observation is not the goal Dict",
                                  value=list(keys), expected=", ".join(INPUT_KEYS)))
    input_layout = [(key, int(spaces[key].shape[0])) for key in keys]

    mode = controller.mode
    scale = {"ee_delta": getattr(controller, "scale_m", None),
             "joint_delta": getattr(controller, "scale_rad", None)}.get(mode, 1.0)
    arm_size = controller.action_dim - 1
    closed, opened = robot.model.gripper_width_range_m
    space = unwrapped.action_space
    spec = ActionSpec(low=tuple(float(v) for v in space.low), high=tuple(float(v) for v in space.high),
                      arm_size=arm_size, scale=float(scale), uses_gripper=bool(task.uses_gripper),
                      width_closed_m=float(closed), width_open_m=float(opened))
    half_span = 0.5 * (opened - closed)
    unit_scale = np.array([float(scale)] * arm_size + [half_span if half_span > 0 else 1.0])

    robot_section = describe_robot(robot.model, robot.base_xyz.tolist(),
                                   robot.base_quat_xyzw.tolist())
    chain = KinematicChain.from_manifest(robot_section["kinematics"], robot_section["joint_names"])
    state = unwrapped.reader.read()
    achieved = np.asarray(task.achieved_goal(state))
    achieved_term = next((name for name in task.observation_terms
                          if np.array_equal(np.asarray(state[name]), achieved)), None)
    if achieved_term is None:
        raise ExportError(Problem(f"the achieved goal of task {task.name} is no observation term",
                                  expected="the achieved goal to be one of "
                                           + ", ".join(task.observation_terms)))
    tcp_quat = None
    if mode == "ee_delta":
        tcp_quat = list(home_ee_pose_in_base(robot.model)[1])
    elif mode not in ("joint_delta", "joint_position"):
        raise ExportError(Problem(f"cannot deploy control mode '{mode}'", value=mode,
                                  expected="ee_delta, joint_delta or joint_position"))
    safety = _default_safety(robot_section, chain, controller, unwrapped.world.control_period_s,
                             options)
    goal_low, goal_high = unwrapped.goal_bounds()
    return {
        "input_layout": input_layout,
        "action_spec": spec,
        "unit_scale": unit_scale,
        "robot": robot_section,
        "control": {"mode": mode, "period_s": float(unwrapped.world.control_period_s),
                    "scale": None if mode == "joint_position" else float(scale),
                    "uses_gripper": bool(task.uses_gripper),
                    "tcp_orientation_quat_xyzw": tcp_quat, "ik_damping": 1e-2},
        "observation": {
            "frame": "robot base",
            "terms": unwrapped.layout.describe(),
            "size": int(unwrapped.layout.size),
            "achieved_goal_term": achieved_term,
            "goal_size": 3,
            "success_threshold_m": float(task.distance_threshold_m),
            "object_name": getattr(task, "object_name", None),
            "goal_low_m": [round(float(v), 6) for v in goal_low],
            "goal_high_m": [round(float(v), 6) for v in goal_high],
        },
        "action": _action_section(mode, arm_size, robot_section["joint_names"], float(scale)),
        "safety": safety,
        # The run's episode length (env.max_episode_steps), which may differ from the task's.
        "max_episode_steps": int(env.spec.max_episode_steps if env.spec is not None
                                 and env.spec.max_episode_steps else task.max_episode_steps),
    }


def _action_section(mode: str, arm_size: int, joints: list[str], scale: float) -> dict:
    if mode == "ee_delta":
        semantics = ("TCP displacement for this control step in the robot base frame [m] "
                     f"(policy output in [-1, 1] times {scale:g} m), the TCP orientation held at "
                     "control.tcp_orientation_quat_xyzw; then the gripper opening [m]")
        elements = [{"name": f"d{axis}", "unit": "m"} for axis in "xyz"]
    elif mode == "joint_delta":
        semantics = ("joint displacement for this control step [rad] (policy output in [-1, 1] "
                     f"times {scale:g} rad), added to the measured joint positions; then the "
                     "gripper opening [m]")
        elements = [{"name": f"d{name}", "unit": "rad"} for name in joints]
    else:
        semantics = "absolute joint position targets [rad]; then the gripper opening [m]"
        elements = [{"name": name, "unit": "rad"} for name in joints]
    return {"semantics": semantics, "arm_size": arm_size,
            "elements": elements + [{"name": "gripper_width", "unit": "m"}]}


def _default_safety(robot: dict, chain, controller, period_s: float,
                    options: ExportOptions) -> dict:
    """Safety limits: the URDF's joint limits, a TCP box, per-step and speed caps.

    The box, unless given, is the robot's reach around its base (the farthest TCP position
    over 4,096 random configurations within the joint limits, horizontally and upwards),
    above the env's work surface when the env keeps the TCP above one, else above the base's
    mounting plane (z = 0 in the base frame), intersected with any finite bound of the env's
    own ``ee_delta`` workspace. It keeps a policy inside the robot's envelope above the table;
    a cell's fences and fixtures need a box of its own (``--workspace-low/--workspace-high``).
    """
    limits = robot["joint_limits"]
    dof = len(robot["joint_names"])
    rng = np.random.default_rng(0)
    samples = rng.uniform(limits["position_lower_rad"], limits["position_upper_rad"], (4096, dof))
    tcps = np.array([chain.fk(q)[0] for q in samples])
    reach = float(np.max(np.linalg.norm(tcps[:, :2], axis=1)))
    low = np.array([-reach, -reach, 0.0])
    high = np.array([reach, reach, float(np.max(tcps[:, 2]))])
    env_low = np.asarray(getattr(controller, "workspace_low_m", np.full(3, -np.inf)), dtype=float)
    env_high = np.asarray(getattr(controller, "workspace_high_m", np.full(3, np.inf)), dtype=float)
    if np.isfinite(env_low[2]):
        low[2] = env_low[2]
    low = np.where(np.isfinite(env_low), np.maximum(low, env_low), low)
    high = np.where(np.isfinite(env_high), np.minimum(high, env_high), high)
    if options.workspace_low_m is not None:
        low = np.asarray(options.workspace_low_m, dtype=float)
    if options.workspace_high_m is not None:
        high = np.asarray(options.workspace_high_m, dtype=float)
    home = np.asarray(robot["home_rad"], dtype=float)
    home_tcp = chain.fk(home)[0]
    if not (np.all(home_tcp >= low) and np.all(home_tcp <= high)):
        raise ExportError(Problem("the robot's home TCP lies outside the safety workspace box",
                                  path="safety.tcp_workspace", value=home_tcp.round(4).tolist(),
                                  expected=f"inside low {low.tolist()} / high {high.tolist()}"))
    velocity = np.asarray(limits["velocity_rad_s"], dtype=float)
    # The set-point limits the policy trained under (celltwin.core.joint_motion), unless the
    # export asks for others.
    trained = controller.robot.motion.limits
    acceleration = (np.where(np.isfinite(trained.acceleration), trained.acceleration,
                             velocity / ACCELERATION_TIME_S)
                    if options.acceleration_time_s is None
                    else velocity / options.acceleration_time_s)
    max_step = (trained.max_step if options.max_joint_step_rad is None
                else np.full(dof, float(options.max_joint_step_rad)))
    return {
        "joint_position_lower_rad": list(limits["position_lower_rad"]),
        "joint_position_upper_rad": list(limits["position_upper_rad"]),
        "joint_velocity_rad_s": velocity.tolist(),
        "joint_acceleration_rad_s2": [float(a) for a in acceleration],
        "max_joint_step_rad": [float(step) for step in max_step],
        "tcp_workspace_low_m": low.tolist(),
        "tcp_workspace_high_m": high.tolist(),
        "reduced_mode_tcp_speed_mps": float(options.reduced_tcp_speed_mps),
        "stale_state_periods": int(options.stale_state_periods),
    }


# --- the manifest ----------------------------------------------------------------------------


def _manifest(trained, described: dict, options: ExportOptions, exporter: str, opset: int,
              parity, torchscript: bool) -> dict:
    config = trained.config
    size = sum(n for _, n in described["input_layout"])
    return {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "celltwin_version": __version__,
        "robot": described["robot"],
        "control": described["control"],
        "observation": described["observation"],
        "policy": {
            "onnx_file": ONNX_FILE,
            "torchscript_file": TORCHSCRIPT_FILE if torchscript else None,
            "input": {"name": INPUT_NAME, "dtype": "float32", "size": size,
                      "layout": [{"key": key, "size": n} for key, n in described["input_layout"]]},
            "output": {"name": OUTPUT_NAME, "dtype": "float32",
                       "size": len(described["action"]["elements"])},
            "exporter": exporter,
            "opset": opset,
            "normalization": {"baked": trained.obs_rms is not None,
                              "clip_obs": float(trained.clip_obs) if trained.obs_rms is not None else None,
                              "epsilon": float(trained.norm_epsilon) if trained.obs_rms is not None else None},
            "parity": {"max_abs_diff": parity.max_abs_diff,
                       "max_abs_diff_controller_units": parity.max_abs_diff_units,
                       "tolerance": float(options.tolerance), "samples": parity.samples},
        },
        "action": described["action"],
        "safety": described["safety"],
        "training": {
            "task": config.task,
            "algo": str(config.algo),
            "seed": getattr(config, "seed", None),
            "randomization": _jsonable(getattr(config, "randomization", None)),
            "env_kwargs": _jsonable(trained.env_kwargs()),
            "max_episode_steps": described["max_episode_steps"],
            "summary": _jsonable(dict(trained.summary or {})),
        },
    }


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy: paths and other objects as text, non-finite floats as null."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return str(value)


# --- the files -------------------------------------------------------------------------------


def _to_onnx(module, example) -> tuple[bytes, str, int]:
    """ONNX bytes, exporter and opset of ``module`` with a dynamic batch axis, dynamo first.

    torch >= 2.9 makes the dynamo (torch.export) exporter the default and deprecates the
    TorchScript one; the latter is kept as a fallback for policies torch.export cannot trace.
    """
    # The dynamo exporter logs a warning per torchvision op it cannot register when
    # torchvision is absent; a policy uses none of them.
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        return _export_onnx(module, example)
    finally:
        onnx_log.setLevel(level)


def _export_onnx(module, example) -> tuple[bytes, str, int]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                module, (example,), None, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), opset_version=OPSET,
                dynamo=True, verbose=False, optimize=True)
            buffer = io.BytesIO()
            program.save(buffer)
            return buffer.getvalue(), f"torch {torch.__version__} onnx (dynamo)", OPSET
        except Exception as dynamo_error:  # noqa: BLE001  (fall back, report both if it fails too)
            buffer = io.BytesIO()
            try:
                torch.onnx.export(module, (example,), buffer, input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME], opset_version=LEGACY_OPSET, dynamo=False,
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
            except Exception as legacy_error:  # noqa: BLE001
                raise ExportError(Problem(
                    f"ONNX export failed: dynamo: {type(dynamo_error).__name__}: {dynamo_error}; "
                    f"TorchScript exporter: {type(legacy_error).__name__}: {legacy_error}")) from None
            return buffer.getvalue(), f"torch {torch.__version__} onnx (torchscript)", LEGACY_OPSET


def _to_torchscript(module, example) -> bytes:
    """TorchScript bytes of ``module`` (traced: the actor has no data-dependent control flow)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(module, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def _torchscript_diff(script_bytes: bytes, observations: np.ndarray, reference: np.ndarray,
                      unit_scale: np.ndarray) -> float:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(io.BytesIO(script_bytes))
        with torch.no_grad():
            out = loaded(torch.as_tensor(observations)).numpy().astype(np.float64)
    return float(np.max(np.abs(out - reference) / unit_scale))
