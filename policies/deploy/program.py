"""A set-point program: joint set-points per control period, played through the safety layer.

``celltwin calibrate excite`` writes one (an excitation trajectory for identifying the twin's
physics); ``celltwin deploy PROGRAM`` plays it against any controller exactly as it runs a
policy bundle: armed explicitly, every set-point through the :class:`SafetyLayer`, the same
watchdog and stops, one telemetry line per step with the set-point sent (``q_command``) and the
joints read (``q_measured``). Only the source of the set-points differs, so a program is an
:class:`~celltwin.policies.deploy.adapter.Adapter` whose policy is a table.

A program folder holds ``manifest.json`` (``format: celltwin.set-point-program``, the robot
and safety sections of a bundle manifest, the control period, and the SHA-256 of every file)
and ``setpoints.csv`` (a header ``t_s,<joint names>``, then one row per control period [s],
[rad]). numpy only: it runs on a controller PC.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from celltwin.controller.errors import ControllerError
from celltwin.core.errors import Problem
from celltwin.policies.bundle import check_compatible
from celltwin.policies.deploy.adapter import Adapter, RunSummary
from celltwin.policies.deploy.observer import Observation
from celltwin.policies.deploy.safety import SafetyLayer, SafetyLimits
from celltwin.policies.errors import BundleError
from celltwin.policies.kinematics import KinematicChain
from celltwin.policies.manifest import MANIFEST_FILE, manifest_digest, parse_manifest

FORMAT = "celltwin.set-point-program"
SCHEMA_VERSION = 1
SETPOINTS_FILE = "setpoints.csv"
MAX_PROGRAM_BYTES = 64 * 1024 * 1024   # an hour at 100 Hz for 7 joints is about 20 MB


def is_program(folder: str | os.PathLike) -> bool:
    """Whether ``folder``'s manifest says it is a set-point program (not a policy bundle)."""
    path = Path(folder) / MANIFEST_FILE
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    return f'"format": "{FORMAT}"'.encode() in head


class Program:
    """A loaded and verified set-point program.

    Attributes:
        folder: where it was read from.
        manifest: its manifest.
        times_s: time of each set-point from the start [s].
        setpoints: joint set-points, one row per control period [rad].
    """

    def __init__(self, folder: Path, manifest: dict, times_s: np.ndarray, setpoints: np.ndarray):
        self.folder = folder
        self.manifest = manifest
        self.times_s = times_s
        self.setpoints = setpoints

    @property
    def period_s(self) -> float:
        """Control period the set-points are spaced by [s]."""
        return float(self.manifest["control"]["period_s"])


def load_program(folder: str | os.PathLike) -> Program:
    """Read a program folder, checking its digest, its files' SHA-256 and its set-points.

    Raises:
        BundleError: a missing or modified file, or set-points that do not fit the robot.
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    try:
        text = path.read_bytes()[:MAX_PROGRAM_BYTES].decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(Problem(f"program manifest unreadable: {exc}", file=str(path),
                                  expected="a manifest written by `celltwin calibrate "
                                           "excite`")) from None
    manifest = parse_manifest(text, file=str(path))
    problems = _manifest_problems(manifest, str(path))
    if problems:
        raise BundleError(problems)
    entry = manifest["files"][SETPOINTS_FILE]
    data_path = folder / SETPOINTS_FILE
    try:
        data = data_path.read_bytes()
    except OSError as exc:
        raise BundleError(Problem(f"set-points unreadable: {exc.strerror}",
                                  file=str(data_path))) from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise BundleError(Problem("set-points were modified after they were written "
                                  "(SHA-256 mismatch)", file=str(data_path),
                                  path=f"files.{SETPOINTS_FILE}"))
    times, setpoints = _table(data, manifest, str(data_path))
    return Program(folder, manifest, times, setpoints)


def _manifest_problems(manifest, file: str) -> list[Problem]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return [Problem("not a set-point program", file=file, path="format",
                        value=manifest.get("format") if isinstance(manifest, dict) else None,
                        expected=FORMAT)]
    problems = []
    for key in ("robot", "control", "safety", "files", "manifest_sha256"):
        if key not in manifest:
            problems.append(Problem("missing field", file=file, path=key))
    if problems:
        return problems
    if manifest_digest(manifest) != manifest["manifest_sha256"]:
        problems.append(Problem("manifest was modified after it was written (its digest does "
                                "not match)", file=file, path="manifest_sha256"))
    if SETPOINTS_FILE not in manifest["files"]:
        problems.append(Problem("the program lists no set-points", file=file, path="files",
                                expected=SETPOINTS_FILE))
    period = manifest["control"].get("period_s")
    if not isinstance(period, (int, float)) or not 0 < period < 10:
        problems.append(Problem("control period is invalid", file=file,
                                path="control.period_s", value=period,
                                expected="a period in (0, 10) [s]"))
    return problems


def _table(data: bytes, manifest: dict, file: str) -> tuple[np.ndarray, np.ndarray]:
    names = list(manifest["robot"]["joint_names"])
    text = data.decode("utf-8", errors="replace")
    header = text.split("\n", 1)[0].strip().split(",")
    if header != ["t_s", *names]:
        raise BundleError(Problem("set-point columns do not match the robot's joints", file=file,
                                  line=1, value=header, expected=",".join(["t_s", *names])))
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, ndmin=2)
    safety = manifest["safety"]
    lower = np.asarray(safety["joint_position_lower_rad"], dtype=float)
    upper = np.asarray(safety["joint_position_upper_rad"], dtype=float)
    q = table[:, 1:]
    if (table.shape[0] < 2 or not np.isfinite(table).all()
            or np.any(q < lower - 1e-9) or np.any(q > upper + 1e-9)):
        raise BundleError(Problem("set-points are not finite rows within the joint limits",
                                  file=file, expected="at least 2 rows within "
                                  "safety.joint_position_*_rad"))
    return table[:, 0], q


class _ProgramObserver:
    """The adapter's observer for a program: the measured TCP (FK) and gripper opening; the
    program's set-point table stands where a policy's input would."""

    def __init__(self, chain: KinematicChain):
        self.chain = chain
        self.gripper_width_m: float | None = None
        self.rewind = lambda: None

    def reset(self) -> None:
        """Arming: the program restarts from its first set-point."""
        self.rewind()

    def observe(self, state, goal: np.ndarray) -> Observation:
        position, rotation = self.chain.fk(np.asarray(state.joint_positions, dtype=float))
        self.gripper_width_m = state.gripper_width_m
        return Observation(np.zeros(0, dtype=np.float32), position, position, rotation)


class _TablePolicy:
    """The "policy" of a program: the next row of its set-points, and the gripper held at the
    opening it was measured at (a program moves the arm only)."""

    def __init__(self, setpoints: np.ndarray, observer: _ProgramObserver,
                 width_range: tuple[float, float]):
        self.setpoints = setpoints
        self.observer = observer
        self.width_range = width_range
        self.row = 0

    def rewind(self) -> None:
        self.row = 0

    def __call__(self, _vector: np.ndarray) -> np.ndarray:
        if self.row >= len(self.setpoints):
            raise ControllerError(Problem("the program has no set-points left",
                                          expected="as many steps as it has rows"))
        closed, opened = self.width_range
        width = self.observer.gripper_width_m
        # Held where it is: a reading a hair outside the range (fingers jitter) is not a
        # command to clip and flag.
        width = closed if width is None else min(max(width, closed), opened)
        action = np.append(self.setpoints[self.row], width)
        self.row += 1
        return action


class ProgramAdapter(Adapter):
    """Plays a :class:`Program` against a controller through the safety layer.

    An :class:`Adapter` in every respect (arming, watchdog, stops, pacing, telemetry) whose
    policy is the program's table in ``joint_position`` mode. A step's ``distance_m`` is the
    TCP's distance from its home position; a program never ends on "success".

    Args:
        program: the program (or its folder).
        controller: anything implementing the controller interface.
        telemetry: JSON-lines file to append one record per step to.
        reduced_mode: cap TCP speed at the manifest's reduced-mode speed.
        dry_run: do everything but send set-points.
        paced: keep real time (``False``: lock-step controllers, steps back to back).
        protective_stop_on_fault: as the :class:`Adapter`'s.
    """

    def __init__(self, program: Program | str | os.PathLike, controller, *,
                 telemetry: str | os.PathLike | None = None, reduced_mode: bool = False,
                 dry_run: bool = False, paced: bool = True,
                 protective_stop_on_fault: bool = True):
        # The Adapter's constructor loads an ONNX policy; a program sets the same state itself.
        self.program = program if isinstance(program, Program) else load_program(program)
        manifest = self.program.manifest
        check_compatible(manifest, controller)
        self.controller = controller
        self.manifest = manifest
        robot = manifest["robot"]
        self.chain = KinematicChain.from_manifest(robot["kinematics"], robot["joint_names"])
        self.observer = _ProgramObserver(self.chain)
        self.policy = _TablePolicy(self.program.setpoints, self.observer,
                                   tuple(float(w) for w in robot["gripper"]["width_range_m"]))
        self.observer.rewind = self.policy.rewind
        self.period_s = self.program.period_s
        self.limits = SafetyLimits.from_manifest(manifest)
        self.safety = SafetyLayer(self.limits, self.chain, self.period_s, reduced_mode)
        self.mode = "joint_position"
        self.arm_size = len(robot["joint_names"])
        self.ik_damping = 0.0
        self.tcp_rotation = None
        self.threshold_m = 0.0   # distance < 0 never holds: no early end
        self.stale_periods = int(manifest["safety"]["stale_state_periods"])
        self.goal = self.chain.fk(np.asarray(robot["home_rad"], dtype=float))[0]
        self.open_run(telemetry, reduced_mode=reduced_mode, dry_run=dry_run, paced=paced,
                       protective_stop_on_fault=protective_stop_on_fault,
                       header={"program": str(self.program.folder), "kind": "trajectory"})

    def play(self) -> RunSummary:
        """Arm, send every set-point once, and stop: the whole program as one run."""
        self.rearm()
        summary = self.run(len(self.program.setpoints), stop_on_success=False)
        self.stop("program finished")
        return summary
