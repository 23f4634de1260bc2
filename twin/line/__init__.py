"""Line planning: a serial production line as a discrete-event model (SimPy).

``load_line("two_station")`` loads a shipped example, ``load_line(path)`` a file of your own;
``simulate(spec, seed)`` runs it over its shift calendar and returns a :class:`LineResult`
(throughput, time split per station, buffer occupancy, bottleneck ranking, lead times).
Every problem in a line file is reported at once as a :class:`LineSpecError`. The format and
the meaning of each statistic are documented in ``docs/line.md``.
"""

from celltwin.line.distributions import DIST_NAMES, Distribution, Sampler
from celltwin.line.loader import load_line, parse_line, shipped_line_names, validate_line_data
from celltwin.line.report import write_run
from celltwin.line.result import (STATES, BufferStats, LeadTimeStats, LineResult, StationStats)
from celltwin.line.simulation import simulate
from celltwin.line.spec import (BufferSpec, LineSpec, LineSpecError, ProductSpec, ShiftSpec,
                                SourceSpec, StationSpec)

__all__ = [
    "DIST_NAMES", "STATES", "BufferSpec", "BufferStats", "Distribution", "LeadTimeStats",
    "LineResult", "LineSpec", "LineSpecError", "ProductSpec", "Sampler", "ShiftSpec",
    "SourceSpec", "StationSpec", "StationStats", "load_line", "parse_line",
    "shipped_line_names", "simulate", "validate_line_data", "write_run",
]
