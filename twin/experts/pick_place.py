"""A scripted pick-and-place expert that speaks the end-effector-delta action space.

It sees only positions (TCP, part, goal) and the gripper opening, and answers an action
``[dx, dy, dz, grip]`` in [-1, 1] for ``celltwin.robots.controllers.EEDeltaController``: the same
action space a learned policy uses, so the expert can drive an env, seed a replay buffer, or run a
cell in line planning. A suction cup (:func:`pick_place_expert`) comes down on the part's top
face instead of around its centre, with the vacuum on as it descends.
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
        grasp_offset_m: height of the TCP above the part's centre where it grips [m]: 0 for
            fingers (they close around the centre), about the part's half height for a
            suction cup (its face on the top face).
        place_offset_m: height of the TCP above the part's centre while it carries and places
            it [m] (default ``grasp_offset_m``): a suction cup that pressed on the part to
            seal holds it with its top face at the cup's face, its half height above.
        grip_on_descent: grip while descending (a suction cup's vacuum is on as it comes down,
            so that it seals when it gets there), not only once there.
    """

    def __init__(self, action_scale_m: float = 0.05, clearance_m: float = 0.12,
                 tolerance_m: float = 0.006, grip_steps: int = 8, place: bool = True,
                 descend_speed: float = 0.4, gain: float = 0.6, lift_m: float | None = None,
                 grasp_offset_m: float = 0.0, place_offset_m: float | None = None,
                 grip_on_descent: bool = False):
        self.action_scale_m = action_scale_m
        self.clearance_m = clearance_m
        self.tolerance_m = tolerance_m
        self.grip_steps = grip_steps
        self.place = place
        self.descend_speed = descend_speed
        self.gain = gain
        self.lift_m = clearance_m if lift_m is None else lift_m
        self.grasp_offset_m = grasp_offset_m
        self.place_offset_m = grasp_offset_m if place_offset_m is None else place_offset_m
        self.grip_on_descent = grip_on_descent
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
        # Where the TCP grips and places: at the part's centre, or above it on its top face.
        part = np.asarray(part_position, float) + [0.0, 0.0, self.grasp_offset_m]
        goal = np.asarray(goal_position, float) + [0.0, 0.0, self.place_offset_m]
        up = np.array([0.0, 0.0, self.clearance_m])
        grip_open, grip_closed = 1.0, -1.0
        if self.phase is Phase.APPROACH:
            return self._move(ee, part + up, grip_open, Phase.DESCEND)
        if self.phase is Phase.DESCEND:
            return self._move(ee, part, grip_closed if self.grip_on_descent else grip_open,
                              Phase.GRASP, self.descend_speed)
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


# How far below a part's top face a suction cup aims [m]: positions are off by millimetres,
# and a cup held short of the face by more than its seal tolerance never seals.
SUCTION_PRESS_M = 0.004


def pick_place_expert(model, part_half_height_m: float, **options) -> PickPlaceExpert:
    """The phase machine for ``model``'s gripper (a :class:`celltwin.robots.RobotModel`).

    Fingers close around the part's centre; a suction cup comes down on the part's top face
    (``part_half_height_m`` above its centre [m]) with the vacuum on.

    Args:
        options: the other arguments of :class:`PickPlaceExpert`.
    """
    if model.suction is None:
        return PickPlaceExpert(**options)
    return PickPlaceExpert(grasp_offset_m=part_half_height_m - SUCTION_PRESS_M,
                           place_offset_m=part_half_height_m, grip_on_descent=True, **options)
