"""A robot's actuation: when commanded set-points reach its motors, what its joint sensors say.

Every command to a :class:`celltwin.robots.Robot` (arm joint targets, gripper opening) goes
through its :class:`Actuation`, and so do the readings a controller takes from its joints
(:meth:`Robot.measured_joint_positions`). Two imperfections of a real cell live here, once, for
every user of a robot (the envs, the served twin, ``layout run``):

- actuation latency: a set-point commanded now reaches the motors ``latency_steps`` control
  steps later; until then the motors keep their previous targets. The world advances the
  queue once per control step (:meth:`Actuation.advance`, before that step's physics).
- joint-sensor noise: measured joint positions carry Gaussian noise of
  ``joint_noise_std_rad``, drawn from :attr:`Actuation.rng`, which the owner of a run seeds
  (an env from ``reset(seed=...)``, a virtual controller from its ``seed``).

Both are set through PhysicsParams (``robots.<name>.latency_steps`` / ``joint_noise_std_rad``).
With neither, a command goes straight to the motors and a reading is the exact joint state:
the hot path of every env step makes no extra call into the queue and draws nothing.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable, NamedTuple, Sequence

import numpy as np

from celltwin.core.actuation_limits import JOINT_NOISE_STD_RAD_RANGE, LATENCY_STEPS_RANGE
from celltwin.core.errors import Problem
from celltwin.robots.errors import RobotError

Targets = Sequence[float]


class ActuationState(NamedTuple):
    """What a world snapshot keeps of one robot's actuation (see :meth:`Actuation.state`)."""

    arm_target: tuple[float, ...] | None
    finger_target: tuple[float, ...] | None
    tick: int
    pending: tuple


class Actuation:
    """The set-point path of one robot: motor targets, latency, batching and sensor noise.

    Args:
        send_arm: sends arm position targets to the motors [rad] (the robot's motor call).
        send_fingers: sends the driven fingers' position targets.
        name: the robot's name, for error messages.

    Attributes:
        arm_target: arm targets the motors hold now (after latency), or None before the first.
        finger_target: driven-finger targets the motors hold now, or None before the first.
        pending: set-points on their way, ``(due tick, arm or None, fingers or None)``.
        rng: draws the joint-sensor noise; replace it to seed the noise (a numpy Generator).
    """

    __slots__ = ("arm_target", "finger_target", "pending", "rng", "name", "_send_arm",
                 "_send_fingers", "_latency", "_noise", "_tick", "_held", "_resend_due")

    def __init__(self, send_arm: Callable[[Targets], None],
                 send_fingers: Callable[[Targets], None], name: str = "robot"):
        self.name = name
        self._send_arm = send_arm
        self._send_fingers = send_fingers
        self.arm_target: Targets | None = None
        self.finger_target: Targets | None = None
        self.pending: deque = deque()
        self.rng = np.random.default_rng(0)  # a bare world's runs replay too
        self._latency = 0
        self._noise = 0.0
        self._tick = 0          # control steps advanced since the queue last ran empty
        self._held = 0          # depth of hold() blocks
        self._resend_due = False

    # --- parameters (set through PhysicsParams) ---------------------------------------------

    @property
    def latency_steps(self) -> int:
        """Control steps between commanding a set-point and its reaching the motors [-]."""
        return self._latency

    @latency_steps.setter
    def latency_steps(self, value: int) -> None:
        # A set-point already on its way keeps its due step; a shorter latency never lets a
        # later one overtake it (the queue delivers in order).
        low, high = LATENCY_STEPS_RANGE
        whole = float(value).is_integer() and low <= value <= high
        self._latency = int(self._checked("actuation latency", value, whole,
                                          f"a whole number of control steps from {low} to "
                                          f"{high}"))

    @property
    def joint_noise_std_rad(self) -> float:
        """Standard deviation of the noise on measured joint positions [rad]."""
        return self._noise

    @joint_noise_std_rad.setter
    def joint_noise_std_rad(self, value: float) -> None:
        noise = float(value)
        low, high = JOINT_NOISE_STD_RAD_RANGE
        finite = low <= noise < math.inf and (high is None or noise <= high)  # NaN fails
        self._noise = self._checked("joint noise", noise, finite,
                                    f"a finite standard deviation >= {low} [rad]")

    def _checked(self, what: str, value, valid: bool, expected: str):
        """``value`` if ``valid``, else the located error naming this robot and ``what``."""
        if not valid:
            raise RobotError(Problem(f"{what} of robot '{self.name}' is invalid", value=value,
                                     expected=expected))
        return value

    # --- commands ---------------------------------------------------------------------------

    def command_arm(self, target: Targets) -> None:
        """Arm targets commanded now: to the motors at once, or ``latency_steps`` steps later."""
        if self._latency or self.pending:
            self._defer(target, None)
            return
        self.arm_target = target
        self._send_arm(target)

    def command_fingers(self, target: Targets) -> None:
        """Finger targets commanded now, as :meth:`command_arm`."""
        if self._latency or self.pending:
            self._defer(None, target)
        elif target != self.finger_target:  # else the motor already has it (gripper held)
            self.finger_target = target
            self._send_fingers(target)

    def apply_now(self, arm: Targets, fingers: Targets | None = None) -> None:
        """Drop every set-point on its way and send these targets at once (no latency).

        For a robot that must stay put now: a stop, a teleport while building a world.
        """
        self.pending.clear()
        self.arm_target = arm
        self._send_arm(arm)
        if fingers is not None and fingers != self.finger_target:
            self.finger_target = fingers
            self._send_fingers(fingers)

    def cancel(self) -> None:
        """Drop the set-points on their way; the motors keep the targets they have."""
        self.pending.clear()

    def _defer(self, arm: Targets | None, fingers: Targets | None) -> None:
        pending = self.pending
        if not pending:
            self._tick = 0
        due = self._tick + self._latency
        if pending and pending[-1][0] == due:  # one set-point per step: arm and fingers merged
            _, last_arm, last_fingers = pending[-1]
            pending[-1] = (due, last_arm if arm is None else arm,
                           last_fingers if fingers is None else fingers)
        else:
            pending.append((due, arm, fingers))

    def advance(self) -> None:
        """One control step: send the set-points due now (the world calls this before physics).

        Only needed while :attr:`pending` is not empty; the world skips it otherwise.
        """
        pending, tick = self.pending, self._tick
        while pending and pending[0][0] <= tick:
            _, arm, fingers = pending.popleft()
            if arm is not None:
                self.arm_target = arm
                self._send_arm(arm)
            if fingers is not None and fingers != self.finger_target:
                self.finger_target = fingers
                self._send_fingers(fingers)
        self._tick = tick + 1

    # --- sensing ----------------------------------------------------------------------------

    def measured(self, q: np.ndarray) -> np.ndarray:
        """Return joint positions ``q`` [rad] as the joint sensors report them (noise added in
        place: pass a fresh array)."""
        if self._noise:
            q += self.rng.normal(0.0, self._noise, q.shape)
        return q

    # --- batching and re-sending ------------------------------------------------------------

    def hold(self) -> None:
        """Start a batch: re-sends asked for until :meth:`release` are sent once, then."""
        self._held += 1

    def release(self) -> None:
        """End a batch started by :meth:`hold`: send what changed while it was held."""
        self._held -= 1
        if not self._held and self._resend_due:
            self._resend_due = False
            self.resend()

    def resend(self) -> None:
        """Re-issue the targets the motors hold, so new gains and limits act from the next step."""
        if self._held:
            self._resend_due = True
            return
        # Targets are None until the robot's first reset_joints, by when every parameter is set.
        if self.arm_target is not None:
            self._send_arm(self.arm_target)
        if self.finger_target is not None:
            self._send_fingers(self.finger_target)

    # --- snapshots --------------------------------------------------------------------------

    def state(self) -> ActuationState:
        """The motor targets and the set-points on their way, for a world snapshot."""
        return ActuationState(_frozen(self.arm_target), _frozen(self.finger_target), self._tick,
                              tuple((due, _frozen(arm), _frozen(fingers))
                                    for due, arm, fingers in self.pending))

    def restore(self, state: ActuationState) -> None:
        """Return to ``state`` (a pybullet snapshot holds no motor targets) and re-send them."""
        self.arm_target = _listed(state.arm_target)
        self.finger_target = _listed(state.finger_target)
        if self.pending or state.pending:
            self.pending = deque((due, _listed(arm), _listed(fingers))
                                 for due, arm, fingers in state.pending)
        self._tick = state.tick
        self.resend()


def _frozen(targets: Targets | None) -> tuple[float, ...] | None:
    return None if targets is None else tuple(targets)


def _listed(targets: Targets | None) -> list[float] | None:
    return None if targets is None else list(targets)


class MotorBatch:
    """Holds the motors of several actuations, then releases them: each robot sends its
    commands once, when the block ends (see :meth:`Actuation.hold`).

    A class rather than a generator-based context manager: every env reset opens one, and
    contextlib's machinery cost more than the block's own bookkeeping.
    """

    __slots__ = ("_actuations",)

    def __init__(self, actuations: Sequence[Actuation]):
        self._actuations = actuations

    def __enter__(self) -> "MotorBatch":
        for actuation in self._actuations:
            actuation.hold()
        return self

    def __exit__(self, *_exc) -> None:
        failure = None
        for actuation in self._actuations:  # every robot is released, even if one fails to send
            try:
                actuation.release()
            except Exception as error:  # noqa: BLE001 - re-raised below
                failure = failure or error
        if failure is not None:
            raise failure
