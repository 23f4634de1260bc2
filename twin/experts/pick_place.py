"""A scripted pick-and-place expert that speaks the end-effector-delta action space.

It sees only positions (TCP, part, goal) and the gripper opening, and answers an action
``[dx, dy, dz, grip]`` in [-1, 1] for ``celltwin.robots.controllers.EEDeltaController``: the same
action space a learned policy uses, so the expert can drive an env, seed a replay buffer, or run a
cell in line planning.
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class Phase(Enum):
    """Steps of one pick-and-place cycle, in order."""

    APPROACH = "approach"   # above the part, gripper open
    DESCEND = "descend"     # down to grasp height
    GRASP = "grasp"         # close and wait for the fingers to settle
    LIFT = "lift"           # straight up with the part
    CARRY = "carry"         # above the goal
    LOWER = "lower"         # down to the place height
    RELEASE = "release"     # open and wait
    RETREAT = "retreat"     # straight up, empty
    DONE = "done"


class PickPlaceExpert:
    """Phase machine for one pick-and-place cycle.

    Args:
        action_scale_m: metres per unit action of the EE-delta controller [m].
        clearance_m: height above part and goal for approach and carry [m].
        tolerance_m: distance at which a waypoint counts as reached [m].
        grip_steps: control steps to wait while the fingers close or open [-].
        place: lower, release and retreat at the goal (a placing cycle); when False, carry the
            part straight to the goal and hold it there (panda-gym's PickAndPlace goal).
        descend_speed: fraction of the full action used when moving down onto the part or the
            goal [-]; full-speed descents overshoot into the part.
        gain: share of the remaining distance commanded per step [-]; below 1 so that a control
            step or two of actuation latency does not make the approach oscillate.
        lift_m: height of the lift after the grasp [m] (default ``clearance_m``); a hold-at-goal
            cycle only needs the part off the table before heading for the goal.
    """

    def __init__(self, action_scale_m: float = 0.05, clearance_m: float = 0.12,
                 tolerance_m: float = 0.006, grip_steps: int = 8, place: bool = True,
                 descend_speed: float = 0.4, gain: float = 0.6, lift_m: float | None = None):
        self.action_scale_m = action_scale_m
        self.clearance_m = clearance_m
        self.tolerance_m = tolerance_m
        self.grip_steps = grip_steps
        self.place = place
        self.descend_speed = descend_speed
        self.gain = gain
        self.lift_m = clearance_m if lift_m is None else lift_m
        self.reset()

    def reset(self) -> None:
        """Start a new cycle."""
        self.phase = Phase.APPROACH
        self._waited = 0
        self._part_at_grasp: np.ndarray | None = None

    def act(self, ee_position, part_position, goal_position) -> np.ndarray:
        """Return the action for this control step and advance the phase when it is done.

        All positions in one frame, the frame the controller's deltas are in (the robot base
        frame for ``ee_delta``).

        Args:
            ee_position: TCP position [m].
            part_position: part centre [m].
            goal_position: where the part's centre should end up [m].
        """
        ee = np.asarray(ee_position, float)
        part = np.asarray(part_position, float)
        goal = np.asarray(goal_position, float)
        up = np.array([0.0, 0.0, self.clearance_m])
        grip_open, grip_closed = 1.0, -1.0
        if self.phase is Phase.APPROACH:
            return self._move(ee, part + up, grip_open, Phase.DESCEND)
        if self.phase is Phase.DESCEND:
            return self._move(ee, part, grip_open, Phase.GRASP, self.descend_speed)
        if self.phase is Phase.GRASP:
            return self._wait(grip_closed, Phase.LIFT)
        if self.phase is Phase.LIFT:
            lift = np.array([0.0, 0.0, self.lift_m])
            return self._move(ee, self._lift_point(ee, part) + lift, grip_closed, Phase.CARRY)
        if self.phase is Phase.CARRY:
            if not self.place:
                return self._move(ee, goal, grip_closed, Phase.CARRY)  # hold at the goal
            return self._move(ee, goal + up, grip_closed, Phase.LOWER)
        if self.phase is Phase.LOWER:
            return self._move(ee, goal, grip_closed, Phase.RELEASE, self.descend_speed)
        if self.phase is Phase.RELEASE:
            return self._wait(grip_open, Phase.RETREAT)
        if self.phase is Phase.RETREAT:
            return self._move(ee, goal + up, grip_open, Phase.DONE)
        return np.array([0.0, 0.0, 0.0, grip_open])

    def _lift_point(self, ee: np.ndarray, part: np.ndarray) -> np.ndarray:
        # Lift straight up from where the grasp happened, not from where the part drifts to.
        if self._part_at_grasp is None:
            self._part_at_grasp = np.array([ee[0], ee[1], part[2]])
        return self._part_at_grasp

    def _move(self, ee: np.ndarray, target: np.ndarray, grip: float, then: Phase,
              speed: float = 1.0) -> np.ndarray:
        error = target - ee
        if np.linalg.norm(error) < self.tolerance_m:
            self.phase = then
        delta = np.clip(self.gain * error / self.action_scale_m, -speed, speed)
        return np.array([*delta, grip])

    def _wait(self, grip: float, then: Phase) -> np.ndarray:
        self._waited += 1
        if self._waited >= self.grip_steps:
            self._waited = 0
            self.phase = then
        return np.array([0.0, 0.0, 0.0, grip])
