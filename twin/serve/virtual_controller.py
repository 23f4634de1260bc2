"""The twin as a robot controller: joint set-points in, sampled state and safety state out.

A :class:`VirtualController` stands where a real robot controller would: a policy (through the
deployment adapter) sends it joint position set-points and reads back joint state, the way it
will with the real cell. It advances the twin one control period per :meth:`tick`, so the same
object serves lock-step tests (tick per command) and real-time serving (a clock ticks it).

What makes it a controller rather than an env:

- Safety state as OPC 40010 models it: operational mode, emergency stop, protective stop.
  Set-points move the robot only in an automatic mode with no stop active; otherwise it holds
  where it is and set-points are dropped (a real controller refuses external motion then).
  Clearing a stop moves nothing: the robot keeps holding until the next accepted set-point.
- Imperfections the adapter must survive: actuation latency (a set-point reaches the motors
  ``latency_steps`` ticks after it arrives) and Gaussian noise on reported joint positions,
  drawn from a seeded generator so a run replays exactly. Both are the robot's actuation
  (:mod:`celltwin.robots.actuation`), set by the world's PhysicsParams
  (``robots.<name>.latency_steps`` / ``joint_noise_std_rad``), which is where domain
  randomization and calibration put them; explicit values are applied to the world through
  PhysicsParams, so the env, ``layout run`` and this controller act alike.
- A stall hook: :meth:`stall` freezes the published state (stamp included) while physics and
  set-points go on, which is what a hung state publisher looks like to the adapter's watchdog.

State is sampled once per tick (noise included) and read many times, like a controller's cycle.
Every public method holds one lock, so a real-time thread, an OPC UA server and a test may call
in from different threads.
"""

from __future__ import annotations

import threading
from typing import Mapping, Sequence

import numpy as np

from pydantic import ValidationError

from celltwin.controller.interface import MOVING_MODES, OPERATIONAL_MODES, ControllerState
from celltwin.controller.errors import ControllerError
from celltwin.core.documents import validation_problems
from celltwin.core.errors import PhysicsParamsError, Problem, one_of
from celltwin.physics import PhysicsParams

# How far past a joint limit [rad] or the gripper's range [m] a set-point may lie and still be
# taken (put on the limit): rounding of a set-point computed to lie on the limit, no more.
LIMIT_TOLERANCE = 1e-9


class VirtualController:
    """One robot of a twin, driven like a robot controller.

    Args:
        world: the twin; must stay open while this controller is used. Any engine's world
            that answers ``robot(name)``, ``body(name)``, ``pose(name)``, ``step()``,
            ``control_period_s``, ``apply_physics`` and ``close()``: a pybullet
            :class:`celltwin.world.World` or a :class:`celltwin.mujoco.twin.MujocoTwin`.
        robot: name of the robot in the cell (the only one when omitted).
        latency_steps: actuation latency [ticks]; ``None`` keeps the world's value.
        noise_rad: standard deviation of the noise on reported joint positions [rad];
            ``None`` keeps the world's value.
        seed: seed of the noise generator (``None``: fresh entropy).
        tracked_objects: bodies of the cell whose positions are reported in
            ``ControllerState.objects`` (robot base frame), as a vision system would.
        owns_world: close ``world`` in :meth:`close`.

    Attributes:
        robot_model: registry name of the robot model (``panda``).
        robot_name: name of the robot in the cell.
        joint_names: arm joints, in the order of every joint array.
        control_period_s: simulated time one :meth:`tick` advances [s].
    """

    def __init__(self, world, robot: str | None = None, *, latency_steps: int | None = None,
                 noise_rad: float | None = None, seed: int | None = None,
                 tracked_objects: Sequence[str] = (), owns_world: bool = False):
        self.world = world
        self.robot = world.robot(robot)
        self._owns_world = owns_world
        self.robot_name = self.robot.name
        self.robot_model = self.robot.model.name
        self.joint_names = tuple(self.robot.model.arm_joint_names)
        self.control_period_s = float(world.control_period_s)
        if latency_steps is not None or noise_rad is not None:
            world.apply_physics(_actuation(self.robot_name, latency_steps, noise_rad))
        for name in tracked_objects:
            world.body(name)  # unknown names fail here, with a did-you-mean, not at the first tick
        self._tracked = tuple(tracked_objects)
        self._has_gripper = self.robot.has_gripper
        self._rng = np.random.default_rng(seed)
        self.robot.actuation.rng = self._rng
        self._lock = threading.RLock()
        self._ticks = 0
        self._operational_mode = "AUTOMATIC"
        self._emergency_stop = False
        self._protective_stop = False
        self._frozen: ControllerState | None = None
        self._closed = False
        self._sample = self._take_sample()

    @classmethod
    def from_cell(cls, cell, *, robot: str | None = None, physics: PhysicsParams | None = None,
                  **options) -> "VirtualController":
        """Build the twin of ``cell`` (a CellSpec, file or example name) and control one robot.

        The controller owns the world it builds and closes it in :meth:`close`.
        """
        from celltwin.world import World

        world = World(cell, physics=physics)
        try:
            return cls(world, robot, owns_world=True, **options)
        except BaseException:
            world.close()
            raise

    # ----------------------------------------------------------------------------- commands
    def command(self, positions, gripper_width_m: float | None = None) -> bool:
        """Accept joint position set-points [rad] (and a gripper opening [m]).

        They reach the motors ``latency_steps`` ticks from now. ``positions=None`` commands the
        gripper alone and leaves the arm's targets as they are.

        Returns:
            ``False`` when the set-point was dropped because a stop is active or the mode is
            not automatic; ``True`` when it is on its way to the motors.

        Raises:
            ControllerError: see :meth:`check_setpoint`; the targets stay as they were.
        """
        q, width = self.check_setpoint(positions, gripper_width_m)
        with self._lock:
            self._check_open()
            if not self.accepts_setpoints:
                return False
            if q is not None:
                self.robot.command_joint_positions(q)  # the robot's actuation delays it
            if width is not None and self._has_gripper:
                self.robot.command_gripper_width(width)
            return True

    def check_setpoint(self, positions, gripper_width_m: float | None = None
                       ) -> tuple[np.ndarray | None, float | None]:
        """The set-point as the controller would take it, or a refusal.

        A value outside the joint limits (or the gripper's opening range) is refused, not
        clipped: a controller that quietly moves somewhere else than asked hides the caller's
        bug. Values within :data:`LIMIT_TOLERANCE` of a limit (rounding) are put on it.

        Returns:
            ``(positions [rad] or None, gripper opening [m] or None)``.

        Raises:
            ControllerError: one problem per wrong value: not a number, not finite, wrong
                count, outside a joint limit or the gripper range.
        """
        width = self._check_gripper(gripper_width_m)
        if positions is None:
            return None, width
        try:
            q = np.asarray(positions, dtype=float)
            shown = np.atleast_1d(q).tolist()
        except (TypeError, ValueError):
            q, shown = np.full(0, np.nan), positions  # reported below with what was expected
        if q.shape != (len(self.joint_names),) or not np.isfinite(q).all():
            raise ControllerError(Problem(
                f"joint set-point for robot '{self.robot_name}' is invalid", path="positions",
                value=shown,
                expected=f"{len(self.joint_names)} finite joint positions [rad] in the order "
                         + ", ".join(self.joint_names)))
        lower, upper = self.robot.arm_lower, self.robot.arm_upper
        limited = lower <= upper  # a URDF's lower > upper means "no limits", as in pybullet
        outside = np.flatnonzero(limited & ((q < lower - LIMIT_TOLERANCE)
                                            | (q > upper + LIMIT_TOLERANCE)))
        if outside.size:
            raise ControllerError([Problem(
                f"joint set-point {q[j]:.6g} rad of '{self.joint_names[j]}' is outside its "
                "limits", path=f"positions[{j}]", value=float(q[j]),
                expected=f"[{lower[j]:.4f}, {upper[j]:.4f}] rad") for j in outside])
        return np.where(limited, np.clip(q, np.minimum(lower, upper), upper), q), width

    def _check_gripper(self, width) -> float | None:
        if width is None:
            return None
        if isinstance(width, bool) or not isinstance(width, (int, float, np.number)) \
                or not np.isfinite(width):
            raise ControllerError(Problem("gripper set-point is not finite",
                                          path="gripper_width_m", value=width,
                                          expected="an opening [m]"))
        if not self._has_gripper:
            return float(width)  # nothing to open: taken and ignored, as before
        closed, opened = self.robot.model.gripper_width_range_m
        if not closed - LIMIT_TOLERANCE <= width <= opened + LIMIT_TOLERANCE:
            raise ControllerError(Problem(
                f"gripper set-point {float(width):.6g} m is outside the gripper's range",
                path="gripper_width_m", value=float(width),
                expected=f"[{closed:g}, {opened:g}] m"))
        return min(max(float(width), closed), opened)

    def tick(self, count: int = 1) -> None:
        """Advance ``count`` control periods: the world delivers due set-points and steps
        physics; then the state is sampled."""
        with self._lock:
            self._check_open()
            for _ in range(count):
                self.world.step()
                self._ticks += 1
                self._sample = self._take_sample()

    # ----------------------------------------------------------------------------- state
    def state(self) -> ControllerState:
        """The latest state sample; frozen, stamp included, while :meth:`stall` is in force."""
        with self._lock:
            self._check_open()
            if self._frozen is not None:
                return self._frozen
            return self._state_now()

    @property
    def stamp_s(self) -> float:
        """Simulated time of the latest tick [s] (keeps running while stalled)."""
        return self._ticks * self.control_period_s

    @property
    def ticks(self) -> int:
        """Control periods advanced since construction."""
        return self._ticks

    @property
    def active_setpoint(self) -> np.ndarray:
        """The arm position targets the motors follow now [rad] (after latency and clipping)."""
        with self._lock:
            return np.array(self.robot.motor_targets()[0], dtype=float)

    @property
    def latency_steps(self) -> int:
        """Actuation latency in effect [ticks]."""
        return self.robot.actuation.latency_steps

    @property
    def noise_rad(self) -> float:
        """Noise on reported joint positions in effect [rad]."""
        return self.robot.actuation.joint_noise_std_rad

    @property
    def accepts_setpoints(self) -> bool:
        """Whether a set-point sent now would move the robot (automatic mode, no stop)."""
        return (self._operational_mode in MOVING_MODES and not self._emergency_stop
                and not self._protective_stop)

    # ----------------------------------------------------------------------------- safety
    @property
    def operational_mode(self) -> str:
        return self._operational_mode

    @property
    def emergency_stop(self) -> bool:
        return self._emergency_stop

    @property
    def protective_stop(self) -> bool:
        return self._protective_stop

    def raise_emergency_stop(self) -> None:
        """Stop now and hold; set-points are dropped until the stop is cleared."""
        with self._lock:
            self._emergency_stop = True
            self._hold()

    def clear_emergency_stop(self) -> None:
        """Release the emergency stop; the robot keeps holding until the next set-point."""
        with self._lock:
            self._emergency_stop = False

    def raise_protective_stop(self) -> None:
        """Stop now and hold (e.g. a light curtain tripped); set-points are dropped meanwhile."""
        with self._lock:
            self._protective_stop = True
            self._hold()

    def clear_protective_stop(self) -> None:
        """Release the protective stop; the robot keeps holding until the next set-point."""
        with self._lock:
            self._protective_stop = False

    def set_operational_mode(self, mode: str) -> None:
        """Switch mode (one of ``OPERATIONAL_MODES``); leaving automatic makes the robot hold."""
        if mode not in OPERATIONAL_MODES:
            raise ControllerError(Problem(f"unknown operational mode '{mode}'",
                                          path="operational_mode", value=mode,
                                          expected=one_of(OPERATIONAL_MODES)))
        with self._lock:
            self._operational_mode = mode
            if mode not in MOVING_MODES:
                self._hold()

    def _hold(self) -> None:
        # Set-points still in flight were sent before the stop: a stopped controller drops
        # them, and holds at once (robot.hold skips the latency).
        self.robot.hold()

    def rebase(self, edit):
        """Run ``edit()`` between ticks (e.g. an env reset that restores a snapshot) and return
        its result; set-points in flight are dropped and the state is sampled afresh, so
        nothing commanded before the edit moves the robot after it."""
        with self._lock:
            self._check_open()
            result = edit()
            self.robot.actuation.cancel()
            self.robot.actuation.rng = self._rng  # an env reset seeds it with its own
            self._sample = self._take_sample()
            return result

    # ----------------------------------------------------------------------------- stall
    def stall(self) -> None:
        """Freeze the published state (stamp included); physics and set-points carry on."""
        with self._lock:
            if self._frozen is None:
                self._frozen = self._state_now()

    def resume(self) -> None:
        """Publish live state again."""
        with self._lock:
            self._frozen = None

    @property
    def stalled(self) -> bool:
        return self._frozen is not None

    # ----------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Stop serving; closes the world when this controller built it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns_world:
                self.world.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "VirtualController":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------------- internals
    def _take_sample(self) -> tuple:
        q = self.robot.measured_joint_positions()
        width = self.robot.gripper_width() if self._has_gripper else None
        return self.stamp_s, q, self.robot.joint_velocities(), width, self._object_positions()

    def _state_now(self) -> ControllerState:
        stamp, q, dq, width, objects = self._sample
        return ControllerState(stamp_s=stamp, joint_positions=q.copy(), joint_velocities=dq.copy(),
                               gripper_width_m=width, operational_mode=self._operational_mode,
                               emergency_stop=self._emergency_stop,
                               protective_stop=self._protective_stop,
                               objects={name: p.copy() for name, p in objects.items()})

    def _object_positions(self) -> Mapping[str, np.ndarray]:
        # What a vision system reports: each tracked body's pose as the world reports it
        # (``world.pose``: pybullet's base position, the MuJoCo twin's centre of mass, the
        # same point), in the frame the robot's controller believes its base is in. One
        # accessor every engine's world implements, so this class serves either engine.
        if not self._tracked:
            return {}
        rotation = rotation_matrix(self.robot.base_quat_xyzw)
        base = self.robot.base_xyz
        return {name: rotation.T @ (np.asarray(self.world.pose(name)[0], dtype=float) - base)
                for name in self._tracked}

    def _check_open(self) -> None:
        if self._closed:
            raise ControllerError(Problem(
                f"virtual controller of robot '{self.robot_name}' is closed",
                expected="a controller that is still open"))


def rotation_matrix(quat_xyzw) -> np.ndarray:
    """The rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in quat_xyzw)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _actuation(robot: str, latency_steps: int | None, noise_rad: float | None) -> PhysicsParams:
    """Latency and noise overrides as PhysicsParams, checked like a --physics file."""
    entry = {key: value for key, value in (("latency_steps", latency_steps),
                                           ("joint_noise_std_rad", noise_rad)) if value is not None}
    try:
        return PhysicsParams.model_validate({"robots": {robot: entry}})
    except ValidationError as error:
        raise PhysicsParamsError(validation_problems(error, PhysicsParams)) from None
