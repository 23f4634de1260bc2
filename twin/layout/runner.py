"""`layout run`: a cell in physics, fed with parts, worked by the scripted expert, measured.

The loop, one control step at a time (``World.step``):

1. **Arrivals.** Each feed brings its next pool part to its spawn region's centre. A belt feed
   brings one every ``spacing_m / |speed_mps|`` seconds (or ``arrival_interval_s``); a bin or
   fixture feed brings the next part as soon as the previous one has been carried off (or
   every ``arrival_interval_s``). An arrival whose spot is still taken waits (counted).
2. **Assignment.** An idle robot takes the unassigned part of its feed nearest its pick target
   once that part is within ``pick_window_m`` of it (horizontally, and within 5 cm in height):
   resting against an end stop, waiting in a bin, or passing on a belt (then the expert aims
   ``lead_s`` ahead of it).
3. **Work.** Each working robot's :class:`~policies.scripted.pick_place.PickPlaceExpert` turns
   TCP, part and goal (the place target) into one end-effector-delta action, applied once per
   step through ``robots.controllers`` (positions given in the robot's base frame, the frame
   of the action). Idle robots are not commanded: they hold where they are.
4. **Outcome.** When the expert is done, the part is *out* if it lies within
   ``place_tolerance_m`` of the goal horizontally and no higher than 1 cm above it (then it
   leaves the cell with the outfeed); still in the pick window, the pick is retried (up to
   ``max_retries``); anywhere else it is *dropped* and cleared away. A part on a feed that
   falls 10 cm below its arrival height without being picked is *missed*.

Time of every robot is *busy* (working on a part), *starved* (no part ready for it) or
*blocked* (holding a finished part it cannot put down; the outfeed here takes every part,
so always 0): they sum to the simulated time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from policies.scripted.pick_place import Phase, PickPlaceExpert
from robots.controllers import make_controller
from twin.check import target_pose
from twin.layout.jobs import Job, LayoutError, find_jobs
from twin.layout.monitor import RobotMonitor
from twin.layout.pool import PartPool, run_cell, spawn_pose
from twin.errors import Problem
from twin.spec import CellSpec

PHASES = tuple(phase.value for phase in Phase if phase is not Phase.DONE)
MAX_PARTS = 1000  # a part type holds at most 1000 bodies


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
        pick: name of the pick target to use (default: see :mod:`twin.layout.jobs`).
        place: name of the place target to use.
        pick_window_m: how close to its pick target a part must be for a robot to take it [m].
        lead_s: how far ahead of a moving part the expert aims [s].
        place_tolerance_m: horizontal distance to the goal that counts as placed [m].
        near_miss_m: distance below which a robot link's approach is a near miss [m].
        max_cycle_s: give up a cycle after this long [s].
        max_retries: picks of one part that may fail before it counts as dropped [-].
        policy: the policy working the cell; ``expert`` (the scripted pick-and-place expert).
    """

    parts: int = 10
    max_sim_s: float | None = None
    spacing_m: float = 0.3
    arrival_interval_s: float | None = None
    pick: str | None = None
    place: str | None = None
    pick_window_m: float = 0.06
    lead_s: float = 0.3
    place_tolerance_m: float = 0.03
    near_miss_m: float = 0.01
    max_cycle_s: float = 30.0
    max_retries: int = 2
    policy: str = "expert"


@dataclass
class PartRecord:
    """The life of one part (one row of ``parts.csv``); times are simulated seconds."""

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
    """Everything a run measured; :func:`twin.layout.kpis.kpis` turns it into KPIs."""

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
    stopped_by: str = "done"   # done or max_sim_s

    @property
    def real_time_factor(self) -> float:
        return self.sim_time_s / self.wall_time_s if self.wall_time_s > 0 else math.inf


class _Worker:
    """One robot with its controller, expert and current cycle."""

    def __init__(self, world, job: Job, monitor: RobotMonitor, options: RunOptions):
        self.job = job
        self.robot = world.robots[job.robot]
        self.controller = make_controller("ee_delta", self.robot)
        self.expert = PickPlaceExpert(action_scale_m=self.controller.scale_m)
        self.monitor = monitor
        self.pick_position = target_pose(world, job.pick)[0]
        self.goal = target_pose(world, job.place)[0]
        rotation = np.array(world.client.getMatrixFromQuaternion(
            self.robot.base_quat_xyzw.tolist())).reshape(3, 3)
        self._to_base = rotation.T
        self._base = self.robot.base_xyz.copy()
        self.goal_in_base = self._to_base @ (self.goal - self._base)
        self.record = RobotRecord(job.robot, job.pick.name, job.place.name, job.feed.name)
        self.part: PartRecord | None = None
        self.body: int | None = None
        self.start_step = 0
        self.last_ee: np.ndarray | None = None

    def in_base(self, position) -> np.ndarray:
        return self._to_base @ (np.asarray(position) - self._base)

    def direction_in_base(self, vector) -> np.ndarray:
        return self._to_base @ np.asarray(vector)


def run_layout(cell: CellSpec, options: RunOptions = RunOptions(), *, physics=None,
               progress=None) -> RunResult:
    """Run ``cell`` with ``options.parts`` parts and return what was measured.

    Args:
        cell: the cell.
        options: run settings.
        physics: physics overrides (a :class:`twin.physics.PhysicsParams`) applied after building.
        progress: optional callback ``progress(sim_s, parts_done, parts)``, called about twice a
            second of wall time.

    Raises:
        LayoutError: no robot has a job, bad options, a belt that does not move.
    """
    from twin.world import World

    _check_options(options)
    jobs = find_jobs(cell, options.pick, options.place)
    spec, pools = run_cell(cell, jobs, options.parts)
    with World(spec, physics=physics) as world:
        return _Run(world, jobs, pools, options, cell.name, progress).run()


def _check_options(options: RunOptions) -> None:
    problems = []
    if options.policy != "expert":
        problems.append(Problem(f"unknown policy '{options.policy}'", path="--policy",
                                value=options.policy, expected="expert"))
    if not 1 <= options.parts <= MAX_PARTS:
        problems.append(Problem(f"cannot feed {options.parts} parts", path="--parts",
                                value=options.parts, expected=f"1 to {MAX_PARTS}"))
    for name in ("max_sim_s", "spacing_m", "arrival_interval_s", "pick_window_m",
                 "place_tolerance_m", "near_miss_m", "max_cycle_s"):
        value = getattr(options, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            problems.append(Problem(f"{name} must be a positive number", path=f"--{name.replace('_', '-')}",
                                    value=value, expected="a finite number > 0"))
    if problems:
        raise LayoutError(problems)


class _Run:
    """The state of one run; :meth:`run` steps it to the end."""

    def __init__(self, world, jobs, pools, options: RunOptions, cell_name: str, progress):
        self.world = world
        self.options = options
        self.cell_name = cell_name
        self.progress = progress
        self.dt = world.control_period_s
        self.pool = PartPool(world, pools)
        client = world.client
        self._pose = client.getBasePositionAndOrientation
        self._velocity = client.getBaseVelocity
        obstacles = [name for name in world.bodies if name not in world.parts]
        self.workers = [_Worker(world, job, RobotMonitor(
            world, job.robot, [name for name in obstacles if name != job.robot],
            options.near_miss_m), options) for job in jobs]
        self.feeds = {}
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
            self.feeds[feed.name] = {
                "feed": feed, "interval": interval, "position": np.asarray(position), "yaw": yaw,
                "next_s": 0.0, "due_since": None,
                "record": FeedRecord(feed.name, feed.kind, feed.part.name, interval),
                "spot_m": _footprint_m(feed.part)}
        self.records: dict[str, PartRecord] = {}
        self.queued: dict[str, list[str]] = {name: [] for name in self.feeds}
        total = sum(len(names) for names in pools.values())
        self.total = total
        self.max_sim_s = options.max_sim_s or 60.0 + total * max(
            30.0, 2 * max((f["interval"] or 0.0) for f in self.feeds.values()))
        self.steps = 0

    # ------------------------------------------------------------------------------ loop
    def run(self) -> RunResult:
        world, dt = self.world, self.dt
        step = world.step
        started = time.perf_counter()
        next_report = started + 0.5
        stopped_by = "done"
        while True:
            now = self.steps * dt
            self._arrivals(now)
            self._mark_ready(now)
            for worker in self.workers:
                if worker.part is None:
                    self._assign(worker, now)
                if worker.part is not None:
                    self._act(worker)
                    worker.record.busy_s += dt
                else:
                    worker.record.starved_s += dt
            step()
            self.steps += 1
            now = self.steps * dt
            live = list(self.pool.live)
            for worker in self.workers:
                began = worker.monitor.update(now, dt, worker.body, live, worker.part is not None)
                if worker.part is not None:
                    worker.part.collisions += began
                    if worker.expert.phase is Phase.DONE:
                        self._finish(worker, now, timed_out=False)
                    elif (self.steps - worker.start_step) * dt >= self.options.max_cycle_s:
                        self._finish(worker, now, timed_out=True)
            if self.steps % 5 == 0:
                self._check_fallen(now)
            if self._all_done():
                break
            if now >= self.max_sim_s:
                stopped_by = "max_sim_s"
                break
            if self.progress is not None and time.perf_counter() >= next_report:
                next_report = time.perf_counter() + 0.5
                self.progress(now, self._resolved(), self.total)
        wall = time.perf_counter() - started
        if self.progress is not None:
            self.progress(self.steps * dt, self._resolved(), self.total)
        events = [event for worker in self.workers for event in worker.monitor.events]
        return RunResult(
            self.cell_name, self.options, dt, self.steps * dt, wall,
            sorted(self.records.values(), key=lambda r: r.arrived_s),
            [worker.record for worker in self.workers],
            [feed["record"] for feed in self.feeds.values()],
            sorted(events, key=lambda e: e.start_s),
            {worker.job.robot: dict(worker.monitor.min_clearance_m) for worker in self.workers},
            stopped_by)

    # ------------------------------------------------------------------------------ arrivals
    def _arrivals(self, now: float) -> None:
        for name, feed in self.feeds.items():
            waiting = self.pool.waiting[name]
            if not waiting or now < feed["next_s"] - 1e-9:
                continue
            if feed["interval"] is None and not self._feed_empty(name):
                continue  # a bin is refilled once its part has been carried off
            if self._spot_taken(name, feed):
                if feed["due_since"] is None:
                    feed["due_since"] = now
                    feed["record"].arrivals_delayed += 1
                continue
            if feed["due_since"] is not None:
                feed["record"].delayed_s += now - feed["due_since"]
                feed["due_since"] = None
            part = waiting[0]
            self.pool.release(part, feed["position"], feed["yaw"])
            self.records[part] = PartRecord(part, name, now)
            self.queued[name].append(part)
            feed["record"].arrivals += 1
            if feed["interval"] is not None:
                feed["next_s"] = max(feed["next_s"] + feed["interval"], now)

    def _feed_empty(self, feed: str) -> bool:
        if self.queued[feed]:
            return False
        # Not while a robot still has the last part low in the bin: the new one would land
        # under its gripper.
        return not any(w.part is not None and w.part.feed == feed
                       and w.expert.phase in (Phase.APPROACH, Phase.DESCEND, Phase.GRASP,
                                              Phase.LIFT) for w in self.workers)

    def _spot_taken(self, name: str, feed: dict) -> bool:
        for part in self.pool.live:
            position = self._pose(self.pool.parts[part].body_id)[0]
            if np.linalg.norm(np.subtract(position, feed["position"])) < feed["spot_m"]:
                return True
        return False

    # ------------------------------------------------------------------------------ robots
    def _mark_ready(self, now: float) -> None:
        # A part is ready from the first moment it lies in a pick window of its feed, whether
        # or not a robot is free: the wait for a robot is part of its lead time.
        for worker in self.workers:
            for part in self.queued[worker.job.feed.name]:
                record = self.records[part]
                if record.ready_s is None and self._in_window(
                        worker, self._pose(self.pool.parts[part].body_id)[0]):
                    record.ready_s = now

    def _assign(self, worker: _Worker, now: float) -> None:
        best, best_distance = None, math.inf
        target = worker.pick_position
        for part in self.queued[worker.job.feed.name]:
            position = self._pose(self.pool.parts[part].body_id)[0]
            if not self._in_window(worker, position):
                continue
            horizontal = math.hypot(position[0] - target[0], position[1] - target[1])
            if horizontal < best_distance:
                best, best_distance = part, horizontal
        if best is None:
            return
        self.queued[worker.job.feed.name].remove(best)
        record = self.records[best]
        record.robot = worker.job.robot
        if record.start_s is None:  # a retried pick keeps its first start and adds its time
            record.start_s = now
        worker.part = record
        worker.body = self.pool.parts[best].body_id
        worker.start_step = self.steps
        worker.expert.reset()
        worker.last_ee = None

    def _act(self, worker: _Worker) -> None:
        ee = worker.robot.ee_pose()[0]
        if worker.last_ee is not None:
            worker.record.path_length_m += float(np.linalg.norm(ee - worker.last_ee))
        worker.last_ee = ee
        position = self._pose(worker.body)[0]
        velocity = None
        if worker.expert.phase in (Phase.APPROACH, Phase.DESCEND, Phase.GRASP):
            linear = self._velocity(worker.body)[0]
            if linear[0] * linear[0] + linear[1] * linear[1] > 1e-4:  # moving > 1 cm/s
                velocity = worker.direction_in_base(linear)
        phase = worker.expert.phase.value
        action = worker.expert.act(worker.in_base(ee), worker.in_base(position),
                                   worker.goal_in_base, velocity, self.options.lead_s)
        worker.controller.apply(action)
        times = worker.part.phase_times_s
        times[phase] = times.get(phase, 0.0) + self.dt

    def _finish(self, worker: _Worker, now: float, *, timed_out: bool) -> None:
        record, options = worker.part, self.options
        position = np.asarray(self._pose(worker.body)[0])
        error = float(math.hypot(*(position[:2] - worker.goal[:2])))
        placed = (not timed_out and error < options.place_tolerance_m
                  and worker.goal[2] - 0.1 < position[2] <= worker.goal[2] + 0.01)
        worker.record.cycles += 1
        worker.record.cycle_timeouts += int(timed_out)
        record.done_s = now
        record.cycle_time_s = (record.cycle_time_s or 0.0) + (self.steps - worker.start_step) * self.dt
        record.place_error_m = error
        if placed:
            record.outcome = "out"
            worker.record.parts_out += 1
            self.pool.remove(record.part)
        elif self._in_window(worker, position) and record.retries < options.max_retries:
            record.retries += 1  # the grasp missed: the part is still there, try again
            record.robot = ""
            self.queued[record.feed].insert(0, record.part)
        else:
            record.outcome = "dropped"
            self.pool.remove(record.part)
        worker.part = None
        worker.body = None
        worker.expert.reset()

    def _in_window(self, worker: _Worker, position) -> bool:
        target = worker.pick_position
        return (math.hypot(position[0] - target[0], position[1] - target[1])
                <= self.options.pick_window_m and abs(position[2] - target[2]) <= 0.05)

    def _check_fallen(self, now: float) -> None:
        for name, queued in self.queued.items():
            floor = self.feeds[name]["position"][2] - 0.1
            for part in list(queued):
                if self._pose(self.pool.parts[part].body_id)[0][2] < floor:
                    queued.remove(part)
                    self.records[part].outcome = "missed"
                    self.records[part].done_s = now
                    self.pool.remove(part)

    # ------------------------------------------------------------------------------ state
    def _resolved(self) -> int:
        return sum(1 for r in self.records.values() if r.outcome != "in_process")

    def _all_done(self) -> bool:
        return (not any(self.pool.waiting.values()) and not self.pool.live
                and all(worker.part is None for worker in self.workers))


def _footprint_m(part) -> float:
    """Centre distance below which two parts of this type would overlap [m]."""
    if part.shape == "box":
        return float(math.hypot(part.size_m[0], part.size_m[1]))
    return 2.0 * float(part.radius_m)
