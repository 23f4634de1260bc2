"""One robot inside a running pybullet world: load, address by name, read state, command.

Every pybullet call goes through the world's ``BulletClient``, so several worlds (vectorized
envs) live in one process without touching each other. The per-step methods
(:meth:`Robot.command_joint_positions`, :meth:`Robot.joint_positions`, ...) run many times per
simulated second in every env, so they make one batched pybullet call each and reuse
precomputed argument lists instead of building them per call.

Commands and joint readings pass through the robot's :class:`Actuation`
(``robot.actuation``), which delays set-points by the actuation latency and adds joint-sensor
noise; with neither, a command goes straight to the motors.

The robot is simulated from its merged description (:meth:`RobotModel.merged_urdf`): links
held by fixed joints are part of the link that carries them, so the TCP is not a pybullet link
of its own but a fixed frame on one (``ee_link_index`` + ``ee_offset_*``). Every TCP query here
accounts for that offset, and names of merged links still resolve to the link carrying them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from celltwin.robots.actuation import Actuation, MotorBatch
from celltwin.robots.errors import RobotError
from celltwin.robots.finger_gear import FingerGear
from celltwin.robots.model import RobotModel
from celltwin.robots.suction import SuctionCup
from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.core.joint_motion import JointMotionLimiter, JointMotionLimits

_FIXED = pybullet.JOINT_FIXED


class Robot:
    """The runtime handle of one robot (arm + gripper) in a world.

    Attributes:
        client: the world's physics client.
        model: the static description this robot was built from.
        name: the robot's name in the cell (``robot`` in ``robots[0].name``).
        body_id: pybullet body unique id.
        arm_joint_indices: pybullet indices of the arm joints, in ``model.arm_joint_names`` order.
        gripper_joint_indices: pybullet indices of the finger joints; none when the model's
            gripper is held closed (``RobotModel.held_closed``: the fingers are welded shut).
        ee_link_index: pybullet index of the link that carries the TCP (``model.ee_link``
            was merged into it).
        ee_offset_xyz: TCP position in the frame of link ``ee_link_index`` [m] (read-only).
        ee_offset_quat_xyzw: TCP orientation in that frame, quaternion (read-only).
        arm_ik_slots: where each arm joint sits in calculateInverseKinematics's answer.
        num_movable_joints: revolute and prismatic joints of the body, fingers included.
        arm_lower: arm joint lower limits from the URDF [rad].
        arm_upper: arm joint upper limits from the URDF [rad].
        actuation: the set-point path to the motors: latency, sensor noise, motor targets.
        motion: the joint motion limits action controllers move the arm under (the last
            set-point and its velocity; :mod:`celltwin.core.joint_motion`), reset whenever
            the arm is put at rest (``reset_joints``, ``hold``, a world restore).
        urdf_velocity_limits: arm joint speed limits from the URDF [rad/s] (0: none).
        finger_gear: the gear coupling two fingers (:mod:`celltwin.robots.finger_gear`), or None.
        suction: the suction cup's vacuum and grip (:mod:`celltwin.robots.suction`), or None
            (fingers, or a cup held closed: its vacuum never comes on). The world updates it
            once per control step.

    Physics parameters (``position_gain``, ``velocity_gain``, ``arm_force_limits``,
    ``gripper_force_n``) are properties: setting one re-sends the current targets, so the new
    value acts from the next physics step without waiting for the next command. Latency and
    sensor noise are ``actuation.latency_steps`` and ``actuation.joint_noise_std_rad``.
    """

    def __init__(self, client: BulletClient, model: RobotModel, name: str,
                 base_xyz: Sequence[float] = (0.0, 0.0, 0.0),
                 base_quat_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0)):
        """Load ``model`` into ``client`` at a fixed base pose and hold it at its home pose.

        Args:
            client: the world's physics client.
            model: which robot to load.
            name: the robot's name in the cell, used in error messages.
            base_xyz: base position in the world [m].
            base_quat_xyzw: base orientation in the world, unit quaternion (x, y, z, w).
        """
        self.client = client
        self.model = model
        self.name = name
        self.base_xyz = np.array(base_xyz, dtype=float)
        self.base_quat_xyzw = np.array(base_quat_xyzw, dtype=float)
        # No URDF_USE_SELF_COLLISION: pybullet then checks no pair of this body's links. The
        # neighbouring links' convex hulls overlap at every joint (false contacts), closed
        # fingers touch each other (that contact would fight the grip), and the pairs that
        # could truly meet (gripper vs. base) are kept apart by the env's workspace bounds and
        # the deployment safety layer, not by physics.
        # The merged description: 9 links instead of 12 for the Panda, about 15% less time per
        # substep, with the same mass properties (robots/fixed_links.py). Its file inertias are
        # the ones pybullet derives from mass and collision geometry for the full description,
        # which is what celltwin always simulated (and panda-gym does): the shipped tensors
        # themselves are placeholders on some arms (the Panda's 0.1 kg m^2 on every link would
        # make the wrist and fingers sluggish). So URDF_USE_INERTIA_FROM_FILE here reproduces
        # the derived inertias exactly; pybullet's own URDF_MERGE_FIXED_LINKS is not used
        # because it misplaces the centre of mass of the merged wrist.
        description = model.merged_urdf()
        self.body_id = client.loadURDF(str(description.path), self.base_xyz.tolist(),
                                       self.base_quat_xyzw.tolist(), useFixedBase=True,
                                       flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
        self._joint_by_name: dict[str, int] = {}
        self._link_by_name: dict[str, int] = {client.getBodyInfo(self.body_id)[0].decode(): -1}
        infos = [client.getJointInfo(self.body_id, joint)
                 for joint in range(client.getNumJoints(self.body_id))]
        for info in infos:
            self._joint_by_name[info[1].decode()] = info[0]
            self._link_by_name[info[12].decode()] = info[0]
        for link, frame in description.merged.items():
            self._link_by_name[link] = self._link_by_name[frame.link]

        arm = [self.joint_index(joint) for joint in model.arm_joint_names]
        fingers = ([] if model.gripper_held_closed
                   else [self.joint_index(joint) for joint in model.gripper_joint_names])
        for joint in arm + fingers:
            if infos[joint][2] == _FIXED:
                raise RobotError(Problem(f"joint '{infos[joint][1].decode()}' of {model.name} "
                                         "is fixed", expected="a revolute or prismatic joint"))
        self.arm_joint_indices = np.array(arm, dtype=np.intp)
        self.gripper_joint_indices = np.array(fingers, dtype=np.intp)
        self.ee_link_index = self.link_index(model.ee_link)
        tcp = description.merged.get(model.ee_link)
        self.ee_offset_xyz = np.array((0.0, 0.0, 0.0) if tcp is None else tcp.xyz)
        self.ee_offset_quat_xyzw = np.array((0.0, 0.0, 0.0, 1.0) if tcp is None
                                            else tcp.quat_xyzw)
        self.ee_offset_xyz.setflags(write=False)
        self.ee_offset_quat_xyzw.setflags(write=False)
        self._ee_xyz = self.ee_offset_xyz.tolist()
        self._ee_quat = self.ee_offset_quat_xyzw.tolist()
        # calculateInverseKinematics puts the link frame's origin at the target position but
        # turns the link's inertial frame to the target orientation. The merged wrist's
        # inertial frame is rotated (its principal axes), so a TCP target maps to the IK target
        # by the inverse TCP offset followed by that rotation.
        inverse_xyz, inverse_quat = client.invertTransform(self._ee_xyz, self._ee_quat)
        inertial_quat = client.getDynamicsInfo(self.body_id, self.ee_link_index)[4]
        self._tcp_to_ik = (inverse_xyz,
                           client.multiplyTransforms([0.0, 0.0, 0.0], inverse_quat,
                                                     [0.0, 0.0, 0.0], inertial_quat)[1])
        # calculateInverseKinematics answers one value per movable joint, fingers included;
        # these are the arm joints' places in that answer.
        movable = [info[0] for info in infos if info[2] != _FIXED]
        self.arm_ik_slots = [movable.index(j) for j in arm]
        self.num_movable_joints = len(movable)
        self.arm_lower = np.array([infos[j][8] for j in arm], dtype=float)
        self.arm_upper = np.array([infos[j][9] for j in arm], dtype=float)
        self._finger_limits = [(infos[j][8], infos[j][9]) for j in fingers]
        self._width_closed, self._width_open = model.gripper_width_range_m
        self.urdf_effort_limits = np.array([infos[j][10] for j in arm], dtype=float)
        self.urdf_effort_limits.setflags(write=False)
        self.urdf_velocity_limits = np.array([infos[j][11] for j in arm], dtype=float)
        self.urdf_velocity_limits.setflags(write=False)
        # The set-point limits an action controller moves the arm under: the law and limits
        # the deployment safety layer applies (celltwin.core.joint_motion), so that a policy
        # learns only motions a deployed robot makes.
        self.motion = JointMotionLimiter(JointMotionLimits.from_speeds(
            self.arm_lower, self.arm_upper, self.urdf_velocity_limits))

        # Bound once: BulletClient builds a functools.partial on every attribute access.
        self._arm_list = arm
        self._finger_list = fingers
        # Two fingers are geared together (robots/finger_gear.py): one motor drives both.
        self._driven_fingers = fingers[:1] if len(fingers) == 2 else fingers
        self.finger_gear: FingerGear | None = None
        self._get_joint_states = client.getJointStates
        self._get_link_state = client.getLinkState
        self._multiply = client.multiplyTransforms
        self._set_motors = client.setJointMotorControlArray
        self.actuation = Actuation(self._send_arm, self._send_fingers, name)
        self._command_arm = self.actuation.command_arm
        self._command_fingers = self.actuation.command_fingers
        # pybullet's own defaults, which panda-gym runs with.
        self.position_gain = 0.1
        self.velocity_gain = 1.0
        self.arm_force_limits = self.urdf_effort_limits
        self.gripper_force_n = float(model.gripper_force_n)
        if len(fingers) == 2:
            self.finger_gear = FingerGear(client, self.body_id, *fingers, model.gripper_force_n)
        # A suction cup's gripper set-point is the vacuum: on below the middle of its range.
        self._vacuum_mid = (None if model.suction is None
                            else 0.5 * (self._width_closed + self._width_open))
        self.suction: SuctionCup | None = None
        if model.suction is not None and not model.gripper_held_closed:
            cup = model.suction
            frame = description.merged.get(cup.cup_link)  # merged into the link carrying it
            face = client.multiplyTransforms(
                frame.xyz if frame else (0.0, 0.0, 0.0),
                frame.quat_xyzw if frame else (0.0, 0.0, 0.0, 1.0),
                (0.0, 0.0, cup.face_z_m), (0.0, 0.0, 0.0, 1.0))
            self.suction = SuctionCup(client, self.body_id, self.link_index(cup.cup_link), face,
                                      cup, name)
        self._check_home()
        self.reset_joints(model.home, model.gripper_width_range_m[1])

    # --- names -----------------------------------------------------------------------------

    def joint_index(self, joint_name: str) -> int:
        """Return the pybullet index of the joint called ``joint_name``."""
        try:
            return self._joint_by_name[joint_name]
        except KeyError:
            raise self._unknown("joint", joint_name, self._joint_by_name) from None

    def link_index(self, link_name: str) -> int:
        """Return the pybullet index of the link called ``link_name`` (-1 for the base link).

        A link of the full description that was merged into another one (``panda_hand``,
        ``tcp``) resolves to the link that carries it now.
        """
        try:
            return self._link_by_name[link_name]
        except KeyError:
            raise self._unknown("link", link_name, self._link_by_name) from None

    def link_indices(self) -> dict[str, int]:
        """Return every link name this robot answers to, with its pybullet index.

        Merged links map to the link that carries them, as in :meth:`link_index`.
        """
        return dict(self._link_by_name)

    def _unknown(self, kind: str, name: str, known) -> RobotError:
        return RobotError(Problem(
            f"robot '{self.name}' ({self.model.name}) has no {kind} '{name}'"
            + did_you_mean(name, known), value=name, expected=one_of(known)))

    # --- physics parameters (set by twin's PhysicsParams) ----------------------------------

    @property
    def dof(self) -> int:
        """Number of arm joints."""
        return len(self._arm_list)

    @property
    def has_gripper(self) -> bool:
        """Whether a gripper command does something: fingers that move, or a suction cup
        whose vacuum comes on (not a gripper held closed)."""
        return bool(self._finger_list) or self.suction is not None

    @property
    def position_gain(self) -> float:
        """pybullet position-control gain of every motor (fraction of error per step) [-]."""
        return self._position_gain

    @position_gain.setter
    def position_gain(self, value: float) -> None:
        self._position_gain = self._non_negative("position gain", value)
        self._arm_kp = [self._position_gain] * self.dof
        self._finger_kp = [self._position_gain] * len(self._driven_fingers)
        self.actuation.resend()

    @property
    def velocity_gain(self) -> float:
        """pybullet velocity-control gain of every motor [-]."""
        return self._velocity_gain

    @velocity_gain.setter
    def velocity_gain(self, value: float) -> None:
        self._velocity_gain = self._non_negative("velocity gain", value)
        self._arm_kd = [self._velocity_gain] * self.dof
        self._finger_kd = [self._velocity_gain] * len(self._driven_fingers)
        self.actuation.resend()

    @property
    def arm_force_limits(self) -> np.ndarray:
        """Maximum torque of each arm motor [N m]; read-only array, assign a new one to change."""
        if self._arm_force_limits is None:  # made when asked for: a randomized reset only sets
            limits = np.array(self._arm_forces)
            # Read-only so that an in-place edit fails loudly instead of missing the list.
            limits.setflags(write=False)
            self._arm_force_limits = limits
        return self._arm_force_limits

    @arm_force_limits.setter
    def arm_force_limits(self, value: Sequence[float]) -> None:
        # Checked as floats: numpy's conversions and reductions cost more for 7 values.
        forces = ([float(force) for force in value] if isinstance(value, (list, tuple))
                  else np.asarray(value, dtype=float).ravel().tolist())
        if len(forces) != self.dof or not all(force >= 0 for force in forces):  # NaN fails too
            raise RobotError(Problem(f"arm force limits of robot '{self.name}' are invalid",
                                     value=forces,
                                     expected=f"{self.dof} non-negative torques [N m]"))
        self._arm_force_limits = None
        self._arm_forces = forces
        self.actuation.resend()

    @property
    def gripper_force_n(self) -> float:
        """Maximum force each finger can press with [N]."""
        return self._gripper_force_n

    @gripper_force_n.setter
    def gripper_force_n(self, value: float) -> None:
        force = self._gripper_force_n = self._non_negative("gripper force [N]", value)
        # A motor that drives two fingers through a 1:1 gear splits its force between them
        # (virtual work: F dq = f dq + f dq), so it pushes twice as hard for the same force
        # per finger.
        share = len(self._finger_list) / max(len(self._driven_fingers), 1)
        self._finger_forces = [force * share] * len(self._driven_fingers)
        if self.finger_gear is not None:
            self.finger_gear.follow_grip(force)
        self.actuation.resend()

    def _non_negative(self, what: str, value: float) -> float:
        number = float(value)
        if not 0.0 <= number < math.inf:  # NaN fails both comparisons
            raise RobotError(Problem(f"{what} of robot '{self.name}' is invalid", value=value,
                                     expected="a finite number >= 0"))
        return number

    def motor_batch(self) -> MotorBatch:
        """Send the motor commands once, at the end, for every change made inside the block.

        A randomized reset restores the targets and then sets gains, arm force limits and the
        gripper force: each would re-send both motor arrays. Nothing steps the physics inside
        a reset, so sending once afterwards acts identically and keeps resets cheap.
        """
        return MotorBatch((self.actuation,))

    # --- state -----------------------------------------------------------------------------

    def reset_joints(self, q: Sequence[float], gripper_width: float | None = None) -> None:
        """Teleport the arm (and the fingers) to a configuration at rest and hold it there.

        For building a world only: it bypasses the dynamics. Episode resets restore a saved
        state instead, which is bit-exact.

        Args:
            q: arm joint positions [rad].
            gripper_width: opening between the finger pads [m]; ``None`` keeps the fingers.
        """
        q = self.as_joint_vector(q, "joint positions")
        for joint, value in zip(self._arm_list, q.tolist()):
            self.client.resetJointState(self.body_id, joint, value, 0.0)
        finger = None
        if gripper_width is not None and self._vacuum_mid is not None:
            finger = self._vacuum_target(gripper_width)
            if self.suction is not None:  # at rest now: the vacuum as asked, nothing held
                self.suction.release()
                self.suction.set_vacuum(finger[0] < self._vacuum_mid)
        elif gripper_width is not None:
            finger = self._finger_position(gripper_width)
            for joint, value in zip(self._finger_list, finger):
                self.client.resetJointState(self.body_id, joint, value, 0.0)
            finger = finger[:len(self._driven_fingers)]
        self.actuation.apply_now(self._clipped(q), finger)  # at rest now: nothing on its way
        self.motion.reset(q)

    def joint_positions(self) -> np.ndarray:
        """Return the arm joint positions [rad], shape (dof,)."""
        return np.array([s[0] for s in self._get_joint_states(self.body_id, self._arm_list)])

    def measured_joint_positions(self) -> np.ndarray:
        """Return the arm joint positions as the joint sensors report them [rad], shape (dof,).

        What a controller reads: :meth:`joint_positions` with the actuation's sensor noise.
        """
        return self.actuation.measured(self.joint_positions())

    def joint_velocities(self) -> np.ndarray:
        """Return the arm joint velocities [rad/s], shape (dof,)."""
        return np.array([s[1] for s in self._get_joint_states(self.body_id, self._arm_list)])

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the TCP pose in the world: position [m] and quaternion (x, y, z, w)."""
        state = self._get_link_state(self.body_id, self.ee_link_index, 0, 1)
        position, orientation = self._multiply(state[4], state[5], self._ee_xyz, self._ee_quat)
        return np.array(position), np.array(orientation)

    def ee_velocity(self) -> np.ndarray:
        """Return the TCP linear velocity in the world [m/s]."""
        return self.ee_position_and_velocity()[1]

    def ee_position_and_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the TCP position [m] and linear velocity [m/s] in the world, in one query."""
        position, velocity = self.tcp_state()
        return np.array(position), np.array(velocity)

    def tcp_state(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """:meth:`ee_position_and_velocity` as plain tuples (the form per-step readers use)."""
        state = self._get_link_state(self.body_id, self.ee_link_index, 1, 1)
        position = self._multiply(state[4], state[5], self._ee_xyz, self._ee_quat)[0]
        # pybullet gives the velocity of the link's centre of mass; the TCP is another point
        # of the same rigid link: v_tcp = v_com + w x (p_tcp - p_com). Plain floats, as this
        # runs on every env step and numpy's cross product costs more than the arithmetic.
        (vx, vy, vz), (wx, wy, wz), com = state[6], state[7], state[0]
        rx, ry, rz = position[0] - com[0], position[1] - com[1], position[2] - com[2]
        return position, (vx + wy * rz - wz * ry, vy + wz * rx - wx * rz, vz + wx * ry - wy * rx)

    def gripper_width(self) -> float:
        """Return the opening between the finger pads [m] (each finger joint is half of it).

        A suction cup reports its state as an opening: closed while it holds a part, half open
        with the vacuum on and nothing held, open with the vacuum off (or held closed).
        """
        if self._vacuum_mid is not None:
            if self.suction is None:
                return self._width_open
            return self.suction.width(self._width_closed, self._width_open)
        if not self._finger_list:
            return self._width_closed  # held closed: welded at that opening
        states = self._get_joint_states(self.body_id, self._finger_list)
        return float(sum(s[0] for s in states))

    def ik_target(self, position: Sequence[float], quat_xyzw: Sequence[float],
                  ) -> tuple[list[float], list[float]]:
        """Return what to give calculateInverseKinematics for link ``ee_link_index``.

        Args:
            position: the TCP's target position in the world [m].
            quat_xyzw: the TCP's target orientation in the world, quaternion (x, y, z, w).

        Returns:
            the target position and orientation that put the TCP at that pose.
        """
        target_xyz, target_quat = self._multiply(list(position), list(quat_xyzw),
                                                 *self._tcp_to_ik)
        return list(target_xyz), list(target_quat)

    # --- commands --------------------------------------------------------------------------

    def command_joint_positions(self, q: Sequence[float]) -> None:
        """Set the arm motors' position targets, clipped to the joint limits [rad].

        They act ``actuation.latency_steps`` control steps from now (at once without latency).
        A set-point sent this way is the caller's to bound (a controller's, the adapter's
        safety layer); :meth:`move_joints_towards` bounds it as the safety layer does.
        """
        target = self._clipped(self.as_joint_vector(q, "joint position command"))
        self.motion.follow(target)
        self._command_arm(target)

    def move_joints_towards(self, q: Sequence[float], period_s: float) -> None:
        """Command the next set-point towards arm target ``q`` [rad] within the joint speed,
        per-step change, acceleration and position limits of :attr:`motion`, relative to the
        last set-point ``period_s`` [s] ago (:mod:`celltwin.core.joint_motion`)."""
        target = self.as_joint_vector(q, "joint position command")
        self._command_arm(self._clipped(self.motion(target, period_s)))

    def command_gripper_width(self, width_m: float) -> None:
        """Set the finger motors' targets for an opening of ``width_m`` [m], clipped to range.

        They act after the actuation latency, as arm targets do. A gripper held closed
        (``RobotModel.held_closed``) checks the width and ignores it. A suction cup's vacuum
        comes on for a width below the middle of its range and goes off for one above.
        """
        if self._vacuum_mid is not None:
            self._command_fingers(self._vacuum_target(width_m))
            return
        self._command_fingers(self._finger_position(width_m)[:len(self._driven_fingers)])

    def motor_targets(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Return the arm and finger targets the motors hold now (after latency)."""
        return tuple(self.actuation.arm_target), tuple(self.actuation.finger_target)

    def _clipped(self, q: np.ndarray) -> list[float]:
        return np.clip(q, self.arm_lower, self.arm_upper).tolist()

    def _send_arm(self, target: Sequence[float]) -> None:
        self._set_motors(self.body_id, self._arm_list, pybullet.POSITION_CONTROL,
                         targetPositions=target, forces=self._arm_forces,
                         positionGains=self._arm_kp, velocityGains=self._arm_kd)

    def _send_fingers(self, target: Sequence[float]) -> None:
        if self.suction is not None:
            self.suction.set_vacuum(target[0] < self._vacuum_mid)
            return
        if not self._driven_fingers:
            return  # a gripper held closed has no finger motors; width commands do nothing
        self._set_motors(self.body_id, self._driven_fingers, pybullet.POSITION_CONTROL,
                         targetPositions=target, forces=self._finger_forces,
                         positionGains=self._finger_kp, velocityGains=self._finger_kd)

    def _finger_position(self, width_m: float) -> list[float]:
        """Return each finger joint's target for an opening of ``width_m`` [m]."""
        width = self._finite_width(width_m)
        half = 0.5 * min(max(width, self._width_closed), self._width_open)
        return [min(max(half, low), high) for low, high in self._finger_limits]

    def _vacuum_target(self, width_m: float) -> list[float]:
        """A suction cup's set-point for a width command: the closed width (vacuum on) below
        the middle of its range, the open one (vacuum off) above."""
        on = self._finite_width(width_m) < self._vacuum_mid
        return [self._width_closed if on else self._width_open]

    def _finite_width(self, width_m: float) -> float:
        width = float(width_m)
        if not math.isfinite(width):
            raise RobotError(Problem(f"gripper width command for robot '{self.name}' is not "
                                     "finite", value=width, expected="a width [m]"))
        return width

    def as_joint_vector(self, q: Sequence[float], what: str = "joint positions") -> np.ndarray:
        """Return ``q`` as a float array, or raise RobotError unless it is dof finite values."""
        q = np.asarray(q, dtype=float)
        if q.shape != (self.dof,) or not np.isfinite(q).all():
            raise RobotError(Problem(f"{what} for robot '{self.name}' is invalid",
                                     value=q.tolist(), expected=f"{self.dof} finite values [rad]"))
        return q

    def hold(self) -> None:
        """Make the current arm and finger positions the targets at once, so the robot stays put.

        Set-points on their way are dropped and the latency is skipped (a stop acts now). Also
        for after ``restoreState``: a pybullet snapshot holds joint states, not motor targets.
        """
        if self._vacuum_mid is not None:  # the vacuum stays as it is
            fingers = self._vacuum_target(self._width_closed if self.suction is not None
                                          and self.suction.vacuum else self._width_open)
        else:
            fingers = self._finger_position(self.gripper_width())[:len(self._driven_fingers)]
        q = self.joint_positions()
        self.actuation.apply_now(self._clipped(q), fingers)
        self.motion.reset(q)

    def rest_motion(self) -> None:
        """Restart the set-point limits from rest at the arm's joints (after a world restore:
        snapshots are taken with the arm at rest)."""
        self.motion.reset(self.joint_positions())

    def _check_home(self) -> None:
        home = np.array(self.model.home, dtype=float)
        if (home.shape != (self.dof,) or np.any(home < self.arm_lower)
                or np.any(home > self.arm_upper)):
            raise RobotError(Problem(f"home pose of {self.model.name} is outside its joint limits",
                                     value=home.tolist(),
                                     expected=f"{self.dof} values within the URDF limits [rad]"))
