"""`layout run`: a cell in physics, fed with parts, worked by the scripted expert, measured.

The loop, one control step at a time (``World.step``):

1. **Arrivals.** Each feed brings its next part to its spawn region's centre (built there by
   :mod:`celltwin.layout.pool`). A belt feed brings one every ``spacing_m / |speed_mps|`` seconds
   (or ``arrival_interval_s``); a bin or fixture feed brings the next part as soon as the
   previous one has been lifted out (or every ``arrival_interval_s``). An arrival whose spot
   is still taken waits (counted as delayed).
2. **Assignment.** An idle robot takes the unassigned part of its feed nearest its pick target
   once that part rests within ``pick_window_m`` of it (horizontally, and within 5 cm in
   height): in a bin, on a fixture, or at the downstream end of a belt (a pick target within
   the window and a part's size of the belt's end: an end stop holds parts there). Anywhere
   else on a belt a moving part is *intercepted*: the robot takes it once it is due at the
   intercept point (the pick target's place along the part's lane) within
   ``intercept_horizon_s``, goes above that point, hovers until the part is
   ``descend_lead_s`` away (hovering counts as starved, not as work) and descends so that its
   fingers close as the part passes. A part that has passed before the robot is above the
   point is let go for a robot downstream.
3. **Work.** Each working robot's :class:`~celltwin.experts.pick_place.PickPlaceExpert` turns
   TCP, part and goal (the place target) into one end-effector-delta action, applied once per
   step through ``celltwin.robots.controllers`` (positions in the robot's base frame, the frame of the
   action). Idle robots are not commanded: they hold where they are. Above the part and
   after each cycle, an arm whose posture has wandered is straightened in joint space first
   (``posture_drift_rad``).
4. **Outcome.** When the expert is done, the part is *out* if it lies within
   ``place_tolerance_m`` of the goal horizontally and no higher than 1 cm above it (it then
   leaves the cell with the outfeed); if it is still on its feed where the robot can take it,
   the pick is retried (up to ``max_retries``); otherwise it is *dropped* and cleared away. A
   part on a feed that falls 10 cm below its arrival height unpicked is *missed*.

Time of every robot is *busy* (working on a part), *starved* (no part ready for it) or
*blocked* (holding a finished part it cannot put down; the outfeed here takes every part,
so always 0): they sum to the simulated time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from celltwin.experts.pick_place import Phase, PickPlaceExpert
from celltwin.robots import Kinematics
from celltwin.robots.controllers import make_controller
from celltwin.check import target_pose
from celltwin.layout.jobs import Job, LayoutError, find_jobs
from celltwin.layout.monitor import RobotMonitor
from celltwin.layout.pool import PartSpawner, feed_shares, run_cell, spawn_pose
from celltwin.core.errors import Problem
from celltwin.spec import CellSpec
from celltwin.world import World

# The expert's phases, then "posture": straightening a redundant arm's posture (see
# RunOptions.posture_drift_rad).
PHASES = (*(phase.value for phase in Phase if phase is not Phase.DONE), "posture")
_REACHING = (Phase.APPROACH, Phase.DESCEND, Phase.GRASP)
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
        policy: the policy working the cell; ``expert`` (the scripted pick-and-place expert).
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
        self.intercept: np.ndarray | None = None    # fixed grasp point for a moving part
        self.lane: np.ndarray | None = None         # the moving part's unit direction
        self.descending = False                     # left the hover above the intercept
        self.intercepts = _intercepts(world, job, options)
        self.hover_steps = 0                        # control steps spent hovering
        self.saved: tuple = (None, {})              # the part's record before this attempt
        self.home_q = self.robot.joint_positions()  # as built: the cell's home pose
        self.joint_controller = make_controller("joint_position", self.robot,
                                                control_period_s=world.control_period_s)
        self.kinematics = Kinematics(self.robot.model, self.robot.base_xyz,
                                     self.robot.base_quat_xyzw)
        self.posture_for: PartRecord | None = None  # the cycle a posture move belongs to
        self.posture_target: np.ndarray | None = None
        self.posture_steps = 0

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
        physics: physics overrides (a :class:`celltwin.physics.PhysicsParams`) applied after building.
        progress: optional callback ``progress(sim_s, parts_done, parts)``, called about twice a
            second of wall time.

    Raises:
        LayoutError: no robot has a job, bad options, a belt that does not move.
    """
    check_options(options)
    jobs = find_jobs(cell, options.pick, options.place)
    world_physics, part_dynamics = _split_physics(cell, physics)
    with World(run_cell(cell, jobs), physics=world_physics) as world:
        run = _Run(world, jobs, feed_shares(jobs, options.parts), part_dynamics, options,
                   cell.name, progress)
        try:
            return run.run()
        finally:
            for worker in run.workers:
                worker.kinematics.close()


def _split_physics(cell: CellSpec, physics):
    """Physics overrides for the world, and those for the cell's parts by part type.

    The run world has no parts (the runner builds them as they arrive), so what an overrides
    file says about a part body (``can``, ``cube_0``) is applied to every arriving part of
    that type instead.
    """
    if physics is None or not physics.bodies:
        return physics, {}
    types = {body: part.name for part in cell.parts for body in part.body_names()}
    dynamics = {types[key]: value for key, value in physics.bodies.items() if key in types}
    rest = {key: value for key, value in physics.bodies.items() if key not in types}
    return physics.model_copy(update={"bodies": rest}), dynamics


def check_options(options: RunOptions) -> None:
    """Raise LayoutError with every bad setting of ``options``."""
    problems = []
    if options.policy != "expert":
        problems.append(Problem(f"unknown policy '{options.policy}'", path="--policy",
                                value=options.policy, expected="expert"))
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


class _Run:
    """The state of one run; :meth:`run` steps it to the end."""

    def __init__(self, world, jobs, shares, part_dynamics, options: RunOptions, cell_name: str,
                 progress):
        self.world = world
        self.options = options
        self.cell_name = cell_name
        self.progress = progress
        self.dt = world.control_period_s
        # Body id -> name for reports; the spawner adds parts as they arrive.
        self.labels = {body: name for name, body in world.bodies.items()}
        self.pool = PartSpawner(world, shares, self.labels, part_dynamics,
                                options.multibody_parts)
        client = world.client
        self._pose = client.getBasePositionAndOrientation
        self._closest = client.getClosestPoints
        self._velocity = client.getBaseVelocity
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
                "next_s": 0.0, "due_since": None, "body": world.bodies[feed.region.on],
                "record": FeedRecord(feed.name, feed.kind, feed.part.name, interval),
                "spot_m": _footprint_m(feed.part)}
        obstacles = list(world.bodies)  # the run world holds no parts
        self.workers = [_Worker(world, job, RobotMonitor(
            world, job.robot, [name for name in obstacles if name != job.robot], self.labels,
            options.near_miss_m), options) for job in jobs]
        self.records: dict[str, PartRecord] = {}
        self.queued: dict[str, list[str]] = {name: [] for name in self.feeds}
        total = sum(count for _, count in shares.values())
        self.total = total
        self.max_sim_s = options.max_sim_s or 60.0 + total * max(
            30.0, 2 * max((f["interval"] or 0.0) for f in self.feeds.values()))
        self.steps = 0
        self.last_active_s = 0.0
        # Nothing moving and no robot working for this long means nothing ever will.
        self.stall_s = max(20.0, 2 * max((f["interval"] or 0.0) for f in self.feeds.values()))

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
                if worker.posture_for is not None:
                    self._straighten(worker)
                    worker.record.busy_s += dt
                    continue
                if worker.part is None:
                    self._assign(worker, now)
                if worker.part is not None and self._act(worker):
                    worker.record.busy_s += dt
                else:
                    worker.record.starved_s += dt
            step()
            self.steps += 1
            now = self.steps * dt
            for worker in self.workers:
                # Asked per robot: the one before may have just taken a part out of the world.
                live = [self.pool.body(part) for part in self.pool.live]
                working = worker.part is not None or worker.posture_for is not None
                began = worker.monitor.update(now, dt, worker.body, live, working)
                if working:
                    (worker.part or worker.posture_for).collisions += began
                if worker.posture_for is not None:
                    self._straightened(worker)
                elif worker.part is not None:
                    if worker.expert.phase is Phase.DONE:
                        self._finish(worker, now, timed_out=False)
                    elif (self.steps - worker.start_step) * dt >= self.options.max_cycle_s:
                        self._finish(worker, now, timed_out=True)
            if self.steps % 5 == 0:
                self._check_fallen(now)
                if self._active():
                    self.last_active_s = now
                elif now - self.last_active_s > self.stall_s:
                    stopped_by = "stalled"  # parts left where no robot will ever take them
                    break
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
            if not self.pool.remaining[name] or now < feed["next_s"] - 1e-9:
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
            part = self.pool.release(name, feed["position"], feed["yaw"])
            self.records[part] = PartRecord(part, name, now)
            self.queued[name].append(part)
            feed["record"].arrivals += 1
            self.last_active_s = now
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
            position = self._pose(self.pool.body(part))[0]
            if np.linalg.norm(np.subtract(position, feed["position"])) < feed["spot_m"]:
                return True
        return False

    # ------------------------------------------------------------------------------ robots
    def _mark_ready(self, now: float) -> None:
        # A part is ready from the first moment a robot of its feed could take it, whether or
        # not one is free: the wait for a robot is part of its lead time.
        for worker in self.workers:
            for part in self.queued[worker.job.feed.name]:
                record = self.records[part]
                if record.ready_s is None and self._candidate(worker, part) is not None:
                    record.ready_s = now

    def _candidate(self, worker: _Worker, part: str):
        """``(sort key, intercept point or None)`` if ``worker`` can take ``part`` now."""
        body = self.pool.body(part)
        position = self._pose(body)[0]
        velocity = self._velocity(body)[0]
        if math.hypot(velocity[0], velocity[1]) > 0.01:  # moving: intercept it in its lane
            if not worker.intercepts:
                return None  # it will come to rest at the end of its belt
            intercept, eta = self._intercept(worker, position, velocity)
            if intercept is None or not 0.0 < eta <= self.options.intercept_horizon_s:
                return None
            return (1, eta), intercept
        if self._in_window(worker, position):
            target = worker.pick_position
            return (0, math.hypot(position[0] - target[0], position[1] - target[1])), None
        return None

    def _assign(self, worker: _Worker, now: float) -> None:
        best, best_key, best_intercept = None, (math.inf, math.inf), None
        for part in self.queued[worker.job.feed.name]:
            candidate = self._candidate(worker, part)
            if candidate is not None and candidate[0] < best_key:
                best, (best_key, best_intercept) = part, candidate
        if best is None:
            return
        self.queued[worker.job.feed.name].remove(best)
        record = self.records[best]
        record.robot = worker.job.robot
        worker.saved = (record.start_s, dict(record.phase_times_s))
        if record.start_s is None:  # a retried pick keeps its first start and adds its time
            record.start_s = now
        worker.part = record
        worker.body = self.pool.body(best)
        worker.start_step = self.steps
        worker.expert.reset()
        worker.last_ee = None
        worker.intercept = best_intercept
        worker.descending = False
        worker.hover_steps = 0
        if best_intercept is not None:
            velocity = np.array(self._velocity(worker.body)[0][:2])
            worker.lane = velocity / np.linalg.norm(velocity)

    def _intercept(self, worker: _Worker, position, velocity):
        """Where a moving part crosses the pick target's place, and when [s] (None: never)."""
        direction = np.array([velocity[0], velocity[1]])
        speed = float(np.linalg.norm(direction))
        direction /= speed
        offset = worker.pick_position[:2] - np.asarray(position[:2])
        along = float(offset @ direction)
        intercept = np.array([*(np.asarray(position[:2]) + along * direction), position[2]])
        lateral = float(np.linalg.norm(intercept[:2] - worker.pick_position[:2]))
        if (lateral > self.options.pick_window_m
                or abs(position[2] - worker.pick_position[2]) > 0.05):
            return None, math.inf
        return intercept, along / speed

    def _act(self, worker: _Worker) -> bool:
        """One step of a robot's cycle; False while it hovers waiting for a moving part."""
        ee = worker.robot.ee_pose()[0]
        if worker.last_ee is not None:
            worker.record.path_length_m += float(np.linalg.norm(ee - worker.last_ee))
        worker.last_ee = ee
        expert = worker.expert
        position = self._pose(worker.body)[0]
        phase = expert.phase.value
        if worker.intercept is not None and expert.phase in _REACHING:
            if expert.phase is Phase.DESCEND and not worker.descending:
                due = float((worker.intercept[:2] - np.asarray(position[:2])) @ worker.lane)
                speed = math.hypot(*self._velocity(worker.body)[0][:2])
                eta = due / speed if speed > 1e-3 else -math.inf
                if eta < 0.0:  # it has passed already: let it go on downstream
                    self._let_go(worker)
                    return False
                if eta > self.options.descend_lead_s:  # hover until it is due: starved
                    worker.hover_steps += 1
                    worker.part.hover_s += self.dt
                    return False
                worker.descending = True
            position = worker.intercept
        action = expert.act(worker.in_base(ee), worker.in_base(position), worker.goal_in_base)
        worker.controller.apply(action)
        times = worker.part.phase_times_s
        times[phase] = times.get(phase, 0.0) + self.dt
        if expert.phase is Phase.DESCEND and phase == "approach" and worker.intercept is None:
            self._check_posture(worker, worker.part)  # above the part: straighten up first
        return True

    def _let_go(self, worker: _Worker) -> None:
        """Give up an intercept before touching the part; it stays queued for others."""
        record = worker.part
        record.robot = ""
        record.start_s, record.phase_times_s = worker.saved  # the robot's time, not the part's
        self.queued[record.feed].append(record.part)
        worker.record.intercepts_missed += 1
        worker.part = None
        worker.body = None
        worker.intercept = None
        worker.expert.reset()

    def _finish(self, worker: _Worker, now: float, *, timed_out: bool) -> None:
        record, options = worker.part, self.options
        position = np.asarray(self._pose(worker.body)[0])
        error = float(math.hypot(*(position[:2] - worker.goal[:2])))
        placed = (not timed_out and error < options.place_tolerance_m
                  and worker.goal[2] - 0.1 < position[2] <= worker.goal[2] + 0.01)
        worker.record.cycles += 1
        worker.record.cycle_timeouts += int(timed_out)
        record.done_s = now
        worked = self.steps - worker.start_step - worker.hover_steps
        record.cycle_time_s = (record.cycle_time_s or 0.0) + worked * self.dt
        record.place_error_m = error
        if placed:
            record.outcome = "out"
            worker.record.parts_out += 1
            self.pool.remove(record.part)
        elif record.retries < options.max_retries and self._can_retry(worker, record, position):
            record.retries += 1  # the grasp missed: the part is still on its feed, try again
            record.robot = ""
            self.queued[record.feed].insert(0, record.part)
        else:
            record.outcome = "dropped"
            self.pool.remove(record.part)
        worker.part = None
        worker.body = None
        worker.intercept = None
        worker.expert.reset()
        self._check_posture(worker, record)

    def _check_posture(self, worker: _Worker, record: PartRecord) -> None:
        """Start a posture move if the arm has wandered from its posture for this TCP pose."""
        q = worker.robot.joint_positions()
        tcp = worker.robot.ee_pose()[0]
        ik = worker.kinematics.ik(tcp, worker.controller.target_quat_xyzw, seed=worker.home_q)
        if ik.reachable and np.max(np.abs(q - ik.q)) > self.options.posture_drift_rad:
            worker.posture_for = record
            worker.posture_target = np.array(ik.q)
            worker.posture_steps = 0

    def _straighten(self, worker: _Worker) -> None:
        """One step of a posture move, every joint at most at its speed limit."""
        worker.joint_controller.apply([*worker.posture_target, 1.0])
        worker.posture_steps += 1
        record = worker.posture_for
        if worker.part is None:  # after the cycle; during one, the cycle's clock runs anyway
            record.cycle_time_s += self.dt
        record.phase_times_s["posture"] = record.phase_times_s.get("posture", 0.0) + self.dt

    def _straightened(self, worker: _Worker) -> None:
        q = worker.robot.joint_positions()
        if (np.max(np.abs(q - worker.posture_target)) < 0.02
                or worker.posture_steps * self.dt >= self.options.max_cycle_s):
            worker.posture_for = None
            worker.last_ee = None

    def _can_retry(self, worker: _Worker, record: PartRecord, position) -> bool:
        """Whether a part a grasp missed is still where a robot can take it again."""
        if not self._closest(self.feeds[record.feed]["body"], self.pool.body(record.part),
                             0.005):
            return False  # not on its feed any more
        return worker.intercepts or self._in_window(worker, position)

    def _in_window(self, worker: _Worker, position) -> bool:
        target = worker.pick_position
        return (math.hypot(position[0] - target[0], position[1] - target[1])
                <= self.options.pick_window_m and abs(position[2] - target[2]) <= 0.05)

    def _check_fallen(self, now: float) -> None:
        for name, queued in self.queued.items():
            floor = self.feeds[name]["position"][2] - 0.1
            for part in list(queued):
                if self._pose(self.pool.body(part))[0][2] < floor:
                    queued.remove(part)
                    self.records[part].outcome = "missed"
                    self.records[part].done_s = now
                    self.pool.remove(part)

    # ------------------------------------------------------------------------------ state
    def _resolved(self) -> int:
        return sum(1 for r in self.records.values() if r.outcome != "in_process")

    def _active(self) -> bool:
        if any(w.part is not None or w.posture_for is not None for w in self.workers):
            return True
        for queued in self.queued.values():
            for part in queued:
                velocity = self._velocity(self.pool.body(part))[0]
                if velocity[0] ** 2 + velocity[1] ** 2 + velocity[2] ** 2 > 1e-4:
                    return True
        return False

    def _all_done(self) -> bool:
        return (not any(self.pool.remaining.values()) and not self.pool.live
                and all(worker.part is None and worker.posture_for is None
                        for worker in self.workers))


def _intercepts(world, job: Job, options: RunOptions) -> bool:
    """Whether a robot picks parts of its feed while they move past (else at rest).

    A pick target at the downstream end of its belt (within the pick window and a part's
    size) is where an end stop holds parts, or where they fall off: the robot takes them at
    rest. Anywhere else along a belt, parts pass by and are intercepted.
    """
    feed = job.feed
    if feed.kind != "belt":
        return False
    conveyor = next(c for c in world.spec.conveyors if c.name == feed.conveyor)
    client = world.client
    origin, orientation = world.frame(conveyor.name)
    inverse = client.invertTransform(origin, orientation)
    position = client.multiplyTransforms(*inverse, target_pose(world, job.pick)[0].tolist(),
                                         [0.0, 0.0, 0.0, 1.0])[0]
    downstream_end = conveyor.length_m / 2 * (1.0 if conveyor.speed_mps >= 0 else -1.0)
    return abs(downstream_end - position[0]) > options.pick_window_m + _footprint_m(feed.part)


def _footprint_m(part) -> float:
    """Centre distance below which two parts of this type would overlap [m]."""
    if part.shape == "box":
        return float(math.hypot(part.size_m[0], part.size_m[1]))
    return 2.0 * float(part.radius_m)
