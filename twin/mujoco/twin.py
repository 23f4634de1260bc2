"""The MuJoCo twin of a cell: one MjModel and MjData, stepped one control period at a time.

:class:`MujocoTwin` answers the questions a controller and the agreement report ask of a world
(:class:`celltwin.world.World`) with the same names: ``robot(name)``, ``body(name)``,
``step()``, ``control_period_s``, ``physics_params()``, ``apply_physics(params)``,
``snapshot()`` / ``restore()``, ``part_pose``, ``place_part``. It is built from the same
validated cell and the same PhysicsParams as the pybullet world (:class:`TwinSource`), by the
one builder (:func:`celltwin.mujoco.builder.build_cell`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection

import numpy as np

from celltwin.core.errors import PhysicsParamsError, Problem, WorldError, did_you_mean, named
from celltwin.mujoco.builder import build_cell
from celltwin.mujoco.engine import load_mujoco
from celltwin.mujoco.errors import MujocoError
from celltwin.mujoco.mapping import apply_params
from celltwin.mujoco.model import CellModel
from celltwin.mujoco.robot import MujocoRobot
from celltwin.mujoco.source import TwinSource
from celltwin.mujoco.suction import MujocoSuctionState
from celltwin.physics import PhysicsParams
from celltwin.physics_io import suction_problems
from celltwin.robots.actuation import ActuationState
from celltwin.spec import CellSpec

mujoco = load_mujoco()

# What a snapshot keeps: the full integration state (positions, velocities, controls, the
# solver's warm start), so that a restored twin replays bit-exactly.
_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


@dataclass(frozen=True)
class TwinSnapshot:
    """A saved state of a :class:`MujocoTwin` (see :meth:`MujocoTwin.snapshot`)."""

    state: np.ndarray
    params: PhysicsParams
    conveyor_speeds: tuple[float, ...]
    actuation: tuple[ActuationState, ...]
    suction: tuple[MujocoSuctionState, ...] = ()


class MujocoTwin:
    """A MuJoCo twin of one cell.

    Args:
        cell: a CellSpec, a path to a cell file, or the name of a shipped example cell.
        physics: overrides applied as ``World`` applies them (e.g. ``--physics FILE``).
        held_grippers: robots whose grippers are held closed, as in ``World``.

    Use as a context manager, or call :meth:`close`.

    Raises:
        MujocoError: MuJoCo is missing, or the cell holds what MuJoCo cannot express.
    """

    def __init__(self, cell: CellSpec | str | Path, physics: PhysicsParams | None = None,
                 held_grippers: Collection[str] = ()):
        self._init(TwinSource.of_cell(cell, physics, held_grippers))

    @classmethod
    def from_source(cls, source: TwinSource) -> "MujocoTwin":
        """The twin of what a pybullet world was built from (:meth:`TwinSource.of_world`)."""
        twin = cls.__new__(cls)
        twin._init(source)
        return twin

    def _init(self, source: TwinSource) -> None:
        self.spec: CellSpec = source.spec
        self.cell: CellModel = build_cell(source)
        self._params = source.params
        self._substeps = int(source.params.substeps)
        self.model = self._compile()
        self.data = mujoco.MjData(self.model)
        self.robots: dict[str, MujocoRobot] = {}
        for name, handles in self.cell.robots.items():
            robot = MujocoRobot(handles, self.model, self.data)
            robot.reset_joints(handles.start.joint_positions, handles.start.gripper_width_m)
            self.robots[name] = robot
        self._actuations = tuple(robot.actuation for robot in self.robots.values())
        self._cups = tuple(robot.suction for robot in self.robots.values()
                           if robot.suction is not None)
        self.conveyor_speeds = dict(source.conveyor_speeds)
        self.parts = [part.name for part in source.parts]
        self._closed = False
        self._apply_runtime(source.params)
        self.forward()

    # ----------------------------------------------------------------------------- building
    def _compile(self):
        try:
            return self.cell.spec.compile()
        except ValueError as error:
            raise MujocoError(Problem(f"MuJoCo cannot compile cell '{self.spec.name}': "
                                      + " ".join(str(error).split()))) from None

    def _recompile(self) -> None:
        apply_params(self.cell, self._params)
        try:
            self.model, self.data = self.cell.spec.recompile(self.model, self.data)
        except ValueError as error:
            raise MujocoError(Problem(f"MuJoCo cannot compile cell '{self.spec.name}': "
                                      + " ".join(str(error).split()))) from None
        for robot in self.robots.values():
            robot.bind(self.model, self.data)
        self._apply_speeds()

    def _apply_speeds(self) -> None:
        for name, speed in self.conveyor_speeds.items():
            geom = self.model.geom(self.cell.belts[name]).id
            self.model.geom_surfacevel[geom] = (speed, 0.0, 0.0, 0.0, 0.0, 0.0)

    def set_conveyor_speed(self, name: str, speed_mps: float) -> None:
        """Run belt ``name`` at ``speed_mps`` [m/s] from the next step."""
        named(self.conveyor_speeds, name, "conveyor")
        self.conveyor_speeds[name] = float(speed_mps)
        self._apply_speeds()

    # ----------------------------------------------------------------------------- names
    def body(self, name: str) -> int:
        """The MuJoCo body id of the cell's body ``name`` (a robot: its base link)."""
        return self.model.body(named(self.cell.bodies, name, "body")).id

    @property
    def bodies(self) -> dict[str, int]:
        """Every named body of the cell with its MuJoCo body id."""
        return {name: self.model.body(body).id for name, body in self.cell.bodies.items()}

    def robot(self, name: str | None = None) -> MujocoRobot:
        """The robot called ``name`` (the only one when ``name`` is omitted)."""
        return named(self.robots, name, "robot")

    # ----------------------------------------------------------------------------- bodies
    def pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Centre-of-mass position [m] and orientation (x, y, z, w) of body ``name``, the
        pose pybullet reports as a body's base pose."""
        body = self.body(name)
        w, x, y, z = self.data.xquat[body]
        return self.data.xipos[body].copy(), np.array([x, y, z, w])

    def part_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Position of part ``name``'s centre [m] and its orientation (x, y, z, w)."""
        body = self.model.body(named(self.cell.parts, name, "part").body).id
        w, x, y, z = self.data.xquat[body]
        return self.data.xpos[body].copy(), np.array([x, y, z, w])

    def place_part(self, name: str, position, yaw_rad: float) -> np.ndarray:
        """Put part ``name`` at rest, upright with ``yaw_rad``, its centre at ``position``."""
        joint = self.model.joint(named(self.cell.parts, name, "part").joint)
        address, velocity = joint.qposadr[0], joint.dofadr[0]
        self.data.qpos[address:address + 3] = position
        self.data.qpos[address + 3:address + 7] = (np.cos(yaw_rad / 2), 0.0, 0.0,
                                                   np.sin(yaw_rad / 2))
        self.data.qvel[velocity:velocity + 6] = 0.0
        self.forward()
        return np.asarray(position, dtype=float)

    def touching(self, name: str) -> set[str]:
        """Names of the cell's bodies in contact with body ``name`` now (a robot: any link)."""
        owner = self._owners()
        mine = owner.get(self.body(name))
        found = set()
        for contact in self.data.contact[:self.data.ncon]:
            first = owner.get(self.model.geom_bodyid[contact.geom1])
            second = owner.get(self.model.geom_bodyid[contact.geom2])
            if mine == first and second is not None:
                found.add(second)
            elif mine == second and first is not None:
                found.add(first)
        found.discard(mine)
        return found

    def _owners(self) -> dict[int, str]:
        """The cell body every MuJoCo body belongs to (a robot's links: the robot)."""
        owner = {self.model.body(body).id: name for name, body in self.cell.bodies.items()}
        for name, handles in self.cell.robots.items():
            for body in handles.links.values():
                owner[self.model.body(body).id] = name
        return owner

    # ----------------------------------------------------------------------------- physics
    @property
    def control_period_s(self) -> float:
        """Simulated time one :meth:`step` advances [s]."""
        return float(self.model.opt.timestep) * self._substeps

    @property
    def time_s(self) -> float:
        """Simulated time since the twin was built [s]."""
        return float(self.data.time)

    def physics_params(self) -> PhysicsParams:
        """Every physical knob of this twin, as PhysicsParams (the source's, as changed)."""
        return self._params

    def apply_physics(self, params: PhysicsParams) -> None:
        """Apply every field set in ``params``; unknown names raise PhysicsParamsError.

        Substeps and the robots' servo gains, latency and sensor noise act at once; anything
        else compiles the model again (:func:`celltwin.mujoco.mapping.apply_params`), keeping
        the state.
        """
        self._check_open()
        self._check_names(params)
        before = self._params
        self._params = before.merged(params)
        self._apply_runtime(params)
        if params.substeps is not None:
            self._substeps = int(params.substeps)
        if _compiled(self._params) != _compiled(before):
            self._recompile()

    def _apply_runtime(self, params: PhysicsParams) -> None:
        for robot in self.robots.values():
            servo = robot.servo
            for index, joint in enumerate(servo.damped):
                entry = params.joints.get(robot.handles.joint_keys[joint])
                if entry is not None and entry.damping is not None:
                    servo.damping[index] = entry.damping
        for name, entry in params.robots.items():
            servo, actuation = self.robots[name].servo, self.robots[name].actuation
            if entry.position_gain is not None:
                servo.position_gain = entry.position_gain
            if entry.velocity_gain is not None:
                servo.velocity_gain = entry.velocity_gain
            if entry.latency_steps is not None:
                actuation.latency_steps = entry.latency_steps
            if entry.joint_noise_std_rad is not None:
                actuation.joint_noise_std_rad = entry.joint_noise_std_rad
            cup = self.robots[name].suction
            if cup is not None and entry.suction_force_n is not None:
                cup.force_n = entry.suction_force_n
            if cup is not None and entry.suction_seal_tolerance_m is not None:
                cup.seal_tolerance_m = entry.suction_seal_tolerance_m

    def _check_names(self, params: PhysicsParams) -> None:
        known = self._params
        problems = []
        for section, noun in (("bodies", "body"), ("joints", "joint"), ("robots", "robot")):
            table = getattr(known, section)
            for key in getattr(params, section):
                if key not in table:
                    problems.append(Problem(f"no {noun} named '{key}'{did_you_mean(key, table)}",
                                            path=f"{section}.{key}", value=key))
        problems += suction_problems(self.robots, params)  # the pybullet world's check
        for key, dynamics in params.bodies.items():
            # What a world reports without a mass is fixed in place (as World refuses it).
            if dynamics.mass_kg is not None and key in known.bodies \
                    and known.bodies[key].mass_kg is None:
                problems.append(Problem(f"'{key}' is fixed in place; it has no mass to set",
                                        path=f"bodies.{key}.mass_kg", value=dynamics.mass_kg))
        if problems:
            raise PhysicsParamsError(problems)

    def step(self, control_steps: int = 1) -> None:
        """Advance ``control_steps`` control periods; each starts by sending the set-points
        whose actuation latency ran out; then suction cups seal on what they touch, and after
        its physics they lose what was pulled off them (:mod:`celltwin.mujoco.suction`)."""
        self._check_open()
        model, data = self.model, self.data
        step1, step2 = mujoco.mj_step1, mujoco.mj_step2
        servos = [robot.apply_servo for robot in self.robots.values()]
        cups = self._cups
        for _ in range(control_steps):
            for actuation in self._actuations:
                if actuation.pending:
                    actuation.advance()
            for cup in cups:
                cup.update()
            for _ in range(self._substeps):
                step1(model, data)
                for servo in servos:
                    servo()
                step2(model, data)
            for cup in cups:
                cup.check_pull()
        self.forward()

    def forward(self) -> None:
        """Bring positions, frames and velocities up to date with the state (``mj_step``
        leaves them at the start of its last step; pybullet reports the end)."""
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    # ----------------------------------------------------------------------------- snapshots
    def snapshot(self) -> TwinSnapshot:
        """Save the full simulation state in memory (bit-exact on restore)."""
        self._check_open()
        state = np.empty(mujoco.mj_stateSize(self.model, _STATE))
        mujoco.mj_getState(self.model, self.data, state, _STATE)
        return TwinSnapshot(state, self._params, tuple(self.conveyor_speeds.values()),
                            tuple(actuation.state() for actuation in self._actuations),
                            tuple(cup.state() for cup in self._cups))

    def restore(self, snapshot: TwinSnapshot) -> None:
        """Return to ``snapshot``: state, parameters, belt speeds, servo targets and the
        set-points on their way."""
        self._check_open()
        if snapshot.params is not self._params:
            before = self._params
            self._params = snapshot.params
            self._substeps = int(self._params.substeps)
            self._apply_runtime(self._params)
            if _compiled(self._params) != _compiled(before):
                self._recompile()
        mujoco.mj_setState(self.model, self.data, snapshot.state, _STATE)
        for name, speed in zip(self.conveyor_speeds, snapshot.conveyor_speeds):
            self.conveyor_speeds[name] = speed
        self._apply_speeds()
        for actuation, state in zip(self._actuations, snapshot.actuation):
            actuation.restore(state)
        for cup, state in zip(self._cups, snapshot.suction):
            cup.restore(state)
        self.forward()

    # ----------------------------------------------------------------------------- lifetime
    def to_xml(self) -> str:
        """The model as MJCF, for MuJoCo's own tools (``python -m mujoco.viewer``)."""
        return self.cell.spec.to_xml()

    def close(self) -> None:
        """Close the twin: stepping, snapshots and physics changes are refused afterwards
        (WorldError, as a closed World). Idempotent."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise WorldError(Problem("this twin is closed",
                                     expected="a MujocoTwin that is still open"))

    def __enter__(self) -> "MujocoTwin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()



def _compiled(params: PhysicsParams) -> tuple:
    """The fields of ``params`` that live in the compiled model (the rest act at run time)."""
    joints = {key: (entry.friction, entry.force_limit) for key, entry in params.joints.items()}
    return (params.timestep_s, params.solver_iterations, params.gravity_mps2, params.bodies,
            joints)
