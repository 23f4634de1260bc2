"""The safety layer every joint set-point passes through before it reaches a controller.

A learned policy may output anything: NaN, a huge step, a target past a joint limit, a TCP
path through the fence. The layer turns any proposed target into a set-point that respects,
relative to the previous set-point and the control period ``dt``:

- joint position limits (``lower <= q <= upper``),
- joint velocity limits (``|q - q_prev| / dt <= v_max``) and a per-step change limit,
- joint acceleration limits (``|v - v_prev| / dt <= a_max``),
- the TCP workspace box (TCP of every set-point inside, computed with numpy FK),
- optionally the reduced-mode TCP speed cap (ISO 10218-1: 250 mm/s).

How it guarantees all of them at once, every step, whatever comes in: it keeps the invariant
"braking from the current set-point at the acceleration limit stays inside every position
limit and the box". The *braking* set-point (each joint's velocity reduced by ``a_max dt``
towards zero) then always satisfies every limit, and a proposal is accepted only as far as it
keeps the invariant:

1. A non-finite proposal is replaced by the braking set-point: the robot decelerates to a
   standstill at the acceleration limit and then holds (a hard hold would break the
   acceleration limit at speed).
2. Per joint, the velocity is clipped into the intersection of the velocity, per-step,
   acceleration and position intervals, the last one shrunk so that braking from the new
   set-point stops before the limit (``v dt + v^2 / 2a <= distance to the limit``). The
   braking velocity is in every one of these intervals, so the intersection is never empty.
   This step is :func:`celltwin.core.joint_motion.limit_velocity`, the law the twin's action
   controllers move the robot under in training too: a policy learns only motions that
   deployment lets through.
3. Reduced mode bounds TCP speed through the per-joint lever arms
   (``sum(w_i |v_i|) <= v_tcp``; :meth:`KinematicChain.reach_weights`), which holds for every
   configuration and every point between set-points.
4. The box: the set-point's TCP and its braking path must stay inside. A proposal that would
   leave is *scaled back* along the line from the braking set-point towards it (bisection), so
   the TCP stops at the boundary rather than jumping back; motion parallel to the boundary
   continues in later steps. (Projecting the TCP onto the box in Cartesian space would need
   IK inside the safety layer; scaling in joint space needs only FK and keeps 2 and 3 intact,
   since every limit above is convex in the velocity.)

The layer also judges what the controller *measures* (:meth:`SafetyLayer.measurement_fault`):
a state with a non-finite value, joints beyond their limits by more than
:data:`POSITION_MARGIN_RAD`, joint speeds beyond :data:`SPEED_FACTOR` times their limits, a
gripper opening outside its range by more than :data:`GRIPPER_MARGIN_M` or a tracked body
farther than :data:`OBJECT_RANGE_M` from the base is no robot's: a broken sensor, bus or server.
Holding position from such a state would compute set-points from garbage, so the adapter stops
on it as on stale state, and asks the controller for a protective stop.

The box and joint limits hold at the set-points; between set-points the controller
interpolates, so the box should keep a margin to anything solid. This layer never replaces the
controller's certified safety functions (e-stop, safe speed monitoring); it keeps a policy
from asking for what it must not.

numpy only: it runs on a controller PC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from celltwin.controller.errors import ControllerError
from celltwin.policies.kinematics import KinematicChain
from celltwin.core.errors import Problem
from celltwin.core.joint_motion import braking_velocity, limit_velocity

# Names of the limits that can act on a set-point, as telemetry reports them.
FLAGS = ("non_finite", "joint_position", "joint_velocity", "joint_step", "joint_acceleration",
         "braking_distance", "reduced_speed", "workspace", "gripper")
_BISECTION_STEPS = 12  # 1/4096 of the step: finer buys nothing a controller can follow
_EPS = 1e-12
# Bounds of a physically possible measurement (see the module docstring). Wide on purpose: a
# robot overshoots a soft limit a little and brakes through a collision; none stands a tenth
# of a radian past its limit or moves at three times its rated speed.
POSITION_MARGIN_RAD = 0.1
SPEED_FACTOR = 3.0
GRIPPER_MARGIN_M = 0.01
OBJECT_RANGE_M = 100.0


@dataclass(frozen=True)
class SafetyLimits:
    """Limits of one arm, in the order of its joint arrays.

    Attributes:
        lower, upper: joint position limits [rad].
        velocity: joint speed limits [rad/s].
        acceleration: joint acceleration limits [rad/s^2].
        max_step: largest change of one joint per set-point [rad].
        workspace_low, workspace_high: TCP box in the robot base frame [m].
        reduced_tcp_speed: TCP speed cap of reduced mode [m/s].
        gripper_range: (closed, open) gripper opening [m].
    """

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    max_step: np.ndarray
    workspace_low: np.ndarray
    workspace_high: np.ndarray
    reduced_tcp_speed: float = 0.25
    gripper_range: tuple[float, float] = (0.0, 0.08)

    @classmethod
    def from_manifest(cls, manifest: Mapping) -> "SafetyLimits":
        """Read the limits of a (validated) bundle manifest."""
        safety = manifest["safety"]
        array = lambda key: np.asarray(safety[key], dtype=float)  # noqa: E731
        return cls(lower=array("joint_position_lower_rad"), upper=array("joint_position_upper_rad"),
                   velocity=array("joint_velocity_rad_s"),
                   acceleration=array("joint_acceleration_rad_s2"),
                   max_step=array("max_joint_step_rad"),
                   workspace_low=array("tcp_workspace_low_m"),
                   workspace_high=array("tcp_workspace_high_m"),
                   reduced_tcp_speed=float(safety["reduced_mode_tcp_speed_mps"]),
                   gripper_range=tuple(manifest["robot"]["gripper"]["width_range_m"]))


@dataclass(frozen=True)
class SafeCommand:
    """A set-point that passed the safety layer.

    Attributes:
        positions: joint set-points [rad].
        gripper_width_m: gripper opening set-point [m] (``None`` when none was asked for).
        flags: the limits that changed the proposal (names from :data:`FLAGS`).
        tcp_position: the set-point's TCP in the base frame [m].
    """

    positions: np.ndarray
    gripper_width_m: float | None
    flags: tuple[str, ...]
    tcp_position: np.ndarray


class SafetyLayer:
    """Turns proposed joint targets into set-points within every limit (see module docstring).

    Args:
        limits: the arm's limits.
        chain: the arm's kinematics, for the TCP box.
        period_s: time between set-points [s].
        reduced_mode: cap TCP speed at ``limits.reduced_tcp_speed``.

    Call :meth:`reset` with the measured joint positions before the first :meth:`filter`.
    """

    def __init__(self, limits: SafetyLimits, chain: KinematicChain, period_s: float,
                 reduced_mode: bool = False):
        if not (math.isfinite(period_s) and period_s > 0):
            raise ControllerError(Problem("control period must be positive", path="period_s",
                                          value=period_s, expected="a period > 0 [s]"))
        self.limits = limits
        self.chain = chain
        self.dt = float(period_s)
        self.reduced_mode = bool(reduced_mode)
        self._weights = chain.reach_weights(np.maximum(np.abs(limits.lower), np.abs(limits.upper)))
        self._q: np.ndarray | None = None
        self._v = np.zeros(chain.dof)
        self._gripper: float | None = None

    # --- state -----------------------------------------------------------------------------

    @property
    def last_command(self) -> np.ndarray | None:
        """The last set-point [rad] (``None`` before :meth:`reset`)."""
        return None if self._q is None else self._q.copy()

    @property
    def last_velocity(self) -> np.ndarray:
        """The set-point velocity of the last step [rad/s]."""
        return self._v.copy()

    def reset(self, measured_q: Sequence[float], gripper_width_m: float | None = None) -> None:
        """Start from rest at the measured configuration.

        Raises:
            ControllerError: the robot stands outside a joint limit or its TCP outside the
                box; the layer cannot bring it back smoothly, so it refuses to start (jog the
                robot inside by hand).
        """
        q = np.asarray(measured_q, dtype=float)
        limits = self.limits
        if q.shape != (self.chain.dof,) or not np.isfinite(q).all():
            raise ControllerError(Problem("measured joint positions are invalid", value=q.tolist(),
                                          expected=f"{self.chain.dof} finite values [rad]"))
        outside = np.flatnonzero((q < limits.lower) | (q > limits.upper))
        if outside.size:
            j = int(outside[0])
            raise ControllerError(Problem(
                f"joint '{self.chain.joint_names[j]}' stands outside its safety limits",
                path=f"safety.joint_position[{j}]", value=float(q[j]),
                expected=f"[{limits.lower[j]:.4f}, {limits.upper[j]:.4f}] rad"))
        tcp = self.chain.fk(q)[0]
        if not self._in_box(tcp):
            raise ControllerError(Problem("the TCP stands outside the safety workspace box",
                                          path="safety.tcp_workspace", value=tcp.round(4).tolist(),
                                          expected=f"inside {limits.workspace_low.tolist()} .. "
                                                   f"{limits.workspace_high.tolist()} m"))
        self._q = q.copy()
        self._v = np.zeros_like(q)
        self._gripper = None if gripper_width_m is None else float(
            np.clip(gripper_width_m, *limits.gripper_range))

    # --- measurements ----------------------------------------------------------------------

    def measurement_fault(self, state) -> str | None:
        """Why a controller state cannot be a real robot's measurement (``None``: it can).

        Args:
            state: a :class:`~celltwin.controller.interface.ControllerState`.
        """
        limits, names = self.limits, self.chain.joint_names
        try:
            stamp = float(state.stamp_s)
            q = np.asarray(state.joint_positions, dtype=float)
            dq = np.asarray(state.joint_velocities, dtype=float)
        except (TypeError, ValueError):
            return "implausible measurement: stamp or joint values are not numbers"
        if not math.isfinite(stamp):
            return f"implausible measurement: state stamp {stamp} s"
        for what, values in (("position", q), ("speed", dq)):
            if values.shape != (self.chain.dof,):
                return (f"implausible measurement: {values.size} joint {what}s for "
                        f"{self.chain.dof} joints")
        speed_limit = SPEED_FACTOR * limits.velocity
        for j, name in enumerate(names):
            if not (limits.lower[j] - POSITION_MARGIN_RAD <= q[j]
                    <= limits.upper[j] + POSITION_MARGIN_RAD):  # NaN fails this too
                return (f"implausible measurement: joint '{name}' at {q[j]:.6g} rad, limits "
                        f"[{limits.lower[j]:.4f}, {limits.upper[j]:.4f}] rad")
            if not abs(dq[j]) <= speed_limit[j]:
                return (f"implausible measurement: joint '{name}' moving at {dq[j]:.6g} rad/s, "
                        f"limit {limits.velocity[j]:.4g} rad/s")
        width = state.gripper_width_m
        if width is not None:
            closed, opened = limits.gripper_range
            if not (isinstance(width, (int, float, np.number)) and
                    closed - GRIPPER_MARGIN_M <= width <= opened + GRIPPER_MARGIN_M):
                return (f"implausible measurement: gripper opening {width!r} m, range "
                        f"[{closed:g}, {opened:g}] m")
        for name, position in state.objects.items():
            try:
                xyz = np.asarray(position, dtype=float)
            except (TypeError, ValueError):
                xyz = np.full(0, np.nan)
            if xyz.shape != (3,) or not np.linalg.norm(xyz) <= OBJECT_RANGE_M:
                return (f"implausible measurement: tracked body '{name}' at "
                        f"{np.atleast_1d(xyz).tolist()} m (expected 3 finite coordinates within "
                        f"{OBJECT_RANGE_M:g} m of the base)")
        return None

    # --- the filter ------------------------------------------------------------------------

    def filter(self, proposed_q: Sequence[float],
               gripper_width_m: float | None = None) -> SafeCommand:
        """Return the set-point to send for a proposed joint target (and gripper opening)."""
        if self._q is None:
            raise ControllerError(Problem("safety layer used before reset()",
                                          expected="reset(measured positions) first"))
        limits, dt, q0, v0 = self.limits, self.dt, self._q, self._v
        flags: list[str] = []
        brake_v = braking_velocity(limits, v0, dt)

        proposed = np.asarray(proposed_q, dtype=float).reshape(-1)
        if proposed.shape != q0.shape or not np.isfinite(proposed).all():
            flags.append("non_finite")
            velocity = brake_v
        else:
            velocity = self._clip_velocity(proposed, flags)
        if self.reduced_mode:
            velocity = self._cap_tcp_speed(velocity, brake_v, flags)
        velocity, tcp = self._keep_in_box(velocity, brake_v, flags)

        self._q = q0 + velocity * dt
        self._v = velocity
        width = self._gripper_command(gripper_width_m, flags)
        return SafeCommand(self._q.copy(), width, tuple(flags), tcp)

    def _clip_velocity(self, proposed: np.ndarray, flags: list[str]) -> np.ndarray:
        # The law the twin's controllers train under too (celltwin.core.joint_motion).
        velocity, acted = limit_velocity(self.limits, self._q, self._v, proposed, self.dt)
        flags.extend(acted)
        return velocity

    def _cap_tcp_speed(self, velocity: np.ndarray, brake_v: np.ndarray,
                       flags: list[str]) -> np.ndarray:
        cap = self.limits.reduced_tcp_speed
        bound = lambda v: float(self._weights @ np.abs(v))  # noqa: E731  (TCP speed bound [m/s])
        if bound(velocity) <= cap:
            return velocity
        flags.append("reduced_speed")
        if bound(brake_v) > cap:
            # Only when reduced mode starts at speed; braking is the fastest way under the cap.
            return brake_v
        return self._scale_back(brake_v, velocity, lambda v: bound(v) <= cap)

    def _keep_in_box(self, velocity: np.ndarray, brake_v: np.ndarray,
                     flags: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ok, tcp = self._box_safe(velocity)
        if ok:
            return velocity, tcp
        flags.append("workspace")
        velocity = self._scale_back(brake_v, velocity, lambda v: self._box_safe(v)[0])
        return velocity, self.chain.fk(self._q + velocity * self.dt)[0]

    def _box_safe(self, velocity: np.ndarray) -> tuple[bool, np.ndarray]:
        """Whether the set-point's TCP and the TCP along its braking path stay in the box."""
        limits, dt = self.limits, self.dt
        q = self._q + velocity * dt
        tcp = self.chain.fk(q)[0]
        if not self._in_box(tcp):
            return False, tcp
        # The TCP moves at most sum(w |dq|) while braking; far enough from every face, the
        # whole braking path is inside without evaluating it.
        stop = np.abs(velocity) * dt + velocity * velocity / (2.0 * limits.acceleration)
        margin = float(self._weights @ stop)
        if self._in_box(tcp, margin):
            return True, tcp
        v = velocity
        braking_steps = int(np.ceil(np.max(np.abs(v) / (limits.acceleration * dt))))
        for _ in range(braking_steps):  # bounded: each step takes a_max dt off every speed
            v = np.sign(v) * np.maximum(np.abs(v) - limits.acceleration * dt, 0.0)
            q = q + v * dt
            if not self._in_box(self.chain.fk(q)[0]):
                return False, tcp
        return True, tcp

    def _scale_back(self, safe_v: np.ndarray, wanted_v: np.ndarray, admissible) -> np.ndarray:
        """The admissible velocity furthest from ``safe_v`` towards ``wanted_v`` (bisection).

        ``safe_v`` is admissible by the invariant; every per-joint limit is an interval, so
        each point of the segment keeps them.
        """
        lo, hi = 0.0, 1.0
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if admissible(safe_v + mid * (wanted_v - safe_v)):
                lo = mid
            else:
                hi = mid
        return safe_v + lo * (wanted_v - safe_v)

    def _in_box(self, tcp: np.ndarray, margin: float = 0.0) -> bool:
        return bool(np.all(tcp >= self.limits.workspace_low + margin - _EPS)
                    and np.all(tcp <= self.limits.workspace_high - margin + _EPS))

    def _gripper_command(self, width: float | None, flags: list[str]) -> float | None:
        if width is None:
            return self._gripper
        closed, opened = self.limits.gripper_range
        if not math.isfinite(width):
            flags.append("gripper")
            return self._gripper  # hold the last opening
        clipped = min(max(float(width), closed), opened)
        if clipped != width:
            flags.append("gripper")
        self._gripper = clipped
        return clipped
