"""What a line simulation reports: :class:`LineResult` and its per-station and per-buffer parts.

Every statistic covers the measured period: on-shift time from the end of the warm-up to the
end of the last day. Shares of the station states are fractions of that on-shift time and sum
to 1 per station; off-shift time is reported apart, in hours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# Per-machine states while the line is on shift, in the order tables and plots show them.
STATES: tuple[str, ...] = ("working", "waiting", "starved", "blocked", "failed")
RESULT_FORMAT = "celltwin-line-result/1"
# Two stations whose active shares are closer than this share the bottleneck over time.
SHIFTING_MARGIN = 0.02


@dataclass(frozen=True)
class StationStats:
    """How one station spent the measured time.

    Attributes:
        name: station name.
        servers: machines working in parallel.
        state_shares: fraction of on-shift time per state (:data:`STATES`), averaged over the
            machines; sums to 1 [-].
        state_hours: hours per state per machine, plus ``off_shift`` [h].
        utilization: share of on-shift time spent working [-].
        active_share: working + failed share, the bottleneck measure [-].
        availability: working / (working + failed): share of its non-idle time a machine was
            not down [-]; 1 where it never failed.
        parts_finished: parts whose work ended in the measured period.
        failures: failures that began in the measured period.
        mean_cycle_time_s: mean work content of the parts finished, failures excluded [s].
        nominal_cycle_time_s: the mix-weighted expected cycle time from the spec [s].
        capacity_per_h: nominal parts per hour, machines x availability x 3600 / cycle [1/h].
    """

    name: str
    servers: int
    state_shares: dict[str, float]
    state_hours: dict[str, float]
    utilization: float
    active_share: float
    availability: float
    parts_finished: int
    failures: int
    mean_cycle_time_s: float | None
    nominal_cycle_time_s: float
    capacity_per_h: float


@dataclass(frozen=True)
class BufferStats:
    """Occupancy of one buffer over the measured on-shift time.

    Attributes:
        name: ``"<after>-><next>"``, or ``"source-><first>"`` for the queue of arrived parts.
        after: the station it follows (``None`` for the source queue).
        capacity: parts it holds; ``None`` is unbounded.
        mean_occupancy: time-weighted mean number of parts [-].
        max_occupancy: most parts it held at once [-].
        full_share: share of the time it was full (0 when unbounded) [-].
    """

    name: str
    after: str | None
    capacity: int | None
    mean_occupancy: float
    max_occupancy: int
    full_share: float


@dataclass(frozen=True)
class LeadTimeStats:
    """Distribution of the time parts spent in the line, release to exit [s].

    ``count`` is 0 and every other field ``None`` when no part finished.
    """

    count: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: np.ndarray) -> LeadTimeStats:
        """Summarize ``values`` [s]."""
        if len(values) == 0:
            return cls(count=0)
        p50, p90, p95 = np.percentile(values, [50, 90, 95])
        return cls(count=int(len(values)), mean=float(values.mean()), std=float(values.std()),
                   min=float(values.min()), p50=float(p50), p90=float(p90), p95=float(p95),
                   max=float(values.max()))


@dataclass(frozen=True)
class LineResult:
    """Everything one simulation run measured.

    Attributes:
        line: name of the line.
        seed: seed of the run.
        days: days simulated.
        hours_per_day: working hours per day [h].
        warmup_h: on-shift time at the start left out of every statistic [h].
        measured_h: on-shift time the statistics cover [h].
        parts_completed: parts that left the last station in the measured period.
        parts_by_product: the same, per product.
        throughput_per_h: parts completed per on-shift hour [1/h].
        takt_s: target time between finished parts, where the spec gives one [s].
        stations: per-station statistics, in flow order.
        buffers: per-buffer statistics, in flow order.
        source_queue: parts that arrived but the first station has not taken yet (``None``
            with an unlimited source).
        wip_mean: time-weighted mean number of parts in the line [-].
        lead_time_s: release to exit, counting on-shift time only [s].
        lead_time_calendar_s: release to exit on the calendar, nights included [s].
        bottlenecks: station names by decreasing active share; the first is the bottleneck.
        wall_time_s: how long the simulation took on this computer [s] (not compared).
        buffer_traces: per buffer name, the times [h, on-shift clock] and levels after each
            change, for plots (not compared, not in :meth:`to_dict`).
    """

    line: str
    seed: int
    days: int
    hours_per_day: float
    warmup_h: float
    measured_h: float
    parts_completed: int
    parts_by_product: dict[str, int]
    throughput_per_h: float
    takt_s: float | None
    stations: tuple[StationStats, ...]
    buffers: tuple[BufferStats, ...]
    source_queue: BufferStats | None
    wip_mean: float
    lead_time_s: LeadTimeStats
    lead_time_calendar_s: LeadTimeStats
    bottlenecks: tuple[str, ...]
    wall_time_s: float = field(default=0.0, compare=False)
    buffer_traces: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False)

    @property
    def bottleneck(self) -> str:
        """The station with the highest active share."""
        return self.bottlenecks[0]

    @property
    def bottleneck_margin(self) -> float | None:
        """Active share of the bottleneck minus that of the runner-up (``None``: one station)."""
        if len(self.stations) < 2:
            return None
        shares = {s.name: s.active_share for s in self.stations}
        return shares[self.bottlenecks[0]] - shares[self.bottlenecks[1]]

    @property
    def bottleneck_shifts(self) -> bool:
        """Whether the runner-up is within :data:`SHIFTING_MARGIN` of the bottleneck."""
        margin = self.bottleneck_margin
        return margin is not None and margin < SHIFTING_MARGIN

    def station(self, name: str) -> StationStats:
        """Return the statistics of station ``name``."""
        for station in self.stations:
            if station.name == name:
                return station
        raise KeyError(name)

    def to_dict(self) -> dict:
        """Plain data for JSON: every statistic, no traces."""
        data = {"format": RESULT_FORMAT}
        data.update(asdict(self))
        del data["buffer_traces"]
        data["bottleneck"] = self.bottleneck
        data["bottleneck_margin"] = self.bottleneck_margin
        data["bottleneck_method"] = ("active share: working + failed share of on-shift time, "
                                     "highest first")
        data["parts_per_day"] = self.throughput_per_h * self.hours_per_day
        return data
