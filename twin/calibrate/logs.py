"""What a controller logged, read into one shape: :class:`Log`.

Three formats, one meaning per sample ``k``: at time ``t_s[k]`` the joints were read
(``positions[k]``), then the set-point ``setpoints[k]`` was sent.

- celltwin telemetry (``.jsonl``, from ``celltwin deploy``): the header gives robot model,
  joint names and control period; each ``step`` record that sent a set-point gives the
  controller's ``stamp_s``, ``q_measured`` and ``q_command``. Runs appended to one file
  (a header each) are separate logs.
- CSV (``.csv``): a header row ``t_s``, ``setpoint_<joint>`` and ``position_<joint>`` for every
  arm joint (any column order, other columns ignored); times in seconds, angles in radians.
- NPZ (``.npz``): arrays ``t_s`` (N), ``setpoints`` and ``positions`` (N x dof),
  ``joint_names`` (dof strings), optionally ``robot_model`` (a string).

Every format goes through :func:`check_log`, the one place that refuses a log: no samples,
a value that is not finite, time that does not increase, joints or a robot that are not the
twin's. Each problem names the file and, where it has one, the line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celltwin.calibrate.errors import CalibrationError
from celltwin.core.errors import Problem

MAX_LOG_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Log:
    """One logged run of one robot.

    Attributes:
        source: the file it was read from.
        times_s: sample times [s], strictly increasing.
        setpoints: set-point sent after each read [rad], shape (N, dof).
        positions: joint positions read [rad], shape (N, dof).
        joint_names: arm joints, in column order.
        robot_model: the robot model the log names (``None`` when it names none).
        period_s: the control period the log states (``None``: taken from the times).
        lines: the file line of each sample, for locating problems (``None`` where unknown).
    """

    source: str
    times_s: np.ndarray
    setpoints: np.ndarray
    positions: np.ndarray
    joint_names: tuple[str, ...]
    robot_model: str | None = None
    period_s: float | None = None
    lines: tuple[int, ...] | None = None

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1] - self.times_s[0]) if len(self.times_s) else 0.0


def read_logs(path: str | Path) -> list[Log]:
    """Read a telemetry, CSV or NPZ log (by its suffix; see the module docstring).

    A telemetry file that several runs appended to (one header each) gives one log per run;
    a CSV or NPZ file is one log.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CalibrationError(Problem(f"log unreadable: {exc.strerror}", file=str(path))) \
            from None
    if size > MAX_LOG_BYTES:
        raise CalibrationError(Problem("log is too large", file=str(path), value=f"{size} bytes",
                                       expected=f"at most {MAX_LOG_BYTES} bytes"))
    if size == 0:
        raise CalibrationError(Problem("log is empty", file=str(path),
                                       expected="logged samples of a run"))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [_read_csv(path)]
    if suffix == ".npz":
        return [_read_npz(path)]
    return _read_telemetry(path)


def read_log(path: str | Path) -> Log:
    """The one run a log holds (:func:`read_logs` for a file that may hold several)."""
    logs = read_logs(path)
    if len(logs) != 1:
        raise CalibrationError(Problem(f"the telemetry holds {len(logs)} runs", file=str(path),
                                       expected="one run (read_logs reads each)"))
    return logs[0]


class _Run:
    """The samples of one run of a telemetry file, under its header."""

    def __init__(self, header: dict):
        self.header = header
        self.times, self.setpoints, self.positions, self.lines = [], [], [], []

    def log(self, file: str) -> Log:
        names = self.header.get("joint_names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CalibrationError(Problem("telemetry header names no joints", file=file,
                                           path="joint_names",
                                           expected="a list of joint names"))
        period = self.header.get("period_s")
        return _arrays(file, self.times, self.setpoints, self.positions, tuple(names),
                       self.header.get("robot_model"),
                       period if isinstance(period, (int, float)) else None, tuple(self.lines))


def _read_telemetry(path: Path) -> list[Log]:
    file = str(path)
    runs: list[_Run] = []
    raw_lines = path.read_bytes().split(b"\n")
    last = max((i for i, raw in enumerate(raw_lines, start=1) if raw.strip()), default=0)
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if number == last and number > 1:
                break  # a torn last line is a write cut short (as read_telemetry drops it)
            raise CalibrationError(Problem("not a telemetry line (JSON)", file=file, line=number,
                                           expected="celltwin telemetry, or a .csv/.npz log")) \
                from None
        if not isinstance(record, dict):
            raise CalibrationError(Problem("not a telemetry record", file=file, line=number,
                                           expected="a JSON object per line"))
        kind = record.get("type")
        if kind == "header":   # a run appended to the file starts here
            runs.append(_Run(record))
        elif kind == "step" and record.get("sent") and runs:
            missing = [key for key in ("stamp_s", "q_measured", "q_command") if key not in record]
            if missing:
                raise CalibrationError(Problem(f"step record lacks {', '.join(missing)}",
                                               file=file, line=number,
                                               expected="stamp_s, q_measured and q_command"))
            run = runs[-1]
            stamp, measured = _number(record["stamp_s"]), _numbers(record["q_measured"])
            if run.times and stamp == run.times[-1] and measured == run.positions[-1]:
                # The same controller sample read twice (its cycle had not ticked): one
                # sample, and the later set-point is the one the controller went on with.
                run.setpoints[-1] = _numbers(record["q_command"])
                continue
            run.times.append(stamp)
            run.setpoints.append(_numbers(record["q_command"]))
            run.positions.append(measured)
            run.lines.append(number)
    if not runs:
        raise CalibrationError(Problem("telemetry has no header record", file=file,
                                       expected="a log written by `celltwin deploy`"))
    logs = [run.log(file) for run in runs if run.times]
    return logs or [runs[0].log(file)]   # no samples at all: check_log says so


def _read_csv(path: Path) -> Log:
    file = str(path)
    text = path.read_bytes().decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise CalibrationError(Problem("log is empty", file=file, expected="a header row"))
    header = [cell.strip() for cell in rows[0]]
    names = tuple(cell[len("setpoint_"):] for cell in header if cell.startswith("setpoint_"))
    wanted = ["t_s"] + [f"{kind}_{name}" for name in names for kind in ("setpoint", "position")]
    missing = [column for column in wanted if column not in header]
    if "t_s" in header and not names:
        missing.append("setpoint_<joint>")
    if missing:
        raise CalibrationError(Problem(f"missing columns: {', '.join(missing)}", file=file,
                                       line=1, expected="t_s, and setpoint_<joint> and "
                                                        "position_<joint> for every arm joint"))
    index = {column: header.index(column) for column in wanted}
    times, setpoints, positions, lines = [], [], [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise CalibrationError(Problem(f"row has {len(row)} columns", file=file, line=number,
                                           expected=f"{len(header)} as the header"))
        try:
            values = {column: float(row[at]) for column, at in index.items()}
        except ValueError as exc:
            raise CalibrationError(Problem(f"not a number: {exc}", file=file, line=number)) \
                from None
        times.append(values["t_s"])
        setpoints.append([values[f"setpoint_{n}"] for n in names])
        positions.append([values[f"position_{n}"] for n in names])
        lines.append(number)
    return _arrays(file, times, setpoints, positions, names, None, None, tuple(lines))


def _read_npz(path: Path) -> Log:
    file = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CalibrationError(Problem(f"not an NPZ archive of plain arrays: {exc}", file=file,
                                       expected="numpy.savez output")) from None
    missing = [key for key in ("t_s", "setpoints", "positions", "joint_names")
               if key not in arrays]
    if missing:
        raise CalibrationError(Problem(f"missing arrays: {', '.join(missing)}", file=file,
                                       expected="t_s, setpoints, positions, joint_names"))
    names = tuple(str(name) for name in np.atleast_1d(arrays["joint_names"]))
    model = str(arrays["robot_model"]) if "robot_model" in arrays else None
    try:
        times = np.asarray(arrays["t_s"], dtype=float).reshape(-1)
        setpoints = np.asarray(arrays["setpoints"], dtype=float)
        positions = np.asarray(arrays["positions"], dtype=float)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(Problem(f"arrays are not numbers: {exc}", file=file)) from None
    return _arrays(file, times, setpoints, positions, names, model, None, None)


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not True else math.nan


def _numbers(values) -> list[float]:
    # Telemetry writes a non-finite number as null: it stays NaN here and is refused below.
    return [_number(v) for v in values] if isinstance(values, list) else [math.nan]


def _arrays(file, times, setpoints, positions, names, model, period, lines) -> Log:
    dof = len(names)
    problems = []
    times = np.asarray(times, dtype=float).reshape(-1)
    arrays = {}
    for what, values in (("setpoints", setpoints), ("positions", positions)):
        rows = [list(row) for row in values] if not isinstance(values, np.ndarray) else values
        if len(rows) and any(len(row) != dof for row in rows):
            problems.append(Problem(f"{what} do not have one value per joint", file=file,
                                    path=what, expected=f"{dof} values ({', '.join(names)})"))
            arrays[what] = np.zeros((0, dof))
        else:
            arrays[what] = np.asarray(rows, dtype=float).reshape(-1, dof)
    if problems:
        raise CalibrationError(problems)
    if not (len(times) == len(arrays["setpoints"]) == len(arrays["positions"])):
        raise CalibrationError(Problem("times, set-points and positions differ in length",
                                       file=file, value=[len(times), len(arrays["setpoints"]),
                                                         len(arrays["positions"])]))
    return Log(file, times, arrays["setpoints"], arrays["positions"], names,
               model if isinstance(model, str) else None, period, lines)


def check_log(log: Log, robot_model: str, joint_names: tuple[str, ...]) -> None:
    """Refuse a log the twin's robot cannot be fitted to (every problem at once).

    Raises:
        CalibrationError: no samples, another robot, other joints, a value that is not
            finite, or time that does not increase.
    """
    file = log.source
    if len(log.times_s) == 0:
        raise CalibrationError(Problem("log holds no samples", file=file,
                                       expected="steps that sent a set-point"))
    if log.robot_model is not None and log.robot_model != robot_model:
        # Its joints differ too, but that follows: one problem says what is wrong.
        raise CalibrationError(Problem(f"log is of another robot ({log.robot_model})", file=file,
                                       path="robot_model",
                                       value=log.robot_model, expected=robot_model))
    problems = []
    if tuple(log.joint_names) != tuple(joint_names):
        missing = [name for name in joint_names if name not in log.joint_names]
        extra = [name for name in log.joint_names if name not in joint_names]
        detail = (f"missing {', '.join(missing) or 'none'}; not the robot's "
                  f"{', '.join(extra) or 'none'}" if missing or extra else "in another order")
        problems.append(Problem(f"log's joints do not match the robot's ({detail})", file=file,
                                path="joint_names", value=list(log.joint_names),
                                expected=", ".join(joint_names)))
    if problems:
        raise CalibrationError(problems)
    for what, values in (("t_s", log.times_s[:, None]), ("setpoints", log.setpoints),
                         ("positions", log.positions)):
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if bad.size:
            problems.append(Problem(f"{what} are not finite at {bad.size} samples",
                                    file=file, line=_line(log, bad[0]), path=what,
                                    value=values[bad[0]].tolist(), expected="finite numbers"))
    steps = np.diff(log.times_s)
    behind = np.flatnonzero(~(steps > 0))
    if behind.size and not problems:
        at = int(behind[0]) + 1
        problems.append(Problem("time does not increase", file=file, line=_line(log, at),
                                path="t_s", value=float(log.times_s[at]),
                                expected=f"later than {float(log.times_s[at - 1])} s"))
    if problems:
        raise CalibrationError(problems)


def _line(log: Log, sample: int) -> int | None:
    return log.lines[int(sample)] if log.lines is not None else None
