"""`layout run`: a cell in physics, fed with parts, worked by the scripted expert (or a
learned policy: :mod:`celltwin.layout.policy_cycle`), measured.

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
   step through ``celltwin.robots.controllers`` (positions in the robot's base frame, the frame
   of the action); with ``policy=`` a learned policy's cycle takes the expert's place. Idle
   robots are not commanded: they hold where they are. Above the part and
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

The pieces: the settings and what is measured in :mod:`celltwin.layout.records`, arrivals
(step 1) in :mod:`celltwin.layout.feeds`, one robot's controllers, expert and geometry in
:mod:`celltwin.layout.worker`; this module assigns parts, works them and judges the outcome
(steps 2-4).
"""

from __future__ import annotations

import math
import time

import numpy as np

from celltwin.experts.pick_place import Phase
from celltwin.layout.feeds import Arrivals
from celltwin.layout.jobs import LayoutError, find_jobs
from celltwin.layout.monitor import RobotMonitor
from celltwin.layout.overlap import check_overlaps
from celltwin.layout.pool import PartSpawner, feed_shares, run_cell
from celltwin.layout.records import PartRecord, RunOptions, RunResult, check_options
from celltwin.layout.worker import Worker
from celltwin.spec import CellSpec
from celltwin.world import World

_REACHING = (Phase.APPROACH, Phase.DESCEND, Phase.GRASP)
# While a robot's part is in one of these phases, its gripper is low in the feed.
_LOW_IN_FEED = (Phase.APPROACH, Phase.DESCEND, Phase.GRASP, Phase.LIFT)


def run_layout(cell: CellSpec, options: RunOptions = RunOptions(), *, physics=None,
               progress=None, policy=None) -> RunResult:
    """Run ``cell`` with ``options.parts`` parts and return what was measured.

    Args:
        cell: the cell.
        options: run settings.
        physics: physics overrides (a :class:`celltwin.physics.PhysicsParams`) applied after
            building.
        progress: optional callback ``progress(sim_s, parts_done, parts)``, called about twice a
            second of wall time.
        policy: a learned policy that works every robot's cycles instead of the scripted
            expert (see :mod:`celltwin.layout.policy_cycle`; ``options.policy`` names it in
            the KPIs), e.g. a :class:`celltwin.policies.bundle_policy.BundlePolicy`.

    Raises:
        LayoutError: no robot has a job, bad options, a belt that does not move, a policy
            that does not fit a robot or its job.
        OverlapError: bodies of the cell overlap as built (unless ``options.allow_overlap``).
    """
    check_options(options, policy_given=policy is not None)
    jobs = find_jobs(cell, options.pick, options.place)
    world_physics, part_dynamics = _split_physics(cell, physics)
    with World(run_cell(cell, jobs), physics=world_physics) as world:
        if not options.allow_overlap:
            check_overlaps(world, cell.name)
        run = _Run(world, jobs, feed_shares(jobs, options.parts), part_dynamics, options,
                   cell.name, progress)
        if policy is not None:
            _use_policy(run.workers, policy)
        try:
            return run.run()
        finally:
            for worker in run.workers:
                worker.kinematics.close()


def _use_policy(workers: list[Worker], policy) -> None:
    """Hand every robot's cycles to ``policy``, or refuse with every misfit at once."""
    from celltwin.layout.policy_cycle import check_policy

    problems = [problem for worker in workers for problem in check_policy(policy, worker)]
    if problems:
        raise LayoutError(problems)
    for worker in workers:
        worker.use_policy(policy)


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
        self.arrivals = Arrivals(world, jobs, self.pool, options)
        self.feeds = self.arrivals.feeds
        self.queued = self.arrivals.queued
        self.records = self.arrivals.records
        obstacles = list(world.bodies)  # the run world holds no parts
        self.workers = [Worker(world, job, RobotMonitor(
            world, job.robot, [name for name in obstacles if name != job.robot], self.labels,
            options.near_miss_m), options) for job in jobs]
        total = sum(count for _, count in shares.values())
        self.total = total
        self.max_sim_s = options.max_sim_s or 60.0 + total * max(
            30.0, 2 * self.arrivals.longest_interval_s)
        self.steps = 0
        self.last_active_s = 0.0
        # Nothing moving and no robot working for this long means nothing ever will.
        self.stall_s = max(20.0, 2 * self.arrivals.longest_interval_s)

    # ------------------------------------------------------------------------------ loop
    def run(self) -> RunResult:
        world, dt = self.world, self.dt
        step = world.step
        started = time.perf_counter()
        next_report = started + 0.5
        stopped_by = "done"
        while True:
            now = self.steps * dt
            worked_low = {worker.part.feed for worker in self.workers
                          if worker.part is not None and worker.expert.phase in _LOW_IN_FEED}
            if self.arrivals.arrive(now, worked_low):
                self.last_active_s = now
            self._mark_ready(now)
            for worker in self.workers:
                if worker.posture_for is not None:
                    worker.straighten(dt)
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
                    worker.check_straightened(dt)
                elif worker.part is not None:
                    if worker.expert.phase is Phase.DONE:
                        self._finish(worker, now, timed_out=False)
                    elif (self.steps - worker.start_step) * dt >= self.options.max_cycle_s:
                        self._finish(worker, now, timed_out=True)
            if self.steps % 5 == 0:
                self.arrivals.check_fallen(now)
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
            [state.record for state in self.feeds.values()],
            sorted(events, key=lambda e: e.start_s),
            {worker.job.robot: dict(worker.monitor.min_clearance_m) for worker in self.workers},
            stopped_by)

    # ------------------------------------------------------------------------------ robots
    def _mark_ready(self, now: float) -> None:
        # A part is ready from the first moment a robot of its feed could take it, whether or
        # not one is free: the wait for a robot is part of its lead time.
        for worker in self.workers:
            for part in self.queued[worker.job.feed.name]:
                record = self.records[part]
                if record.ready_s is None and self._candidate(worker, part) is not None:
                    record.ready_s = now

    def _candidate(self, worker: Worker, part: str):
        """``(sort key, intercept point or None)`` if ``worker`` can take ``part`` now."""
        body = self.pool.body(part)
        position = self._pose(body)[0]
        velocity = self._velocity(body)[0]
        if math.hypot(velocity[0], velocity[1]) > 0.01:  # moving: intercept it in its lane
            if not worker.intercepts:
                return None  # it will come to rest at the end of its belt
            intercept, eta = worker.intercept(position, velocity)
            if intercept is None or not 0.0 < eta <= self.options.intercept_horizon_s:
                return None
            return (1, eta), intercept
        if worker.in_window(position):
            target = worker.pick_position
            return (0, math.hypot(position[0] - target[0], position[1] - target[1])), None
        return None

    def _assign(self, worker: Worker, now: float) -> None:
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
        worker.intercept_point = best_intercept
        worker.descending = False
        worker.hover_steps = 0
        if best_intercept is not None:
            velocity = np.array(self._velocity(worker.body)[0][:2])
            worker.lane = velocity / np.linalg.norm(velocity)

    def _act(self, worker: Worker) -> bool:
        """One step of a robot's cycle; False while it hovers waiting for a moving part."""
        ee = worker.robot.ee_pose()[0]
        if worker.last_ee is not None:
            worker.record.path_length_m += float(np.linalg.norm(ee - worker.last_ee))
        worker.last_ee = ee
        expert = worker.expert
        position = self._pose(worker.body)[0]
        phase = expert.phase.value
        if worker.intercept_point is not None and expert.phase in _REACHING:
            if expert.phase is Phase.DESCEND and not worker.descending:
                due = float((worker.intercept_point[:2] - np.asarray(position[:2]))
                            @ worker.lane)
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
            position = worker.intercept_point
        action = expert.act(worker.in_base(ee), worker.in_base(position), worker.goal_in_base)
        worker.controller.apply(action)
        times = worker.part.phase_times_s
        times[phase] = times.get(phase, 0.0) + self.dt
        if (expert.phase is Phase.DESCEND and phase == "approach"
                and worker.intercept_point is None):
            worker.check_posture(worker.part)  # above the part: straighten up first
        return True

    def _let_go(self, worker: Worker) -> None:
        """Give up an intercept before touching the part; it stays queued for others."""
        record = worker.part
        record.robot = ""
        record.start_s, record.phase_times_s = worker.saved  # the robot's time, not the part's
        self.queued[record.feed].append(record.part)
        worker.record.intercepts_missed += 1
        worker.end_cycle()

    def _finish(self, worker: Worker, now: float, *, timed_out: bool) -> None:
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
        worker.end_cycle()
        worker.check_posture(record)

    def _can_retry(self, worker: Worker, record: PartRecord, position) -> bool:
        """Whether a part a grasp missed is still where a robot can take it again."""
        if not self._closest(self.feeds[record.feed].body, self.pool.body(record.part), 0.005):
            return False  # not on its feed any more
        return worker.intercepts or worker.in_window(position)

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
