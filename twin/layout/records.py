"""The data of a layout run: its settings (:class:`RunOptions`) and what it measured.

What is measured is one record per part, robot and feed, gathered in a :class:`RunResult`;
:func:`celltwin.layout.kpis.kpis` turns that into KPIs and :mod:`celltwin.layout.report`
writes it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from celltwin.core.errors import Problem
from celltwin.experts.pick_place import Phase
from celltwin.layout.jobs import LayoutError

MAX_PARTS = 100_000  # a bound on typing mistakes, not on the simulation


@dataclass(frozen=True)
class RunOptions:
    """Settings of a layout run.

    Attributes:
        parts: parts fed into the cell in all [-].
        max_sim_s: stop after this much simulated time [s]; ``None``: 60 s plus 30 s (or two
            arrival intervals, if longer) per part.
        spacing_m: distance between two parts on a belt; sets the arrival interval [m].
        arrival_interval_s: time between arrivals, overriding ``spacing_m`` [s]; for bins,
            ``None`` refills as soon as the previous part is carried off.
        pick: name of the pick target to use (default: see :mod:`celltwin.layout.jobs`).
        place: name of the place target to use.
        pick_window_m: how close to its pick target a part must be for a robot to take it [m].
        intercept_horizon_s: a robot takes a part moving towards its pick target once the
            part is due there within this time [s].
        descend_lead_s: hovering above the intercept point, the robot starts down when the
            part is due there within this time, so that the fingers close around it [s].
        place_tolerance_m: horizontal distance to the goal that counts as placed [m].
        near_miss_m: distance below which a robot link's approach is a near miss [m].
        max_cycle_s: give up a cycle after this long [s].
        max_retries: picks of one part that may fail before it counts as dropped [-].
        multibody_parts: build parts exactly as a world does (one-link multibodies) instead
            of as rigid bodies in maximal coordinates, which simulate about 20 % faster (see
            :mod:`celltwin.layout.pool`).
        posture_drift_rad: the end-effector controller moves the TCP and leaves a redundant
            arm's posture free, so the posture wanders from move to move, up to joint limits
            where the arm gets stuck. Above the part (before descending) and after each
            cycle, when a joint is further than this from the posture inverse kinematics gives
            for the same TCP pose (starting from home), the robot first moves there in joint
            space ("posture" phase of the cycle) [rad].
        policy: what works the cell: ``expert`` (the scripted pick-and-place expert), or the
            name of a learned policy (an exported bundle's folder) given to the run with it.
        allow_overlap: run a cell whose bodies overlap as built (refused by default:
            Bullet lets fixed bodies interpenetrate, so such a run measures an impossible cell).
    """

    parts: int = 10
    max_sim_s: float | None = None
    spacing_m: float = 0.4
    arrival_interval_s: float | None = None
    pick: str | None = None
    place: str | None = None
    pick_window_m: float = 0.06
    intercept_horizon_s: float = 3.0
    descend_lead_s: float = 0.45
    place_tolerance_m: float = 0.03
    near_miss_m: float = 0.01
    max_cycle_s: float = 30.0
    max_retries: int = 2
    posture_drift_rad: float = 0.3
    multibody_parts: bool = False
    policy: str = "expert"
    allow_overlap: bool = False


def check_options(options: RunOptions, *, policy_given: bool = False) -> None:
    """Raise LayoutError with every bad setting of ``options`` (``policy_given``: a learned
    policy object comes with them, which ``options.policy`` names)."""
    problems = []
    if (options.policy == "expert") == policy_given:
        problems.append(Problem(f"policy '{options.policy}' " + (
            "is the scripted expert, but a learned policy was given" if policy_given
            else "is not the scripted expert, and no learned policy was given"),
            path="--policy", value=options.policy,
            expected="expert, or a bundle folder with its policy"))
    if not 1 <= options.parts <= MAX_PARTS:
        problems.append(Problem(f"cannot feed {options.parts} parts", path="--parts",
                                value=options.parts, expected=f"1 to {MAX_PARTS}"))
    for name in ("max_sim_s", "spacing_m", "arrival_interval_s", "pick_window_m",
                 "posture_drift_rad",
                 "place_tolerance_m", "near_miss_m", "max_cycle_s", "intercept_horizon_s",
                 "descend_lead_s"):
        value = getattr(options, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            problems.append(Problem(f"{name} must be a positive number",
                                    path=f"--{name.replace('_', '-')}", value=value,
                                    expected="a finite number > 0"))
    if problems:
        raise LayoutError(problems)


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
