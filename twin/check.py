"""What `celltwin cell check` reports about a built twin: bodies, reach, interpenetrations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from celltwin.robots import Kinematics


@dataclass(frozen=True)
class ReachResult:
    """Whether one robot reaches one named target."""

    target: str
    robot: str
    reachable: bool
    position_error_m: float
    orientation_error_rad: float
    reason: str


@dataclass(frozen=True)
class Interpenetration:
    """Two bodies overlapping by more than the tolerance right after building."""

    body_a: str
    body_b: str
    depth_m: float


@dataclass
class CellReport:
    """Everything `cell check` found; ``ok`` is False when a target is out of reach or bodies overlap."""

    cell: str
    bodies: dict[str, str] = field(default_factory=dict)
    reach: list[ReachResult] = field(default_factory=list)
    interpenetrations: list[Interpenetration] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tasks: list = field(default_factory=list)
    """which tasks the cell hosts (``celltwin.envs.tasks.TaskSupport``: task, ok, detail),
    as the acting robot ``task_robot``; informative: a task it cannot host is no problem"""
    task_robot: str = ""

    @property
    def ok(self) -> bool:
        return all(r.reachable for r in self.reach) and not self.interpenetrations

    def to_dict(self) -> dict:
        return {"cell": self.cell, "ok": self.ok, "bodies": self.bodies,
                "reach": [asdict(r) for r in self.reach],
                "interpenetrations": [asdict(i) for i in self.interpenetrations],
                "notes": self.notes, "tasks": [vars(task) for task in self.tasks]}

    def to_text(self) -> str:
        lines = [f"cell '{self.cell}': {len(self.bodies)} bodies"]
        lines += [f"  {name:<22} {kind}" for name, kind in self.bodies.items()]
        lines.append(f"reach ({len(self.reach)} target x robot pairs):")
        for r in self.reach:
            verdict = "reachable" if r.reachable else f"NOT reachable: {r.reason}"
            lines.append(f"  {r.target:<18} by {r.robot:<10} {verdict} "
                         f"(position error {r.position_error_m * 1000:.1f} mm)")
        if self.interpenetrations:
            lines.append("interpenetrations:")
            lines += [f"  {i.body_a} / {i.body_b}: {i.depth_m * 1000:.1f} mm"
                      for i in self.interpenetrations]
        else:
            lines.append("interpenetrations: none")
        lines += [f"note: {note}" for note in self.notes]
        if self.tasks:
            lines.append(f"tasks (robot '{self.task_robot}' acting; names by docs/cells.md):")
            lines += [f"  {task.task:<14} {'yes' if task.ok else 'no'}: {task.detail}"
                      for task in self.tasks]
        lines.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(lines)


def body_kinds(world) -> dict[str, str]:
    """Name -> kind (robot model, equipment shape, conveyor, bin, part) for every body."""
    spec = world.spec
    kinds = {"floor": "floor"}
    kinds.update({r.name: f"robot ({r.model})" for r in spec.robots})
    kinds.update({e.name: f"equipment ({e.shape})" for e in spec.equipment})
    kinds.update({c.name: f"conveyor ({c.speed_mps:g} m/s)" for c in spec.conveyors})
    kinds.update({b.name: b.kind for b in spec.bins})
    for part in spec.parts:
        kinds.update({name: f"part ({part.shape}, {part.mass_kg:g} kg)" for name in part.body_names()})
    return {name: kinds.get(name, "body") for name in world.bodies}


def target_pose(world, target) -> tuple[np.ndarray, np.ndarray]:
    """World pose of a named target (resolving ``relative_to``)."""
    client = world.client
    frame_position, frame_orientation = world.frame(target.relative_to)
    position, orientation = client.multiplyTransforms(frame_position, frame_orientation,
                                                      list(target.pose.xyz),
                                                      list(target.pose.quaternion_xyzw()))
    return np.asarray(position), np.asarray(orientation)


def check_reach(world, limit_margin_rad: float = 0.0) -> list[ReachResult]:
    """Solve IK for every named target by every robot assigned to it."""
    results = []
    spec = world.spec
    for robot_spec in spec.robots:
        targets = [t for t in spec.targets if t.robot in (None, robot_spec.name)]
        if not targets:
            continue
        robot = world.robots[robot_spec.name]
        with Kinematics(robot.model, robot_spec.base.xyz, robot_spec.base.quaternion_xyzw()) as kin:
            for target in targets:
                position, orientation = target_pose(world, target)
                ik = kin.ik(position, orientation, limit_margin_rad=limit_margin_rad)
                results.append(ReachResult(target.name, robot_spec.name, ik.reachable,
                                           float(ik.position_error_m),
                                           float(ik.orientation_error_rad), ik.reason))
    return results


def check_interpenetrations(world, tolerance_m: float = 2e-3) -> list[Interpenetration]:
    """Pairs of distinct bodies overlapping deeper than ``tolerance_m`` in the built state.

    Asked pair by pair with ``getClosestPoints``: Bullet never collides two fixed bodies while
    stepping, yet a fixture built through a table is exactly what a planner must hear about.
    """
    closest = world.client.getClosestPoints
    names = sorted(world.bodies)
    found = []
    for index, first in enumerate(names):
        for second in names[index + 1:]:
            points = closest(world.bodies[first], world.bodies[second], 0.0)
            depth = max((-p[8] for p in points), default=0.0)
            if depth > tolerance_m:
                found.append(Interpenetration(first, second, depth))
    return found


def mesh_notes(world) -> list[str]:
    """Remarks on CAD equipment: size after unit conversion, watertightness, hull count."""
    notes = []
    for name, mesh in world.meshes.items():
        size = " x ".join(f"{e:.3f}" for e in mesh.extents_m)
        text = f"mesh '{name}': {size} m, {mesh.hulls} convex hull(s) for collision"
        if not mesh.watertight:
            text += "; NOT watertight (open edges): its volume and inside are undefined"
        notes.append(text)
    return notes


def check_cell(world) -> CellReport:
    """Build the full report for a freshly built world."""
    return CellReport(world.spec.name, body_kinds(world), check_reach(world),
                      check_interpenetrations(world), mesh_notes(world))
