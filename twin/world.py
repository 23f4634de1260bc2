"""The twin: one pybullet client holding a production cell, addressed by name.

A ``World`` is built from a validated :class:`celltwin.spec.CellSpec`. It owns exactly one pybullet
client in DIRECT mode (no global pybullet state; several worlds live side by side in one
process), records every body under its cell name, steps physics one control period at a time,
and saves/restores in-memory snapshots that replay bit-exactly.

One control step is ``substeps`` calls of ``stepSimulation`` with ``timestep_s`` each, as in
panda-gym. pybullet's own ``numSubSteps`` would save those calls, but Bullet then keeps a
leftover-time accumulator that no snapshot captures, and restored worlds drift from the
original by a step now and then; measured, it saves nothing noticeable either.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Collection

import numpy as np

from celltwin import scene
from celltwin.conveyor import Conveyor
from celltwin.core.client import direct_client, gui_client
from celltwin.core.errors import Problem, WorldError, did_you_mean, named, one_of
from celltwin.meshes import PreparedMesh, prepare_mesh
from celltwin.parts import PartGeometry
from celltwin.physics import PhysicsParams
from celltwin.physics_io import IndexTables, apply_entries, apply_physics, as_entries, read_physics
from celltwin.physics_state import PhysicsRecord, Snapshot
from celltwin.robots import Robot, get_robot_model
from celltwin.robots.actuation import MotorBatch
from celltwin.robots.kinematics import yawed
from celltwin.spec import CellSpec, load_cell

_ORIGIN = (0.0, 0.0, 0.0)
_IDENTITY = (0.0, 0.0, 0.0, 1.0)


class World:
    """A pybullet twin of one cell.

    Args:
        cell: a CellSpec, a path to a cell file, or the name of a shipped example cell.
        physics: overrides applied after building (e.g. loaded from ``--physics FILE``).
        gui: open pybullet's window instead of running headless (needs a display).
        held_grippers: robots whose grippers are held closed, welded shut
            (:meth:`celltwin.robots.RobotModel.held_closed`): for tasks that never open them.

    Use as a context manager, or call :meth:`close`, to free the pybullet client.
    """

    def __init__(self, cell: CellSpec | str | Path, physics: PhysicsParams | None = None,
                 gui: bool = False, held_grippers: Collection[str] = ()):
        self.spec = cell if isinstance(cell, CellSpec) else load_cell(cell)
        names = [robot.name for robot in self.spec.robots]
        if isinstance(held_grippers, str):  # one name, not its letters
            held_grippers = (held_grippers,)
        for name in held_grippers:
            if name not in names:
                raise WorldError(Problem(f"no robot named '{name}' to hold the gripper of"
                                         + did_you_mean(name, names), path="held_grippers",
                                         value=name, expected=one_of(names)))
        self._held_grippers = frozenset(held_grippers)
        self.client = gui_client() if gui else direct_client()
        self.bodies: dict[str, int] = {}
        self.robots: dict[str, Robot] = {}
        self.conveyors: dict[str, Conveyor] = {}
        self.parts: list[str] = []
        self.static_bodies: list[str] = []
        self.meshes: dict[str, PreparedMesh] = {}
        self.part_geometries: dict[str, PartGeometry] = {}  # what each part body is now
        self._nominal_half_heights: dict[str, float] = {}
        self.revision = 0  # counts rebuilt parts: holders of part body ids compare it
        self._part_specs: dict = {}
        self._snapshots: list[int] = []
        self.index_tables = IndexTables()  # name -> pybullet index tables, for physics_io
        try:
            self._build()
            self._physics = PhysicsRecord(read_physics(self))
            cell_physics = self.spec.physics
            self.apply_physics(PhysicsParams(
                timestep_s=cell_physics.timestep_s, substeps=cell_physics.substeps,
                solver_iterations=cell_physics.solver_iterations,
                gravity_mps2=tuple(cell_physics.gravity_mps2)))
            if physics is not None:
                self.apply_physics(physics)
        except BaseException:
            self.close()
            raise
        self._bind(self.client)
        self._actuations = tuple(robot.actuation for robot in self.robots.values())
        # Suction cups seal and let go once per control step (celltwin.robots.suction).
        self._cups = tuple(robot.suction for robot in self.robots.values()
                           if robot.suction is not None)
        self._moving_links = [(self.bodies[name], -1) for name in self.parts]
        self._moving_links += [(robot.body_id, link) for robot in self.robots.values()
                               for link in range(self.client.getNumJoints(robot.body_id))]

    def _bind(self, client) -> None:
        """Bind the client's hot functions once, as attributes (no lookup on the hot path).

        Each binding holds the client's id, which pybullet hands to the next client after a
        disconnect, so :meth:`close` binds them all to :class:`_ClosedClient`.
        """
        self._step, self._set_filter = client.stepSimulation, client.setCollisionFilterGroupMask
        self._get_pose = client.getBasePositionAndOrientation
        self._set_pose = client.resetBasePositionAndOrientation
        self._set_velocity, self._multiply = client.resetBaseVelocity, client.multiplyTransforms
        self._from_euler = client.getQuaternionFromEuler

    # ----------------------------------------------------------------------------- building
    def _build(self) -> None:
        client = self.client
        self._add("floor", scene.add_floor(client), static=True)
        for item in self.spec.equipment:
            mesh = None
            if item.shape == "mesh":
                mesh = self.meshes[item.name] = prepare_mesh(item.mesh, item.mesh_units, item.scale)
            self._add(item.name, scene.add_equipment(client, item, mesh), static=True)
        belts = []
        for conveyor in self.spec.conveyors:
            body, direction = scene.add_conveyor(client, conveyor)
            self._add(conveyor.name, body, static=True)
            belts.append((conveyor, body, direction))
        for bin_spec in self.spec.bins:
            self._add(bin_spec.name, scene.add_bin(client, bin_spec), static=True)
        regions = {region.name: region for region in self.spec.spawn_regions}
        for part in self.spec.parts:
            region = regions[part.spawn]
            frame = self.frame(region.on)
            names = part.body_names()
            for name, (position, yaw) in zip(names, scene.spawn_positions(
                    region, len(names), *frame, client)):
                self._add(name, scene.add_part(client, part, position, yaw))
                self.parts.append(name)
                self._part_specs[name] = part
                self.part_geometries[name] = PartGeometry.of(part)
                self._nominal_half_heights[name] = self.part_geometries[name].half_height_m
        part_ids = frozenset(self.bodies[name] for name in self.parts)
        for conveyor, body, direction in belts:
            self.conveyors[conveyor.name] = Conveyor(client, conveyor.name, body, direction,
                                                     conveyor.speed_mps, part_ids)
        for robot_spec in self.spec.robots:
            model = get_robot_model(robot_spec.model)
            if robot_spec.name in self._held_grippers:
                model = model.held_closed()
            robot = Robot(client, model, robot_spec.name, robot_spec.base.xyz,
                          robot_spec.base.quaternion_xyzw())
            home = (np.radians(robot_spec.home_deg) if robot_spec.home_deg is not None
                    else np.asarray(model.home))
            robot.reset_joints(home, model.gripper_width_range_m[1])  # and holds it there
            self.robots[robot_spec.name] = robot
            self._add(robot_spec.name, robot.body_id)

    def _add(self, name: str, body_id: int, static: bool = False) -> None:
        self.bodies[name] = body_id
        if static:
            self.static_bodies.append(name)

    def frame(self, body_name: str | None):
        """Pose of the frame a spawn region is written in: the world, or a body's frame."""
        if body_name is None:
            return [0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]
        for conveyor in self.spec.conveyors:
            if conveyor.name == body_name:  # a belt's frame is its top surface, not its box centre
                return list(conveyor.pose.xyz), list(conveyor.pose.quaternion_xyzw())
        position, orientation = self.client.getBasePositionAndOrientation(self.bodies[body_name])
        return list(position), list(orientation)

    # ----------------------------------------------------------------------------- names
    def body(self, name: str) -> int:
        """Return the pybullet id of the body called ``name``."""
        return named(self.bodies, name, "body")

    def robot(self, name: str | None = None) -> Robot:
        """Return the robot called ``name`` (the only one when ``name`` is omitted)."""
        return named(self.robots, name, "robot")

    def link_index(self, body: str, link: str) -> int:
        """Return the index of link ``link`` of body ``body`` (-1 for the base)."""
        body_id = self.body(body)
        if body in self.robots:  # robots also answer to the names of their merged links
            names = self.robots[body].link_indices()
        else:
            names = {self.client.getBodyInfo(body_id)[0].decode(): -1}
            for index in range(self.client.getNumJoints(body_id)):
                names[self.client.getJointInfo(body_id, index)[12].decode()] = index
        if link not in names:
            raise WorldError(Problem(f"body '{body}' has no link '{link}'{did_you_mean(link, names)}",
                                     value=link, expected=one_of(names)))
        return names[link]

    def pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the base position [m] and orientation (xyzw) of body ``name``: pybullet's base
        position, the centre of mass (for a part's centre, see :meth:`part_pose`)."""
        position, orientation = self.client.getBasePositionAndOrientation(self.body(name))
        return np.asarray(position), np.asarray(orientation)

    # ----------------------------------------------------------------------------- parts
    def part_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Position of part ``name``'s centre [m] (not its centre of mass) and orientation."""
        position, orientation = self._get_pose(self.bodies[name])
        geometry = self.part_geometries[name]
        com = geometry.com_m
        if geometry.com_offset:  # pybullet reports the inertial frame, i.e. the centre of mass
            position, _ = self._multiply(position, orientation, (-com[0], -com[1], -com[2]),
                                         _IDENTITY)
        return np.asarray(position), np.asarray(orientation)

    def set_part_pose(self, name: str, position, orientation) -> None:
        """Put part ``name``'s centre at ``position`` [m] with ``orientation`` (xyzw)."""
        geometry = self.part_geometries[name]
        position, orientation = tuple(position), tuple(orientation)
        if geometry.com_offset:
            position, _ = self._multiply(position, orientation, geometry.com_m, _IDENTITY)
        self._set_pose(self.bodies[name], position, orientation)

    def move_part(self, name: str, dx: float, dy: float, yaw_rad: float) -> None:
        """Shift part ``name`` by ``dx``, ``dy`` [m] and turn it by ``yaw_rad`` about the
        vertical through its centre (not its centre of mass, when that is randomized)."""
        body = self.bodies[name]
        position, orientation = self._get_pose(body)
        geometry = self.part_geometries[name]
        com = geometry.com_m
        turned = yawed(yaw_rad, orientation) if yaw_rad else orientation
        if geometry.com_offset and yaw_rad:
            # The centre of mass sits at d = R(q) com from the centre; turning about the
            # centre turns d by the yaw: one pose read and one write, no frame round trip.
            centre = self._multiply(position, orientation, (-com[0], -com[1], -com[2]),
                                    _IDENTITY)[0]
            x, y = position[0] - centre[0], position[1] - centre[1]
            c, s = math.cos(yaw_rad), math.sin(yaw_rad)
            position = (centre[0] + c * x - s * y, centre[1] + s * x + c * y, position[2])
        self._set_pose(body, (position[0] + dx, position[1] + dy, position[2]), turned)

    def move_base(self, name: str, dx: float, dy: float, yaw_rad: float) -> None:
        """Shift body ``name`` (a robot's base, say) by ``dx``, ``dy`` [m] and turn it by
        ``yaw_rad`` about the world z axis through its origin."""
        body = self.body(name)
        position, orientation = self._get_pose(body)  # bound once: randomized resets are hot
        orientation = yawed(yaw_rad, orientation) if yaw_rad else orientation
        self._set_pose(body, (position[0] + dx, position[1] + dy, position[2]), orientation)

    def place_part(self, name: str, position, yaw_rad: float) -> np.ndarray:
        """Put part ``name`` at rest, upright with ``yaw_rad``, where the nominal part's centre
        would be at ``position`` [m].

        Spawn regions give where nominal parts' centres lie; a part rebuilt to another size or
        shape goes up or down by the change of its half height, so its bottom stays on the
        surface the region was written for.

        Returns:
            Where the part's centre went [m].
        """
        position = np.array(position, dtype=float)
        position[2] += self.part_geometries[name].half_height_m - self._nominal_half_heights[name]
        self.set_part_pose(name, position, self._from_euler((0.0, 0.0, yaw_rad)))
        self._set_velocity(self.bodies[name], _ORIGIN, _ORIGIN)
        return position

    def rebuild_part(self, name: str, shape: str | None = None, size_scale: float = 1.0,
                     com_m=(0.0, 0.0, 0.0)) -> PartGeometry:
        """Replace part ``name``'s body by a variant of its nominal geometry; return the variant.

        pybullet cannot change a created body's collision shape or inertial frame, so the part
        is removed and built again (see :meth:`PartGeometry.variant` for the arguments; the
        centre of mass is clamped into the part). The new body keeps the old one's centre
        pose (raised or lowered by the change of its half height), colour, and every physics
        parameter on record (mass, frictions, restitution). Everything here that held the old
        body id follows; callers holding ids compare :attr:`revision`.

        Saved snapshots are dropped: pybullet's restoreState matches bodies by their order in
        the simulation, which a rebuild changes, so restoring a snapshot taken before would put
        states on the wrong bodies. Take a new snapshot afterwards.
        """
        spec = named(self._part_specs, name, "part")
        client = self.client
        try:
            geometry = PartGeometry.of(spec).variant(shape, size_scale, com_m)
        except ValueError as error:
            raise WorldError(Problem(f"cannot rebuild part '{name}': {error}",
                                     value={"shape": shape, "size_scale": size_scale})) from None
        old = self.bodies[name]
        position, orientation = self.part_pose(name)
        position[2] += geometry.half_height_m - self.part_geometries[name].half_height_m
        colour = client.getVisualShapeData(old)[0][7]
        # Built before the old body goes, so the id always changes: a holder of the old id
        # fails loudly instead of reaching the new body by a reused id.
        body = scene.build_part(client, geometry, position, orientation, colour, spec.mass_kg,
                                spec.friction)
        client.removeBody(old)
        self.bodies[name] = body
        self.part_geometries[name] = geometry
        self._moving_links = [(body if b == old else b, link) for b, link in self._moving_links]
        for conveyor in self.conveyors.values():
            conveyor.carried = frozenset(body if b == old else b for b in conveyor.carried)
        self.index_tables.forget_part(name)
        entry = self.physics_params().bodies[name]
        apply_entries(self, {}, {"bodies": {name: {k: v for k, v in entry.__dict__.items()
                                                   if v is not None}}})
        for state_id in self._snapshots:
            client.removeState(state_id)
        self._snapshots.clear()
        self.revision += 1
        return geometry

    # ----------------------------------------------------------------------------- physics
    @property
    def control_period_s(self) -> float:
        """Simulated time one :meth:`step` advances [s]."""
        return self._physics.value_global("timestep_s") * self._physics.substeps

    def physics_params(self) -> PhysicsParams:
        """Return every physical knob of this world as it is now."""
        return self._physics.current()

    def apply_physics(self, params: PhysicsParams) -> None:
        """Apply every field set in ``params``; unknown names raise PhysicsParamsError."""
        apply_physics(self, params)
        self._physics.record(*as_entries(params))

    def apply_physics_entries(self, globals_: dict, sections: dict) -> None:
        """Apply already-checked values as plain dicts (the fast path of randomized resets).

        Args:
            globals_: global fields of :class:`PhysicsParams` by name.
            sections: ``{"bodies"|"joints"|"robots": {key: {field: value}}}``.
        """
        apply_entries(self, globals_, sections)
        self._physics.record(globals_, sections)

    def joint_value(self, key: str, field: str):
        """One field of joint ``key`` (``robot/joint``) as it is now."""
        return self._physics.value("joints", key, field)

    def record_physics_values(self, entries: tuple, values: list) -> None:
        """Note values a :class:`celltwin.physics_io.EntryWriter` just applied to this world."""
        self._physics.record_values(entries, values)

    def latency_steps(self, robot: str) -> int:
        """Actuation latency of ``robot`` [control steps] (``robot.actuation`` applies it)."""
        return self.robot(robot).actuation.latency_steps

    def step(self, control_steps: int = 1) -> None:
        """Advance ``control_steps`` control periods; conveyors carry parts every period.

        Each period starts by sending the set-points whose actuation latency ran out; then
        suction cups seal on what they touch, or lose what was pulled off them.
        """
        conveyors = tuple(self.conveyors.values())
        substeps = range(self._physics.substeps)
        step, actuations, cups = self._step, self._actuations, self._cups
        for _ in range(control_steps):
            for actuation in actuations:
                if actuation.pending:  # latency: set-points on their way
                    actuation.advance()
            for cup in cups:
                cup.update()
            for conveyor in conveyors:
                conveyor.carry()
            for _ in substeps:
                step()

    def motor_batch(self) -> MotorBatch:
        """Every robot sends its motor commands once, when the block ends (see Robot)."""
        return MotorBatch(self._actuations)

    # ----------------------------------------------------------------------------- snapshots
    def snapshot(self) -> Snapshot:
        """Save the full simulation state in memory (bit-exact on restore)."""
        state_id = self.client.saveState()
        self._snapshots.append(state_id)
        return Snapshot(state_id, self.physics_params(),
                        tuple(c.speed_mps for c in self.conveyors.values()),
                        tuple(actuation.state() for actuation in self._actuations),
                        tuple(cup.state() for cup in self._cups))

    def restore(self, snapshot: Snapshot, overwritten=frozenset()) -> None:
        """Return the world to ``snapshot``: bodies, contacts, parameters, motor targets, the
        set-points on their way and what suction cups hold.

        Args:
            snapshot: from :meth:`snapshot` of this world.
            overwritten: ``(section, key, field)`` physics entries the caller sets again right
                away (a randomizer); they are not reverted first, which halves its cost.
        """
        if snapshot.state_id not in self._snapshots:
            raise WorldError(Problem("snapshot does not belong to this world, or was taken "
                                     "before a part was rebuilt",
                                     expected="a snapshot taken after the last rebuild_part"))
        self.client.restoreState(stateId=snapshot.state_id)
        revert = self._physics.revert_to(snapshot.params, overwritten)
        if revert is not None:
            # Re-apply only what was ever changed: a randomized reset touches a handful of
            # entries, and re-applying every body and link would cost more than the reset.
            if revert[0] or any(revert[1].values()):
                apply_entries(self, *revert)
            self._physics.reset_to(snapshot.params, overwritten)
        for conveyor, speed in zip(self.conveyors.values(), snapshot.conveyor_speeds):
            conveyor.speed_mps = speed
        for actuation, state in zip(self._actuations, snapshot.actuation):
            # restoreState brings back joint states but not motor targets.
            actuation.restore(state)
        for robot in self.robots.values():
            robot.rest_motion()
        for cup, state in zip(self._cups, snapshot.suction):
            cup.restore(state)  # nor constraints: a held part is gripped again
        self._flush_contact_cache()

    def _flush_contact_cache(self) -> None:
        # restoreState leaves alone the contact manifolds of body pairs that are still close,
        # and those carry the solver's warm-start impulses from whatever ran before. Setting a
        # body's collision filter rebuilds its broadphase proxy, which drops its manifolds, so
        # what follows a restore no longer depends on history. Every free body and moving
        # robot link is set to pybullet's own default for dynamic bodies (group 1, mask all).
        for body, link in self._moving_links:
            self._set_filter(body, link, 1, -1)

    # ----------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Disconnect the pybullet client; the world is unusable afterwards."""
        if getattr(self, "client", None) is not None and not self.client.closed:
            self.client.disconnect()
            self._bind(_ClosedClient())

    @property
    def closed(self) -> bool:
        return self.client.closed

    def __enter__(self) -> "World":
        return self

    def __exit__(self, *exc) -> None:
        self.close()



class _ClosedClient:
    """What a closed world's hot functions are bound to: each raises :class:`WorldError`."""

    def __getattr__(self, name: str):
        return _closed


def _closed(*_args) -> None:
    raise WorldError(Problem("this world is closed", expected="a World that is still open"))
