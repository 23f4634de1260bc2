"""The feeds of a layout run: parts arriving, waiting to be picked, falling off unpicked.

A belt feed brings a part every ``spacing_m / |speed_mps|`` seconds (or
``arrival_interval_s``); a bin or fixture feed brings the next part as soon as the previous
one has been lifted out (or every ``arrival_interval_s``). Parts arrive at their spawn
region's centre; an arrival whose spot is still taken waits (counted as delayed). A part on a
feed that falls 10 cm below its arrival height unpicked is *missed*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from celltwin.core.errors import Problem
from celltwin.layout.jobs import Feed, Job, LayoutError
from celltwin.layout.pool import PartSpawner, spawn_pose
from celltwin.layout.records import FeedRecord, PartRecord, RunOptions


@dataclass
class FeedState:
    """One feed during a run.

    Attributes:
        feed: the feed.
        interval_s: time between arrivals; ``None``: the next part arrives once the previous
            one has been carried off [s].
        position: where its parts arrive (world frame) [m].
        yaw_rad: their yaw on arrival [rad].
        body: the body its parts rest on (a belt, a bin, a fixture).
        record: its arrival counts.
        spot_m: a part closer than this to ``position`` keeps the next one from arriving [m].
        next_s: when the next part is due [s].
        due_since_s: since when an arrival has waited for its spot (``None``: none waits) [s].
    """

    feed: Feed
    interval_s: float | None
    position: np.ndarray
    yaw_rad: float
    body: int
    record: FeedRecord
    spot_m: float
    next_s: float = 0.0
    due_since_s: float | None = None


class Arrivals:
    """Brings the parts of every feed of a run, and keeps them until a robot takes them.

    Args:
        world: the run world.
        jobs: the robots' jobs; each distinct feed of theirs brings parts.
        pool: builds and removes the parts.
        options: the run's settings (``spacing_m``, ``arrival_interval_s``).

    Attributes:
        feeds: feed name -> its :class:`FeedState`.
        queued: feed name -> the parts that arrived on it and no robot has taken, oldest first.
        records: part name -> the :class:`PartRecord` of every part that arrived.

    Raises:
        LayoutError: a belt feed whose conveyor stands still, with no arrival interval.
    """

    def __init__(self, world, jobs: list[Job], pool: PartSpawner, options: RunOptions):
        self.pool = pool
        self._pose = world.client.getBasePositionAndOrientation
        self.feeds: dict[str, FeedState] = {}
        for job in jobs:
            feed = job.feed
            if feed.name in self.feeds:
                continue
            interval = options.arrival_interval_s
            if interval is None and feed.kind == "belt":
                speed = abs(world.conveyors[feed.conveyor].speed_mps)
                if speed == 0:
                    raise LayoutError(Problem(
                        f"conveyor '{feed.conveyor}' stands still (speed_mps 0): parts on it "
                        "never arrive", path="--arrival-interval-s",
                        expected="a moving belt, or an arrival interval with parts placed at "
                                 "the pick target"))
                interval = options.spacing_m / speed
            position, yaw = spawn_pose(world, feed)
            self.feeds[feed.name] = FeedState(
                feed, interval, np.asarray(position), yaw, world.bodies[feed.region.on],
                FeedRecord(feed.name, feed.kind, feed.part.name, interval),
                footprint_m(feed.part))
        self.queued: dict[str, list[str]] = {name: [] for name in self.feeds}
        self.records: dict[str, PartRecord] = {}

    @property
    def longest_interval_s(self) -> float:
        """The longest time between two arrivals of a feed (0 for bins refilled at once) [s]."""
        return max((state.interval_s or 0.0) for state in self.feeds.values())

    def arrive(self, now: float, worked_low: set[str]) -> bool:
        """Bring the parts due at ``now``; whether any arrived.

        Args:
            now: simulated time [s].
            worked_low: feeds where a robot still has its part low in the feed: a bin is not
                refilled then, the new part would land under its gripper.
        """
        arrived = False
        for name, state in self.feeds.items():
            if not self.pool.remaining[name] or now < state.next_s - 1e-9:
                continue
            if state.interval_s is None and (self.queued[name] or name in worked_low):
                continue  # a bin is refilled once its part has been carried off
            if self._spot_taken(state):
                if state.due_since_s is None:
                    state.due_since_s = now
                    state.record.arrivals_delayed += 1
                continue
            if state.due_since_s is not None:
                state.record.delayed_s += now - state.due_since_s
                state.due_since_s = None
            part = self.pool.release(name, state.position, state.yaw_rad)
            self.records[part] = PartRecord(part, name, now)
            self.queued[name].append(part)
            state.record.arrivals += 1
            arrived = True
            if state.interval_s is not None:
                state.next_s = max(state.next_s + state.interval_s, now)
        return arrived

    def check_fallen(self, now: float) -> None:
        """Count the queued parts that fell off their feed as missed, and clear them away."""
        for name, queued in self.queued.items():
            floor = self.feeds[name].position[2] - 0.1
            for part in list(queued):
                if self._pose(self.pool.body(part))[0][2] < floor:
                    queued.remove(part)
                    self.records[part].outcome = "missed"
                    self.records[part].done_s = now
                    self.pool.remove(part)

    def _spot_taken(self, state: FeedState) -> bool:
        for part in self.pool.live:
            position = self._pose(self.pool.body(part))[0]
            if np.linalg.norm(np.subtract(position, state.position)) < state.spot_m:
                return True
        return False


def footprint_m(part) -> float:
    """Centre distance below which two parts of this type would overlap [m]."""
    if part.shape == "box":
        return float(math.hypot(part.size_m[0], part.size_m[1]))
    return 2.0 * float(part.radius_m)
