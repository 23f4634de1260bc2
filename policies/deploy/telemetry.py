"""Deployment telemetry: one JSON line per control step, flushed as it is written.

Telemetry is what commissioning looks at after a run and what twin calibration fits physics
parameters to (commanded vs. actual joint positions over time), so it must survive the run
ending badly: every line is flushed to the operating system before the next control step, so a
crash of the adapter or a lost controller loses nothing that was logged; :meth:`close` (and
every stop event) also fsyncs it to disk. A reader must expect the last line cut short (power
loss mid-write): :func:`read_telemetry` drops it instead of failing.

Records (each a JSON object with a ``type``):

- ``header``: once, first: bundle, robot, joint names, control period, goal, options.
- ``step``: one per control step (see :class:`celltwin.policies.deploy.adapter.Adapter`).
- ``event``: arming, stops with their reason, re-arming, closing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


class TelemetryWriter:
    """Appends records to a JSON-lines file (``None`` path: records are dropped).

    Args:
        path: the file; its folder is created; an existing file is appended to.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._handle = None
        self.records = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _drop_torn_tail(self.path)
            self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict, sync: bool = False) -> None:
        """Write one record and flush it (``sync``: and fsync, for events that matter)."""
        if self._handle is None:
            return
        self._handle.write(json.dumps(_plain(record), separators=(",", ":"), allow_nan=False) + "\n")
        self._handle.flush()
        if sync:
            os.fsync(self._handle.fileno())
        self.records += 1

    def close(self) -> None:
        """Flush, fsync and close; idempotent."""
        if self._handle is None:
            return
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        finally:
            self._handle.close()
            self._handle = None


def _drop_torn_tail(path: Path) -> None:
    """Cut a line left half-written by a crash, so appended records start on a line of their
    own (glued to the torn one, they would make the whole file unreadable)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        handle.truncate(data.rfind(b"\n") + 1)


def read_telemetry(path: str | os.PathLike) -> list[dict]:
    """Read a telemetry file; a truncated or garbled *last* line is dropped.

    A damaged line anywhere else is not a cut-short write but a damaged file, and raises
    ``ValueError`` with its line number.
    """
    lines = Path(path).read_bytes().split(b"\n")
    records = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if number == last:
                break  # the write that was cut short
            raise ValueError(f"{path}:{number + 1}: telemetry line is damaged") from None
    return records


def steps(records: list[dict]) -> list[dict]:
    """The ``step`` records of :func:`read_telemetry`'s answer."""
    return [record for record in records if record.get("type") == "step"]


def _plain(value: Any) -> Any:
    """JSON-safe: numpy to lists and floats, non-finite numbers to null (with their name kept
    out of band would need a schema; null says 'not a number' well enough for telemetry)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
