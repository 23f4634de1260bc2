"""The law that bounds how fast a robot's joint set-points may move, in one home.

Two places turn a policy's action into joint set-points: the twin's action controllers
(:mod:`celltwin.robots.controllers`, what a policy trains through) and the deployment adapter's
safety layer (:mod:`celltwin.policies.deploy.safety`, what a deployed policy runs through).
Both bound every set-point by the same per-joint intervals of its velocity, relative to the
previous set-point and its velocity: the joint speed limit, a per-step change limit, the
acceleration limit, the position limits, and the braking distance to them. The wanted velocity
is scaled as one vector into them, so the move keeps its direction (a synchronised move, as an
industrial controller makes); only where no common factor fits is each joint clipped on its
own. If only deployment
bounded them, a policy would learn motions in training that deployment then cuts short (a
sim-to-real gap measured at 6/20 deployed successes for a policy that succeeded 20/20 in the
twin). So the law lives here, numpy only, where the robots (rank 1) and the controller side
may both import it.

The braking set-point (each joint's velocity reduced by ``a_max dt`` towards zero) lies in
every interval, so the intersection is never empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACCELERATION_TIME_S = 0.2
"""Default time from standstill to a joint's full speed [s]: acceleration limit = speed / it."""
MAX_JOINT_STEP_RAD = 0.1
"""Default largest change of one joint's set-point in one control step [rad]."""
LIMITS = ("joint_velocity", "joint_step", "joint_acceleration", "joint_position",
          "braking_distance")
"""Names of the intervals, as the safety layer's telemetry reports them."""


@dataclass(frozen=True)
class JointMotionLimits:
    """Limits of an arm's set-points, in the order of its joint arrays.

    Attributes:
        lower, upper: joint position limits [rad].
        velocity: joint speed limits [rad/s] (``inf``: none).
        acceleration: joint acceleration limits [rad/s^2] (``inf``: none).
        max_step: largest change of one joint per set-point [rad].
    """

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    max_step: np.ndarray

    @classmethod
    def from_speeds(cls, lower, upper, velocity, acceleration_time_s: float = ACCELERATION_TIME_S,
                    max_step_rad: float = MAX_JOINT_STEP_RAD) -> "JointMotionLimits":
        """Limits from joint speed limits (a URDF's; ``<= 0`` means none, as in URDF)."""
        velocity = np.asarray(velocity, dtype=float)
        velocity = np.where(velocity > 0, velocity, np.inf)
        return cls(np.asarray(lower, dtype=float), np.asarray(upper, dtype=float), velocity,
                   velocity / float(acceleration_time_s),
                   np.full(velocity.shape, float(max_step_rad)))


def braking_velocity(limits: JointMotionLimits, velocity: np.ndarray, dt: float) -> np.ndarray:
    """Each joint's velocity one step of full braking later [rad/s]."""
    return np.sign(velocity) * np.maximum(np.abs(velocity) - limits.acceleration * dt, 0.0)


def stop_speed(limits: JointMotionLimits, distance: np.ndarray, dt: float) -> np.ndarray:
    """Largest speed towards a limit ``distance`` away that can still brake before it.

    Solves ``v dt + v^2 / (2 a) = distance``: one step at ``v``, then braking at ``a`` (the
    discrete braking distance is at most ``v^2 / 2a``).
    """
    a = limits.acceleration
    distance = np.maximum(distance, 0.0)
    with np.errstate(invalid="ignore"):
        speed = a * (np.sqrt(dt * dt + 2.0 * distance / a) - dt)
    # Without an acceleration limit, any speed stops at once: only the position bound holds.
    return np.where(np.isfinite(a), speed, distance / dt)


def limit_velocity(limits: JointMotionLimits, q: np.ndarray, v: np.ndarray, target: np.ndarray,
                   dt: float) -> tuple[np.ndarray, tuple[str, ...]]:
    """The set-point velocity towards ``target`` within every interval, and which ones acted.

    Args:
        q: the previous set-point [rad].
        v: the previous set-point velocity [rad/s].
        target: the proposed set-point [rad] (finite).
        dt: control period [s].

    Returns:
        the velocity [rad/s] (the next set-point is ``q + velocity dt``) and the names of the
        intervals (:data:`LIMITS`) that changed it.
    """
    # Bounded first: a 1e308 target would overflow the division; any step beyond a million
    # radians is clipped to the same set-point anyway.
    wanted = np.clip(target - q, -1e6, 1e6) / dt
    bounds = {
        "joint_velocity": (-limits.velocity, limits.velocity),
        "joint_step": (-limits.max_step / dt, limits.max_step / dt),
        "joint_acceleration": (v - limits.acceleration * dt, v + limits.acceleration * dt),
        "joint_position": ((limits.lower - q) / dt, (limits.upper - q) / dt),
        "braking_distance": (-stop_speed(limits, q - limits.lower, dt),
                             stop_speed(limits, limits.upper - q, dt)),
    }
    low = np.maximum.reduce([b[0] for b in bounds.values()])
    high = np.minimum.reduce([b[1] for b in bounds.values()])
    # Rounding can cross the bounds by an ulp; the braking velocity is inside in exact
    # arithmetic, so it is the safe answer there.
    brake = braking_velocity(limits, v, dt)
    low, high = np.minimum(low, brake), np.maximum(high, brake)
    velocity = _along_the_path(wanted, low, high)
    changed = np.abs(velocity - wanted) > 1e-12
    flags = ()
    if changed.any():
        flags = tuple(name for name, (lo, hi) in bounds.items()
                      if np.any(changed & ((wanted < lo) | (wanted > hi))))
    return velocity, flags


def _along_the_path(wanted: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``wanted`` scaled as one vector into the intervals, else clipped joint by joint.

    Slowing every joint by the same factor keeps the motion on its line in joint space (and,
    for the small steps of one control period, the TCP on its line), as an industrial
    controller's synchronised move does; clipping each joint on its own bends it: a full +x
    jog of a Panda sank the TCP 19 cm in 10 steps. The largest common factor in [0, 1] is
    taken; where none fits every interval (the arm already moving another way faster than it
    can turn in one step), each joint is clipped on its own.
    """
    moving = wanted != 0.0
    if not np.all((low[~moving] <= 0.0) & (high[~moving] >= 0.0)):
        return np.clip(wanted, low, high)
    w, lo, hi = wanted[moving], low[moving], high[moving]
    top = np.where(w > 0, hi / w, lo / w) if w.size else np.ones(1)
    bottom = np.where(w > 0, lo / w, hi / w) if w.size else np.zeros(1)
    factor_high, factor_low = min(1.0, float(top.min())), max(0.0, float(bottom.max()))
    if factor_low > factor_high:
        return np.clip(wanted, low, high)
    # The factor is exact up to rounding: keep each joint inside its interval.
    return np.clip(factor_high * wanted, low, high)


class JointMotionLimiter:
    """Set-points of one arm under :func:`limit_velocity`, remembering the last one.

    Args:
        limits: the arm's limits.
        period_s: time between set-points [s].

    Attributes:
        q: the last set-point [rad] (``None`` before :meth:`reset`).
        v: its velocity [rad/s].
    """

    def __init__(self, limits: JointMotionLimits, period_s: float = 0.04):
        self.limits = limits
        self.period_s = float(period_s)
        self.q: np.ndarray | None = None
        self.v = np.zeros(limits.lower.shape)

    def reset(self, q) -> None:
        """Start from rest at ``q`` [rad]."""
        self.q = np.array(q, dtype=float)
        self.v = np.zeros_like(self.q)

    def follow(self, q) -> None:
        """Note a set-point commanded past the limiter (one period after the last one)."""
        q = np.array(q, dtype=float)
        self.v = np.zeros_like(q) if self.q is None else (q - self.q) / self.period_s
        self.q = q

    def __call__(self, target, period_s: float | None = None) -> np.ndarray:
        """The next set-point [rad] towards ``target`` (finite), ``period_s`` after the last."""
        if period_s is not None:
            self.period_s = float(period_s)
        target = np.asarray(target, dtype=float)
        if self.q is None:
            self.reset(target)
            return self.q.copy()
        velocity, _ = limit_velocity(self.limits, self.q, self.v, target, self.period_s)
        self.q = self.q + velocity * self.period_s
        self.v = velocity
        return self.q.copy()
