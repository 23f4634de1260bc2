"""What a layout run measures: one record per part, robot and feed, and the run's result.

:func:`celltwin.layout.kpis.kpis` turns a :class:`RunResult` into KPIs;
:mod:`celltwin.layout.report` writes it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from celltwin.experts.pick_place import Phase
from celltwin.layout.options import RunOptions

# The expert's phases, then "posture": straightening a redundant arm's posture (see
# RunOptions.posture_drift_rad).
PHASES = (*(phase.value for phase in Phase if phase is not Phase.DONE), "posture")


@dataclass
class PartRecord:
    """The life of one part (one row of ``parts.csv``); times are simulated seconds.

    ``cycle_time_s`` is the robot's working time on the part (every attempt); ``hover_s`` the
    time a robot hovered above the intercept point waiting for it, which is starved time.
    """

    part: str
    feed: str
    arrived_s: float
    robot: str = ""
    outcome: str = "in_process"  # out, dropped, missed, in_process
    ready_s: float | None = None
    start_s: float | None = None
    done_s: float | None = None
    cycle_time_s: float | None = None
    place_error_m: float | None = None
    retries: int = 0
    collisions: int = 0
    hover_s: float = 0.0
    phase_times_s: dict[str, float] = field(default_factory=dict)

    @property
    def wait_s(self) -> float | None:
        """Time the part waited ready for a robot [s]."""
        return None if self.start_s is None or self.ready_s is None else self.start_s - self.ready_s

    @property
    def lead_time_s(self) -> float | None:
        """Arrival to leaving the cell placed [s]."""
        return None if self.outcome != "out" else self.done_s - self.arrived_s


@dataclass
class RobotRecord:
    """Time split and counts of one robot."""

    robot: str
    pick: str
    place: str
    feed: str
    busy_s: float = 0.0
    starved_s: float = 0.0
    blocked_s: float = 0.0
    cycles: int = 0
    parts_out: int = 0
    path_length_m: float = 0.0
    cycle_timeouts: int = 0
    intercepts_missed: int = 0


@dataclass
class FeedRecord:
    """Arrivals of one feed."""

    feed: str
    kind: str
    part_type: str
    arrival_interval_s: float | None
    arrivals: int = 0
    arrivals_delayed: int = 0
    delayed_s: float = 0.0


@dataclass
class RunResult:
    """Everything a run measured; :func:`celltwin.layout.kpis.kpis` turns it into KPIs."""

    cell: str
    options: RunOptions
    control_period_s: float
    sim_time_s: float
    wall_time_s: float
    parts: list[PartRecord]
    robots: list[RobotRecord]
    feeds: list[FeedRecord]
    events: list = field(default_factory=list)
    min_clearance_m: dict[str, dict[str, float]] = field(default_factory=dict)
    stopped_by: str = "done"   # done, max_sim_s, or stalled (nothing moved for a while)

    @property
    def real_time_factor(self) -> float:
        return self.sim_time_s / self.wall_time_s if self.wall_time_s > 0 else math.inf
