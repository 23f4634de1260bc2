"""A vacuum suction cup at a robot's TCP: it grips the part whose face it seals on.

A real vacuum gripper holds a part by the pressure difference over its cup's area, as long as
the cup's lip seals on a face of the part; it lets go when the vacuum is switched off, and it
loses the part when the pull on it exceeds what the vacuum holds (its rated force). celltwin
simulates exactly that, once per control step (:meth:`SuctionCup.update`, called by the world):

* **Seal.** With the vacuum on and nothing held, the cup seals on a free body (a part: a body
  with mass, not a robot link) whose closest point lies on the cup's face, within
  ``seal_tolerance_m`` of it, and whose surface there faces the cup: its normal within
  :data:`SEAL_TILT_DEG` of the cup's axis. The part is then held by a fixed constraint at the
  pose it has (pressed into the cup, at the pose where it just touches it), whose force is
  capped at the rated force ``force_n``. Cup and part still collide: the cup pushes what it
  holds as a cup does.
* **Release.** Switching the vacuum off removes the constraint at once. A pull beyond the rated
  force makes the capped constraint give way: once the part has moved ``seal_tolerance_m`` off
  the cup or along its face from where the cup holds it, the seal is broken and the part
  falls. A part pushed into the cup (the cup pressing it onto the table) stays held.

The gripper command of every controller is a width (:meth:`celltwin.robots.Robot.
command_gripper_width`); a suction robot's width range is ``(0, cup diameter)`` and a command
below the middle of it switches the vacuum on. Its reported width is its state, as a vacuum
sensor says it: 0 (closed) while it holds a part, the middle with the vacuum on and nothing
held, the full diameter (open) with the vacuum off.

``force_n`` and ``seal_tolerance_m`` are PhysicsParams (``robots.<name>.suction_force_n``,
``suction_seal_tolerance_m``), so randomization and calibration reach them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import pybullet

from celltwin.core.actuation_limits import SEAL_TOLERANCE_M_RANGE
from celltwin.core.errors import Problem
from celltwin.robots.errors import RobotError

# The part's surface must face the cup: its normal at most this far off the cup's axis [deg].
SEAL_TILT_DEG = 20.0
# How far the closest point may lie off the plane of the cup's face and still be "on the face"
# (the rubber lip is compliant) [m].
_FACE_SLACK_M = 0.002
MAX_SEAL_TOLERANCE_M = SEAL_TOLERANCE_M_RANGE[1]
_IDENTITY = (0.0, 0.0, 0.0, 1.0)
_COS_TILT = math.cos(math.radians(SEAL_TILT_DEG))


def checked_force_n(robot: str, value) -> float:
    """A cup's rated holding force [N], or the robot's error naming what is wrong with it."""
    force = float(value)
    if not 0.0 < force < math.inf:  # NaN fails too
        raise RobotError(Problem(f"suction force of robot '{robot}' is invalid",
                                 value=value, expected="a finite force > 0 [N]"))
    return force


def checked_seal_tolerance_m(robot: str, value) -> float:
    """A cup's seal tolerance [m], or the robot's error naming what is wrong with it."""
    tolerance = float(value)
    if not 0.0 <= tolerance <= MAX_SEAL_TOLERANCE_M:
        raise RobotError(Problem(f"suction seal tolerance of robot '{robot}' is invalid",
                                 value=value,
                                 expected=f"a gap from 0 to {MAX_SEAL_TOLERANCE_M} m"))
    return tolerance


@dataclass(frozen=True)
class SuctionSpec:
    """The suction cup of a robot model.

    Attributes:
        cup_link: the link of the description that is the rubber cup.
        face_z_m: where the cup's face is along the cup link's z axis [m] (the TCP of
            celltwin's cup is there too).
        radius_m: the cup's radius [m].
        force_n: rated holding force [N]: the most the vacuum pulls a sealed part with.
        seal_tolerance_m: largest gap between the cup's face and a part's face that still seals,
            and how far a held part may be pulled off before the seal breaks [m].
    """

    cup_link: str
    face_z_m: float
    radius_m: float
    force_n: float
    seal_tolerance_m: float


class SuctionState(NamedTuple):
    """What a world snapshot keeps of a cup: its vacuum and what it holds, and how."""

    vacuum: bool
    held: int | None
    frame_xyz: tuple[float, ...] | None
    frame_quat_xyzw: tuple[float, ...] | None


class SuctionCup:
    """The vacuum and the grip of one robot's suction cup.

    Args:
        client: the world's physics client.
        body_id: the robot's body.
        cup_link: pybullet index of the link that carries the cup.
        face: pose of the cup's face centre (z along the cup's axis) in that link's frame:
            position [m] and quaternion (x, y, z, w).
        spec: the cup.
        name: the robot's name, for error messages.

    Attributes:
        vacuum: whether the vacuum is on (set by the robot's gripper command, after latency).
        held: the body id of the part held, or None.
    """

    def __init__(self, client, body_id: int, cup_link: int, face, spec: SuctionSpec,
                 name: str = "robot"):
        self.name = name
        self.radius_m = spec.radius_m
        self.vacuum = False
        self.held: int | None = None
        self._client = client
        self._body = body_id
        self._link = cup_link
        self._face = (tuple(face[0]), tuple(face[1]))
        self._constraint: int | None = None
        self._frame: tuple | None = None  # the held part's pose in the cup link's inertial frame
        self._link_state = client.getLinkState
        self._base_pose = client.getBasePositionAndOrientation
        self._multiply = client.multiplyTransforms
        self.force_n = spec.force_n
        self.seal_tolerance_m = spec.seal_tolerance_m

    # --- parameters (PhysicsParams: robots.<name>.suction_force_n, suction_seal_tolerance_m) --

    @property
    def force_n(self) -> float:
        """Rated holding force [N]: the cap of the constraint that holds a sealed part."""
        return self._force

    @force_n.setter
    def force_n(self, value: float) -> None:
        force = checked_force_n(self.name, value)
        self._force = force
        if self._constraint is not None:
            self._client.changeConstraint(self._constraint, maxForce=force)

    @property
    def seal_tolerance_m(self) -> float:
        """Largest gap that seals, and how far a held part may be pulled off [m]."""
        return self._tolerance

    @seal_tolerance_m.setter
    def seal_tolerance_m(self, value: float) -> None:
        self._tolerance = checked_seal_tolerance_m(self.name, value)

    # --- the vacuum and the grip ----------------------------------------------------------

    def set_vacuum(self, on: bool) -> None:
        """Switch the vacuum; off lets go of a held part at once."""
        self.vacuum = bool(on)
        if not self.vacuum:
            self.release()

    def update(self) -> None:
        """Once per control step, before its physics: seal, or lose a part pulled off."""
        if self._constraint is not None:
            if self._torn_off():
                self.release()
        elif self.vacuum:
            seal = self._seal()
            if seal is not None:
                self._grip(*seal)

    def release(self, body: int | None = None) -> None:
        """Let go of the held part (only if it is ``body``, when given)."""
        if self._constraint is None or (body is not None and body != self.held):
            return
        try:
            self._client.removeConstraint(self._constraint)
        except pybullet.error:
            pass  # the part's body was removed from the world, and its constraint with it
        self._constraint = self._frame = self.held = None

    # --- state ----------------------------------------------------------------------------

    def width(self, closed: float, opened: float) -> float:
        """The cup's state as a gripper opening [m]: closed holding, half open with the vacuum
        on and nothing held, open with the vacuum off."""
        if self.held is not None:
            return closed
        return 0.5 * (closed + opened) if self.vacuum else opened

    def state(self) -> SuctionState:
        """The vacuum and the grip, for a world snapshot (pybullet's does not hold
        constraints)."""
        frame = self._frame or (None, None)
        return SuctionState(self.vacuum, self.held, *frame)

    def restore(self, state: SuctionState) -> None:
        """Return to ``state``: the same vacuum, holding the same part the same way."""
        self.release()
        self.vacuum = state.vacuum
        if state.held is not None:
            self._attach(state.held, (state.frame_xyz, state.frame_quat_xyzw))

    # --- internals ------------------------------------------------------------------------

    def _seal(self) -> tuple[int, float, tuple[float, float, float]] | None:
        """The part the cup seals on now, the gap to it [m] (< 0: pressed into it) and the
        cup's axis; None when it seals on nothing."""
        client = self._client
        state = self._link_state(self._body, self._link, 0, 1)
        face, quat = self._multiply(state[4], state[5], *self._face)
        axis = _z_axis(quat)
        reach = self.radius_m + self._tolerance + 0.01
        low = [value - reach for value in face]
        high = [value + reach for value in face]
        best = None
        for body, link in client.getOverlappingObjects(low, high) or ():
            if link != -1 or body == self._body or client.getDynamicsInfo(body, -1)[0] <= 0:
                continue  # a robot link, or a fixed body (table, belt, tray)
            for point in client.getClosestPoints(self._body, body, self._tolerance,
                                                 linkIndexA=self._link, linkIndexB=-1):
                gap, normal, on_cup = point[8], point[7], point[5]
                if sum(n * a for n, a in zip(normal, axis)) > -_COS_TILT:
                    continue  # the surface there does not face the cup
                offset = [p - f for p, f in zip(on_cup, face)]
                along = sum(o * a for o, a in zip(offset, axis))
                across = math.sqrt(max(sum(o * o for o in offset) - along * along, 0.0))
                if abs(along) <= _FACE_SLACK_M and across <= self.radius_m + _FACE_SLACK_M \
                        and (best is None or gap < best[1]):
                    best = (body, gap, axis)
        return best

    def _grip(self, part: int, gap: float, axis) -> None:
        """Hold ``part`` where it is, or, pressed into the cup, where it just touches it: the
        contact between them would otherwise push it out of the grip as soon as it lifts."""
        state = self._link_state(self._body, self._link, 0, 1)
        inverse = self._client.invertTransform(state[0], state[1])
        position, orientation = self._base_pose(part)
        if gap < 0.0:
            position = [p - gap * a for p, a in zip(position, axis)]
        self._attach(part, self._multiply(*inverse, position, orientation))

    def _attach(self, part: int, frame) -> None:
        xyz, quat = tuple(frame[0]), tuple(frame[1])
        self._constraint = self._client.createConstraint(
            self._body, self._link, part, -1, pybullet.JOINT_FIXED, [0.0, 0.0, 0.0],
            parentFramePosition=xyz, childFramePosition=[0.0, 0.0, 0.0],
            parentFrameOrientation=quat, childFrameOrientation=_IDENTITY)
        self._client.changeConstraint(self._constraint, maxForce=self._force)
        self.held, self._frame = part, (xyz, quat)

    def _torn_off(self) -> bool:
        """Whether the held part has been pulled off the cup, or slid along its face, further
        than the seal tolerance. Pushed into the cup (a cup pressing on a part that rests on
        something) is no pull."""
        state = self._link_state(self._body, self._link, 0, 1)
        where = self._multiply(state[0], state[1], *self._frame)[0]
        try:
            actual = self._base_pose(self.held)[0]
        except pybullet.error:
            return True  # removed from the world
        axis = _z_axis(self._multiply(state[4], state[5], *self._face)[1])
        moved = [a - w for a, w in zip(actual, where)]
        along = sum(m * a for m, a in zip(moved, axis))  # > 0: away from the cup
        across = math.sqrt(max(sum(m * m for m in moved) - along * along, 0.0))
        return along > self._tolerance or across > self._tolerance


def _z_axis(quat) -> tuple[float, float, float]:
    x, y, z, w = quat
    return (2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y))


__all__ = ["MAX_SEAL_TOLERANCE_M", "SEAL_TILT_DEG", "SuctionCup", "SuctionSpec", "SuctionState",
           "checked_force_n", "checked_seal_tolerance_m"]
