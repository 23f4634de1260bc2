"""Run one scripted pick-and-place cycle in a world and time it in simulated seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from celltwin.experts.pick_place import Phase, PickPlaceExpert, pick_place_expert


@dataclass
class CycleResult:
    """Outcome of one cycle.

    Attributes:
        success: the cycle finished with the part released within ``place_tolerance_m`` of the
            goal horizontally and no higher than the goal.
        cycle_time_s: simulated time from start until the robot retreated [s].
        phase_times_s: simulated time spent in each phase [s].
        place_error_m: horizontal distance between the part's final centre and the goal [m].
        wall_time_s: wall-clock time the cycle took to simulate [s].
        control_steps: control steps taken [-].
    """

    success: bool
    cycle_time_s: float
    place_error_m: float
    control_steps: int
    wall_time_s: float = 0.0
    phase_times_s: dict[str, float] = field(default_factory=dict)


def run_pick_place(world, robot_name: str | None, part: str, goal_position,
                   *, max_time_s: float = 30.0, place_tolerance_m: float = 0.03,
                   expert: PickPlaceExpert | None = None, on_step=None) -> CycleResult:
    """Pick ``part`` and place it with its centre at ``goal_position`` using the scripted expert.

    Args:
        world: a built :class:`celltwin.world.World`.
        robot_name: which robot (``None`` for a cell's only robot).
        part: name of the part body.
        goal_position: where the part's centre should end up, world frame [m].
        max_time_s: give up after this much simulated time [s].
        place_tolerance_m: distance from the goal that counts as placed [m].
        expert: the phase machine to run (default: :func:`pick_place_expert` for the robot's
            gripper and the part).
        on_step: optional callback ``on_step(world, phase)`` after every control step.
    """
    from celltwin.robots.controllers import make_controller

    robot = world.robot(robot_name)
    controller = make_controller("ee_delta", robot, control_period_s=world.control_period_s)
    controller.limit_motion = False  # a scripted robot program, as in layout runs
    expert = expert or pick_place_expert(robot.model, world.part_geometries[part].half_height_m,
                                         action_scale_m=controller.scale_m)
    expert.reset()
    goal = np.asarray(goal_position, float)
    dt = world.control_period_s
    phase_times: dict[str, float] = {}
    steps = 0
    started = time.perf_counter()
    while expert.phase is not Phase.DONE and steps * dt < max_time_s:
        phase = expert.phase
        action = expert.act(robot.ee_pose()[0], world.pose(part)[0], goal)
        controller.apply(action)
        world.step()
        steps += 1
        phase_times[phase.value] = phase_times.get(phase.value, 0.0) + dt
        if on_step is not None:
            on_step(world, phase)
    wall = time.perf_counter() - started
    final = world.pose(part)[0]
    error = float(np.linalg.norm(final[:2] - goal[:2]))
    placed = bool(expert.phase is Phase.DONE and error < place_tolerance_m
                  and final[2] <= goal[2] + 0.01)
    return CycleResult(placed, steps * dt, error, steps, wall, phase_times)
