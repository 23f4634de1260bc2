"""One robot of a layout run: its controllers, its expert, its current cycle and its geometry.

The runner (:mod:`celltwin.layout.runner`) decides which part a worker takes and when a cycle
ends; a worker knows where things are in its base frame, whether a part is within its reach
(:meth:`Worker.in_window`, :meth:`Worker.intercept`) and how to straighten its posture.
"""

from __future__ import annotations

import math

import numpy as np

from celltwin.check import target_pose
from celltwin.experts.pick_place import pick_place_expert
from celltwin.layout.feeds import footprint_m
from celltwin.layout.jobs import Job
from celltwin.layout.monitor import RobotMonitor
from celltwin.layout.records import PartRecord, RobotRecord, RunOptions
from celltwin.parts import PartGeometry
from celltwin.robots import Kinematics
from celltwin.robots.controllers import make_controller


class Worker:
    """One robot with its controller, expert and current cycle.

    Args:
        world: the run world.
        job: the robot's job.
        monitor: watches the robot's links for collisions and near misses.
        options: the run's settings.
    """

    def __init__(self, world, job: Job, monitor: RobotMonitor, options: RunOptions):
        self.world = world
        self.job = job
        self.options = options
        self.robot = world.robots[job.robot]
        self.controller = make_controller("ee_delta", self.robot,
                                          control_period_s=world.control_period_s)
        # The scripted cycle is a robot program, run by the controller's own motion planner;
        # a learned policy's cycle moves under the limits it trained with (use_policy).
        self.controller.limit_motion = False
        # The cycle: the scripted expert, or a PolicyCycle (use_policy) around a learned policy.
        # Fingers close around the part's centre, a suction cup seals on its top face.
        self.expert = self._scripted_expert()
        self.policy_driven = False
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
        self.intercept_point: np.ndarray | None = None  # fixed grasp point for a moving part
        self.lane: np.ndarray | None = None         # the moving part's unit direction
        self.descending = False                     # left the hover above the intercept
        self.intercepts = picks_moving_parts(world, job, options)
        self.hover_steps = 0                        # control steps spent hovering
        self.saved: tuple = (None, {})              # the part's record before this attempt
        self.home_q = self.robot.joint_positions()  # as built: the cell's home pose
        self.joint_controller = make_controller("joint_position", self.robot,
                                                control_period_s=world.control_period_s)
        self.joint_controller.limit_motion = False  # posture moves are scripted too
        self.kinematics = Kinematics(self.robot.model, self.robot.base_xyz,
                                     self.robot.base_quat_xyzw)
        self.posture_for: PartRecord | None = None  # the cycle a posture move belongs to
        self.posture_target: np.ndarray | None = None
        self.posture_steps = 0

    def use_policy(self, policy) -> None:
        """Work this robot's cycles with a learned ``policy`` (see
        :mod:`celltwin.layout.policy_cycle`) instead of the scripted expert."""
        from celltwin.layout.policy_cycle import PolicyCycle

        self.expert = PolicyCycle(policy, self, self._scripted_expert())
        self.policy_driven = True
        self.controller.limit_motion = True

    def _scripted_expert(self):
        return pick_place_expert(self.robot.model,
                                 PartGeometry.of(self.job.feed.part).half_height_m,
                                 action_scale_m=self.controller.scale_m)

    def in_base(self, position) -> np.ndarray:
        """A world position in the robot's base frame, the frame of its actions [m]."""
        return self._to_base @ (np.asarray(position) - self._base)

    def in_window(self, position) -> bool:
        """Whether a part at ``position`` rests where this robot takes parts."""
        target = self.pick_position
        return (math.hypot(position[0] - target[0], position[1] - target[1])
                <= self.options.pick_window_m and abs(position[2] - target[2]) <= 0.05)

    def intercept(self, position, velocity):
        """Where a moving part crosses the pick target's place, and when [s] (None: never)."""
        direction = np.array([velocity[0], velocity[1]])
        speed = float(np.linalg.norm(direction))
        direction /= speed
        offset = self.pick_position[:2] - np.asarray(position[:2])
        along = float(offset @ direction)
        intercept = np.array([*(np.asarray(position[:2]) + along * direction), position[2]])
        lateral = float(np.linalg.norm(intercept[:2] - self.pick_position[:2]))
        if (lateral > self.options.pick_window_m
                or abs(position[2] - self.pick_position[2]) > 0.05):
            return None, math.inf
        return intercept, along / speed

    def end_cycle(self) -> None:
        """Let go of the current part (placed, dropped or left for another robot)."""
        self.part = None
        self.body = None
        self.intercept_point = None
        self.expert.reset()

    def check_posture(self, record: PartRecord) -> None:
        """Start a posture move if the arm has wandered from its posture for this TCP pose;
        a policy-driven arm goes back to its home pose, where its training episodes began."""
        q = self.robot.joint_positions()
        if self.policy_driven:
            if np.max(np.abs(q - self.home_q)) > 0.02:
                self.posture_for = record
                self.posture_target = np.array(self.home_q)
                self.posture_steps = 0
            return
        tcp = self.robot.ee_pose()[0]
        ik = self.kinematics.ik(tcp, self.controller.target_quat_xyzw, seed=self.home_q)
        if ik.reachable and np.max(np.abs(q - ik.q)) > self.options.posture_drift_rad:
            self.posture_for = record
            self.posture_target = np.array(ik.q)
            self.posture_steps = 0

    def straighten(self, dt: float) -> None:
        """One step of a posture move, every joint at most at its speed limit.

        Args:
            dt: the control period [s].
        """
        self.joint_controller.apply([*self.posture_target, 1.0])
        self.posture_steps += 1
        record = self.posture_for
        if self.part is None:  # after the cycle; during one, the cycle's clock runs anyway
            record.cycle_time_s += dt
        record.phase_times_s["posture"] = record.phase_times_s.get("posture", 0.0) + dt

    def check_straightened(self, dt: float) -> None:
        """End the posture move once the arm is there (or it has taken ``max_cycle_s``)."""
        q = self.robot.joint_positions()
        if (np.max(np.abs(q - self.posture_target)) < 0.02
                or self.posture_steps * dt >= self.options.max_cycle_s):
            self.posture_for = None
            self.last_ee = None


def picks_moving_parts(world, job: Job, options: RunOptions) -> bool:
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
    return abs(downstream_end - position[0]) > options.pick_window_m + footprint_m(feed.part)
