"""The excitation program: a safe multi-sine per joint that makes a robot show its dynamics.

Each arm joint moves around the home pose along a sum of sines (Schroeder phases, so the peaks
stay low), each joint on its own frequencies (interleaved on one log-spaced grid, so a joint's
response is told apart from its neighbours'). A raised-cosine envelope ramps the motion in and
out, so the program starts and ends at home, at rest. Amplitudes are then scaled down, per
joint, until the set-points keep a margin inside every limit the deployment safety layer
enforces: joint positions, speeds, accelerations and per-step changes, the TCP box, and the
reduced-speed TCP cap as the safety layer bounds TCP speed (lever arms times joint speeds).
The safety layer would otherwise clip set-points, and a clipped excitation is not the one that
was designed. The program is written as a set-point program
(:mod:`celltwin.policies.deploy.program`) that ``celltwin deploy`` plays against any controller.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celltwin import __version__
from celltwin.core.atomic import atomic_write_bytes, atomic_write_text
from celltwin.core.errors import CelltwinError, Problem
from celltwin.policies.bundle import file_entry
from celltwin.policies.deploy.program import FORMAT, SCHEMA_VERSION, SETPOINTS_FILE
from celltwin.policies.kinematics import KinematicChain
from celltwin.policies.manifest import MANIFEST_FILE, manifest_digest
from celltwin.policies.robot_description import describe_robot

# Margins inside each limit: the set-points may use this share of it [-].
LIMIT_SHARE = 0.8
# The safety layer's defaults of an exported bundle (celltwin.policies.export.ExportOptions).
ACCELERATION_TIME_S = 0.2
MAX_JOINT_STEP_RAD = 0.1
REDUCED_TCP_SPEED_MPS = 0.25
STALE_STATE_PERIODS = 3


@dataclass(frozen=True)
class ExcitationOptions:
    """Choices of one excitation program.

    Attributes:
        duration_s: length of the whole program, ramps and holds included [s].
        period_s: time between set-points [s] (the controller's control period).
        amplitude_rad: largest amplitude of a joint's motion around home [rad].
        f_min_hz, f_max_hz: the frequency band of the sines [Hz].
        sines_per_joint: sines summed on each joint [-].
        ramp_s: length of the ramp in and out [s].
        hold_s: time held at home before and after the motion [s].
        min_tcp_height_m: lowest TCP height above the base's mounting plane [m].
        seed: seed of the Schroeder phase offsets.
    """

    duration_s: float = 60.0
    period_s: float = 0.04
    amplitude_rad: float = 0.4
    f_min_hz: float = 0.1
    f_max_hz: float = 1.0
    sines_per_joint: int = 4
    ramp_s: float = 3.0
    hold_s: float = 1.0
    min_tcp_height_m: float = 0.15
    seed: int = 0


@dataclass(frozen=True)
class Excitation:
    """A designed program: times [s], set-points [rad], and the limits it was fitted into."""

    times_s: np.ndarray
    setpoints: np.ndarray
    robot: dict
    safety: dict
    peak_tcp_speed_mps: float
    """The safety layer's bound on the TCP speed at the fastest set-point [m/s]."""


def design(model, options: ExcitationOptions = ExcitationOptions(), *,
           home: tuple[float, ...] | None = None,
           base_xyz=(0.0, 0.0, 0.0), base_quat_xyzw=(0.0, 0.0, 0.0, 1.0)) -> Excitation:
    """Design the excitation of robot ``model`` (see the module docstring).

    Raises:
        CelltwinError: a program too short for its ramps, or a home pose without room to move.
    """
    motion_s = options.duration_s - 2 * (options.ramp_s + options.hold_s)
    if motion_s < options.ramp_s:
        raise CelltwinError(Problem("the excitation is too short for its ramps and holds",
                                    path="duration_s", value=options.duration_s,
                                    expected=f">= {3 * options.ramp_s + 2 * options.hold_s:g} s"))
    robot = describe_robot(model, base_xyz, base_quat_xyzw)
    chain = KinematicChain.from_manifest(robot["kinematics"], robot["joint_names"])
    centre = np.asarray(home if home is not None else model.home, dtype=float)
    limits = robot["joint_limits"]
    lower = np.asarray(limits["position_lower_rad"], dtype=float)
    upper = np.asarray(limits["position_upper_rad"], dtype=float)
    velocity = np.asarray(limits["velocity_rad_s"], dtype=float)
    safety = _safety(robot, chain, lower, upper, velocity)
    dof = len(centre)
    times = np.arange(int(round(options.duration_s / options.period_s)) + 1) * options.period_s
    shapes = _multisine(times, dof, options)
    envelope = _envelope(times, options)
    room = np.minimum(centre - lower, upper - centre) * LIMIT_SHARE
    if np.any(room <= 0):
        raise CelltwinError(Problem("the home pose lies on a joint limit: no room to excite",
                                    value=centre.tolist(), expected="a home inside the limits"))
    amplitude = np.minimum(options.amplitude_rad, room)
    acceleration = velocity / ACCELERATION_TIME_S
    dt = options.period_s
    weights = chain.reach_weights(np.maximum(np.abs(lower), np.abs(upper)))
    for _ in range(40):  # scale until every limit holds; each pass only shrinks
        q = centre + envelope[:, None] * amplitude * shapes
        qd = np.diff(q, axis=0) / dt
        qdd = np.diff(qd, axis=0) / dt
        ratio = np.minimum.reduce([
            np.ones(dof),
            LIMIT_SHARE * velocity / np.maximum(np.abs(qd).max(axis=0), 1e-12),
            LIMIT_SHARE * acceleration / np.maximum(np.abs(qdd).max(axis=0), 1e-12),
            LIMIT_SHARE * MAX_JOINT_STEP_RAD / np.maximum(np.abs(qd * dt).max(axis=0), 1e-12)])
        tcp = np.array([chain.fk(row)[0] for row in q])
        # The safety layer caps the TCP speed by the bound sum(lever arm * |joint speed|),
        # which holds in every pose; the program keeps under that bound, not just under the
        # TCP's true speed, so that reduced mode leaves it as designed.
        speed = float((np.abs(qd) @ weights).max())
        cap = LIMIT_SHARE * REDUCED_TCP_SPEED_MPS
        whole = min(1.0, cap / max(speed, 1e-12))
        low = np.asarray(safety["tcp_workspace_low_m"])
        high = np.asarray(safety["tcp_workspace_high_m"])
        if tcp[:, 2].min() < options.min_tcp_height_m or np.any(tcp < low) or np.any(tcp > high):
            whole = min(whole, 0.9)
        if ratio.min() >= 1.0 and whole >= 1.0:
            break
        amplitude = amplitude * np.minimum(ratio, 1.0) * whole
    else:
        raise CelltwinError(Problem("no excitation around home fits the safety limits",
                                    value=centre.tolist(), expected="a home pose with room"))
    q[0] = q[-1] = centre  # exactly home at both ends (the envelope is 0 there)
    return Excitation(times, q, robot, safety, speed)


def _multisine(times: np.ndarray, dof: int, options: ExcitationOptions) -> np.ndarray:
    """Unit-peak multi-sines, one column per joint, on interleaved frequencies."""
    count = options.sines_per_joint
    grid = np.geomspace(options.f_min_hz, options.f_max_hz, count * dof)
    shapes = np.zeros((len(times), dof))
    for joint in range(dof):
        freqs = grid[joint::dof]
        # Schroeder phases, shifted per joint: a low crest factor for a sum of sines.
        phases = -np.pi * np.arange(count) * (np.arange(count) + 1) / count + joint
        wave = np.sin(2 * np.pi * freqs[None, :] * times[:, None] + phases[None, :]).sum(axis=1)
        shapes[:, joint] = wave / np.abs(wave).max()
    return shapes


def _envelope(times: np.ndarray, options: ExcitationOptions) -> np.ndarray:
    """0 while holding home, a raised cosine up and down, 1 in between."""
    start = options.hold_s
    end = times[-1] - options.hold_s
    up = np.clip((times - start) / options.ramp_s, 0.0, 1.0)
    down = np.clip((end - times) / options.ramp_s, 0.0, 1.0)
    return 0.5 * (1 - np.cos(np.pi * np.minimum(up, down)))


def _safety(robot: dict, chain: KinematicChain, lower, upper, velocity) -> dict:
    """The safety section of the program: the limits a bundle's export would give this arm."""
    rng = np.random.default_rng(0)
    samples = rng.uniform(lower, upper, (2048, len(lower)))
    tcps = np.array([chain.fk(q)[0] for q in samples])
    reach = float(np.max(np.linalg.norm(tcps[:, :2], axis=1)))
    return {
        "joint_position_lower_rad": lower.tolist(),
        "joint_position_upper_rad": upper.tolist(),
        "joint_velocity_rad_s": velocity.tolist(),
        "joint_acceleration_rad_s2": (velocity / ACCELERATION_TIME_S).tolist(),
        "max_joint_step_rad": [MAX_JOINT_STEP_RAD] * len(lower),
        "tcp_workspace_low_m": [-reach, -reach, 0.0],
        "tcp_workspace_high_m": [reach, reach, float(np.max(tcps[:, 2]))],
        "reduced_mode_tcp_speed_mps": REDUCED_TCP_SPEED_MPS,
        "stale_state_periods": STALE_STATE_PERIODS,
    }


def write_program(excitation: Excitation, folder: str | Path, *, options: ExcitationOptions,
                  cell: str | None = None) -> Path:
    """Write ``excitation`` as a set-point program folder (setpoints first, manifest last)."""
    folder = Path(folder)
    names = excitation.robot["joint_names"]
    rows = ["t_s," + ",".join(names)]
    rows += [f"{t:.6f}," + ",".join(f"{v:.9f}" for v in q)
             for t, q in zip(excitation.times_s, excitation.setpoints)]
    data = ("\n".join(rows) + "\n").encode("utf-8")
    manifest = {
        "schema_version": SCHEMA_VERSION, "format": FORMAT, "kind": "trajectory",
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "celltwin_version": __version__,
        "robot": excitation.robot,
        "control": {"mode": "joint_position", "period_s": options.period_s},
        "safety": excitation.safety,
        "program": {"purpose": "excitation for `celltwin calibrate fit`", "cell": cell,
                    "steps": len(excitation.times_s), "duration_s": options.duration_s,
                    "peak_tcp_speed_mps": excitation.peak_tcp_speed_mps,
                    "options": {key: getattr(options, key)
                                for key in options.__dataclass_fields__}},
        "files": {SETPOINTS_FILE: file_entry(data)},
    }
    manifest["manifest_sha256"] = manifest_digest(manifest)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).unlink(missing_ok=True)  # the manifest is the commit point
    atomic_write_bytes(folder / SETPOINTS_FILE, data)
    atomic_write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=2, allow_nan=False))
    return folder
